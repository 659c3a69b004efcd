"""A bundle runs nothing it does not pin (review H3, M9, L8, H4): each attack is refused with nothing changed."""

from __future__ import annotations

import hashlib

import pytest

from llmfab import bundle, config as config_mod
from llmfab.steps.system import NOFILE_PATH

from .artifacts import stand_in_cache
from .scenario import copy_into, prepared_config

INSTALLER = "files/cuda_12.4.0_550.54.14_linux.run"


@pytest.fixture
def staged(fleet_factory, tmp_path):
    """n1's bundle copied to /root/bundle (artifacts inside, as a tarball carries them)."""
    fleet = fleet_factory(2, kernel_meta=True)
    path = prepared_config(fleet, tmp_path / "c.yaml")
    cfg = config_mod.load(path)
    cache = stand_in_cache(tmp_path / "cache", cfg)
    (cache / "images" / "engine.tar.gz").write_bytes(b"an image archive\n")
    out = tmp_path / "bundles"
    written = bundle.export(cfg, out, artifacts=cache)[0]
    host = fleet.hosts[0]
    copy_into(host, out / "n1", "/root/bundle")
    return host, written


def run_sh(host, *args: str, cwd: str = "/root"):
    return host.exec(f"cd {cwd} && bash /root/bundle/run.sh " + " ".join(args), timeout=300)


def refused(run, *words: str) -> None:
    assert run.returncode == 3, run.stdout + run.stderr
    for word in words:
        assert word in run.stderr, run.stderr


@pytest.mark.parametrize("planted", ["artifacts/debs/docker/zz-evil_9.9_all.deb",
                                     "artifacts/wheels/nvitop-99.0-py3-none-any.whl",
                                     "check/sitecustomize.py", "check/llmfab/facts/zz.py"])
def test_an_unlisted_file_in_a_globbed_directory_is_refused_before_any_change(staged, planted):
    host, _ = staged
    host.exec(f"mkdir -p $(dirname /root/bundle/{planted}) && echo 'import os; os.system(\"touch /pwned\")' > /root/bundle/{planted}")
    run = run_sh(host, "prep")
    refused(run, "not listed in SHA256SUMS", planted.removeprefix("artifacts/"))
    assert not host.exists(NOFILE_PATH) and not host.exists("/pwned")


def test_an_artifact_replaced_together_with_its_own_list_is_refused(staged):
    host, _ = staged
    host.exec(f"cd /root/bundle/artifacts && echo 'echo pwned' > {INSTALLER} && "
              
              f"sed -i \"s|^[0-9a-f]*  {INSTALLER}$|$(sha256sum {INSTALLER} | cut -d' ' -f1)  {INSTALLER}|\" SHA256SUMS")
    run = run_sh(host, "prep")
    refused(run, "artifacts/SHA256SUMS: FAILED")
    assert not host.exists(NOFILE_PATH)


def test_a_dangling_artifacts_link_is_refused_and_nothing_is_downloaded_instead(staged):
    host, _ = staged
    host.exec("rm -rf /root/bundle/artifacts && ln -s ../artifacts /root/bundle/artifacts")
    run = run_sh(host, "prep")
    refused(run, "leads nowhere", "never downloaded")
    assert not host.calls("curl") and not host.exists(NOFILE_PATH)


def test_an_artifacts_link_that_leaves_the_export_is_refused(staged):
    host, _ = staged
    host.exec("mkdir -p /srv/elsewhere && mv /root/bundle/artifacts /srv/elsewhere/ && "
              "ln -s /srv/elsewhere/artifacts /root/bundle/artifacts")
    refused(run_sh(host, "prep"), "leaves the export")
    assert not host.exists(NOFILE_PATH)


def test_a_bundle_others_can_write_to_is_refused(staged):
    host, _ = staged
    host.exec("chmod g+w /root/bundle/steps/prep.sh")
    refused(run_sh(host, "prep"), "can be changed by a user other than root")


def test_one_bad_image_archive_never_blocks_stop_or_status(staged):
    host, _ = staged
    host.exec("echo corrupt >> /root/bundle/artifacts/images/engine.tar.gz")
    for command in ("stop", "status"):
        run = run_sh(host, command)
        assert run.returncode == 0, run.stdout + run.stderr
    refused(run_sh(host, "deploy"), "images/engine.tar.gz: FAILED")


def test_the_digest_export_printed_is_checked_when_given(staged):
    host, written = staged
    digest = hashlib.sha256(host.read("/root/bundle/SHA256SUMS").encode()).hexdigest()
    assert digest == written.digest
    assert run_sh(host, "status", "--expect-sha256", digest).returncode == 0
    refused(run_sh(host, "status", "--expect-sha256", "0" * 64), "not the expected")


def test_check_runs_only_the_bundles_own_module_whatever_the_working_directory(staged):
    host, _ = staged
    host.exec("mkdir -p /tmp/evil/llmfab && touch /tmp/evil/llmfab/__init__.py && "
              "echo 'open(\"/pwned\", \"w\")' > /tmp/evil/llmfab/checks.py && "
              "echo 'open(\"/pwned\", \"w\")' > /tmp/evil/sitecustomize.py")
    run = host.exec("cd /tmp/evil && PYTHONPATH=/tmp/evil bash /root/bundle/run.sh check", timeout=300)
    assert "pass=" in run.stdout, run.stdout + run.stderr
    assert not host.exists("/pwned")


def test_a_link_planted_at_a_run_log_name_is_never_written_through(staged):
    host, _ = staged
    host.exec("mkdir -p /var/log/llmfab && echo 'keep me' > /root/victim && "
              "for i in $(seq 0 20); do ln -sf /root/victim /var/log/llmfab/run-status-$(date -d \"+$i sec\" +%Y%m%d-%H%M%S).log; done")
    assert run_sh(host, "status").returncode == 0
    assert host.read("/root/victim") == "keep me\n"
    assert host.stat_mode("/var/log/llmfab") & 0o777 == 0o700
