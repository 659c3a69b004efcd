"""Set-up shared by the real-engine tests: the tiny model, the real images, the config.

Two test hosts play a two-node cluster with one "GPU" each; vLLM's CPU build
serves a tiny Llama, one pipeline stage per node (TP 1 x PP 2), over vLLM's
own multi-node launch, exactly as llmfab renders it for a GPU cluster.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.harness import TestFleet, real

from .scenario import copy_into, fab

MODEL = "/models/tiny-llama"
SERVED = "tiny"
WEBUI_IMAGE = "ghcr.io/open-webui/open-webui:v0.12.4"
# Addresses and ports of their own: test sessions on one machine share its network,
# and a second session (LLMFAB_TESTHOST_PORT, see tests/conftest.py) gets another slot.
SLOT = (int(os.environ.get("LLMFAB_TESTHOST_PORT", "2222")) - 2222) % 17
HEAD, WORKER = f"127.0.0.{61 + 2 * SLOT}", f"127.0.0.{62 + 2 * SLOT}"
ENGINE_PORT, DIST_PORT, WEBUI_PORT = 41061 + SLOT, 21061 + 200 * SLOT, 18061 + SLOT
ENDPOINT, WEBUI_URL = f"http://{HEAD}:{ENGINE_PORT}", f"http://{HEAD}:{WEBUI_PORT}/"

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
        for path in host.exec("find /var/log/llmfab -type f 2>/dev/null").stdout.split():
            text = host.read(path)
            if text is not None:
                target = dest / host.name / path.removeprefix("/var/log/llmfab/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)


@contextmanager
def real_fleet(base: Path, request, **options):
    """Two started test hosts at this session's addresses; on the way out the
    engines are stopped, and after a failure the logs kept and the hosts left."""
    from tests.conftest import PORT

    fleet = TestFleet(2, workdir=base / "fleet", first_octet=int(HEAD.rsplit(".", 1)[1]), port=PORT, **options)
    fleet.start()
    try:
        yield fleet
    finally:
        if request.session.testsfailed:
            keep_logs(fleet, base / "logs")
        fab("stop", "--config", str(base / "real.yaml"), timeout=120)
        fleet.stop(remove=not request.session.testsfailed)
