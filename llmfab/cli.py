"""The `llmfab` command: `fab` with llmfab's tasks built in, from any directory.

`fab` looks for a fabfile.py upwards from the working directory, so it works
only inside the checkout (and a different `fab` earlier on PATH may run another
Fabric). `llmfab` pins the task collection and llmfab's executor instead, and
checks Fabric's core flags before Fabric's own prompts run (see llmfab.coreflags).
"""

from __future__ import annotations

from fabric import Config
from fabric.main import Fab
from invoke.exceptions import Exit

from . import __version__
from .coreflags import REFUSED
from .executor import FleetExecutor
from .exits import ExitStatus


class LlmfabProgram(Fab):
    """Fabric's program with llmfab's tasks and executor."""

    def update_config(self):
        for name, why in REFUSED.items():
            if self.args[name].value:
                raise Exit(f"error: {why}", code=int(ExitStatus.CONFIG_INVALID))
        try:
            super().update_config()
        except EOFError:
            raise Exit("error: --prompt-for-sudo-password needs a terminal to ask on: set LLMFAB_SUDO_PASSWORD instead",
                       code=int(ExitStatus.CONFIG_INVALID)) from None


def _program() -> LlmfabProgram:
    from tasks import ns

    return LlmfabProgram(name="llmfab", binary="llmfab", version=__version__, namespace=ns,
                         executor_class=FleetExecutor, config_class=Config)


def main() -> None:
    """Entry point of the `llmfab` console script."""
    _program().run()
