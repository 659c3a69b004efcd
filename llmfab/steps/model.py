"""Model phases: the weights on every node, complete and identical.

- ``model`` (every node): download the configured model into ``model.path``
  (ModelScope or Hugging Face, both resume), after a free-disk check; offline
  (a bundle with artifacts) the weights are copied from the bundle when
  ``model.in_bundle``, else only verified. Then verify.
- ``model-verify`` (every node): read-only; every shard the index lists is
  present with the size the manifest records.
- ``model-serve`` / ``model-pull`` / ``model-unserve`` (``fab model
  --distribute``): the head, and every worker that forwards (llmfab/topology.py),
  serves its copy read-only with a short-lived rsync daemon; each worker pulls
  file by file from its source node while that one still receives; the
  daemons stop at the end.

A complete download leaves ``llmfab-manifest.json`` in the model directory
(every file's name and size, sha256 where known): it is what the next run
probes, so a complete model is never fetched again, and what a worker that
pulled from the head is checked against.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..config import ClusterConfig, Node
from ..models import UnknownModelError, load_model
from ..run import Run
from ..topology import CHAIN, Topology
from . import LIBRARIES, WORKERS, step

MANIFEST = "llmfab-manifest.json"
# File systems that several nodes may mount at once (`stat -f -c %T` names):
# on them only the head downloads, and the other nodes wait for its copy.
SHARED_FILESYSTEMS = ["nfs", "nfs4", "cifs", "smb", "smb2", "lustre", "gpfs", "ceph", "glusterfs", "beegfs",
                      "fuse", "fuseblk", "9p", "afs"]
DISTRIBUTE_PORT = 8730
# The loaded weights (llmfab/models/*.yaml) plus tokenizer, MTP layer and
# embeddings kept in BF16: what the repository really holds is a little more.
HEADROOM = 1.05


@dataclass(frozen=True)
class Distribution:
    """One run of ``fab model --distribute``: the port and the one-time password."""

    port: int
    token: str
    # sha256 of the head's manifest, as the serve step reported it over SSH: the
    # workers accept only that manifest from the transfer service.
    manifest_sha256: str = ""
    # Who pulls from whom; None: every worker of the config from the head.
    topology: Topology | None = None
    # What each node may send in all, in KiB/s (0: no limit), shared among its receivers.
    bwlimit_kib: int = 0

    def shape(self, config: ClusterConfig) -> Topology:
        return self.topology or Topology(tuple(n.name for n in config.ranked_nodes()), 0)


def plan(config: ClusterConfig, port: int = DISTRIBUTE_PORT, nodes: list[Node] | None = None,
         fanout: int = CHAIN, bwlimit_kib: int = 0) -> Distribution:
    """A fresh transfer over the head and NODES: the port, who pulls from whom, and a one-time password."""
    order = [config.head] + [n for n in config.ranked_nodes() if n.name != config.head.name
                             and (nodes is None or n.name in {m.name for m in nodes})]
    return Distribution(port, secrets.token_hex(24), topology=Topology(tuple(n.name for n in order), fanout),
                        bwlimit_kib=bwlimit_kib)


# The llmfab__model_* helpers, rendered once into a phase's script before the
# first step that declares needs=("model",).
LIBRARIES["model"] = ("model/lib.sh.j2", {"manifest": MANIFEST})


def download_bytes(config: ClusterConfig) -> int:
    """Bytes the download needs on disk: model.size_gb, else the model's description; 0 if unknown."""
    m = config.model
    if m.size_gb:
        return round(m.size_gb * 1e9)
    try:
        spec = load_model(m.id)
    except UnknownModelError:
        return 0
    for checkpoint in spec.checkpoints.values():
        if checkpoint.repo and checkpoint.repo.lower() == m.id.lower():
            return round(checkpoint.weights_gb * 1e9 * HEADROOM)
    try:
        return round(spec.weights_bytes(m.dtype) * HEADROOM)
    except ValueError:
        return 0


def _wait(run: Run) -> int:
    """How long a step waits for a transfer: just under the run's command timeout."""
    return max(60, run.command_timeout - 60)


def _common(config: ClusterConfig) -> dict:
    m = config.model
    return {"path": m.path, "model": m.id, "source": m.source, "revision": m.revision or "",
            "checksums": 1 if m.checksums else 0, "manifest": MANIFEST}


@step("model-download", title="download the model to this node", needs=("model",))
def download(run: Run, node: Node) -> dict:
    config = run.config
    return {**_common(config), "need": download_bytes(config), "wait": _wait(run),
            "head": 1 if run.is_head(node) else 0, "shared": SHARED_FILESYSTEMS,
            "in_bundle": 1 if config.model.in_bundle else 0, "bundled": PurePosixPath(config.model.path).name,
            "state": "/var/lib/llmfab/model-download", "log": "/var/log/llmfab/model-download.log"}


@step("model-verify", title="check that every shard is present with the right size", needs=("model",))
def verify(run: Run, node: Node) -> dict:
    return _common(run.config)


def _node(config: ClusterConfig, name: str) -> Node:
    return next(n for n in config.nodes if n.name == name)


def forwards(run: Run, node: Node) -> bool:
    """Whether NODE serves the model to others in this run (the head, and relays of a chain or tree)."""
    shape = run.distribution.shape(run.config)
    return node.name in shape.order and bool(shape.receivers(node.name))


# Where these run is the task's choice: the head and the relays serve, the others pull.
@step("model-serve", title="serve the model to the nodes that pull from this one", needs=("model",))
def serve(run: Run, node: Node) -> dict:
    config, plan = run.config, run.distribution
    receivers = [_node(config, n) for n in plan.shape(config).receivers(node.name)]
    return {"path": config.model.path, "manifest": MANIFEST, "address": node.address, "port": plan.port,
            "token": plan.token, "allow": [n.address for n in receivers], "lifetime": _wait(run) + 600,
            "run": "/run/llmfab/model-rsyncd", "relay": 0 if run.is_head(node) else 1}


@step("model-pull", title="pull the model from its source node (workers)", where=WORKERS, needs=("model",))
def pull(run: Run, node: Node) -> dict:
    config, plan = run.config, run.distribution
    shape = plan.shape(config)
    source = _node(config, shape.source(node.name) or config.head.name)
    share = plan.bwlimit_kib // max(1, len(shape.receivers(source.name))) if plan.bwlimit_kib else 0
    return {**_common(config), "head": config.head.address, "address": node.address,
            "source": source.address, "source_name": source.name, "bwlimit": max(1, share) if share else 0,
            "port": plan.port, "token": plan.token, "wait": _wait(run),
            "manifest_sha256": plan.manifest_sha256 or "unknown: serve the model first"}


@step("model-unserve", title="stop serving the model")
def unserve(run: Run, node: Node) -> dict:
    return {"run": "/run/llmfab/model-rsyncd"}
