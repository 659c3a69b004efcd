"""A local log of every run, one file per host: build/logs/<time>/<host>.log.

Everything a host's script sent comes back here as it arrives: each step's
start and result, its own output (apt, installers, docker) and any diff, so
what prep did on a node can be read afterwards without logging in. The node
keeps its own copy under /var/log/llmfab/ (see Fleet.script_args).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Optional

from .results import HostResult, b64, parse_record, printable

LOG_DIR_ENV = "LLMFAB_LOG_DIR"


class RunLogs:
    """The log files of one fab run, created on first use (owner-only: output may name internal hosts)."""

    def __init__(self, root: Optional[Path] = None, stamp: Optional[str] = None):
        self.stamp = stamp or time.strftime("%Y%m%d-%H%M%S")
        base = Path(root or os.environ.get(LOG_DIR_ENV) or Path("build") / "logs")
        self.dir = base / self.stamp
        self._lock = threading.Lock()

    def path(self, host: str) -> Path:
        return self.dir / f"{host}.log"

    def _write(self, host: str, text: str) -> None:
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path(host), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(text)

    def begin(self, host: str, phase: str, args: list[str]) -> None:
        self._write(host, f"== {time.strftime('%Y-%m-%dT%H:%M:%S')} {phase} on {host} ({' '.join(args)})\n")

    def line(self, host: str, line: str) -> None:
        """One line the host sent, made readable: step output as '[step] line', records spelled out."""
        self._write(host, readable(line) + "\n")

    def end(self, result: HostResult) -> None:
        status = result.status.value + (f": {result.reason}" if result.failed else "")
        self._write(result.host, f"== {result.host}: {status} ({result.seconds:.1f}s)\n")


def readable(line: str) -> str:
    """A record line as a person reads it in the log."""
    record = parse_record(line)
    if record is None:
        return printable(line)  # terminal control from a node never reaches a log a person cats
    kind, fields = record
    if kind == "out" and len(fields) >= 2:
        return f"[{fields[0]}] {fields[1]}"
    if kind == "result" and len(fields) >= 3:
        tail = b64(fields[3]) if len(fields) > 3 and fields[3] else ""
        text = f"-- {fields[0]}: {fields[1]} ({fields[2]})"
        return text + ("".join(f"\n   | {t}" for t in tail.rstrip().splitlines()) if tail and fields[1] == "failed" else "")
    if kind == "diff" and len(fields) >= 3:
        return f"-- diff of {fields[1]}:\n" + b64(fields[2]).rstrip()
    if kind == "start" and fields:
        return f"-- {fields[0]} …"
    if kind == "webui-admin-login":
        return f"-- {kind} {' '.join(fields[:1])} (password omitted: fab webui --show-admin shows it)"
    if kind in ("log", "fact"):
        return f"-- {kind} {' '.join(fields[:2])[:80]} (base64 omitted)"
    return "-- " + " ".join([kind] + fields)
