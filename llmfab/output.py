"""Terminal output: live per-host progress and the recap at the end of a run.

rich draws the tables and colours and degrades to plain text when stdout is not
a terminal (CI logs, pipes), which hand-written ANSI would not.
"""

from __future__ import annotations

import threading

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .config import Node
from .results import HostResult, Status, StepResult

STYLES = {
    Status.OK: "green",
    Status.CHANGED: "yellow",
    Status.FAILED: "bold red",
    Status.SKIPPED: "dim",
    Status.UNREACHABLE: "bold magenta",
}


def console(stderr: bool = False) -> Console:
    return Console(highlight=False, soft_wrap=True, stderr=stderr)


class Reporter:
    """Prints one line per finished step as hosts report them (thread-safe)."""

    def __init__(self, out: Console, dry_run: bool = False, quiet: bool = False, verbose: bool = False):
        self.out = out
        self.dry_run = dry_run
        self.quiet = quiet
        self.verbose = verbose
        self._lock = threading.Lock()
        self._width = 8

    def _line(self, node: Node, text: Text) -> None:
        if self.quiet:
            return
        with self._lock:
            self.out.print(Text(f"{node.name:<{self._width}} ", style="bold") + text)

    def host_started(self, node: Node) -> None:
        self._width = max(self._width, len(node.name))
        self._line(node, Text("connecting", style="dim"))

    def step_started(self, node: Node, step: str) -> None:
        self._line(node, Text(f"{step} …", style="dim"))

    def step_progress(self, node: Node, step: str, message: str) -> None:
        self._line(node, Text(f"{step}: {message}", style="cyan"))

    def step_done(self, node: Node, result: StepResult) -> None:
        label = "would change" if (self.dry_run and result.status == Status.CHANGED) else result.status.value
        text = Text(f"{result.step}: ") + Text(label, style=STYLES[result.status]) + Text(f" ({result.message})")
        self._line(node, text)

    def step_output(self, node: Node, step: str, line: str) -> None:
        """A line of a step's own output: shown with --verbose (always kept in the run's log)."""
        if self.verbose:
            self._line(node, Text(f"[{step}] ", style="dim") + Text(line))

    def step_diff(self, node: Node, path: str, diff: str) -> None:
        """How a managed file changes (--diff), shown even while the preview is quiet."""
        with self._lock:
            self.out.print(Text(f"{node.name:<{self._width}} ", style="bold") + Text(f"diff {path}:", style="cyan"))
            for line in diff.rstrip("\n").splitlines():
                style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
                self.out.print(Text("    " + line, style=style))

    def host_done(self, result: HostResult) -> None:
        if result.error and result.unreachable:
            self._line(_node(result), Text(f"unreachable: {result.error}", style=STYLES[Status.UNREACHABLE]))
        elif result.error:
            self._line(_node(result), Text(f"failed: {result.error}", style=STYLES[Status.FAILED]))


def _node(result: HostResult) -> Node:
    return Node.model_construct(name=result.host, address=result.address)


def recap(out: Console, results: list[HostResult], title: str, dry_run: bool = False) -> None:
    """The per-host table, then each failure with its reason and last output lines."""
    changed = "would change" if dry_run else "changed"
    table = Table(title=title, title_justify="left")
    for column in ("host", "address", "ok", changed, "failed", "skipped", "result", "time"):
        table.add_column(column, justify="right" if column in ("ok", changed, "failed", "skipped", "time") else "left",
                         overflow="fold")
    for r in results:
        status = r.status
        label = "would change" if (dry_run and status == Status.CHANGED) else status.value
        table.add_row(
            r.host,
            r.address,
            str(r.count(Status.OK)),
            str(r.count(Status.CHANGED)),
            str(r.count(Status.FAILED) + (1 if r.error and not r.unreachable else 0)),
            str(r.count(Status.SKIPPED)),
            Text(label, style=STYLES[status]),
            f"{r.seconds:.1f}s",
        )
    out.print(table)
    for r in results:
        if not r.failed:
            continue
        out.print(Text(f"{r.host} ({r.address}) {r.status.value}: {r.reason}", style=STYLES[r.status]))
        for step in r.steps:
            if step.status == Status.FAILED and step.tail.strip():
                out.print(Text(f"  last output of {step.step}:", style="dim"))
                for line in step.tail.rstrip().splitlines():
                    out.print(Text(f"    {line}"))
        if r.error and r.stderr_tail.strip():
            for line in r.stderr_tail.rstrip().splitlines()[-10:]:
                out.print(Text(f"    {line}"))
    for r in results:
        for step, reason in r.reboots:
            out.print(Text(f"{r.host}: REBOOT REQUIRED ({step}): {reason}", style="bold yellow"))
    failed = [r.host for r in results if r.failed]
    totals = {s: sum(r.count(s) for r in results) for s in (Status.OK, Status.CHANGED, Status.FAILED)}
    unreachable = sum(1 for r in results if r.unreachable)
    summary = (f"{len(results)} host(s): ok={totals[Status.OK]} {changed.replace(' ', '_')}={totals[Status.CHANGED]} "
               f"failed={totals[Status.FAILED]}" + (f" unreachable={unreachable}" if unreachable else ""))
    if failed:
        summary += f"; FAILED hosts: {', '.join(failed)}"
    out.print(Text(summary, style="bold red" if failed else "bold"))


def diagnoses(out: Console, host: str, found: list, limit: int = 3) -> None:
    """Print the likely causes read from a host's logs: (where, Diagnosis) pairs, first ones first."""
    for where, d in found[:limit]:
        place = f" ({where})" if where else ""
        out.print(Text(f"{host}: likely cause{place}: {d.cause}", style="bold red"))
        out.print(Text(f"    evidence: {d.evidence_line.strip()[:200]}"))
        out.print(Text(f"    fix: {d.fix}"))
