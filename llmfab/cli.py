"""The `llmfab` command: `fab` with llmfab's tasks built in, from any directory.

`fab` looks for a fabfile.py upwards from the working directory, so it works
only inside the checkout (and a different `fab` earlier on PATH may run another
Fabric). `llmfab` pins the task collection and llmfab's executor instead, and
checks Fabric's core flags before Fabric's own prompts run (see llmfab.coreflags).
"""

from __future__ import annotations

import difflib
import re

from fabric import Config
from fabric.main import Fab
from invoke.exceptions import Exit, ParseError

from . import __version__
from .coreflags import REFUSED
from .executor import FleetExecutor
from .exits import ExitStatus


class LlmfabProgram(Fab):
    """Fabric's program with llmfab's tasks and executor."""

    def parse_tasks(self):
        try:
            super().parse_tasks()
        except ParseError as e:
            raise ParseError(with_hint(str(e), self.collection, self.argv)) from None

    def update_config(self):
        for name, why in REFUSED.items():
            if self.args[name].value:
                raise Exit(f"error: {why}", code=int(ExitStatus.CONFIG_INVALID))
        try:
            super().update_config()
        except EOFError:
            raise Exit("error: --prompt-for-sudo-password needs a terminal to ask on: set LLMFAB_SUDO_PASSWORD instead",
                       code=int(ExitStatus.CONFIG_INVALID)) from None


def with_hint(message: str, collection, argv: list[str]) -> str:
    """Invoke's "No idea what '--x' is!", plus the nearest flag of the task named on the line."""
    match = re.search(r"No idea what '(-[^']+)' is", message)
    if not match:
        return message
    flag = match.group(1)
    task_name = next((a for a in argv if a in collection.task_names), None)
    if task_name is None:
        return message
    names = [("--" if len(n) > 1 else "-") + n for a in collection[task_name].get_arguments() for n in a.names]
    close = difflib.get_close_matches(flag, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"its flags: {' '.join(sorted(n for n in names if n.startswith('--')))}"
    return f"{message} `{task_name}` has no {flag}: {hint} (llmfab -h {task_name})"


def _program() -> LlmfabProgram:
    from tasks import ns

    return LlmfabProgram(name="llmfab", binary="llmfab", version=__version__, namespace=ns,
                         executor_class=FleetExecutor, config_class=Config)


def main() -> None:
    """Entry point of the `llmfab` console script."""
    _program().run()
