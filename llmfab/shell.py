"""Rendering shell with Jinja2 so that every value is quoted by construction.

The template environment's ``finalize`` hook quotes whatever a ``{{ ... }}``
expression yields. Only ``Raw`` text (fragments llmfab itself built, such as a
heredoc body or an already-quoted word list) passes through untouched, so a
config value like ``$(reboot)`` can only ever reach a host as data.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path
from typing import Any, Iterable

import jinja2

PACKAGE = Path(__file__).resolve().parent
TEMPLATE_ROOTS = [PACKAGE / "templates", PACKAGE / "lib", PACKAGE.parent / "bundles"]


class Raw(str):
    """Shell text that llmfab built itself and that must not be quoted again."""


def quote(value: Any) -> str:
    """Quote one value as a single shell word (ints and Raw text pass as they are)."""
    if isinstance(value, Raw):
        return value
    if isinstance(value, bool):
        raise TypeError("booleans have no shell spelling; use an {% if %} in the template")
    if isinstance(value, int):
        return str(value)
    if value is None:
        raise TypeError("None reached a shell template; the step must decide what an absent value means")
    if isinstance(value, (list, tuple, set, dict)):
        raise TypeError(f"{type(value).__name__} reached a shell template; use the `words` filter")
    return shlex.quote(str(value))


def words(values: Iterable[Any]) -> Raw:
    """Quote each value and join them with spaces: a list of shell words."""
    return Raw(" ".join(quote(v) for v in values))


def heredoc(content: str, tag: str = "LLMFAB") -> Raw:
    """A quoted heredoc (no expansion inside) whose delimiter cannot occur in the content."""
    if not content.endswith("\n"):
        content += "\n"
    digest = hashlib.sha256(content.encode()).hexdigest()
    # Not an assert: `python -O` would drop it, and the check is what keeps the
    # content from ending the heredoc early.
    for length in (10, 20, 40, 64):
        delimiter = f"{tag}_EOF_{digest[:length]}"
        if delimiter not in content:
            return Raw(f"<<'{delimiter}'\n{content}{delimiter}")
    raise ValueError("the content holds every heredoc delimiter llmfab could choose")


def comment(text: object) -> Raw:
    """Text made safe for a `#` comment line: one line, printable."""
    return Raw(" ".join(str(text).split()))


def assignment(name: str, value: Any) -> str:
    """One `NAME=value` line for a sourceable env file, the value quoted."""
    if not name.isidentifier():
        raise ValueError(f"not a shell variable name: {name!r}")
    return f"{name}={quote(value)}"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(p) for p in TEMPLATE_ROOTS]),
        finalize=quote,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        # Bash uses `${#array[@]}`: move Jinja's comments out of its way.
        comment_start_string="<#--",
        comment_end_string="--#>",
    )
    env.filters["words"] = words
    env.filters["heredoc"] = heredoc
    env.filters["comment"] = comment
    return env


ENV = _environment()


def render(template: str, **context: Any) -> str:
    """Render one template file by name (e.g. ``system/sysctl-net.sh.j2``)."""
    return ENV.get_template(template).render(**context)
