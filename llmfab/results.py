"""Results are data: what each step did on each host, parsed from record lines."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Optional, TypeVar

from .records import Log, Record

R = TypeVar("R", bound=Record)

RECORD = "@@llmfab"
# Terminal control from a node (escape sequences, other C0/C1 controls but tab
# and newline) never reaches the operator's terminal: it could retitle or clear
# it, or hide text.
_CONTROL = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|.)?|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """TEXT without terminal control sequences or control characters (tab and newline kept)."""
    return _CONTROL.sub("", text)


class Status(str, Enum):
    OK = "ok"
    CHANGED = "changed"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNREACHABLE = "unreachable"


@dataclass
class StepResult:
    step: str
    status: Status
    message: str
    tail: str = ""


@dataclass
class HostResult:
    host: str
    address: str
    steps: list[StepResult] = field(default_factory=list)
    # Set when the host could not be reached or the script died without a record.
    error: Optional[str] = None
    unreachable: bool = False
    exit_code: Optional[int] = None
    stderr_tail: str = ""
    seconds: float = 0.0
    commands: int = 0
    # Steps that need a reboot before they can finish: (step, reason).
    reboots: list[tuple[str, str]] = field(default_factory=list)
    # Other records steps sent (logs, checks, facts): (kind, step, fields).
    records: list[tuple[str, str, list[str]]] = field(default_factory=list)

    def logs(self) -> dict[str, str]:
        """Log excerpts steps sent, by name (base64 in the record)."""
        out = {}
        for log in self.records_of(Log):
            out[log.name] = b64(log.text_b64)
        return out

    def of_kind(self, kind: str) -> list[list[str]]:
        return [fields for k, _s, fields in self.records if k == kind]

    def records_of(self, cls: type[R]) -> list[R]:
        """The records of CLS's kind (llmfab/records.py), typed; the runner's arrival time in ``arrived``."""
        n = len(cls.fields())
        out = []
        for fields in self.of_kind(cls.kind):
            try:
                arrived = float(fields[n]) if len(fields) > n else 0.0
            except ValueError:
                arrived = 0.0
            out.append(replace(cls.parse(fields), arrived=arrived))
        return out

    def count(self, status: Status) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def status(self) -> Status:
        if self.unreachable:
            return Status.UNREACHABLE
        if self.error or self.count(Status.FAILED):
            return Status.FAILED
        if self.count(Status.CHANGED):
            return Status.CHANGED
        return Status.OK

    @property
    def failed(self) -> bool:
        return self.status in (Status.FAILED, Status.UNREACHABLE)

    @property
    def reason(self) -> str:
        """Why the host failed, in one line."""
        if self.error:
            return self.error
        failed = [s for s in self.steps if s.status == Status.FAILED]
        return f"{failed[0].step}: {failed[0].message}" if failed else ""


def b64(text: str) -> str:
    """Decode a base64 record field; garbage decodes to nothing."""
    try:
        return printable(base64.b64decode(text).decode(errors="replace"))
    except (binascii.Error, ValueError):
        return ""


def parse_record(line: str) -> Optional[tuple[str, list[str]]]:
    """Split a record line into (kind, fields); None for ordinary output."""
    if not line.startswith(RECORD + "\t"):
        return None
    parts = printable(line.rstrip("\n")).split("\t")
    return parts[1], parts[2:]


def step_result(fields: list[str]) -> StepResult:
    step, status, message, tail_b64 = (fields + ["", "", "", ""])[:4]
    try:
        tail = printable(base64.b64decode(tail_b64).decode(errors="replace")) if tail_b64 else ""
    except (binascii.Error, ValueError):
        tail = ""
    try:
        parsed = Status(status)
    except ValueError:
        parsed, message = Status.FAILED, f"unknown status {status!r}: {message}"
    return StepResult(step, parsed, message, tail)


def overall_failed(results: list[HostResult]) -> bool:
    return any(r.failed for r in results)

