"""`fab deploy` on two test hosts: a stub docker runs real Ray and a stand-in engine."""

from __future__ import annotations

import re

import pytest

from tests.harness.standin import docker_state

from .mpi_image import add_trtllm_image
from .scenario import fab, summary

MODEL = "/models/DeepSeek-R1"
IMAGES = {"vllm": "vllm/vllm-openai:v0.8.5", "sglang": "lmsysorg/sglang:v0.4.4-cu125",
          "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:1.0.0"}


# The SGLang image's `sglang.launch_server` module, for llmfab's key launcher
# (`python3 sglang-launch.py`, which runs the module in-process): it runs the
# stand-in engine in the same process, as the real module runs SGLang.
FAKE_SGLANG = "/opt/llmfab-test/python"
FAKE_LAUNCH_SERVER = """import os, runpy, sys
sys.path.append(os.path.dirname(os.environ["STANDIN_DIR"]))
sys.argv = [sys.argv[0], "sglang", *sys.argv[1:]]
runpy.run_module("standin", run_name="__main__", alter_sys=True)
"""


def install_fake_sglang(host) -> None:
    host.exec(f"mkdir -p {FAKE_SGLANG}/sglang && touch {FAKE_SGLANG}/sglang/__init__.py && "
              f"cat > {FAKE_SGLANG}/sglang/launch_server.py", input=FAKE_LAUNCH_SERVER, check=True)


def deploy_config(fleet, tmp_path, name="vllm", engine=None, **extra):
    for host in fleet.hosts:
        for image in IMAGES.values():
            docker_state.add_image(host, image)
        add_trtllm_image(host, IMAGES["trtllm"])
        docker_state.add_model(host, MODEL)
        install_fake_sglang(host)
        docker_state.set_extra_env(host, STANDIN_START_DELAY="1", PYTHONPATH=FAKE_SGLANG)
    overrides = {
        "network": {"interface": "lo"},
        "model": {"path": MODEL},
        "engine": {"name": name, "ready_timeout": 120, **(engine or {})},
        **extra,
    }
    return fleet.write_config(tmp_path / "c.yaml", **overrides)


def running(host) -> list[dict]:
    return [c for c in docker_state.containers(host) if c["status"] == "running"]


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_each_engine_deploys_becomes_ready_passes_the_smoke_test_and_stops(fleet_factory, tmp_path, engine):
    fleet = fleet_factory(2)
    # TensorRT-LLM 1.0.0 has no API key: unkeyed, its port is firewalled to the cluster.
    config = deploy_config(fleet, tmp_path, engine, engine={"api_key": "none"} if engine == "trtllm" else None)
    run = fab("deploy", "--config", str(config), timeout=400)
    assert run.returncode == 0, run.output
    assert "smoke: ttft_s=" in run.stdout and "ended with [DONE]" in run.stdout
    assert all(len(running(h)) == 1 for h in fleet.hosts)

    again = fab("deploy", "--config", str(config), "--skip-smoke", timeout=400)
    assert again.returncode == 0, again.output
    assert "changed=0" in summary(again), again.stdout

    status = fab("status", "--config", str(config))
    assert status.returncode == 0, status.output
    assert re.search(rf"llmfab-engine\s+{engine}", status.stdout), status.stdout
    assert "endpoint http://127.0.0.11:40000/health: up" in status.stdout

    stop = fab("stop", "--config", str(config))
    assert stop.returncode == 0, stop.output
    assert all(not docker_state.containers(h) for h in fleet.hosts)


def test_the_api_key_is_enforced_used_by_the_smoke_test_and_never_printed(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "vllm", engine={"api_key": "generate"})
    run = fab("deploy", "--config", str(config), timeout=400)
    assert run.returncode == 0, run.output
    head = fleet.hosts[0]
    key = head.read("/etc/llmfab/api_key")
    assert key and len(key) >= 32
    assert head.stat_mode("/etc/llmfab/api_key") & 0o777 == 0o600
    assert key not in run.output
    for call in head.calls("docker"):
        assert key not in " ".join(call.args)
    unauthorized = head.exec("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.11:40000/v1/models")
    assert unauthorized.stdout == "401"


def test_switching_engines_stops_the_running_one_first(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "sglang")
    assert fab("deploy", "--config", str(config), "--skip-smoke", timeout=400).returncode == 0
    switched = fab("deploy", "--engine", "vllm", "--config", str(config), timeout=400)
    assert switched.returncode == 0, switched.output
    assert "remove llmfab's engine containers of another deployment" in switched.stdout
    for host in fleet.hosts:
        (container,) = docker_state.containers(host)
        assert container["image"] == IMAGES["vllm"]


