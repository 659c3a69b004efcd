"""NVIDIA stack from the runbook's "NV驱动相关安装" section: driver + CUDA, nvitop,
fabric manager, GPUDirect RDMA."""

from __future__ import annotations

from ..config import Node
from ..run import Run
from . import step

BUILD_PACKAGES = ["gcc", "make", "dkms", "curl", "ca-certificates"]


@step("build-prereqs", title="install gcc, make, dkms, kernel headers", group="nvidia",
      changes="installs gcc, make, dkms, curl, the running kernel's headers", undo="`apt-get remove`",
      enabled=lambda run: run.config.nvidia.enabled)
def prereqs(run: Run, node: Node) -> dict:
    return {"packages": BUILD_PACKAGES}


@step("nvidia-driver", title="install the NVIDIA driver and CUDA toolkit", group="nvidia",
      changes=("`/etc/modprobe.d/llmfab-blacklist-nouveau.conf` (+ initramfs), driver + CUDA from NVIDIA's `.run` "
               "installer (the driver alone with `nvidia.cuda_toolkit: false`), silently. Refuses to replace a "
               "different driver without `--upgrade-driver`, naming how to keep it; reports REBOOT REQUIRED when "
               "nouveau is loaded or the new driver is not yet loaded"),
      undo="`/usr/bin/nvidia-uninstall`, `/usr/local/cuda-X.Y/bin/cuda-uninstaller`", enabled=lambda run: run.config.nvidia.enabled)
def driver(run: Run, node: Node) -> dict:
    n = run.config.nvidia
    return {
        "driver": n.driver_version,
        "cuda": n.cuda_version,
        "nvcc": f"/usr/local/cuda-{n.cuda_short}/bin/nvcc",
        "url": n.installer,
        "sha": n.installer_sha256 or "",
        "name": n.installer_name,
        "upgrade": 1 if n.upgrade_driver or run.options.upgrade_driver else 0,
        "toolkit": 1 if n.cuda_toolkit else 0,
    }


@step("nvitop", title="install the nvitop GPU monitor", group="nvidia",
      changes="virtualenv `/opt/llmfab/nvitop`, link `/usr/local/bin/nvitop`", undo="remove both",
      enabled=lambda run: run.config.nvidia.enabled and run.config.nvidia.nvitop)
def nvitop(run: Run, node: Node) -> dict:
    return {}


@step("fabric-manager", title="install and start the matching fabric manager", group="nvidia",
      changes="CUDA apt repo (signed-by keyring), `nvidia-fabricmanager-<branch>=<driver>-1`, held, service enabled and active",
      undo="`apt-mark unhold`, `apt-get remove`",
      enabled=lambda run: run.config.nvidia.enabled and run.config.nvidia.fabricmanager)
def fabricmanager(run: Run, node: Node) -> dict:
    n = run.config.nvidia
    # NVIDIA's CUDA repositories name it per driver branch and version it
    # <driver>-1, e.g. nvidia-fabricmanager-550 = 550.54.14-1.
    return {"driver": n.driver_version, "package": f"nvidia-fabricmanager-{n.driver_branch}", "version": f"{n.driver_version}-1"}


@step("gpudirect-rdma", title="load and persist nvidia-peermem", group="nvidia",
      changes="`/etc/modules-load.d/llmfab-nvidia-peermem.conf`, `modprobe nvidia-peermem`",
      undo="remove the file, `modprobe -r nvidia-peermem`",
      enabled=lambda run: run.config.nvidia.enabled and run.config.nvidia.peermem)
def gpudirect_rdma(run: Run, node: Node) -> dict:
    return {}
