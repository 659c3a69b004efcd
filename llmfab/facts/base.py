"""What every fact shares: the Fact pairing, Diagnosis, and text clean-up.

A fact pairs the shell command that probes a node with a pure parser of its
output (pyinfra's idea). Parsers never raise: whatever the text, they return
their dataclass, whose ``reason`` says why it could not be read ("" when it was).
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Pattern

MAX_LINE = 10000  # longer lines are cut before matching: bounds the regex cost on pathological input
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Diagnosis:
    """A likely cause read from some output, the line that shows it, and a one-sentence fix."""

    cause: str
    evidence_line: str
    fix: str


@dataclass(frozen=True)
class Fact:
    """One probe: the command run on the node, and the pure parser of its output."""

    name: str
    command: str
    parse: Callable[[str], Any]

    def process(self, output: Any) -> Any:
        """Parse the command's output (stdout and stderr together)."""
        return self.parse(output)


@dataclass(frozen=True)
class Rule:
    """A log pattern that names a cause; ``cause``/``fix`` may use the match's named groups.

    One value printed in several forms (``(h, p)``, ``[h]:p``, ``remote=h:p``)
    takes one alternative per form with groups ``host_1``, ``host_2``...: they
    collapse into ``host``, whichever form matched.
    """

    name: str
    pattern: Pattern[str]
    cause: str
    fix: str

    def diagnose(self, line: str) -> Optional[Diagnosis]:
        m = self.pattern.search(line)
        if not m:
            return None
        groups = {k: (v if v is not None else "?") for k, v in _collapsed(m).items()}
        return Diagnosis(self.cause.format(**groups), line.strip(), self.fix.format(**groups))

    def scan(self, lines: "list[str]") -> "Optional[tuple[int, Diagnosis]]":
        """(line number, diagnosis) of the first line that matches; a later line that fills
        every named group (an address, a version) gives the evidence, the first keeps the place."""
        first = None
        for number, line in enumerate(lines):
            line = line[:MAX_LINE]
            m = self.pattern.search(line)
            if not m:
                continue
            if first is None:
                first = (number, self.diagnose(line))
            if all(v is not None for v in _collapsed(m).values()):
                return first[0], self.diagnose(line)
        return first


def _collapsed(m: "re.Match[str]") -> dict:
    """Named groups with ``name_N`` alternatives folded into ``name`` (the first that matched)."""
    out: dict = {}
    for key, value in m.groupdict().items():
        name = re.sub(r"_\d+$", "", key)
        if out.get(name) is None:
            out[name] = value
    return out


def as_text(output: Any) -> str:
    """Turn whatever a transport returned (str, bytes, None) into text without ANSI colours."""
    if output is None:
        return ""
    if isinstance(output, (bytes, bytearray)):
        output = output.decode("utf-8", errors="replace")
    elif not isinstance(output, str):
        output = str(output)
    return ANSI.sub("", output).replace("\r\n", "\n")


def command_missing(text: str) -> str:
    """Say which program is missing when the output is a shell's 'command not found', else ""."""
    lines = text.strip().splitlines()
    if len(lines) > 3 or len(text) > 1000:  # a shell's complaint is short; long text is other output
        return ""
    for line in lines:
        m = re.search(r"([^\s:]+): (?:command )?not found\s*$", line)
        if m:
            return "%s is not installed (command not found)" % m.group(1)
    return ""


def first_match(rules: "list[Rule]", text: str) -> Optional[Diagnosis]:
    """Return the first rule's diagnosis on the first line it matches."""
    lines = text.splitlines()
    for rule in rules:
        found = rule.scan(lines)
        if found:
            return found[1]
    return None


def never_raises(make_unparseable: Callable[[str], Any]):
    """Wrap a parser so that a bug on strange input yields an 'unparseable' result, not an exception."""

    def wrap(parse):
        @functools.wraps(parse)
        def safe(output: Any = ""):
            try:
                return parse(as_text(output))
            except Exception as exc:  # a parser must never take the run down
                return make_unparseable("parser error on this input: %s: %s" % (type(exc).__name__, exc))
        return safe

    return wrap


def kv_lines(text: str, sep: str = ":") -> "list[tuple[int, str, Optional[str]]]":
    """Split indented ``key sep value`` lines into (indent, key, value); value is None for headings."""
    rows = []
    for line in text.splitlines():
        expanded = line.expandtabs(8)
        if not expanded.strip():
            continue
        key, found, value = expanded.strip().partition(sep)
        rows.append((len(expanded) - len(expanded.lstrip()), key.strip(), value.strip() if found else None))
    return rows
