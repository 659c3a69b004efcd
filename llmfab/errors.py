"""Errors a person acts on: each names where the problem is and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from .exits import ExitStatus


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    fix: str


class LlmfabError(Exception):
    """Base of the errors llmfab reports without a traceback.

    The class decides the exit status (``exit_status``), in one place for every
    task: ``session.reported_errors`` maps it, as httpie's ``raw_main`` does, so
    the same mistake ends with the same status whichever task finds it.
    """

    exit_status = ExitStatus.HOST_FAILED

    def report(self) -> str:
        """What the person reads: one line unless the error lists several problems."""
        return f"error: {self}" if str(self) else ""


class ConfigError(LlmfabError):
    """The config file is invalid; nothing was contacted."""

    exit_status = ExitStatus.CONFIG_INVALID

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

    def report(self) -> str:
        return self.render()


class UsageError(LlmfabError):
    """A command-line value is wrong (an unknown host, a bad option)."""

    exit_status = ExitStatus.CONFIG_INVALID


class Refused(LlmfabError):
    """A preflight or capacity check refused the layout before anything ran."""

    exit_status = ExitStatus.REFUSED


class HostsFailed(LlmfabError):
    """Hosts were contacted and at least one failed (or they disagree); the recap says which."""
