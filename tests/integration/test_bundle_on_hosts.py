"""Bundles on test hosts: `bash run.sh prep` with plain bash, offline, idempotent, verified."""

from __future__ import annotations

import pytest

from llmfab import bundle, config as config_mod
from llmfab.steps.system import NOFILE_PATH, SYSCTL_PATH

from .artifacts import stand_in_cache
from .scenario import copy_into, fab, prepared_config, records, summary

MANAGED = [NOFILE_PATH, SYSCTL_PATH, "/etc/modules-load.d/llmfab-nvidia-peermem.conf",
           "/etc/modprobe.d/llmfab-blacklist-nouveau.conf"]


@pytest.fixture
def exported(fleet_factory, tmp_path):
    fleet = fleet_factory(2, kernel_meta=True)
    path = prepared_config(fleet, tmp_path / "c.yaml")
    cfg = config_mod.load(path)
    cache = stand_in_cache(tmp_path / "cache", cfg)
    out = tmp_path / "bundles"
    bundle.export(cfg, out, artifacts=cache)
    return fleet, path, out


def run_sh(host, *args: str):
    return host.exec("bash /root/bundle/run.sh " + " ".join(args), timeout=300)


def test_run_sh_prep_works_offline_and_a_second_run_changes_nothing(exported):
    fleet, _, out = exported
    host = fleet.hosts[1]
    copy_into(host, out / host.name, "/root/bundle")
    first = run_sh(host, "prep")
    assert first.returncode == 0, first.stdout + first.stderr
    assert records(first.stdout)["nvidia-driver"] == "changed"
    assert "n2: ok=" in first.stdout and "failed=0" in first.stdout
    second = run_sh(host, "prep")
    assert second.returncode == 0, second.stdout
    assert "changed=0 failed=0" in second.stdout, second.stdout
    # Offline: no repository was added, nothing was downloaded.
    assert not host.exists("/etc/apt/sources.list.d/docker.list")
    assert not host.calls("curl")
    assert host.exec("ls /var/log/llmfab/run-prep-*.log").returncode == 0


def test_ssh_prep_and_bundle_prep_leave_the_same_managed_files(exported):
    fleet, path, out = exported
    n1, n2 = fleet.hosts
    assert fab("-H", "n1", "prep", "--config", str(path)).returncode == 0
    copy_into(n2, out / "n2", "/root/bundle")
    assert run_sh(n2, "prep").returncode == 0
    for managed in MANAGED:
        assert n1.read(managed) == n2.read(managed), managed
    # The same bundle step text finds nothing to do after the SSH prep of n1.
    copy_into(n1, out / "n1", "/root/bundle")
    again = run_sh(n1, "prep")
    assert "changed=0 failed=0" in again.stdout, again.stdout


def test_a_tampered_artifact_stops_run_sh_before_any_change(exported):
    fleet, _, out = exported
    host = fleet.hosts[0]
    copy_into(host, out / "n1", "/root/bundle")
    host.exec("printf x >> /root/bundle/artifacts/files/cuda_12.4.0_550.54.14_linux.run")
    run = run_sh(host, "prep")
    assert run.returncode == 3
    assert "files/cuda_12.4.0_550.54.14_linux.run: FAILED" in run.stderr
    assert not host.exists(NOFILE_PATH)


def test_run_sh_refuses_the_wrong_node_unless_forced(exported):
    fleet, _, out = exported
    host = fleet.hosts[0]
    copy_into(host, out / "n2", "/root/bundle")
    refused = run_sh(host, "prep")
    assert refused.returncode == 4 and "this machine is not n2" in refused.stderr
    assert not host.exists(NOFILE_PATH)
    forced = run_sh(host, "prep", "--dry-run", "--force")
    assert forced.returncode == 0, forced.stderr


def test_a_missing_artifact_is_a_clear_error(exported):
    fleet, _, out = exported
    host = fleet.hosts[0]
    copy_into(host, out / "n1", "/root/bundle")
    host.exec("rm /root/bundle/artifacts/files/cuda_12.4.0_550.54.14_linux.run")
    run = run_sh(host, "prep")
    assert run.returncode == 3
    assert "cuda_12.4.0_550.54.14_linux.run: FAILED open or read" in run.stderr


