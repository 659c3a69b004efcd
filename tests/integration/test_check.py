"""`fab check` on test hosts: each check passes on a prepared node and fails, with its fix, on a broken one."""

from __future__ import annotations

import json
import os

import pytest

from tests.harness import TestFleet, require_host_support
from tests.harness.standin import docker_state

from .scenario import fab, prepared_config

MODEL = "/models/DeepSeek-R1"
IMAGE = "vllm/vllm-openai:v0.8.5"
SHARDS = [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]


def make_model(host) -> None:
    docker_state.add_model(host, MODEL)
    index = {"weight_map": {f"layer.{i}": shard for i, shard in enumerate(SHARDS)}}
    host.exec(f"cat > {MODEL}/model.safetensors.index.json", input=json.dumps(index), check=True)
    for shard in SHARDS:
        host.exec(f"head -c 1000 /dev/zero > {MODEL}/{shard}", check=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two prepared hosts that pass every check; each test breaks one thing and mends it."""
    require_host_support()
    tmp = tmp_path_factory.mktemp("check")
    port = int(os.environ.get("LLMFAB_TESTHOST_PORT", "2222"))
    with TestFleet(count=2, workdir=tmp / "fleet", first_octet=41, port=port) as fleet:
        config = prepared_config(fleet, tmp / "c.yaml", network={"interface": "lo", "nccl_ib_hca": ["mlx5_0", "mlx5_1"]},
                                 model={"path": MODEL}, engine={"nccl_timeout": 15})
        assert fab("prep", "--config", str(config)).returncode == 0
        for host in fleet.hosts:
            make_model(host)
            docker_state.add_image(host, IMAGE)
        yield fleet, config


def check(config, *args, timeout: int = 300):
    return fab("check", "--config", str(config), *args, timeout=timeout)


def report(run) -> dict:
    return json.loads(run.stdout)


def status_of(run, node: str, name: str) -> tuple[str, str]:
    (c,) = [c for c in report(run)["nodes"][node] if c["name"] == name]
    return c["status"], c["fix"]


def test_a_prepared_cluster_passes_every_check(cluster):
    fleet, config = cluster
    run = check(config)
    assert run.returncode == 0, run.stdout
    assert "cross-node consistency" in run.stdout
    assert "fail=0" in run.stdout


@pytest.mark.parametrize("name, breaks, mends, fix", [
    ("gpus", "echo 7 > /var/lib/llmfab-stubs/nvidia/gpu_count", "rm /var/lib/llmfab-stubs/nvidia/gpu_count",
     "expected 8 x H20"),
    ("fabric manager", "systemctl stop nvidia-fabricmanager", "systemctl start nvidia-fabricmanager", "error 802"),
    ("NVLink fabric", "echo 'In Progress' > /var/lib/llmfab-stubs/nvidia/fabric_state",
     "rm /var/lib/llmfab-stubs/nvidia/fabric_state", "error 802"),
    ("nvidia_peermem", "modprobe -r nvidia-peermem", "modprobe nvidia-peermem", "GPUDirect RDMA is silently off"),
    ("nofile limit", "mv /etc/security/limits.d/90-llmfab-nofile.conf /root/", "mv /root/90-llmfab-nofile.conf /etc/security/limits.d/",
     "raise nofile to 204800"),
    ("model files", f"mv {MODEL}/{SHARDS[1]} /root/", f"mv /root/{SHARDS[1]} {MODEL}/", "complete the download"),
    ("HCA mlx5_0", "cp /usr/share/llmfab-stubs/ibstat.txt /root/ibstat.ok; "
                   "sed 's/State: Active/State: Down/' /root/ibstat.ok > /var/lib/llmfab-stubs/ib/ibstat.txt",
     "rm /var/lib/llmfab-stubs/ib/ibstat.txt", "bring mlx5_0 up"),
])
def test_a_broken_node_fails_the_check_that_catches_it_with_the_fix(cluster, name, breaks, mends, fix):
    fleet, config = cluster
    n2 = fleet.hosts[1]
    n2.exec(f"mkdir -p /var/lib/llmfab-stubs/ib; {breaks}", check=True)
    try:
        run = check(config, "--json")
        assert run.returncode == 1
        status, shown = status_of(run, "n2", name)
        assert status == "fail" and fix in shown
        assert status_of(run, "n1", name)[0] == "pass"
    finally:
        n2.exec(mends, check=True)


def test_nodes_that_disagree_fail_the_consistency_section(cluster):
    fleet, config = cluster
    n2 = fleet.hosts[1]
    n2.set_state("nvidia/driver_version", "550.54.15")
    docker_state.add_image(n2, IMAGE, image="sha256:" + "f" * 64)
    try:
        run = check(config, "--json")
        cross = {c["name"]: c for c in report(run)["cluster"]}
        assert cross["driver version"]["status"] == "fail" and "550.54.15" in cross["driver version"]["evidence"]
        assert cross["engine image ID"]["status"] == "fail"
    finally:
        n2.set_state("nvidia/driver_version", "550.54.14")
        docker_state.add_image(n2, IMAGE)


def test_an_image_for_a_newer_cuda_minor_is_a_warning_by_minor_version_compatibility(cluster):
    fleet, config = cluster
    for host in fleet.hosts:
        docker_state.add_image(host, "lmsysorg/sglang:v0.4.4-cu125")
    run = check(config, "--engine", "sglang", "--json")
    status, fix = status_of(run, "n1", "image CUDA")
    (c,) = [c for c in report(run)["nodes"]["n1"] if c["name"] == "image CUDA"]
    assert status == "warn" and "minor-version compatibility" in c["evidence"]


def test_a_port_held_by_something_else_fails(cluster):
    fleet, config = cluster
    n2 = fleet.hosts[1]
    n2.exec("setsid python3 -m http.server 40000 --bind 127.0.0.42 >/dev/null 2>&1 < /dev/null & sleep 1")
    try:
        status, fix = status_of(check(config, "--json"), "n2", "ports")
        assert status == "fail" and "engine.port" in fix
    finally:
        n2.exec("pkill -f 'http.server 40000' || true")


def test_the_nccl_all_reduce_reports_bus_bandwidth_per_size(cluster):
    fleet, config = cluster
    run = check(config, "--nccl")
    assert "all-reduce over 2 GPUs" in run.stdout, run.stdout
    assert "1 GiB" in run.stdout and "325.23" in run.stdout
    assert all(not docker_state.containers(h) for h in fleet.hosts)


def test_a_hanging_all_reduce_ends_within_its_timeout_with_a_diagnosis(cluster):
    fleet, config = cluster
    for host in fleet.hosts:
        docker_state.set_extra_env(host, STANDIN_NCCL="hang")
    try:
        run = check(config, "--nccl", timeout=120)
        assert run.returncode == 1
        assert "did not finish within 15s" in run.stdout
        assert all(not docker_state.containers(h) for h in fleet.hosts)
    finally:
        for host in fleet.hosts:
            docker_state.set_extra_env(host)


def test_a_failing_all_reduce_names_the_node_and_what_nccl_logged(cluster):
    fleet, config = cluster
    docker_state.set_extra_env(fleet.hosts[1], STANDIN_NCCL="fail")
    try:
        run = check(config, "--nccl")
        assert run.returncode == 1
        assert "n2: all-reduce failed" in run.stdout
        assert "likely cause" in run.stdout and "fix:" in run.stdout
    finally:
        docker_state.set_extra_env(fleet.hosts[1])


def test_nccl_is_skipped_with_the_reason_when_a_node_lacks_the_image_and_check_writes_nothing(cluster):
    fleet, config = cluster
    n2 = fleet.hosts[1]
    runs_before = sum("run" in c.args for h in fleet.hosts for c in h.calls("docker"))
    n2.set_state(f"docker/images/{docker_state.normalize_ref(IMAGE)}", None)
    try:
        run = check(config, "--nccl", timeout=120)
        assert run.returncode == 1
        assert "nccl: skipped: the engine image is not on n2" in run.stdout and "fab deploy pulls it" in run.stdout
        assert sum("run" in c.args for h in fleet.hosts for c in h.calls("docker")) == runs_before
    finally:
        docker_state.add_image(n2, IMAGE)
    ran = check(config, "--nccl")
    assert "all-reduce over 2 GPUs" in ran.stdout, ran.stdout
    for host in fleet.hosts:
        assert not host.exists("/var/lib/llmfab/allreduce_check.py")