def test_a_worker_that_never_joins_times_out_with_a_diagnosis_naming_it(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "vllm", engine={"ready_timeout": 30})
    fleet.hosts[1].stop()
    run = fab("deploy", "--config", str(config), timeout=400)
    assert run.returncode == 1
    assert "never joined: n2 (127.0.0.12)" in run.stdout, run.stdout
    assert "n2 (127.0.0.12) unreachable" in run.stdout
    assert not running(fleet.hosts[0])


def test_a_rank_that_dies_brings_the_group_down_and_is_reported(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "sglang")
    docker_state.set_extra_env(fleet.hosts[1], STANDIN_FAIL_AFTER="2", STANDIN_START_DELAY="1",
                               PYTHONPATH=FAKE_SGLANG)
    run = fab("deploy", "--config", str(config), timeout=400)
    assert run.returncode == 1
    assert "stopping the engine on every node" in run.stdout
    assert "FAILED hosts: n1" in run.stdout or "FAILED hosts: n1, n2" in run.stdout, run.stdout
    assert all(not docker_state.containers(h) for h in fleet.hosts)


def test_a_layout_that_does_not_match_the_gpus_is_refused_before_any_container(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "vllm", engine={"options": {"tensor_parallel_size": 4}})
    run = fab("deploy", "--config", str(config))
    assert run.returncode == 3
    assert "4 x 2" in run.output and "16 GPUs" in run.output
    assert all(not h.calls("docker") for h in fleet.hosts)


def test_trtllm_keys_are_made_distributed_and_pinned_and_an_image_without_orted_is_refused(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    # TensorRT-LLM 1.0.0 has no API key: unkeyed, its port is firewalled to the cluster.
    config = deploy_config(fleet, tmp_path, "trtllm", engine={"api_key": "none"})
    run = fab("deploy", "--config", str(config), "--skip-smoke", timeout=400)
    assert run.returncode == 0, run.output
    head, worker = fleet.hosts
    for host in fleet.hosts:
        assert host.stat_mode("/etc/llmfab/ssh") & 0o777 == 0o700
        assert host.stat_mode("/etc/llmfab/ssh/authorized_keys") & 0o777 == 0o600
        assert host.stat_mode("/etc/llmfab/ssh/ssh_host_ed25519_key") & 0o777 == 0o600
    assert head.exists("/etc/llmfab/ssh/id_ed25519") and not worker.exists("/etc/llmfab/ssh/id_ed25519")
    public = head.exec("ssh-keygen -y -f /etc/llmfab/ssh/id_ed25519", check=True).stdout.split()[:2]
    assert " ".join(public) in worker.read("/etc/llmfab/ssh/authorized_keys")
    host_key = worker.exec("ssh-keygen -y -f /etc/llmfab/ssh/ssh_host_ed25519_key", check=True).stdout.split()[:2]
    assert f"[{worker.address}]:2233" in head.read("/etc/llmfab/ssh/known_hosts")
    assert " ".join(host_key) in head.read("/etc/llmfab/ssh/known_hosts")
    (mpirun,) = [c for c in head.calls("docker") if "mpirun" in " ".join(c.args)]
    assert "StrictHostKeyChecking=yes" in " ".join(mpirun.args)
    assert any("ssh_host_ed25519_key" in " ".join(c.args) for c in worker.calls("docker"))
    assert fab("stop", "--config", str(config)).returncode == 0

    add_trtllm_image(worker, IMAGES["trtllm"], orted=False)
    refused = fab("deploy", "--config", str(config), "--skip-smoke", timeout=400)
    assert refused.returncode == 1
    assert "has no Open MPI orted" in refused.stdout, refused.stdout


def test_sglangs_key_is_in_no_command_line_log_inspect_or_fab_logs_output(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "sglang")
    run = fab("deploy", "--config", str(config), timeout=400)
    assert run.returncode == 0, run.output
    head = fleet.hosts[0]
    key = head.read("/etc/llmfab/api_key").strip()
    assert len(key) >= 32
    cmdlines = head.exec("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '").stdout
    assert "sglang-launch.py --model-path" in cmdlines and key not in cmdlines
    assert key not in head.exec("docker inspect llmfab-engine").stdout
    engine_log = head.read("/var/log/llmfab/engine/sglang-rank0.log")
    assert '"--api-key", "***"' in engine_log and key not in engine_log
    logs = fab("logs", "--config", str(config))
    assert "sglang-rank0.log" in logs.stdout and key not in logs.output
    assert key not in run.output
    unkeyed = head.exec("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.11:40000/v1/models")
    assert unkeyed.stdout == "401"
    fab("stop", "--config", str(config))
