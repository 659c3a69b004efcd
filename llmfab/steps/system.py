"""System tuning from the runbook's first section: kernel hold, nofile, sysctl."""

from __future__ import annotations

from ..config import ClusterConfig, Node
from ..shell import assignment
from . import Step, register

MANAGED = "# Managed by llmfab ({what}). Local edits are replaced on the next run.\n"

IDENTITY_PATH = "/etc/llmfab/node.env"
NOFILE_PATH = "/etc/security/limits.d/90-llmfab-nofile.conf"
SYSCTL_PATH = "/etc/sysctl.d/90-llmfab-net.conf"


def identity(config: ClusterConfig, node: Node) -> dict:
    head = config.head
    values = {
        "LLMFAB_CLUSTER": config.cluster.name,
        "LLMFAB_NODE": node.name,
        "LLMFAB_ADDRESS": node.address,
        "LLMFAB_ROLE": config.role(node),
        "LLMFAB_RANK": config.rank(node),
        "LLMFAB_NODES": len(config.nodes),
        "LLMFAB_HEAD_NAME": head.name,
        "LLMFAB_HEAD_ADDRESS": head.address,
        "LLMFAB_INTERFACE": config.network.interface,
        "LLMFAB_MODEL_PATH": config.model.path,
    }
    body = "".join(assignment(k, v) + "\n" for k, v in values.items())
    return {"path": IDENTITY_PATH, "content": MANAGED.format(what="node identity") + body}


def nofile(config: ClusterConfig, node: Node) -> dict:
    n = config.system.nofile
    lines = [f"{who:<5} {kind:<4} nofile {n}" for who in ("*", "root") for kind in ("soft", "hard")]
    # `*` does not cover root in pam_limits, hence the explicit root lines.
    return {"path": NOFILE_PATH, "content": MANAGED.format(what="open-file limit") + "\n".join(lines) + "\n"}


def sysctl(config: ClusterConfig, node: Node) -> dict:
    settings = config.system.sysctl
    body = "".join(f"{k} = {v}\n" for k, v in settings.items())
    return {
        "path": SYSCTL_PATH,
        "content": MANAGED.format(what="network backlog") + body,
        "keys": list(settings),
        "values": [" ".join(str(v).split()) for v in settings.values()],
    }


SUPPORTED_OS = "Ubuntu 22.04, Ubuntu 24.04, Debian 12"

register(
    "prep",
    Step("os-check", "refuse an unsupported OS", "system/os_check.sh.j2", lambda c, n: {"supported": SUPPORTED_OS}),
    Step("node-identity", "record the node's identity and cluster facts", "system/identity.sh.j2", identity),
    Step(
        "kernel-hold",
        "hold the kernel meta-packages",
        "system/kernel_hold.sh.j2",
        enabled=lambda config: config.system.hold_kernel,
    ),
    Step("nofile-limit", "raise the open-file limit", "system/nofile.sh.j2", nofile),
    Step("sysctl-net", "set and apply the network backlog sysctls", "system/sysctl.sh.j2", sysctl),
)
