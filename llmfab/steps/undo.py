"""`fab undo`: take back what prep added (k3s ships an uninstall script; this is ours).

Files prep created are removed; files it changed in place get their original
back from the oldest backup under /var/backups/llmfab/; its apt repositories
and package holds go. Installed packages and the driver stay (removing a GPU
driver under running workloads is not something to do by default): the step
names the command that removes them.
"""

from __future__ import annotations

from ..config import Node
from ..run import Run
from . import step
from .system import IDENTITY_PATH, NOFILE_PATH, SYSCTL_PATH

# Files only prep writes (named llmfab-* or marked "Managed by llmfab").
CREATED = [
    IDENTITY_PATH,
    NOFILE_PATH,
    SYSCTL_PATH,
    "/etc/modules-load.d/llmfab-nvidia-peermem.conf",
    "/etc/modprobe.d/llmfab-blacklist-nouveau.conf",
    "/etc/apt/sources.list.d/llmfab-mirror.list",
    "/etc/pip.conf",
]
# Files prep (or nvidia-ctk, within prep) changes in place, after a backup.
RESTORED = [
    "/etc/apt/sources.list",
    "/etc/apt/sources.list.d/ubuntu.sources",
    "/etc/apt/sources.list.d/debian.sources",
    "/etc/docker/daemon.json",
]
REPOS = ["docker", "nvidia-container-toolkit", "cuda-ubuntu2204", "cuda-ubuntu2404", "cuda-debian12"]


@step("undo-files", title="remove prep's files and restore the originals it changed")
def files(run: Run, node: Node) -> dict:
    return {"created": CREATED, "restored": RESTORED, "repos": REPOS}


@step("undo-holds", title="release prep's package holds")
def holds(run: Run, node: Node) -> dict:
    config = run.config
    n = config.nvidia
    packages = [*config.docker.packages, "nvidia-container-toolkit", f"nvidia-fabricmanager-{n.driver_branch}"]
    return {"packages": packages}
