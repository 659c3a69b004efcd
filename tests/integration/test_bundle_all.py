"""The air-gapped path end to end: `bash run.sh all` on every node, in any order, twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from llmfab import bundle, config as config_mod
from llmfab.steps.engine import archive

from tests.harness.standin import docker_state

from .artifacts import stand_in_cache, stand_in_image
from .scenario import copy_into, prepared_config
from .test_check import MODEL, make_model

IMAGE = "vllm/vllm-openai:v0.8.5"


def run_everywhere(fleet, command: str):
    # Workers first on purpose: they must wait for the head by themselves.
    with ThreadPoolExecutor(len(fleet.hosts)) as pool:
        futures = [pool.submit(h.exec, f"timeout 300 bash /root/bundle/run.sh {command}", timeout=360)
                   for h in reversed(fleet.hosts)]
        return list(reversed([f.result() for f in futures]))


def test_run_sh_all_brings_the_cluster_up_offline_and_a_second_run_changes_nothing(fleet_factory, tmp_path):
    fleet = fleet_factory(2, kernel_meta=True)
    path = prepared_config(fleet, tmp_path / "c.yaml", network={"interface": "lo", "nccl_ib_hca": ["mlx5_0", "mlx5_1"]},
                           model={"path": MODEL}, engine={"ready_timeout": 120})
    cfg = config_mod.load(path)
    cache = stand_in_cache(tmp_path / "cache", cfg.docker.packages)
    stand_in_image(cache, IMAGE, archive(IMAGE))
    out = tmp_path / "bundles"
    bundle.export(cfg, out, artifacts=cache)
    for host in fleet.hosts:
        make_model(host)
        docker_state.enable(host)
        copy_into(host, out / host.name, "/root/bundle")

    first = run_everywhere(fleet, "all")
    for host, run in zip(fleet.hosts, first):
        logs = host.exec("tail -n 30 /var/log/llmfab/*.log /var/log/llmfab/engine/*.log").stdout if run.returncode else ""
        assert run.returncode == 0, f"{host.name}:\n{run.stdout}\n{run.stderr}\n{logs}"
    head_out = first[0].stdout
    assert "load vllm/vllm-openai:v0.8.5 from the bundle" in head_out
    assert "ended with [DONE]" in head_out
    assert "Ray cluster: 2 nodes, 16 GPUs" in head_out
    assert not fleet.hosts[0].calls("curl") or all("127.0.0." in " ".join(c.args) for c in fleet.hosts[0].calls("curl"))

    second = run_everywhere(fleet, "all")
    for host, run in zip(fleet.hosts, second):
        assert run.returncode == 0, run.stdout
        assert "changed=0 failed=0" in run.stdout.split("== deploy")[0], run.stdout
        assert f"{host.name}: ok=" in run.stdout
        deploy_part = run.stdout.split("== deploy")[1]
        assert "changed=0 failed=0" in deploy_part, deploy_part
