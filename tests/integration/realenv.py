"""Set-up shared by the real-engine tests: the tiny model, the real images, the config.

Two test hosts play a two-node cluster with one "GPU" each; vLLM's CPU build
serves a tiny Llama, one pipeline stage per node (TP 1 x PP 2), over vLLM's
own multi-node launch, exactly as llmfab renders it for a GPU cluster.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.harness import real

from .scenario import copy_into

MODEL = "/models/tiny-llama"
SERVED = "tiny"
WEBUI_IMAGE = "ghcr.io/open-webui/open-webui:v0.12.4"
ENGINE_PORT, DIST_PORT, WEBUI_PORT = 41061, 21061, 18061

# TP 1 x PP 2 over two one-GPU nodes; a short context keeps the CPU KV cache small.
OPTIONS = {"tensor_parallel_size": 1, "pipeline_parallel_size": 2, "max_model_len": 512,
           "max_num_batched_tokens": 512, "max_num_seqs": 8}


def require_real_programs() -> None:
    """Fail (never skip) when .ci/setup has not installed the real programs."""
    gaps = real.missing()
    if gaps:
        pytest.fail("real programs missing: " + "; ".join(gaps), pytrace=False)


def build_tiny_model(dest: Path) -> Path:
    """Build the tiny random-weight checkpoint on this machine (once per session)."""
    done = subprocess.run(["bash", "-c", real.build_model_command(str(dest))],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dest


def real_config(fleet, tmp_path: Path, model_dir: Path, engine: dict | None = None, **extra) -> Path:
    """Config for the fleet with the real vLLM image and the tiny model on every host."""
    for host in fleet.hosts:
        real.add_vllm_image(host)
        real.add_webui_image(host, WEBUI_IMAGE)
        copy_into(host, model_dir, MODEL)
    overrides = {
        "network": {"interface": "lo"},
        "gpu": {"per_node": 1},
        "model": {"id": "llmfab-tests/tiny-llama", "path": MODEL, "served_name": SERVED},
        # Ports of their own: other test fleets on this machine share its network.
        "engine": {"name": "vllm", "version": real.VLLM_VERSION, "ready_timeout": 300,
                   "port": ENGINE_PORT, "dist_port": DIST_PORT, "options": dict(OPTIONS),
                   **(engine or {})},
        "webui": {"image": WEBUI_IMAGE, "port": WEBUI_PORT},
        # The v0.32.0 profile is a CUDA 13 image: llmfab refuses it for a driver below 580.
        "nvidia": {"driver_version": "580.65.06", "cuda_version": "13.0.0"},
        **extra,
    }
    return fleet.write_config(tmp_path / "real.yaml", **overrides)


def keep_logs(fleet, dest: Path) -> None:
    """Copy every host's llmfab and engine logs to ``dest/<host>/`` (to read after a failure)."""
    for host in fleet.hosts:
        listing = host.exec("ls /var/log/llmfab 2>/dev/null").stdout.split()
        for name in listing:
            text = host.read(f"/var/log/llmfab/{name}")
            if text is not None:
                (dest / host.name).mkdir(parents=True, exist_ok=True)
                (dest / host.name / name).write_text(text)
