"""`fab deploy`, `fab smoke`, `fab status`, `fab logs`, `fab stop`: the serving lifecycle."""

from __future__ import annotations

import threading

from rich.text import Text

from llmfab import capacity, group
from llmfab.confirm import assumed, confirm
from llmfab.errors import HostsFailed, Refused, UsageError
from llmfab.fleet import Fleet
from llmfab.output import diagnoses
from llmfab.records import Container, Firewall, Gpus, Health, Smoke
from llmfab.facts.failures import diagnose_log
from llmfab.results import HostResult
from llmfab.session import Session, open_session, reported_errors, select_nodes

from . import serving as serving_tasks
from .options import DRY_RUN, SSH, VERBOSE, YES, session_engine, task
from .planning import capacity_plan

ENGINE = "vllm | sglang | trtllm (default: engine.name in the config)"
VERSION = "engine version profile, e.g. v0.8.5 (default: the config's, else the runbook's pin)"


def _diagnose(out, results: list[HostResult]) -> None:
    """Name the likely cause from every node's engine logs."""
    for r in results:
        found = []
        for name, text in r.logs().items():
            found += [(name, d) for d in diagnose_log(text)]
        for step in r.steps:
            found += [(step.step, d) for d in diagnose_log(step.tail)]
        diagnoses(out, r.host, found)


GROUP = "only serving group N (1, 2, ...; see serving: in the config)"


@task(help={**SSH, "engine": ENGINE, "version": VERSION, "dry-run": DRY_RUN, "yes": YES, "verbose": VERBOSE,
            "skip-smoke": "do not send the smoke-test request at the end", "group": GROUP,
            "rolling": "serving groups: replace one group at a time, drained from the router first, so the "
                       "router always has a group to answer"})
