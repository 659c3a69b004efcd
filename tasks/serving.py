"""Serving groups behind a router: what `fab deploy`, `status` and `stop` do when the config has `serving:`.

Each group is deployed as a cluster of its own (llmfab/serving.py), all at
once; the router comes last. `--group N` works on one group; `--rolling`
replaces the groups one at a time, each drained from the router first and
put back once it serves again, so the router always has a group to answer.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from rich.text import Text

from llmfab import routers, serving
from llmfab.confirm import assumed, confirm
from llmfab.deployment import DeploymentError
from llmfab.errors import HostsFailed, Refused, UsageError
from llmfab.fleet import Fleet
from llmfab.records import Health, Router, RouterWorker
from llmfab.results import HostResult, overall_failed
from llmfab.session import Session


def sub_session(session: Session, group: serving.Group) -> Session:
    """SESSION narrowed to GROUP, with the group's own config (its head as head)."""
    config = serving.group_config(session.config, group)
    nodes = list(config.nodes)
    fleet = Fleet(config, nodes, session.fleet.options, session.fleet.parallel, session.fleet.progress,
                  logs=session.fleet.logs)
    return Session(replace(session.run, config=config), nodes, fleet, session.reporter)


def _router_session(session: Session, group: int = 0) -> Session:
    """SESSION on the router's node only (GROUP: the one its drain or admit step is about)."""
    node = serving.router_node(session.config)
    fleet = Fleet(session.config, [node], session.fleet.options, 1, session.fleet.progress, logs=session.fleet.logs)
    return Session(session.run.with_options(serving_group=group), [node], fleet, session.reporter)


def chosen(session: Session, group: int) -> list[serving.Group]:
    try:
        return [serving.pick(session.config, group)] if group else serving.groups(session.config)
    except serving.ServingError as e:
        raise UsageError(str(e)) from None


def _validate(session: Session, subs: list[Session]) -> None:
    if session.config.engine.api_key == "none" and len(serving.groups(session.config)) > 1:
        raise Refused("engine.api_key: none with serving groups: the firewall would let only a group's own "
                      "nodes reach its head, so the router could not; use generate (the default) or a key")
    for sub in subs:
        try:
            sub.run.deployment
        except DeploymentError as e:
            raise Refused(f"group of {', '.join(n.name for n in sub.nodes)}: {e}") from None


def deploy(session: Session, deploy_group, smoke, group: int = 0, rolling: bool = False, yes: bool = False,
           skip_smoke: bool = False) -> None:
    """Deploy the serving groups (all at once, or one at a time with ROLLING), then the router.

    DEPLOY_GROUP(sub_session) deploys one group as `fab deploy` deploys a
    cluster and returns its results; SMOKE(sub_session) smoke-tests its head.
    """
    out = session.reporter.out
    groups = chosen(session, group)
    subs = [sub_session(session, g) for g in groups]
    _validate(session, subs)
    out.print("serving groups: " + "; ".join(f"{g.index}: {g.names()} (head {g.head.name})" for g in groups)
              + f"; router on {serving.router_node(session.config).name} "
              f"({routers.profile(session.config).package} {routers.profile(session.config).version})")
    if not session.dry_run and not assumed(yes):
        for sub in subs:
            confirm(sub, "deploy")
    if rolling and not session.dry_run and not _router_runs(session):
        out.print(Text("the router is not running: nothing to roll behind, so every group is deployed at once",
                       style="yellow"))
        rolling = False
    if rolling and not session.dry_run:
        results = _rolling(session, groups, subs, deploy_group, smoke, skip_smoke)
    else:
        with ThreadPoolExecutor(max_workers=len(subs)) as pool:
            runs = list(pool.map(deploy_group, subs))
        results = [r for run in runs for r in run]
        failed = [g.index for g, run in zip(groups, runs) if overall_failed(run)]
        if failed:
            session.finish(results, "deploy recap")
        if not skip_smoke and not session.dry_run:
            for sub in subs:
                smoke(sub)
    routed = _router_session(session).phase("router")
    _print_router(out, routed)
    session.finish(results + routed, "deploy recap" + (" (dry run)" if session.dry_run else ""))


def _router_runs(session: Session) -> bool:
    seen = _router_session(session).phase("router-status")
    return any(r.state == "running" for h in seen for r in h.records_of(Router))


def _rolling(session: Session, groups, subs, deploy_group, smoke, skip_smoke) -> list[HostResult]:
    """One group at a time: out of the router, stopped, deployed, checked, back in."""
    out = session.reporter.out
    results: list[HostResult] = []
    for g, sub in zip(groups, subs):
        out.print(f"[bold]rolling: group {g.index}[/bold] ({g.names()})")
        router = _router_session(session, g.index)
        steps = router.phase("router-drain")
        results += steps
        if overall_failed(steps):
            _stop_rolling(session, results, g, "could not take it out of the router")
        results += sub.phase("stop")
        deployed = deploy_group(sub)
        results += deployed
        if overall_failed(deployed):
            _stop_rolling(session, results, g, "its deploy failed; it stays out of the router, the others serve")
        if not skip_smoke:
            smoke(sub)
        admitted = router.phase("router-admit")
        results += admitted
        if overall_failed(admitted):
            _stop_rolling(session, results, g, "the router does not see it healthy again")
    return results


def _stop_rolling(session: Session, results, group: serving.Group, why: str) -> None:
    session.reporter.out.print(Text(f"rolling re-deploy stopped at group {group.index}: {why}", style="bold red"))
    session.finish(results, "deploy recap")
    raise HostsFailed()


def _print_router(out, results: list[HostResult]) -> None:
    for r in results:
        for router in r.records_of(Router):
            out.print(Text(f"router on {r.host}: {router.state} at {router.base}"))
        for w in r.records_of(RouterWorker):
            healthy = w.healthy == "true"
            out.print(Text("  router sees ").append(w.url).append(
                " healthy" if healthy else " unhealthy", style="green" if healthy else "red"))


def status(session: Session, show, group: int = 0) -> tuple[list[HostResult], bool]:
    """Each group's status (SHOW prints one group's results), then what the router sees; and
    whether anything is wrong (a group's endpoint down, a worker the router finds unhealthy)."""
    out = session.reporter.out
    results: list[HostResult] = []
    for g in chosen(session, group):
        sub = sub_session(session, g)
        url = serving.worker_url(session.config, g)
        out.print(f"[bold]group {g.index}[/bold] (head {g.head.name}, endpoint {url})")
        found = sub.phase("status")
        show(sub, found)
        results += found
    seen = _router_session(session).phase("router-status")
    _print_router(out, seen)
    trouble = any(h.state != "up" for r in results for h in r.records_of(Health)) \
        or any(w.healthy != "true" for r in seen for w in r.records_of(RouterWorker)) \
        or any(x.state != "running" for r in seen for x in r.records_of(Router))
    return results + seen, trouble


def stop(session: Session, group: int = 0) -> list[HostResult]:
    """Stop one group (it leaves the router's rotation by its health checks), or every group and the router."""
    if group:
        return sub_session(session, chosen(session, group)[0]).run_phase("stop")
    results = session.run_phase("stop", on=session.everyone)
    return results + _router_session(session).phase("router-stop")
