"""`fab deploy`, `fab smoke`, `fab status`, `fab logs`, `fab stop`: the serving lifecycle."""

from __future__ import annotations

import threading

from invoke import task
from invoke.exceptions import Exit
from rich.text import Text

from llmfab import capacity, group
from llmfab.config import ClusterConfig, Engine
from llmfab.deployment import DeploymentError, build
from llmfab.engines import list_engines, list_versions
from llmfab.errors import UsageError
from llmfab.exits import ExitStatus
from llmfab.fleet import Fleet
from llmfab.output import diagnoses
from llmfab.facts.failures import diagnose_log
from llmfab.results import HostResult
from llmfab.session import Session, open_session, reported_errors, select_nodes

from .options import DRY_RUN, SSH
from .planning import capacity_plan

ENGINE = "vllm | sglang | trtllm (default: engine.name in the config)"
VERSION = "engine version profile, e.g. v0.8.5 (default: the config's, else the runbook's pin)"


def choose_engine(session: Session, engine: str | None, version: str | None) -> None:
    """Point the session's config at ENGINE; options in the config belong to its own engine only."""
    pick_engine(session.config, engine, version)


def pick_engine(config: ClusterConfig, engine: str | None, version: str | None) -> None:
    """Point CONFIG at ENGINE (and VERSION); a name or version without a profile is a UsageError."""
    current = config.engine
    known = list_engines()
    if engine and engine not in known:
        raise UsageError(f"--engine: {engine!r} is not an engine; use {', '.join(known[:-1])} or {known[-1]}")
    versions = list_versions(engine or current.name)
    if version and version.lstrip("v") not in {v.lstrip("v") for v in versions}:
        raise UsageError(f"--version: no {engine or current.name} profile {version!r}; use one of {', '.join(versions)}")
    if engine and engine != current.name:
        config.engine = Engine(name=engine, version=version, port=current.port, bind=current.bind,
                               api_key=current.api_key, ready_timeout=current.ready_timeout)
    elif version:
        current.version = version


def _on_head(session: Session) -> Session:
    session.fleet.nodes = [session.config.head]
    return session


def _diagnose(out, results: list[HostResult]) -> None:
    """Name the likely cause from every node's engine logs."""
    for r in results:
        found = []
        for name, text in r.logs().items():
            found += [(name, d) for d in diagnose_log(text)]
        for step in r.steps:
            found += [(step.step, d) for d in diagnose_log(step.tail)]
        diagnoses(out, r.host, found)


@task(help={**SSH, "engine": ENGINE, "version": VERSION, "dry-run": DRY_RUN,
            "skip-smoke": "do not send the smoke-test request at the end"})
