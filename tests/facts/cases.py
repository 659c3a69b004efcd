"""Fact cases as data: ``tests/facts/<module>.<FACT>/<case>.json``.

Each case is ``{"fixture": "field/ib/ibstat-h20-ib-ndr400-active.txt", "fact": {...}}``:
the captured output (a file under tests/fixtures, header stripped; or a short
``output`` written in the case) and what the fact's parser makes of it, as
plain JSON. ``<module>.<FACT>`` names the
``Fact`` object (``ib.IBSTAT`` is ``llmfab.facts.ib.IBSTAT``).

To add a case, write ``{"fixture": ...}`` and run
``python -m tests.facts.cases tests/facts/<module>.<FACT>/<case>.json``: it
fills in ``fact`` from the current parser, for you to read and commit.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from llmfab.facts.base import Fact

ROOT = Path(__file__).resolve().parent
FIXTURES = ROOT.parent / "fixtures"
SEPARATOR = "# ---"


def case_files() -> list[Path]:
    """Every fact case, by fact then case name."""
    return sorted(ROOT.glob("*.*/*.json"))


def fact_of(path: Path) -> Fact:
    """The Fact a case's directory names (``ib.IBSTAT``)."""
    module, name = path.parent.name.split(".", 1)
    return getattr(importlib.import_module(f"llmfab.facts.{module}"), name)


def fixture_output(relpath: str) -> str:
    """The output part of tests/fixtures/RELPATH: what follows its '# ---' header line."""
    text = (FIXTURES / relpath).read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip("\r\n") == SEPARATOR:
            return "".join(lines[i + 1:])
    raise ValueError(f"{relpath}: no '# ---' line ends the header")


def plain(value: Any) -> Any:
    """A parsed fact as JSON values: dataclasses as objects, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def parsed(path: Path, case: dict) -> Any:
    """What the case's fact makes of its fixture (or of its inline ``output``), as JSON values."""
    text = fixture_output(case["fixture"]) if "fixture" in case else case["output"]
    return plain(fact_of(path).process(text))


def fill(path: Path) -> None:
    """Write the current parse into a case file's ``fact``."""
    case = json.loads(path.read_text())
    case["fact"] = parsed(path, case)
    path.write_text(json.dumps(case, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    for name in sys.argv[1:]:
        fill(Path(name))