def deploy(c, config=None, engine=None, version=None, dry_run=False, yes=False, verbose=False, parallel=0,
           accept_new_host_keys=False, ask_sudo_pass=False, skip_smoke=False, group=0, rolling=False):
    """Deploy the engine on all nodes in order, wait until it serves, then smoke-test it.

    The head starts first and waits for every worker (vLLM: every node and GPU
    in `ray status`); then it waits for /health and the served model in
    /v1/models, within engine.ready_timeout. On failure the logs of every node
    are collected, the likely cause is named, and the whole group is stopped
    (ranks are never left half up). Re-deploying an identical, healthy
    deployment changes nothing; another engine's containers are removed first.
    When it would change a node, it says what and asks first (--yes skips that).

    Examples:
      fab deploy --config mycluster.yaml --engine=vllm
      fab deploy --config mycluster.yaml --engine=sglang --yes
      fab deploy --rolling --version v0.33.0 --yes      # serving groups, one at a time
    """
    with reported_errors():
        session = open_session(c, config, dry_run=dry_run, parallel=parallel or None, verbose=verbose,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        session = session_engine(session, engine, version)
        if session.config.serving.enabled or group or rolling:
            _refuse_without_serving(session)
            serving_tasks.deploy(session, _deploy_group, _smoke, int(group), rolling, yes, skip_smoke)
            return
        d = session.run.deployment
        plan = capacity_plan(session.config, d)
        if plan is not None and plan.verdict == "refuse":
            session.reporter.out.print(capacity.render_plan(plan))
            raise Refused("the model does not fit this layout (see above)")
        session.reporter.out.print(f"deploying [bold]{d.engine} {d.profile.version}[/bold] ({d.profile.image_ref}), "
                                   f"fingerprint {d.fingerprint}")
        if not dry_run and not assumed(yes):
            confirm(session, "deploy")
        results = _deploy_group(session)
        if any(r.failed for r in results) and not dry_run:
            session.finish(results, "deploy recap")
        session.finish(results, "deploy recap" + (" (dry run)" if dry_run else ""))
        if not skip_smoke and not dry_run:
            _smoke(session)


def _refuse_without_serving(session: Session) -> None:
    if not session.config.serving.enabled:
        raise UsageError("--group and --rolling work on serving groups: add a serving: section to "
                         f"{session.config.source} (group_size or groups)")


def _deploy_group(session: Session) -> list[HostResult]:
    """Deploy SESSION's nodes as one engine group; on failure name the cause and stop every rank."""
    if session.dry_run:
        return _deploy_phase(session, True)
    _restart_broken_group(session)
    results = _deploy_phase(session, False)
    if any(r.failed for r in results):
        _diagnose(session.reporter.out, results)
        session.reporter.out.print("[bold red]deploy failed: stopping the engine on every node (ranks go down together)[/bold red]")
        session.phase("stop", on=session.everyone)
    return results


def _restart_broken_group(session: Session) -> None:
    """Stop every rank first when some ranks run and others crashed: they cannot rejoin."""
    broken = group.down(session.phase("status", on=session.everyone))
    if broken:
        session.reporter.out.print("[bold yellow]engine group broken[/bold yellow] ("
                                   + "; ".join(r.describe() for r in broken)
                                   + "): stopping every rank to start them together")
        session.phase("stop", on=session.everyone)


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
        run = self._session.run
        progress = self._inner
        while True:
            fleet = Fleet(run.config, list(run.config.nodes), self._session.fleet.options,
                          self._session.fleet.parallel, progress)
            fleet.run_phase(run, "stop")
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
    results = session.phase("smoke", on=session.head_only)
    for s in results[0].records_of(Smoke):
        session.reporter.out.print(f"smoke: {s.ttft_s}, {s.chunks}, {s.tokens_per_s}")
    session.finish(results, "smoke test")


@task(help={**SSH, "engine": ENGINE})
def smoke(c, config=None, engine=None, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Send the runbook's streaming chat request; report time to first token and tokens/s."""
    with reported_errors():
        session = open_session(c, config, accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass,
                               quiet=True)
        _smoke(session_engine(session, engine, None))


@task(help={**SSH, "engine": ENGINE, "group": GROUP})
def status(c, config=None, engine=None, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False, group=0):
    """Show per node: llmfab's containers, engine, image, endpoint health, GPUs in use (and the router's view)."""
    with reported_errors():
        session = open_session(c, config, parallel=parallel or None, quiet=True,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        session = session_engine(session, engine, None)
        if session.config.serving.enabled or group:
            _refuse_without_serving(session)
            broken: list = []
            results, trouble = serving_tasks.status(session, lambda sub, found: broken.extend(_show(sub, found)),
                                                    int(group))
            session.finish(results, "status")
            if broken or trouble:
                raise HostsFailed()
            return
        results = session.phase("status")
        broken = _show(session, results)
        session.finish(results, "status")
        if broken:
            raise HostsFailed()


def _show(session: Session, results: list[HostResult]) -> list:
    """Print each node's containers, endpoint and firewall; name a broken group; return its down ranks."""
    out = session.reporter.out
    for r in results:
        containers = r.records_of(Container) or [Container("(no llmfab containers)")]
        out.print(f"[bold]{r.host}[/bold] ({r.address})")
        for container in containers:
            name, image, state, engine_, rank = container.parts()
            # Remote text, never markup: a container label must not style or break the table.
            out.print(Text(f"  {name:<16} {engine_:<7} rank {rank or '-':<3} {image:<45} {state}"))
        for h in r.records_of(Health):
            out.print(Text(f"  endpoint {h.url}: ").append(h.state, style="green" if h.state == "up" else "red"))
        for f in r.records_of(Firewall):
            shown = f"on: only cluster nodes reach {f.ports}" if f.state == "on" else "off (no llmfab rules)"
            out.print(Text(f"  firewall {shown}"))
        for g in r.records_of(Gpus):
            out.print(f"  GPUs in use: {g.gpus}")
    broken = group.down(results)
    if broken:
        _report_broken(out, broken, results)
    return broken


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
        chosen = None
        if node:
            try:
                chosen = select_nodes(session.config, [node])
            except UsageError:
                known = ", ".join(f"{n.name} ({n.address})" for n in session.config.nodes)
                raise UsageError(f"--node {node} is not a node of {session.config.source}; known nodes: {known}")
        results = session.phase("logs", on=chosen)
        for r in results:
            for name, text in r.logs().items():
                session.reporter.out.print(f"[bold]== {r.host}: {name}[/bold]")
                for line in text.splitlines()[-int(lines):]:
                    session.reporter.out.print(Text(line))
        session.finish(results, "logs")


@task(help={**SSH, "webui": "stop only Open WebUI, leave the engine running", "group": GROUP})
def stop(c, config=None, webui=False, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False, group=0):
    """Remove llmfab's engine containers on every node (and the router; nothing else is touched)."""
    with reported_errors():
        session = open_session(c, config, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        if (session.config.serving.enabled or group) and not webui:
            _refuse_without_serving(session)
            session.finish(serving_tasks.stop(session, int(group)), "stop")
            return
        results = session.run_phase("stop-webui" if webui else "stop")
        session.finish(results, "stop")
