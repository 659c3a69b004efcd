"""Parse the calls log that the stubs append to inside a test host.

Each line is ``<program>\\t<args>``, the args each quoted by bash's
``printf %q`` and joined by spaces.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

CALLS_LOG = "/var/log/llmfab-stubs/calls.log"


@dataclass(frozen=True)
class Call:
    """One invocation of a stub: the program's name and its arguments."""

    program: str
    args: tuple[str, ...]

    def __str__(self) -> str:
        return " ".join((self.program, *self.args))


def parse_calls(text: str, program: str | None = None) -> list[Call]:
    """Return the calls in a calls log, only those of ``program`` if given."""
    calls = []
    for line in text.splitlines():
        name, _, quoted = line.partition("\t")
        if program is None or name == program:
            calls.append(Call(name, tuple(unquote_words(quoted))))
    return calls


def unquote_words(text: str) -> list[str]:
    """Split words quoted by ``printf %q``: \\x escapes, '...' and $'...'."""
    words: list[str] = []
    word: list[str] | None = None
    i = 0
    while i < len(text):
        char = text[i]
        if char == " ":
            if word is not None:
                words.append("".join(word))
            word, i = None, i + 1
            continue
        word = word if word is not None else []
        if char == "\\":
            word.append(text[i + 1])
            i += 2
        elif char == "'":
            end = text.index("'", i + 1)
            word.append(text[i + 1 : end])
            i = end + 1
        elif text.startswith("$'", i):
            end = _ansi_c_end(text, i + 2)
            word.append(_decode_ansi_c(text[i + 2 : end]))
            i = end + 1
        else:
            word.append(char)
            i += 1
    if word is not None:
        words.append("".join(word))
    return words


def _ansi_c_end(text: str, start: int) -> int:
    """Return the index of the quote closing a $'...' string begun at ``start``."""
    i = start
    while text[i] != "'":
        i += 2 if text[i] == "\\" else 1
    return i


def _decode_ansi_c(body: str) -> str:
    """Decode the backslash escapes of a $'...' string (bash writes \\n, \\t, \\E, \\ooo)."""
    body = body.replace("\\E", "\\x1b").replace("\\e", "\\x1b")
    raw = codecs.escape_decode(body.encode("utf-8"))[0]
    return raw.decode("utf-8", errors="surrogateescape")
