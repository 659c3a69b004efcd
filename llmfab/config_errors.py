"""Config errors a person acts on: the field by its whole path, the problem, the fix.

pydantic reports where and what; this module adds the fix (by the field's full
path first, then by its last name) and "did you mean" for misspelt keys.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from pydantic import BaseModel

from .engines import ENGINES
from .errors import Problem

# Fixes shown under an error, by the field's full path (nodes[N] written nodes[]),
# then by its last part.
PATH_FIXES = {
    "engine.name": "use one of " + ", ".join(ENGINES),
    "cluster.name": "use a short name for the cluster, e.g. h20-2x8",
    "nvidia": "keep the pair NVIDIA publishes (see configs/h20-2x8.yaml), set nvidia.installer_url to a .run you "
              "have, or set nvidia.cuda_toolkit: false for the driver alone",
    "nodes[].name": "use a short lowercase name such as n1",
}
FIXES = {
    "nodes": "list the cluster's machines under `nodes:`, each with `name:` and `address:`",
    "address": "give each node an `address:`: its IPv4 address on the cluster network (to log in by name, map "
               "the address in ~/.ssh/config: Host 10.10.0.11 / HostName gpu-node-1)",
    "head": "set `cluster.head:` to one of the node names, or drop it (the first node is the head)",
    "interface": "set `network.interface:` to the NIC the nodes talk over, e.g. bond0",
    "nccl_ib_hca": "list compute HCAs like [mlx5_0, mlx5_1] (see `ibstat`)",
    "path": "use the absolute model directory, e.g. /mnt/share/deepseek-ai/DeepSeek-R1",
    "port": "use a TCP port number between 1 and 65535",
    "user": "use the SSH login name, e.g. root or ubuntu",
}


def problem(err: dict, raw: dict, root: type[BaseModel]) -> Problem:
    """One pydantic error as field / problem / fix, the fix chosen by the field's path."""
    loc = err["loc"]
    field = _dotted(loc)
    message = err["msg"].removeprefix("Value error, ")
    last = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    if err["type"] == "extra_forbidden":
        parent = _lookup(raw, loc[:-1])
        known = _known_keys(root, loc[:-1])
        close = difflib.get_close_matches(last, known, n=1)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys here: {', '.join(sorted(known))}"
        return Problem(field, "unknown key", f"remove it or fix the spelling ({hint})" if parent is not None else hint)
    if err["type"] == "missing":
        return Problem(field, "required field is missing", _fix(loc, f"add `{last}:`"))
    if not loc:
        return Problem("(cluster)", message, _shape_fix(message))
    return Problem(field, message, _fix(loc, "see the comments in configs/h20-2x8.yaml for the expected value"))


def _fix(loc: tuple, default: str) -> str:
    """The fix for the field at LOC: by its full path first, then by its last name."""
    path = re.sub(r"\[\d+\]", "[]", _dotted(loc))
    if path in PATH_FIXES:
        return PATH_FIXES[path]
    last = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
    return FIXES.get(last, default)


def _shape_fix(message: str) -> str:
    if "duplicate" in message:
        return "give every node a unique name and address"
    if "head" in message:
        return FIXES["head"]
    return "see configs/h20-2x8.yaml"


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _lookup(raw: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _known_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return []
        model = field.annotation
        # list[Node] / Optional[X]: unwrap to the model inside.
        for arg in getattr(model, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                model = arg
    return list(getattr(model, "model_fields", {}).keys())
