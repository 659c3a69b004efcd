"""Every record a template sends is declared once in llmfab/records.py, with its fields."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmfab import records
from llmfab.records import KINDS, Fact, Smoke
from llmfab.results import HostResult

PACKAGE = Path(records.__file__).resolve().parent
SOURCES = sorted((PACKAGE / "templates").rglob("*.j2")) + [PACKAGE / "lib" / "llmfab.sh"]


def words(text: str) -> list[str]:
    """TEXT split into shell words (quotes and $( ) kept inside their word), up to a comment or ;."""
    out, word, quote, depth, i = [], "", "", 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            word += c
            if c == "\\" and quote == '"' and i + 1 < len(text):
                word += text[i + 1]
                i += 1
            elif c == quote and depth == 0:
                quote = ""
            elif text.startswith("$(", i):
                depth += 1
                word += "("
                i += 1
            elif c == ")" and depth:
                depth -= 1
        elif c in "'\"":
            quote, word = c, word + c
        elif text.startswith("$(", i):
            depth, word = depth + 1, word + "$("
            i += 1
        elif c == ")" and depth:
            depth, word = depth - 1, word + c
        elif c.isspace() and depth == 0:
            if word:
                out.append(word)
            word = ""
        elif c in ";|&#" and depth == 0:
            break
        else:
            word += c
        i += 1
    return out + ([word] if word else [])


def emits() -> list[tuple[str, str, int]]:
    """(where, kind, field count) of every `llmfab_emit KIND …` call."""
    found = []
    for path in SOURCES:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.strip()
            if code.startswith("#") or not re.search(r"(^|[\s;&|])llmfab_emit\s", code):
                continue
            call = words(code[code.index("llmfab_emit "):])
            found.append((f"{path.relative_to(PACKAGE)}:{n}", call[1], len(call) - 2))
    return found


def test_the_templates_send_records():
    assert len(emits()) >= 15


@pytest.mark.parametrize("where, kind, count", emits())
def test_every_emitted_record_is_declared_with_as_many_fields(where, kind, count):
    assert kind in KINDS, f"{where}: record kind {kind!r} is not declared in llmfab/records.py"
    assert count == len(KINDS[kind].fields()), f"{where}: {kind} sends {count} fields, declared {KINDS[kind].fields()}"


def test_a_task_reads_records_typed_with_the_runners_arrival_time():
    r = HostResult("n1", "10.0.0.1")
    r.records.append(("fact", "preflight-probe", ["clock", "0", "MTIzCg==", "1700000000.500"]))
    r.records.append(("smoke", "smoke", ["ttft_s=0.1", "chunks=3", "tokens_per_s=9", "1.0"]))
    fact = r.records_of(Fact)[0]
    assert (fact.name, fact.rc, fact.output, fact.arrived) == ("clock", "0", "123\n", 1700000000.5)
    assert r.records_of(Smoke)[0].tokens_per_s == "tokens_per_s=9"


def test_the_word_splitter_keeps_quoted_and_substituted_words_whole():
    assert words('llmfab_emit diff "$path" "$(printf \'%s\\n\' "$text" | base64 -w0)"') == \
        ["llmfab_emit", "diff", '"$path"', '"$(printf \'%s\\n\' "$text" | base64 -w0)"']
