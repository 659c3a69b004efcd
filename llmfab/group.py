"""Is the engine group whole? Judged from every node's status records.

The ranks of one deployment go up and down together: a rank that crashed
cannot rejoin the others (vLLM's head keeps answering /health while requests
hang; SGLang and TensorRT-LLM ranks wait for a peer that never returns). So
a group with some ranks up and others down is broken, and the cure is to
restart all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .deployment import CONTAINER
from .results import HostResult
from .records import Container


@dataclass(frozen=True)
class Rank:
    """One node's engine container as `docker ps` reported it (state '' when there is none)."""

    host: str
    address: str
    rank: str
    state: str

    @property
    def running(self) -> bool:
        return self.state.startswith("Up")

    def describe(self) -> str:
        what = f"rank {self.rank}: {self.state}" if self.state else "no engine container"
        return f"{self.host} ({self.address}, {what})"


def ranks(results: list[HostResult]) -> list[Rank]:
    """The engine rank of every host that answered the status phase."""
    found = []
    for r in results:
        if r.failed:
            continue
        state, rank = "", "-"
        for container in r.records_of(Container):
            name, _image, status, _engine, number = container.parts()
            if name == CONTAINER:
                state, rank = status, number or "-"
        found.append(Rank(r.host, r.address, rank, state))
    return found


def down(results: list[HostResult]) -> list[Rank]:
    """The ranks that are not running while another rank of the group is; [] when whole or all stopped."""
    every = ranks(results)
    if not any(r.running for r in every):
        return []
    return [r for r in every if not r.running]