def test_run_sh_status_shows_containers_health_and_gpus_as_fab_status_does(exported):
    from tests.harness.standin import docker_state
    fleet, _, out = exported
    head = fleet.hosts[0]
    copy_into(head, out / head.name, "/root/bundle")
    docker_state.add_image(head, "vllm/vllm-openai:v0.8.5")
    head.exec("docker run -d --name llmfab-engine --label llmfab.engine=vllm --label llmfab.rank=0 "
              "--network host --entrypoint /bin/bash vllm/vllm-openai:v0.8.5 -c 'sleep 60'", check=True)
    head.set_state("nvidia/driver_version", "550.54.14")
    shown = run_sh(head, "status", "--force")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "llmfab-engine" in shown.stdout and "vllm" in shown.stdout and "rank 0" in shown.stdout
    assert "endpoint http://" in shown.stdout and ": down" in shown.stdout
    assert "GPUs in use: 0 of 8" in shown.stdout
    head.set_state("nvidia/driver_version", None)  # nvidia-smi fails as on a node without a driver
    shown = run_sh(head, "status", "--force")
    assert "GPUs in use: unknown (nvidia-smi:" in shown.stdout and "0; 0" not in shown.stdout
    head.exec("docker rm -f llmfab-engine")


def test_run_sh_dry_run_says_would_change_and_a_failed_step_shows_its_error(exported):
    fleet, _, out = exported
    host = fleet.hosts[0]
    copy_into(host, out / host.name, "/root/bundle")
    dry = run_sh(host, "prep", "--dry-run")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would change" in dry.stdout and "n1: ok=" in dry.stdout and "would_change=" in dry.stdout
    host.set_state("nvidia/driver_version", "535.161.03")
    failed = run_sh(host, "prep")
    assert failed.returncode != 0
    assert "    | error: driver 535.161.03 is installed but 550.54.14 is configured" in failed.stdout


def test_run_sh_all_stops_at_a_reboot_instead_of_deploying(exported):
    fleet, _, out = exported
    host = fleet.hosts[0]
    copy_into(host, out / host.name, "/root/bundle")
    host.set_state("modules/loaded/nouveau", "")
    run = run_sh(host, "all")
    assert run.returncode == 5, run.stdout + run.stderr
    assert "REBOOT REQUIRED" in run.stdout and "reboot, then run: bash run.sh all" in run.stderr
    assert "== deploy" not in run.stdout


def test_a_bundle_carries_its_own_undo(exported):
    fleet, _, out = exported
    host = fleet.hosts[0]
    copy_into(host, out / host.name, "/root/bundle")
    assert run_sh(host, "prep").returncode == 0
    undone = run_sh(host, "undo")
    assert undone.returncode == 0, undone.stdout + undone.stderr
    assert not host.exists(NOFILE_PATH) and not host.exists(SYSCTL_PATH)
    assert "changed=0" in run_sh(host, "undo").stdout


def test_an_offline_dry_run_names_a_group_the_kit_lacks_instead_of_promising_an_install(fleet_factory, tmp_path):
    fleet = fleet_factory(1, kernel_meta=True)
    cfg = config_mod.load(prepared_config(fleet, tmp_path / "c.yaml"))
    cache = stand_in_cache(tmp_path / "cache", cfg)
    for deb in (cache / "debs" / "docker").glob("docker-ce_*.deb"):
        deb.unlink()
    # export-bundle itself refuses such a kit; a kit changed by hand after export is what the node sees.
    bundle.export(cfg, tmp_path / "bundles", artifacts=cache, complete=False)
    (host,) = fleet.hosts
    copy_into(host, tmp_path / "bundles" / host.name, "/root/bundle")
    dry = run_sh(host, "prep", "--dry-run")
    assert dry.returncode != 0
    assert "the bundle has no .deb for docker-ce in debs/docker/" in dry.stdout, dry.stdout
    assert "would install docker-ce" not in dry.stdout
