"""Steps: one desired state each, declared once, written once as a Jinja2 shell template.

A step is its declaration, ``@step("sysctl-net", title=..., changes=..., undo=...,
where=ALL)`` on the function that gives its template the values it needs from
``(run, node)``; its template is ``templates/<module>/<id>.sh.j2`` and defines
one bash function ``step_<id>`` that probes first and changes only what
differs (see ``llmfab/lib/llmfab.sh`` for the helpers it may call). The same
rendered text runs over SSH and inside bundles.

Which steps a phase runs, in what order, is the one list in ``phases.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..config import Node

if TYPE_CHECKING:
    from ..run import Run

Context = Callable[["Run", Node], dict[str, Any]]

# Where a step runs: every node, the head (rank 0) only, or every node but the head.
ALL, HEAD, WORKERS = "all", "head", "workers"


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    # templates/<dir>/<id>.sh.j2: <dir> is the declaring module's name.
    dir: str
    context: Context = field(default=lambda run, node: {})
    # What the step changes on a node, and how to take it back (the README's
    # table is generated from these; "" for steps that change nothing).
    changes: str = ""
    undo: str = ""
    # When the step is in the plan, for people ("`mirrors.apt` is set"; "" = always).
    when: str = ""
    where: str = ALL
    # Whether the step belongs in this run's plan at all (a config switch).
    enabled: Callable[["Run"], bool] = field(default=lambda run: True)
    # Steps of one group build on each other: a failure skips the rest of its
    # group only (the NVIDIA driver refusing does not stop Docker). A failed
    # step outside any group ("") skips everything after it.
    group: str = ""
    # Bash libraries besides lib/llmfab.sh the template calls ("model": model/lib.sh.j2).
    needs: tuple[str, ...] = ()

    @property
    def template(self) -> str:
        return f"{self.dir}/{self.id}.sh.j2"

    @property
    def function(self) -> str:
        return "step_" + self.id.replace("-", "_")

    def runs_on(self, run: "Run", node: Node, where: str | None = None) -> bool:
        """Whether NODE runs this step (WHERE: the phase list's own choice, else the step's)."""
        where = where or self.where
        return where == ALL or (where == HEAD) == run.is_head(node)


STEPS: dict[str, Step] = {}
# Bash libraries a step may need besides lib/llmfab.sh: name -> (template, its values).
LIBRARIES: dict[str, tuple[str, dict[str, Any]]] = {}


def step(id: str, *, title: str, changes: str = "", undo: str = "", when: str = "", where: str = ALL,
         enabled: Callable[["Run"], bool] | None = None, group: str = "", needs: tuple[str, ...] = (),
         dir: str = ""):
    """Declare the step ID with the decorated function as its context (run, node) -> template values.

    Its template is templates/DIR/ID.sh.j2, DIR being the declaring module's name unless given."""
    if where not in (ALL, HEAD, WORKERS):
        raise ValueError(f"step {id}: where must be ALL, HEAD or WORKERS, not {where!r}")

    def declare(context: Context) -> Context:
        if id in STEPS:
            raise ValueError(f"step {id} is declared twice ({STEPS[id].dir} and {context.__module__})")
        extra = {"enabled": enabled} if enabled is not None else {}
        STEPS[id] = Step(id, title, dir or context.__module__.rsplit(".", 1)[-1], context, changes, undo, when, where,
                         group=group, needs=needs, **extra)
        return context
    return declare


def steps_for(phase: str, run: "Run", node: Node) -> list[Step]:
    """The steps NODE runs in PHASE, in the order phases.py lists them."""
    from .phases import PHASES, entries

    if phase not in PHASES:
        raise KeyError(f"unknown phase {phase!r} (known: {', '.join(PHASES)})")
    chosen = []
    for id, where in entries(phase):
        s = STEPS[id]
        if s.enabled(run) and s.runs_on(run, node, where):
            chosen.append(s)
    return chosen


from . import system, mirrors, nvidia, docker, conda, engine, firewall, preflight, bench, model, webui, undo, router  # noqa: E402,F401
from .phases import PHASES  # noqa: E402,F401
