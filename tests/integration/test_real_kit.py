"""An air-gapped kit made here brings two bare test hosts to a serving cluster
with `run.sh all`: the real vLLM CPU build streams an answer and the real Open
WebUI answers, with nothing fetched from outside the kit.

The kit's .debs and image archives are stand-ins built from the steps' own
needs (apt-get and docker are stubs on test hosts; the real fetch of .debs is
tests/integration/test_kit_debs.py); the model is the tiny checkpoint, put in
the kit by `fab fetch-artifacts --model --model-from`, as an operator would.
Nothing is on the hosts beforehand: no model, no image (the image "native"
markers only say which real program a loaded image runs).
"""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from llmfab import config as config_mod
from llmfab.kit import needs as kit_needs
from tests.harness.standin import docker_state

from .artifacts import stand_in_cache
from .realenv import ENDPOINT, MODEL, WEBUI_URL, build_tiny_model, real_config, real_fleet, require_real_programs
from .scenario import copy_into, fab

pytestmark = pytest.mark.real_engine

@pytest.fixture(scope="module")
def bare_cluster(tmp_path_factory, request):
    """Two test hosts with neither the model nor any image; the kit's config."""
    require_real_programs()
    base = tmp_path_factory.mktemp("realkit")
    model = build_tiny_model(base / "model")
    with real_fleet(base, request, kernel_meta=True) as fleet:
        path = real_config(fleet, base, model)
        raw = yaml.safe_load(path.read_text())
        raw["model"]["in_bundle"] = True
        raw["system"] = {**raw.get("system", {}), "kernels": [fleet.hosts[0].exec("uname -r").stdout.strip()]}
        raw["nvidia"].update({"nvitop": False})
        # The HCAs the test hosts' ibstat shows: `run.sh all` stops at a failed preflight.
        raw["network"]["nccl_ib_hca"] = ["mlx5_0", "mlx5_1"]
        path.write_text(yaml.safe_dump(raw))
        cfg = config_mod.load(str(path))
        for host in fleet.hosts:
            host.exec(f"rm -rf {MODEL}", check=True)
            host.set_state("nvidia/gpu_count", "1")  # one "GPU" per node, as the config says
            for ref in kit_needs(cfg).images:
                host.set_state(f"docker/images/{docker_state.normalize_ref(ref)}", None)
        yield fleet, path, base, model


def _run_all(host):
    return host.exec("bash /root/export/" + host.name + "/run.sh all", timeout=900)


def test_a_kit_made_here_takes_two_bare_hosts_to_a_streamed_answer_and_open_webui_offline(bare_cluster):
    fleet, config, base, model = bare_cluster
    cfg = config_mod.load(str(config))
    kit = stand_in_cache(base / "kit", cfg)
    fetched = fab("fetch-artifacts", "--config", str(config), "--cache", str(kit), "--only", "models",
                  "--model-from", f"file://{model}", "--checksums", timeout=120)
    assert fetched.returncode == 0, fetched.output
    check = fab("fetch-artifacts", "--config", str(config), "--cache", str(kit), "--check", timeout=60)
    assert check.returncode == 0 and "0 missing" in check.stdout, check.output
    out = base / "export"
    export = fab("export-bundle", "--config", str(config), "--artifacts", str(kit), "--out", str(out), timeout=120)
    assert export.returncode == 0, export.output
    kit_list = json.loads((out / "artifacts" / "KIT.json").read_text())
    assert "models/tiny-llama" in [a["path"] for a in kit_list["artifacts"]]

    for host in fleet.hosts:
        copy_into(host, out, "/root/export")  # the whole export, as `scp -r build/bundles NODE:` copies it
    # Worker first: it waits for the head by itself.
    with ThreadPoolExecutor(2) as pool:
        runs = list(reversed([f.result() for f in [pool.submit(_run_all, h) for h in reversed(fleet.hosts)]]))
    for host, run in zip(fleet.hosts, runs):
        assert run.returncode == 0, (host.name, run.stdout[-4000:], run.stderr[-2000:])
    head = runs[0].stdout
    assert "copy the model from the bundle into /models/tiny-llama" in head
    assert "load vllm/vllm-openai:v0.32.0 from the bundle" in head
    assert "load ghcr.io/open-webui/open-webui:v0.12.4 from the bundle" in head
    assert "ended with [DONE]" in head
    assert "== all on n1: done" in head and f"Open WebUI: {WEBUI_URL}" in head
    assert "Open WebUI runs on the head" in runs[1].stdout

    # Nothing came from outside the kit: no archive asked, no image pulled, no download but to the cluster.
    for host in fleet.hosts:
        assert not [c for c in host.calls("apt-get") if "update" in c.args], host.name
        assert not [c for c in host.calls("docker") if c.args[:1] == ["pull"]], host.name
        assert all("127.0.0." in " ".join(c.args) for c in host.calls("curl")), host.name
    with urllib.request.urlopen(WEBUI_URL + "health", timeout=30) as answer:
        assert answer.status == 200
    with urllib.request.urlopen(ENDPOINT + "/health", timeout=30) as answer:
        assert answer.status == 200
