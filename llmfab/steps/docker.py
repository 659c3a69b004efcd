"""Docker CE and the NVIDIA Container Toolkit (runbook: "安装DOCKER", "安装NVIDIA Container Toolkit")."""

from __future__ import annotations

from ..config import ClusterConfig, Node
from . import Step, register


def engine(config: ClusterConfig, node: Node) -> dict:
    return {"packages": config.docker.packages}


register(
    "prep",
    Step("docker", "install Docker CE and keep it running", "docker/engine.sh.j2", engine, enabled=lambda c: c.docker.enabled,
         group="docker"),
    Step(
        "container-toolkit", "install the NVIDIA Container Toolkit and register its runtime", "docker/toolkit.sh.j2",
        enabled=lambda c: c.docker.enabled and c.docker.container_toolkit, group="docker",
    ),
)
