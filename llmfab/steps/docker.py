"""Docker CE and the NVIDIA Container Toolkit (runbook: "安装DOCKER", "安装NVIDIA Container Toolkit")."""

from __future__ import annotations

from ..config import Node
from ..run import Run
from . import step


@step("docker", title="install Docker CE and keep it running", group="docker",
      changes="Docker's apt repo for the distro/codename (signed-by), docker-ce & co, service enabled",
      undo="`apt-get remove`, remove the list and keyring", enabled=lambda run: run.config.docker.enabled)
def engine(run: Run, node: Node) -> dict:
    return {"packages": run.config.docker.packages}


@step("container-toolkit", title="install the NVIDIA Container Toolkit and register its runtime", group="docker",
      changes=("nvidia-container-toolkit repo (signed-by), package, `nvidia-ctk runtime configure --runtime=docker` "
               "after a backup of `daemon.json` (nvidia-ctk keeps none); Docker restarted only if `daemon.json` "
               "changed (running containers stop then: the dry run says so)"),
      undo="restore `/var/backups/llmfab/etc/docker/daemon.json.*`, restart Docker",
      enabled=lambda run: run.config.docker.enabled and run.config.docker.container_toolkit)
def container_toolkit(run: Run, node: Node) -> dict:
    return {}
