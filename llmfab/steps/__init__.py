"""Steps: one desired state each, written once as a Jinja2 shell template.

A step's template defines one bash function ``step_<id>`` that probes first and
changes only what differs (see ``llmfab/lib/llmfab.sh`` for the helpers it may
call). The same rendered text runs over SSH and inside bundles; this module only
says which steps exist, what they need from the config, and in what order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import ClusterConfig, Node

Context = Callable[[ClusterConfig, Node], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    id: str
    title: str
    template: str
    context: Context = field(default=lambda config, node: {})
    # Whether the step belongs in this cluster's plan at all (a config switch).
    enabled: Callable[[ClusterConfig], bool] = field(default=lambda config: True)
    # Whether this node runs it (the head only, workers only, ...).
    only: Callable[[ClusterConfig, Node], bool] = field(default=lambda config, node: True)
    # Steps of one group build on each other: a failure skips the rest of its
    # group only (the NVIDIA driver refusing does not stop Docker). A failed
    # step outside any group ("") skips everything after it.
    group: str = ""

    @property
    def function(self) -> str:
        return "step_" + self.id.replace("-", "_")


PHASES: dict[str, list[Step]] = {}


def register(phase: str, *steps: Step, before: str | None = None) -> None:
    """Append steps to a phase (or insert them before step BEFORE); phases run
    their steps in this order."""
    listed = PHASES.setdefault(phase, [])
    at = next(i for i, s in enumerate(listed) if s.id == before) if before else len(listed)
    listed[at:at] = steps


def steps_for(phase: str, config: ClusterConfig, node: Node) -> list[Step]:
    """The steps NODE runs in PHASE, in order."""
    if phase not in PHASES:
        raise KeyError(f"unknown phase {phase!r} (known: {', '.join(PHASES)})")
    return [s for s in PHASES[phase] if s.enabled(config) and s.only(config, node)]


# Registration order is run order: the OS check and system tuning come first.
from . import system, mirrors, nvidia, docker, conda, engine, firewall, preflight, bench, model, webui, undo, router  # noqa: E402,F401
