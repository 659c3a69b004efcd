"""Serving groups: the config's nodes split into copies of one engine layout, behind one router.

Each group is deployed as a cluster of its own: ``group_config`` gives a copy
of the config with only that group's nodes and its first node as head, so the
deploy, status and stop phases render for a group exactly as they do for a
whole cluster. The router (llmfab/routers.py) runs on one node in front of
the groups' heads. The groups share one API key (the router passes the
client's key on to whichever head it picks): with ``engine.api_key: generate``
it is made once on this machine, next to the cluster's other secrets.
"""

from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .config import ClusterConfig, Node
from . import engines
from .errors import LlmfabError
from .mpikeys import state_dir


class ServingError(LlmfabError):
    """The serving groups cannot be formed as configured."""


@dataclass(frozen=True)
class Group:
    index: int  # 1-based, as `--group N` names it
    nodes: tuple[Node, ...]

    @property
    def head(self) -> Node:
        return self.nodes[0]

    def names(self) -> str:
        return ", ".join(n.name for n in self.nodes)


def enabled(config: ClusterConfig) -> bool:
    return config.serving.enabled


def layout_nodes(config: ClusterConfig) -> int:
    """Nodes one copy of the engine layout in engine.options takes (TP x PP GPUs / GPUs per node)."""
    options = config.engine.options
    layout = engines.get_profile(config.engine.name, config.engine.version).layout
    keys = [layout[k] for k in ("tp", "pp") if k in layout]
    if not any(k in options for k in keys):
        raise ServingError(f"serving.group_size: auto takes the group size from the layout, but engine.options sets "
                           f"none of {', '.join(keys)}: set them (one group's TP x PP), or give serving.group_size")
    gpus = math.prod(int(options.get(k, 1)) for k in keys)
    if gpus % config.gpu.per_node:
        raise ServingError(f"engine.options: a layout of {gpus} GPUs is not a whole number of "
                           f"{config.gpu.per_node}-GPU nodes; serving groups are whole nodes")
    return gpus // config.gpu.per_node


def groups(config: ClusterConfig) -> list[Group]:
    """The serving groups in config order (one group of every node when serving: is not set)."""
    serving = config.serving
    if serving.groups is not None:
        return [Group(i + 1, tuple(config.node(n) for n in g)) for i, g in enumerate(serving.groups)]
    if not serving.enabled:
        return [Group(1, tuple(config.ranked_nodes()))]
    size = layout_nodes(config) if serving.group_size == "auto" else int(serving.group_size)
    nodes = config.ranked_nodes()
    if len(nodes) % size:
        raise ServingError(f"serving.group_size: groups of {size} nodes do not divide the {len(nodes)} nodes")
    return [Group(i // size + 1, tuple(nodes[i:i + size])) for i in range(0, len(nodes), size)]


def pick(config: ClusterConfig, number: int) -> Group:
    """Group NUMBER (1-based), or a ServingError naming the groups there are."""
    found = groups(config)
    if not 1 <= number <= len(found):
        listing = "; ".join(f"{g.index}: {g.names()}" for g in found)
        raise ServingError(f"--group {number}: there are {len(found)} group(s) ({listing})")
    return found[number - 1]


def group_config(config: ClusterConfig, group: Group) -> ClusterConfig:
    """CONFIG as if GROUP's nodes were the whole cluster, GROUP's first node its head."""
    # Behind the router a group's head listens on its cluster address only:
    # clients come through the router (and heads that share a network
    # namespace, as VMs of one host may, do not collide).
    engine = config.engine.model_copy(update={"bind": group.head.address})
    if len(groups(config)) > 1 and engine.api_key == "generate":
        engine = engine.model_copy(update={"api_key": shared_key(config)})
    return config.model_copy(update={
        "nodes": [n.model_copy(update={"role": None}) for n in group.nodes],
        "cluster": config.cluster.model_copy(update={"head": group.head.name}),
        "engine": engine,
    })


def node_config(config: ClusterConfig, node: Node) -> ClusterConfig:
    """The config NODE's own scripts render with: its group's, when there are serving groups."""
    if not config.serving.enabled:
        return config
    return group_config(config, next(g for g in groups(config) if node.name in {n.name for n in g.nodes}))


def router_phases(config: ClusterConfig, node: Node) -> list[str]:
    """The router's phases, for a bundle of the router's node (none elsewhere, or without groups)."""
    if not config.serving.enabled or node.name != router_node(config).name:
        return []
    return ["router", "router-status", "router-stop"]


def router_node(config: ClusterConfig) -> Node:
    wanted = config.serving.router.node
    return config.node(wanted) if wanted else groups(config)[0].head


def worker_url(config: ClusterConfig, group: Group) -> str:
    """The group's endpoint as the router reaches it (the head's cluster address and engine port)."""
    return f"http://{group.head.address}:{config.engine.port}"


def key_path(config: ClusterConfig) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", config.cluster.name)
    return state_dir() / safe / "api_key"


def shared_key(config: ClusterConfig) -> str:
    """The API key every group's head keeps, made once on this machine (0600 in a 0700 directory)."""
    path = key_path(config)
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    key = "sk-llmfab-" + secrets.token_hex(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key
