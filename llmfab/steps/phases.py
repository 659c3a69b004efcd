"""Every phase's steps, in run order: the one list to read (k3s's closing line of install.sh).

A node runs a listed step when the step is enabled for the run and runs on
that node (its ``where=``). An entry ``(id, WORKERS)`` narrows where a step
runs in this phase only. A step is declared in ``steps/<module>.py``; adding
one is its declaration, its template and its place here.
"""

from __future__ import annotations

from . import WORKERS

PHASES: dict[str, list] = {
    "prep": ["os-check", "node-identity", "kernel-hold", "nofile-limit", "sysctl-net",
             "apt-mirror", "pip-mirror",
             "build-prereqs", "nvidia-driver", "nvitop", "fabric-manager", "gpudirect-rdma",
             "docker", "container-toolkit",
             "miniconda"],
    "check": ["preflight-probe"],
    "nccl": ["nccl-allreduce"],
    "deploy": ["engine-image", "engine-api-key", "engine-ssh", "engine-mpi-check", "engine-files",
               "engine-firewall", "engine-launch", "engine-cluster", "engine-serve", "engine-ready", "engine-rank"],
    "smoke": ["smoke"],
    "status": ["engine-status"],
    "logs": ["engine-logs"],
    "stop": ["engine-stop", "engine-firewall-remove"],
    "bench": ["bench"],
    "model": ["model-download", "model-verify"],
    "model-verify": ["model-verify"],
    "model-serve": ["model-serve"],
    "model-pull": ["model-pull", ("model-verify", WORKERS)],
    "model-unserve": ["model-unserve"],
    "webui": ["webui-image", "webui-secret", "webui-container", "webui-ready"],
    "webui-admin": ["webui-admin"],
    "stop-webui": ["webui-stop"],
    "undo": ["undo-files", "undo-holds"],
    # Serving groups (llmfab/serving.py): on the router's node only.
    "router": ["router-image", "router-launch", "router-ready"],
    "router-status": ["router-status"],
    "router-stop": ["router-stop"],
    "router-drain": ["router-drain"],
    "router-admit": ["router-admit"],
}


def entries(phase: str) -> list[tuple[str, str | None]]:
    """PHASE's steps as (id, where in this phase or None for the step's own)."""
    return [(e, None) if isinstance(e, str) else e for e in PHASES[phase]]
