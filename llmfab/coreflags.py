"""Fabric's own core flags under llmfab: each one works, or stops the run naming llmfab's way.

``fab`` accepts Fabric's and Invoke's core flags before the task name. Stock
Fabric feeds them to ``Connection.run``, which llmfab's tasks do not use, so
unless they are honoured here they would be accepted and silently ignored:
``fab -R prep`` (Invoke's "echo commands instead of running") would run a real
prep. The executor calls ``translate`` before any task runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import UsageError

# Core flags with no meaning for llmfab's tasks, and what to use instead.
REFUSED = {
    "dry": "-R/--dry is Invoke's echo-only mode for c.run(), which llmfab's tasks do not use, "
           "so it would not stop a real run: use `fab TASK --dry-run` (and --diff to see file changes)",
    "echo": "-e/--echo has no effect on llmfab's step scripts: use `fab TASK --verbose` to stream each step's output",
    "warn-only": "-w/--warn-only has no effect: llmfab always runs every host and reports each failure in the recap",
    "pty": "-p/--pty has no effect: llmfab's step scripts run without a terminal",
    "hide": "--hide has no effect: llmfab's output is the progress lines and the recap (--verbose adds step output)",
    "prompt-for-login-password": "--prompt-for-login-password: llmfab logs in with keys only "
                                 "(ssh.identity_file, -i, ~/.ssh/config IdentityFile or ssh-agent)",
    "prompt-for-passphrase": "--prompt-for-passphrase: load the key into ssh-agent (ssh-add) instead",
}


def _value(core, name: str) -> Any:
    try:
        return core.args[name].value
    except KeyError:
        return None


def translate(core, config) -> dict:
    """The core flags llmfab honours, as SSH overrides; a UsageError for one it cannot."""
    for name, why in REFUSED.items():
        if _value(core, name):
            raise UsageError(why)
    misplaced_config(_value(core, "config"))
    overrides: dict[str, Any] = {}
    identity = _value(core, "identity")
    if identity:
        overrides["identity_files"] = list(identity) if isinstance(identity, (list, tuple)) else [identity]
    if _value(core, "ssh-config"):
        overrides["ssh_config_file"] = _value(core, "ssh-config")
    if _value(core, "connect-timeout"):
        overrides["connect_timeout"] = int(_value(core, "connect-timeout"))
    if _value(core, "command-timeout"):
        overrides["command_timeout"] = int(_value(core, "command-timeout"))
    if _value(core, "prompt-for-sudo-password"):
        # Fabric has asked already (before any task ran) and kept the answer here.
        overrides["sudo_password"] = _sudo_password(config)
    return overrides


def _sudo_password(config) -> Optional[str]:
    try:
        return config.sudo.password
    except AttributeError:
        return None


def misplaced_config(path: Optional[str]) -> None:
    """Stop when `fab --config FILE TASK` names an llmfab config: before the task it is Invoke's own flag."""
    if not path or not looks_like_cluster_config(Path(path)):
        return
    raise UsageError(
        f"`fab --config {path}` before the task name is Invoke's runtime-config flag, so llmfab would not use "
        f"this cluster config. Put it after the task name: fab TASK --config {path} "
        f"(or set LLMFAB_CONFIG={path})"
    )


def looks_like_cluster_config(path: Path) -> bool:
    """Whether PATH is an llmfab cluster config (a mapping with `nodes:`), not an Invoke config."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and "nodes" in raw
