"""Ask before changing hosts: preview what a phase would change, then proceed only on "yes".

pyinfra's habit: a run that would change hosts first shows the proposal and
asks. ``--yes`` (or ``LLMFAB_ASSUME_YES=1`` for CI) skips the question; a run
with nothing to change is not asked about. Without a terminal and without
``--yes`` the answer is read from stdin, and none means no.
"""

from __future__ import annotations

import os
import sys

from invoke.exceptions import Exit
from rich.text import Text

from .exits import ExitStatus
from .results import HostResult, Status

ASSUME_YES_ENV = "LLMFAB_ASSUME_YES"


def assumed(yes: bool) -> bool:
    """Whether the run goes ahead without asking (--yes, or LLMFAB_ASSUME_YES=1)."""
    return yes or os.environ.get(ASSUME_YES_ENV, "") in ("1", "yes", "true")


def confirm(session, phase: str, nodes=None) -> None:
    """Preview PHASE as a dry run on NODES (default: the session's) and ask; raise Exit unless the answer is yes."""
    nodes = session.nodes if nodes is None else nodes
    out = session.reporter.out
    out.print(Text(f"{phase}: checking what would change first (--yes skips this) …", style="dim"))
    quiet, session.reporter.quiet = session.reporter.quiet, True
    try:
        preview = session.fleet.run_phase(session.run.with_options(dry_run=True), phase, on=nodes)
    finally:
        session.reporter.quiet = quiet
    changing = [r for r in preview if r.count(Status.CHANGED)]
    for r in preview:
        describe(out, r)
    # The proposal showed the diffs; the run itself need not repeat them.
    session.fleet.diff = False
    if not changing:
        out.print(Text("nothing would change: going ahead without asking", style="dim"))
        return
    question = (f"{len(changing)} of {len(preview)} host(s) would change "
                f"({', '.join(r.host for r in changing)}). Proceed with {phase}? [y/N] ")
    if not ask(question):
        raise Exit(f"{phase}: not confirmed, nothing changed (preview with --dry-run, or pass --yes in scripts)",
                   code=int(ExitStatus.NOT_CONFIRMED))


def describe(out, result: HostResult) -> None:
    """One host's proposal: each step that would change and how, or why the host cannot be previewed."""
    if result.failed and result.error:
        out.print(Text(f"  {result.host}: {result.status.value}: {result.reason}", style="bold magenta"))
        return
    steps = [s for s in result.steps if s.status in (Status.CHANGED, Status.FAILED)]
    if not steps:
        out.print(Text(f"  {result.host}: no change"))
    for step in steps:
        label = "would change" if step.status == Status.CHANGED else step.status.value
        out.print(Text(f"  {result.host}: {step.step}: {label} ({step.message})"))


def ask(question: str) -> bool:
    """Print QUESTION and read one answer line from stdin; end of input counts as no."""
    print(question, end="", flush=True)
    answer = sys.stdin.readline()
    if not answer:
        print()
        return False
    return answer.strip().lower() in ("y", "yes")
