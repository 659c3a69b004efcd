"""System tuning from the runbook's first section: kernel hold, nofile, sysctl."""

from __future__ import annotations

from ..config import Node
from ..run import Run
from ..shell import assignment
from . import step

MANAGED = "# Managed by llmfab ({what}). Local edits are replaced on the next run.\n"

IDENTITY_PATH = "/etc/llmfab/node.env"
NOFILE_PATH = "/etc/security/limits.d/90-llmfab-nofile.conf"
SYSCTL_PATH = "/etc/sysctl.d/90-llmfab-net.conf"


SUPPORTED_OS = "Ubuntu 22.04, Ubuntu 24.04, Debian 12"


@step("os-check", title="refuse an unsupported OS",
      changes="nothing; refuses anything but Ubuntu 22.04/24.04, Debian 12 (x86_64)", undo="–")
def os_check(run: Run, node: Node) -> dict:
    return {"supported": SUPPORTED_OS}


@step("node-identity", title="record the node's identity and cluster facts",
      changes="`/etc/llmfab/node.env` (who this node is; read by bundles)", undo="`rm /etc/llmfab/node.env`")
def identity(run: Run, node: Node) -> dict:
    config = run.config
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


@step("kernel-hold", title="hold the kernel meta-packages",
      changes="`apt-mark hold` on the installed kernel meta-packages (says so when there are none)",
      undo="`apt-mark unhold PKG`", enabled=lambda run: run.config.system.hold_kernel)
def kernel_hold(run: Run, node: Node) -> dict:
    return {}


@step("nofile-limit", title="raise the open-file limit",
      changes="`/etc/security/limits.d/90-llmfab-nofile.conf` (204800 soft/hard, root and `*`)",
      undo="remove the file, log in again")
def nofile(run: Run, node: Node) -> dict:
    n = run.config.system.nofile
    lines = [f"{who:<5} {kind:<4} nofile {n}" for who in ("*", "root") for kind in ("soft", "hard")]
    # `*` does not cover root in pam_limits, hence the explicit root lines.
    return {"path": NOFILE_PATH, "content": MANAGED.format(what="open-file limit") + "\n".join(lines) + "\n"}


@step("sysctl-net", title="set and apply the network backlog sysctls",
      changes="`/etc/sysctl.d/90-llmfab-net.conf`, applied live with `sysctl -p`",
      undo="remove the file, `sysctl --system`")
def sysctl(run: Run, node: Node) -> dict:
    settings = run.config.system.sysctl
    body = "".join(f"{k} = {v}\n" for k, v in settings.items())
    return {
        "path": SYSCTL_PATH,
        "content": MANAGED.format(what="network backlog") + body,
        "keys": list(settings),
        "values": [" ".join(str(v).split()) for v in settings.values()],
    }

