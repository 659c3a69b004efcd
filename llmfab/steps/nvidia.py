"""NVIDIA stack from the runbook's "NV驱动相关安装" section: driver + CUDA, nvitop,
fabric manager, GPUDirect RDMA."""

from __future__ import annotations

from ..config import ClusterConfig, Node
from . import Step, register

BUILD_PACKAGES = ["gcc", "make", "dkms", "curl", "ca-certificates"]


def prereqs(config: ClusterConfig, node: Node) -> dict:
    return {"packages": BUILD_PACKAGES}


def driver(config: ClusterConfig, node: Node) -> dict:
    n = config.nvidia
    return {
        "driver": n.driver_version,
        "cuda": n.cuda_version,
        "nvcc": f"/usr/local/cuda-{n.cuda_short}/bin/nvcc",
        "url": n.installer,
        "sha": n.installer_sha256 or "",
        "name": n.installer_name,
        "upgrade": 1 if n.upgrade_driver else 0,
        "toolkit": 1 if n.cuda_toolkit else 0,
    }


def fabricmanager(config: ClusterConfig, node: Node) -> dict:
    n = config.nvidia
    # NVIDIA's CUDA repositories name it per driver branch and version it
    # <driver>-1, e.g. nvidia-fabricmanager-550 = 550.54.14-1.
    return {"driver": n.driver_version, "package": f"nvidia-fabricmanager-{n.driver_branch}", "version": f"{n.driver_version}-1"}


register(
    "prep",
    Step("build-prereqs", "install gcc, make, dkms, kernel headers", "nvidia/prereqs.sh.j2", prereqs,
         enabled=lambda c: c.nvidia.enabled, group="nvidia"),
    Step("nvidia-driver", "install the NVIDIA driver and CUDA toolkit", "nvidia/driver.sh.j2", driver,
         enabled=lambda c: c.nvidia.enabled, group="nvidia"),
    Step("nvitop", "install the nvitop GPU monitor", "nvidia/nvitop.sh.j2",
         enabled=lambda c: c.nvidia.enabled and c.nvidia.nvitop, group="nvidia"),
    Step(
        "fabric-manager", "install and start the matching fabric manager", "nvidia/fabricmanager.sh.j2",
        fabricmanager, enabled=lambda c: c.nvidia.enabled and c.nvidia.fabricmanager, group="nvidia",
    ),
    Step("gpudirect-rdma", "load and persist nvidia-peermem", "nvidia/peermem.sh.j2",
         enabled=lambda c: c.nvidia.enabled and c.nvidia.peermem, group="nvidia"),
)
