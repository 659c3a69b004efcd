"""`fab check`: catch a broken cluster in a minute, not after a 30-minute hang."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from llmfab import checks
from llmfab.errors import HostsFailed
from llmfab.output import diagnoses
from llmfab.facts.failures import diagnose_log
from llmfab.facts.nccl import parse_allreduce
from llmfab.records import Fact
from llmfab.results import HostResult
from llmfab.session import open_session, reported_errors
from llmfab.steps.preflight import expect

from .engine import ENGINE
from .options import SSH, session_engine, task

STYLE = {checks.PASS: "green", checks.WARN: "yellow", checks.FAIL: "bold red"}


def probe_outputs(result: HostResult) -> tuple[dict[str, tuple[int, str]], float]:
    """name -> (exit status, output) from a node's fact records, and when the clock probe arrived."""
    outs, clock_at = {}, 0.0
    for fact in result.records_of(Fact):
        outs[fact.name] = (int(fact.rc), fact.output)
        if fact.name == "clock":
            clock_at = fact.arrived
    return outs, clock_at


def _table(title: str, rows: list[checks.Check]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("check", "result", "evidence", "fix"):
        table.add_column(column, overflow="fold")
    for c in rows:
        table.add_row(c.name, Text(c.status, style=STYLE[c.status]), c.evidence, c.fix)
    return table


def nccl_report(out, session, results: list[HostResult]) -> bool:
    """Print the all-reduce's bus bandwidth per size, or what went wrong and where; True when it passed."""
    head = session.config.head.name
    logs = {r.host: r.logs().get("allreduce", "") for r in results}
    report = parse_allreduce(logs.get(head, ""))
    if report.ok and not any(r.failed for r in results):
        table = Table(title=f"all-reduce over {report.world} GPUs", title_justify="left")
        for column in ("size", "time (us)", "algbw (GB/s)", "busbw (GB/s)"):
            table.add_column(column, justify="right")
        for sample in report.samples:
            table.add_row(_size(sample.size_bytes), f"{sample.time_us:.1f}", f"{sample.algbw_GBps:.2f}",
                          f"{sample.busbw_GBps:.2f}")
        out.print(table)
        return True
    for r in results:
        if r.failed:
            out.print(Text(f"{r.host}: all-reduce failed: {r.reason}", style="bold red"))
        text = logs.get(r.host, "") + "\n" + "\n".join(s.tail for s in r.steps)
        diagnoses(out, r.host, [("", d) for d in diagnose_log(text)])
    for failure in report.failures:
        out.print(Text(f"rank {failure.rank} failed in {failure.phase}: {failure.reason}", style="bold red"))
    return False


def nccl_blockers(nodes: list[checks.NodeReport], results: list[HostResult]) -> str:
    """Why the all-reduce cannot run (nodes not checked, or without the engine image), or ""."""
    unchecked = [r.host for r in results if r.failed]
    if unchecked:
        return f"not every node was checked ({', '.join(unchecked)})"
    missing = [n.node for n in nodes for c in n.checks if c.name == "engine image" and c.status != checks.PASS]
    return f"the engine image is not on {', '.join(missing)}" if missing else ""


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:g} {unit}"
    return f"{n} B"


@task(help={**SSH, "engine": ENGINE, "json": "print the report as JSON",
            "nccl": "also run an all-reduce over every GPU of every node inside the engine image (bounded by engine.nccl_timeout)"})
def check(c, config=None, engine=None, json_=False, nccl=False, parallel=0, accept_new_host_keys=False,
          ask_sudo_pass=False):
    """Preflight every node: GPUs, driver, fabric manager, peermem, HCAs, NIC, shm, disk, model, image, ports.

    Each check says pass / warn / fail with its evidence and a one-sentence fix;
    then the nodes are compared (one driver, one image ID, clocks in step).
    Exits non-zero on any fail. Changes nothing.

    Example:
      fab check --config configs/h20-2x8.yaml --engine sglang
    """
    with reported_errors():
        # With --json, stdout carries the JSON document only; everything else goes to stderr.
        session = open_session(c, config, parallel=parallel or None, quiet=True, stderr=json_,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        session = session_engine(session, engine, None)
        # Every probe and expectation comes from the deployment: a bad engine option stops here.
        session.run.deployment
        results = session.phase("check")
        _report(session, results, json_, nccl)


def _report(session, results: list[HostResult], json_: bool, nccl: bool) -> None:
    """Judge and print every node and the cluster; HostsFailed on any fail or unchecked node."""
    reachable = [r for r in results if not r.failed]
    by_name = {n.name: n for n in session.config.nodes}
    nodes, outs, arrived = [], {}, {}
    for r in reachable:
        outs[r.host], arrived[r.host] = probe_outputs(r)
        nodes.append(checks.judge_node(r.host, expect(session.run, by_name[r.host]), outs[r.host]))
    expects = {r.host: expect(session.run, by_name[r.host]) for r in reachable}
    cluster = checks.judge_cluster(expects, outs, arrived) if len(reachable) > 1 else []
    out = session.reporter.out
    if json_:
        print(checks.as_json(nodes, cluster, {r.host: r.reason for r in results if r.failed}))
    else:
        for report in nodes:
            out.print(_table(f"{report.node}", report.checks))
        if cluster:
            out.print(_table("cross-node consistency", cluster))
    for r in results:
        if r.failed:
            out.print(Text(f"{r.host}: not checked: {r.reason}", style="bold magenta"))
    counts = {s: sum(c.status == s for n in nodes for c in n.checks) + sum(c.status == s for c in cluster)
              for s in (checks.PASS, checks.WARN, checks.FAIL)}
    bad = checks.failed(nodes, cluster) or any(r.failed for r in results)
    if nccl:
        without = nccl_blockers(nodes, results)
        if without:
            out.print(Text(f"nccl: skipped: {without}; the all-reduce runs inside the engine image on every node "
                           "(fab deploy pulls it; or docker pull / docker load it on each node, then check --nccl)",
                           style="bold yellow"))
            bad = True
        else:
            bad = not nccl_report(out, session, session.phase("nccl")) or bad
    line = (f"check: {len(results)} node(s): pass={counts['pass']} warn={counts['warn']} fail={counts['fail']}"
            f" not_checked={sum(r.failed for r in results)}")
    if not json_:
        out.print(Text(line, style="bold red" if bad else "bold green"))
    if bad:
        raise HostsFailed()
