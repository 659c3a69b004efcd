"""Errors a person acts on: each names where the problem is and what to do."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    fix: str


class LlmfabError(Exception):
    """Base of the errors llmfab reports without a traceback."""


class ConfigError(LlmfabError):
    """The config file is invalid; nothing was contacted."""

    def __init__(self, source: str, problems: list[Problem]):
        self.source = source
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: invalid config ({len(self.problems)} problem{'s' if len(self.problems) != 1 else ''})"]
        for p in self.problems:
            where = f"{p.field}: " if p.field else ""
            lines.append(f"  {where}{p.message}")
            lines.append(f"    fix: {p.fix}")
        return "\n".join(lines)


class UsageError(LlmfabError):
    """A command-line value is wrong (an unknown host, a bad option)."""
