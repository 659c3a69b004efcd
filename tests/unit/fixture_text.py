"""Read captured command outputs without their source header.

Every fixture (tests/fixtures/field/ and tests/fixtures/h200/) starts with
comment lines ("# source: ...", "# what: ...") and a line that is exactly
"# ---"; the output follows it unchanged. Only that first "# ---" line splits:
an output may itself start with "# " (a root prompt such as "# ibstat").
"""
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SEPARATOR = "# ---"


def split_fixture(text):
    """Return (header lines, output) of one fixture's text."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.rstrip("\r\n") == SEPARATOR:
            return [l.rstrip("\r\n") for l in lines[:i]], "".join(lines[i + 1:])
        if not line.startswith("#"):
            break
    raise ValueError("no '# ---' line ends the header")


def load_fixture(relpath):
    """Return the output part of tests/fixtures/RELPATH (e.g. "field/gpu/x.txt")."""
    return split_fixture((FIXTURES / relpath).read_text(encoding="utf-8"))[1]


def fixture_header(relpath):
    """Return the header lines of tests/fixtures/RELPATH."""
    return split_fixture((FIXTURES / relpath).read_text(encoding="utf-8"))[0]
