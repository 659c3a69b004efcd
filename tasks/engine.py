"""`fab deploy`, `fab smoke`, `fab status`, `fab logs`, `fab stop`: the serving lifecycle."""

from __future__ import annotations

from invoke.exceptions import Exit
from rich.text import Text

from llmfab import capacity
from llmfab.config import Engine
from llmfab.confirm import assumed
from llmfab.deployment import DeploymentError, build
from llmfab.exits import ExitStatus
from llmfab.output import diagnoses
from llmfab.facts.failures import diagnose_log
from llmfab.results import HostResult
from llmfab.errors import UsageError
from llmfab.session import Session, open_session, reported_errors, select_nodes

from .options import DRY_RUN, SSH, VERBOSE, YES, engine_name, engine_version, task
from .planning import capacity_plan

ENGINE = "vllm | sglang | trtllm (default: engine.name in the config)"
VERSION = "engine version profile, e.g. v0.8.5 (default: the config's, else the runbook's pin)"


def choose_engine(session: Session, engine: str | None, version: str | None) -> None:
    """Point the session's config at ENGINE; options in the config belong to its own engine only."""
    current = session.config.engine
    engine = engine_name(engine)
    engine_version(engine or current.name, version)
    if engine and engine != current.name:
        if current.options:
            session.reporter.out.print(Text(
                f"note: --engine {engine} leaves out engine.options ({', '.join(sorted(current.options))}), "
                f"which are {current.name}'s; to set {engine}'s, put engine.name: {engine} and its options "
                "in the config", style="yellow"))
        session.config.engine = Engine(name=engine, version=version, port=current.port, bind=current.bind,
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


@task(help={**SSH, "engine": ENGINE, "version": VERSION, "dry-run": DRY_RUN, "yes": YES, "verbose": VERBOSE,
            "skip-smoke": "do not send the smoke-test request at the end"})
def deploy(c, config=None, engine=None, version=None, dry_run=False, yes=False, verbose=False, parallel=0,
           accept_new_host_keys=False, ask_sudo_pass=False, skip_smoke=False):
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
    """
    with reported_errors():
        session = open_session(c, config, dry_run=dry_run, parallel=parallel or None, verbose=verbose,
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
        results = session.run_phase("deploy", yes=assumed(yes))
        if any(r.failed for r in results) and not dry_run:
            _diagnose(session.reporter.out, results)
            session.reporter.out.print("[bold red]deploy failed: stopping the engine on every node (ranks go down together)[/bold red]")
            session.fleet.nodes = list(session.config.nodes)
            session.fleet.run_phase("stop")
            session.finish(results, "deploy recap")
        session.finish(results, "deploy recap" + (" (dry run)" if dry_run else ""))
        if not skip_smoke and not dry_run:
            _smoke(_on_head(session))


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
        session.finish(results, "status")


@task(help={**SSH, "node": "only this node (name or address)", "lines": "lines per log (default 200)"})
def logs(c, config=None, node=None, lines=200, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Print the tail of the engine's logs from every node (or --node)."""
    with reported_errors():
        session = open_session(c, config, quiet=True, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        if node:
            try:
                session.fleet.nodes = select_nodes(session.config, [node])
            except UsageError:
                known = ", ".join(f"{n.name} ({n.address})" for n in session.config.nodes)
                raise UsageError(f"--node {node} is not a node of {session.config.source}; known nodes: {known}")
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
