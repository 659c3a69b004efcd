"""The `serving:` section: serving groups behind one router (several copies of one engine layout).

Without it (or with one group) the cluster is one engine group, as always.
With it, the nodes split into groups, each running the whole engine layout
with its own head, and a router in front of the groups' heads::

    serving:
      group_size: auto        # nodes per group: auto = the layout in engine.options; or a number
      # groups: [[n1, n2], [n3, n4]]   # or list them; each list's first node is its head
      router:
        node: n1              # where the router runs (default: the first group's head)
        port: 30000
        policy: cache_aware
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

POLICIES = ("cache_aware", "round_robin", "power_of_two", "random")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Router(_Section):
    # Node that runs the router (a name from nodes:); default: the first group's head.
    node: Optional[str] = None
    port: int = Field(30000, ge=1, le=65535)
    # The router's Prometheus exporter (both routers open one; 29000 by default).
    metrics_port: int = Field(29000, ge=1, le=65535)
    policy: Literal["cache_aware", "round_robin", "power_of_two", "random"] = "cache_aware"
    # The router image; default: the pinned one for the engine (llmfab/routers.py).
    image: Optional[str] = None
    # Seconds between the router's health checks of each group's head.
    health_interval: int = Field(5, ge=1, le=3600)


class Serving(_Section):
    group_size: Optional[Union[Literal["auto"], int]] = None
    groups: Optional[list[list[str]]] = None
    router: Router = Field(default_factory=Router)
    # A rolling re-deploy waits this long at most for a drained group's requests to end.
    drain_timeout: int = Field(300, ge=0, le=86400)

    @model_validator(mode="after")
    def _one_way(self) -> "Serving":
        if self.group_size is not None and self.groups is not None:
            raise ValueError("set serving.group_size or serving.groups, not both")
        if isinstance(self.group_size, int) and self.group_size < 1:
            raise ValueError("serving.group_size must be auto or a number of nodes of at least 1")
        return self

    @property
    def enabled(self) -> bool:
        return self.group_size is not None or self.groups is not None

    def problems(self, names: list[str]) -> list[str]:
        """What is wrong with the listed groups and router node, given the config's node names."""
        out = []
        if self.groups is not None:
            listed = [n for g in self.groups for n in g]
            unknown = sorted({n for n in listed if n not in names})
            twice = sorted({n for n in listed if listed.count(n) > 1})
            if unknown:
                out.append(f"serving.groups names nodes that are not in nodes: {', '.join(unknown)}")
            if twice:
                out.append(f"serving.groups lists nodes in more than one group: {', '.join(twice)}")
            if any(not g for g in self.groups):
                out.append("serving.groups has an empty group")
            if len({len(g) for g in self.groups}) > 1:
                out.append("serving.groups must all have the same number of nodes (each runs the same layout)")
        if isinstance(self.group_size, int) and len(names) % self.group_size:
            out.append(f"serving.group_size {self.group_size} does not divide the {len(names)} nodes")
        if self.router.node is not None and self.router.node not in names:
            out.append(f"serving.router.node {self.router.node!r} is not a node (nodes: {', '.join(names)})")
        return out