def deploy(c, config=None, engine=None, version=None, dry_run=False, parallel=0,
           accept_new_host_keys=False, ask_sudo_pass=False, skip_smoke=False):
    """Deploy the engine on all nodes in order, wait until it serves, then smoke-test it.

    The head starts first and waits for every worker (vLLM: every node and GPU
    in `ray status`); then it waits for /health and the served model in
    /v1/models, within engine.ready_timeout. On failure the logs of every node
    are collected, the likely cause is named, and the whole group is stopped
    (ranks are never left half up). Re-deploying an identical, healthy
    deployment changes nothing; another engine's containers are removed first.

    Examples:
      fab deploy --engine=vllm
      fab deploy --engine=sglang --config configs/h20-2x8.yaml
    """
    with reported_errors():
        session = open_session(c, config, dry_run=dry_run, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        choose_engine(session, engine, version)
        try:
            d = build(session.config)
        except DeploymentError as e:
            raise Exit(f"error: {e}", code=int(ExitStatus.REFUSED))
        plan = capacity_plan(session.config, d)
        if plan is not None and plan.verdict == "refuse":
            session.reporter.out.print(capacity.render_plan(plan))
            raise Exit("refused: the model does not fit this layout (see above)", code=int(ExitStatus.REFUSED))
        session.reporter.out.print(f"deploying [bold]{d.engine} {d.profile.version}[/bold] ({d.profile.image_ref}), "
                                   f"fingerprint {d.fingerprint}")
        if not dry_run:
            _restart_broken_group(session)
        results = _deploy_phase(session, dry_run)
        if any(r.failed for r in results) and not dry_run:
            _diagnose(session.reporter.out, results)
            session.reporter.out.print("[bold red]deploy failed: stopping the engine on every node (ranks go down together)[/bold red]")
            session.fleet.nodes = list(session.config.nodes)
            session.fleet.run_phase("stop")
            session.finish(results, "deploy recap")
        session.finish(results, "deploy recap" + (" (dry run)" if dry_run else ""))
        if not skip_smoke and not dry_run:
            _smoke(_on_head(session))


def _restart_broken_group(session: Session) -> None:
    """Stop every rank first when some ranks run and others crashed: they cannot rejoin."""
    fleet = session.fleet
    before = fleet.nodes
    fleet.nodes = list(session.config.nodes)
    try:
        broken = group.down(fleet.run_phase("status"))
        if broken:
            session.reporter.out.print("[bold yellow]engine group broken[/bold yellow] ("
                                       + "; ".join(r.describe() for r in broken)
                                       + "): stopping every rank to start them together")
            fleet.run_phase("stop")
    finally:
        fleet.nodes = before


class _Silent:
    """Progress that shows nothing (repeated background stops)."""

    def __getattr__(self, name):
        return lambda *args: None


class _StopGroupOnFailure:
    """Progress that also stops every rank as soon as one host's deploy fails.

    Without it the head would wait for a worker that will never join until
    engine.ready_timeout; with the group stopped, the head's wait sees its
    container go and ends within seconds.
    """

    def __init__(self, session: Session):
        self._inner = session.fleet.progress
        self._session = session
        self._stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.phase_done = threading.Event()

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def host_done(self, result: HostResult) -> None:
        self._inner.host_done(result)
        if result.failed and not self._stopping.is_set():
            self._stopping.set()
            self.thread = threading.Thread(target=self._stop_group, args=(result,), daemon=True)
            self.thread.start()

    def _stop_group(self, failed: HostResult) -> None:
        # Stop again every few seconds until the phase ends: a rank that was
        # still starting when the first stop ran would start its container after it.
        self._session.reporter.out.print(
            f"[bold red]{failed.host} ({failed.address}) failed: {failed.reason}[/bold red]; "
            "stopping the engine on every node, so the others stop waiting for it")
        config = self._session.config
        progress = self._inner
        while True:
            fleet = Fleet(config, list(config.nodes), self._session.fleet.options,
                          self._session.fleet.parallel, progress)
            fleet.run_phase("stop")
            progress = _Silent()
            if self.phase_done.wait(5):
                return


def _deploy_phase(session: Session, dry_run: bool) -> list[HostResult]:
    """The deploy phase on every node; the first failing host takes the group down at once."""
    if dry_run:
        return session.run_phase("deploy")
    inner = session.fleet.progress
    watcher = _StopGroupOnFailure(session)
    session.fleet.progress = watcher
    try:
        return session.run_phase("deploy")
    finally:
        session.fleet.progress = inner
        watcher.phase_done.set()
        if watcher.thread is not None:
            watcher.thread.join()


def _smoke(session: Session) -> None:
    results = session.fleet.run_phase("smoke")
    for fields in results[0].of_kind("smoke"):
        session.reporter.out.print("smoke: " + ", ".join(fields))
    session.finish(results, "smoke test")


@task(help={**SSH, "engine": ENGINE})
def smoke(c, config=None, engine=None, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Send the runbook's streaming chat request; report time to first token and tokens/s."""
    with reported_errors():
        session = open_session(c, config, accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass,
                               quiet=True)
        choose_engine(session, engine, None)
        _smoke(_on_head(session))


@task(help={**SSH, "engine": ENGINE})
def status(c, config=None, engine=None, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Show per node: llmfab's containers, engine, image, endpoint health, GPUs in use."""
    with reported_errors():
        session = open_session(c, config, parallel=parallel or None, quiet=True,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        choose_engine(session, engine, None)
        results = session.fleet.run_phase("status")
        out = session.reporter.out
        for r in results:
            containers = [f[0] for f in r.of_kind("container")] or ["(no llmfab containers)"]
            out.print(f"[bold]{r.host}[/bold] ({r.address})")
            for line in containers:
                name, image, state, engine_, rank = (line.split("|") + [""] * 5)[:5]
                out.print(f"  {name:<16} {engine_:<7} rank {rank or '-':<3} {image:<45} {state}")
            for url, state in (f[:2] for f in r.of_kind("health")):
                out.print(f"  endpoint {url}: [{'green' if state == 'up' else 'red'}]{state}[/]")
            for (gpus, *_rest) in r.of_kind("gpus"):
                out.print(f"  GPUs in use: {gpus}")
        broken = group.down(results)
        if broken:
            _report_broken(out, broken, results)
        session.finish(results, "status")
        if broken:
            raise Exit(code=int(ExitStatus.HOST_FAILED))


def _report_broken(out, broken: list[group.Rank], results: list[HostResult]) -> None:
    """Name the ranks that are down while others run, with what their logs say."""
    out.print("[bold red]engine group broken:[/bold red] down while other ranks run: "
              + "; ".join(r.describe() for r in broken))
    _diagnose(out, [r for r in results if r.host in {b.host for b in broken}])
    out.print("  ranks cannot rejoin a running group: `fab deploy` restarts all of them")


@task(help={**SSH, "node": "only this node (name or address)", "lines": "lines per log (default 200)"})
def logs(c, config=None, node=None, lines=200, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Print the tail of the engine's logs from every node (or --node)."""
    with reported_errors():
        session = open_session(c, config, quiet=True, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        if node:
            session.fleet.nodes = select_nodes(session.config, [node])
        results = session.fleet.run_phase("logs")
        for r in results:
            for name, text in r.logs().items():
                session.reporter.out.print(f"[bold]== {r.host}: {name}[/bold]")
                for line in text.splitlines()[-int(lines):]:
                    session.reporter.out.print(Text(line))
        session.finish(results, "logs")


@task(help={**SSH, "webui": "stop only Open WebUI, leave the engine running"})
def stop(c, config=None, webui=False, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Remove llmfab's engine containers on every node (nothing else is touched)."""
    with reported_errors():
        session = open_session(c, config, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        results = session.run_phase("stop-webui" if webui else "stop")
        session.finish(results, "stop")
