"""Assemble the one script a node runs for a phase (prep, deploy, ...).

The text returned here is the single definition of what a node does: the SSH
runner pipes it to ``bash`` on the host, and ``export-bundle`` writes the very
same bytes into the node's bundle as ``steps/<phase>.sh``.
"""

from __future__ import annotations

from pathlib import Path

import re

from . import __version__
from .config import Node
from .errors import LlmfabError
from .run import Run
from .shell import comment, render, words
from .steps import LIBRARIES, Step, steps_for

LIBRARY = (Path(__file__).resolve().parent / "lib" / "llmfab.sh").read_text()

HEADER = """\
#!/usr/bin/env bash
# llmfab {version}: phase '{phase}' for node {node} of cluster {cluster}.
# Generated; do not edit. Run: bash {phase}.sh [--dry-run]
set -Eeuo pipefail
umask 022
LLMFAB_PHASE="{phase}"
LLMFAB_LOCK={lock}
"""

# Phases that change nothing on the node run beside a changing one: no lock.
# `model` has its own: its download runs detached under a lock of its own, and
# a second run waits for the download under way instead of failing.
# Stop is the brake: it must work while a deploy holds the lock (fab deploy
# stops the whole group when one rank fails, while the head is still waiting).
UNLOCKED = {"check", "status", "logs", "model-verify", "smoke", "bench", "model", "stop", "stop-webui"}


class StepTemplateError(LlmfabError):
    """A step's template does not define the step's bash function (found at render time, not on a node)."""


def render_step(step: Step, run: Run, node: Node) -> str:
    """STEP's template rendered for NODE; it must define ``step_<id>()``."""
    text = render(step.template, **step.context(run, node))
    if not re.search(rf"^{step.function}\(\) \{{", text, re.MULTILINE):
        raise StepTemplateError(f"step {step.id}: {step.template} does not define {step.function}() "
                                "(a step's template defines the one bash function named for its id)")
    return text


def render_phase(run: Run, node: Node, phase: str) -> str:
    """Return the complete bash script that performs PHASE on NODE."""
    return _assemble(run, node, phase, steps_for(phase, run, node))


def render_steps(run: Run, node: Node, phase: str, ids: list[str]) -> str:
    """The script of PHASE on NODE cut down to the steps IDS (step cases run one step alone)."""
    steps = [s for s in steps_for(phase, run, node) if s.id in ids]
    missing = set(ids) - {s.id for s in steps}
    if missing:
        raise KeyError(f"{phase} on {node.name} has no step(s) {', '.join(sorted(missing))}")
    return _assemble(run, node, phase, steps)


def _assemble(run: Run, node: Node, phase: str, steps: list[Step]) -> str:
    parts = [
        HEADER.format(version=__version__, phase=phase, node=node.name, cluster=comment(run.config.cluster.name),
                      lock=0 if phase in UNLOCKED else 1),
        LIBRARY,
    ]
    included: set[str] = set()
    for step in steps:
        for name in step.needs:
            if name not in included:
                template, values = LIBRARIES[name]
                parts.append(render(template, **values))
                included.add(name)
        parts.append(render_step(step, run, node))
    parts.append(f"LLMFAB_STEPS=({words(s.id for s in steps)})\n")
    if any(s.group for s in steps):
        parts.append(f"LLMFAB_GROUPS=({words(f'{s.id}={s.group}' for s in steps if s.group)})\n")
    parts.append('llmfab_main "$@"\n')
    return "\n".join(parts)
