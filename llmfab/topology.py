"""Who pulls the model from whom in ``fab model --distribute``.

The head downloads once; every other node pulls from one source node. With a
fan-out of K, node i of the run (the head is node 0, the workers follow in rank
order) pulls from node (i - 1) // K: K = 1 is a chain (head -> n2 -> n3 -> ...),
K = 2 a binary tree, and a fan-out of at least the worker count is a star
(every worker from the head). A node that forwards serves each file as soon as
it has it whole, so a chain moves the model in about one copy's time plus one
file per hop: each node's link carries the model once in and once out, where a
star sends it N times through the head's link.
"""

from __future__ import annotations

from dataclasses import dataclass

CHAIN = 1
STAR = 0  # as a --fanout value: every worker pulls from the head


@dataclass(frozen=True)
class Topology:
    """The order of the run's nodes (head first) and the fan-out."""

    order: tuple[str, ...]
    fanout: int = CHAIN

    def __post_init__(self):
        if self.fanout < 0:
            raise ValueError(f"fan-out must be 0 (star) or more, not {self.fanout}")

    @property
    def width(self) -> int:
        """The effective fan-out: a star's is the worker count."""
        return self.fanout if self.fanout > 0 else max(1, len(self.order) - 1)

    def source(self, name: str) -> str | None:
        """The node NAME pulls from (None for the head)."""
        i = self.order.index(name)
        return None if i == 0 else self.order[(i - 1) // self.width]

    def receivers(self, name: str) -> list[str]:
        """The nodes that pull from NAME, in order."""
        return [n for n in self.order[1:] if self.source(n) == name]

    def describe(self) -> str:
        """The shape in words: "chain n1 -> n2 -> n3", "star from n1", "tree (fan-out 2) from n1"."""
        if len(self.order) <= 2 or self.width == 1:
            return "chain " + " -> ".join(self.order)
        if self.width >= len(self.order) - 1:
            return f"star from {self.order[0]}"
        return f"tree (fan-out {self.width}) from {self.order[0]}"
