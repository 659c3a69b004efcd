"""`fab prep` over real SSH against test hosts: parallel, idempotent, honest."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
import yaml

from llmfab.steps.system import NOFILE_PATH, SYSCTL_PATH

from .scenario import DRIVER, fab, prepared_config, summary

NOFILE = """\
# Managed by llmfab (open-file limit). Local edits are replaced on the next run.
*     soft nofile 204800
*     hard nofile 204800
root  soft nofile 204800
root  hard nofile 204800
"""
SYSCTL = """\
# Managed by llmfab (network backlog). Local edits are replaced on the next run.
net.core.somaxconn = 65535
net.ipv4.tcp_max_syn_backlog = 65535
"""


def changed(run) -> int:
    return int(re.search(r"changed=(\d+)", summary(run)).group(1))


class TestPrepOnTwoHosts:
    def test_first_run_changes_then_a_second_run_changes_nothing(self, fleet_factory, tmp_path):
        fleet = fleet_factory(2, kernel_meta=True)
        config = prepared_config(fleet, tmp_path / "c.yaml")
        first = fab("-H", "n1,n2", "prep", "--config", str(config))
        assert first.returncode == 0, first.output
        assert changed(first) > 0
        second = fab("-H", "n1,n2", "prep", "--config", str(config))
        assert second.returncode == 0, second.output
        assert "changed=0" in summary(second), second.stdout
        assert "failed=0" in summary(second)

        for host in fleet.hosts:
            assert host.read(NOFILE_PATH) == NOFILE
            assert host.read(SYSCTL_PATH) == SYSCTL
            assert host.exec("sysctl -n net.core.somaxconn").stdout.strip() == "65535"
            assert host.exec("apt-mark showhold").stdout.split() == ["linux-headers-amd64", "linux-image-amd64", "nvidia-fabricmanager-550"]
            assert host.exec("nvidia-smi --query-gpu=driver_version --format=csv,noheader").stdout.split()[0] == DRIVER
            assert f"LLMFAB_NODE={host.name}" in host.read("/etc/llmfab/node.env")
            assert host.read("/etc/modules-load.d/llmfab-nvidia-peermem.conf") == "nvidia-peermem\n"

    def test_dry_run_shows_what_would_change_and_changes_nothing(self, fleet_factory, tmp_path):
        fleet = fleet_factory(2)
        config = prepared_config(fleet, tmp_path / "c.yaml")
        run = fab("prep", "--dry-run", "--config", str(config))
        assert run.returncode == 0, run.output
        assert "would create /etc/security/limits.d/90-llmfab-nofile.conf" in run.stdout
        assert "would_change=" in summary(run)
        for host in fleet.hosts:
            assert not host.exists(NOFILE_PATH)
            assert not host.exists(SYSCTL_PATH)
            assert not [c for c in host.calls("apt-get") if "install" in c.args]

    def test_a_host_that_is_down_is_named_while_the_other_succeeds(self, fleet_factory, tmp_path):
        fleet = fleet_factory(2)
        config = prepared_config(fleet, tmp_path / "c.yaml")
        fleet.hosts[1].stop()
        run = fab("prep", "--config", str(config))
        assert run.returncode == 1
        assert "FAILED hosts: n2" in summary(run)
        assert re.search(r"n2 \(127\.0\.0\.\d+\) unreachable: cannot connect", run.stdout), run.stdout
        assert fleet.hosts[0].read(NOFILE_PATH) == NOFILE

    def test_an_unknown_host_key_is_refused_unless_first_use_is_allowed(self, fleet_factory, tmp_path):
        fleet = fleet_factory(1)
        config = prepared_config(fleet, tmp_path / "c.yaml")
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        raw = yaml.safe_load(config.read_text())
        raw["ssh"]["known_hosts"] = str(empty)
        config.write_text(yaml.safe_dump(raw))
        refused = fab("prep", "--config", str(config))
        assert refused.returncode == 1
        assert "is not in" in refused.stdout and "--accept-new-host-keys" in refused.stdout
        assert not fleet.hosts[0].exists(NOFILE_PATH)
        accepted = fab("prep", "--accept-new-host-keys", "--config", str(config))
        assert accepted.returncode == 0, accepted.output
        assert "ssh-ed25519" in empty.read_text()

    def test_a_non_root_user_works_through_passwordless_sudo(self, fleet_factory, tmp_path):
        fleet = fleet_factory(1)
        config = prepared_config(fleet, tmp_path / "c.yaml", ssh={"user": "deploy"})
        run = fab("prep", "--config", str(config))
        assert run.returncode == 0, run.output
        assert fleet.hosts[0].read(NOFILE_PATH) == NOFILE

    def test_a_sudo_password_is_asked_for_once_and_used_for_all_hosts(self, fleet_factory, tmp_path):
        fleet = fleet_factory(2)
        config = prepared_config(fleet, tmp_path / "c.yaml", ssh={"user": "deploypw"})
        without = fab("prep", "--config", str(config))
        assert without.returncode == 1
        assert "sudo needs a password" in without.stdout
        run = fab("prep", "--ask-sudo-pass", "--config", str(config), env={"LLMFAB_SUDO_PASSWORD": "s3cret-pw"})
        assert run.returncode == 0, run.output
        assert "s3cret-pw" not in run.output
        for host in fleet.hosts:
            assert host.read(NOFILE_PATH) == NOFILE


def test_prep_on_eight_hosts_converges_in_parallel(fleet_factory, tmp_path):
    fleet = fleet_factory(8)
    config = prepared_config(fleet, tmp_path / "c.yaml")
    first = fab("prep", "--config", str(config))
    assert first.returncode == 0, first.output
    second = fab("prep", "--config", str(config))
    assert "8 host(s)" in summary(second) and "changed=0" in summary(second), second.stdout
    # All eight hosts were worked at once: their connections overlap in time.
    starts = [ln for ln in first.stdout.splitlines() if ln.rstrip().endswith("connecting")]
    assert len(starts) == 8
    assert first.stdout.index(starts[-1]) < first.stdout.index("os-check: ok")


def test_an_interrupted_prep_converges_when_run_again(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    config = prepared_config(fleet, tmp_path / "c.yaml")
    from .scenario import REPO
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "fabric", "prep", "--config", str(config), "--yes"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    seen = ""
    while time.time() < deadline and "nofile-limit" not in seen:
        seen += proc.stdout.readline()
    proc.kill()
    proc.wait()
    host = fleet.hosts[0]
    # No half-written file: each managed file is either absent or complete.
    for path, content in ((NOFILE_PATH, NOFILE), (SYSCTL_PATH, SYSCTL)):
        assert host.read(path) in (None, content)
    rerun = fab("prep", "--config", str(config))
    assert rerun.returncode == 0, rerun.output
    assert host.read(NOFILE_PATH) == NOFILE and host.read(SYSCTL_PATH) == SYSCTL
    leftovers = host.exec("ls -a /etc/sysctl.d /etc/security/limits.d | grep llmfab-tmp || true").stdout
    assert leftovers == ""


@pytest.mark.parametrize("hostile", ["$(touch /tmp/pwned)", "a; touch /tmp/pwned", "`touch /tmp/pwned`"])
def test_a_hostile_config_value_reaches_the_host_as_data(fleet_factory, tmp_path, hostile):
    fleet = fleet_factory(1)
    # cluster.name names directories, so it is refused unless a plain name (review M6).
    refused = fab("prep", "--config", str(prepared_config(fleet, tmp_path / "bad.yaml", cluster={"name": hostile})))
    assert refused.returncode == 2 and "cluster.name" in refused.output
    config = prepared_config(fleet, tmp_path / "c.yaml", model={"path": f"/models/{hostile}"})
    run = fab("prep", "--config", str(config))
    assert run.returncode == 0, run.output
    host = fleet.hosts[0]
    assert not host.exists("/tmp/pwned")
    sourced = host.exec("set -a; . /etc/llmfab/node.env; printf '%s' \"$LLMFAB_MODEL_PATH\"")
    assert sourced.stdout == f"/models/{hostile}"
    assert not host.exists("/tmp/pwned")


@pytest.mark.parametrize("breakage, message", [
    ({"bogus": 1}, "bogus: unknown key"),
    ({"nodes": [{"name": "n1"}]}, "nodes[0].address: required field is missing"),
    ({"cluster": {"head": "n9"}}, "cluster.head 'n9' is not a node"),
    ({"system": {"nofile": "many"}}, "system.nofile"),
])
def test_an_invalid_config_stops_before_any_connection(fleet_factory, tmp_path, breakage, message):
    fleet = fleet_factory(1)
    config = prepared_config(fleet, tmp_path / "c.yaml")
    raw = yaml.safe_load(config.read_text())
    raw.update(breakage)
    config.write_text(yaml.safe_dump(raw))
    before = fleet.hosts[0].log_path.read_text().count("Accepted publickey")
    run = fab("prep", "--config", str(config))
    assert run.returncode == 2
    assert str(config) in run.stderr and message in run.stderr and "fix:" in run.stderr
    assert fleet.hosts[0].log_path.read_text().count("Accepted publickey") == before
