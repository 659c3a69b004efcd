"""The first hour on a cluster, over real SSH: bastions, asking first, diffs, logs, undo."""

from __future__ import annotations

import re

import yaml

from llmfab.steps.system import NOFILE_PATH, SYSCTL_PATH

from .scenario import fab, summary

SYSTEM_ONLY = {"nvidia": {"enabled": False}, "docker": {"enabled": False}}
ASK = {"LLMFAB_ASSUME_YES": "0"}


def system_config(fleet, path, **extra):
    return fleet.write_config(path, **SYSTEM_ONLY, **extra)


def logins(host) -> int:
    return host.log_path.read_text().count("Accepted publickey")


class TestAskingFirst:
    def test_a_run_that_would_change_hosts_asks_and_no_answer_changes_nothing(self, fleet_factory, tmp_path):
        fleet = fleet_factory(1)
        config = system_config(fleet, tmp_path / "c.yaml")
        run = fab("prep", "--config", str(config), env=ASK)
        assert run.returncode == 4, run.output
        assert "nofile-limit: would change" in run.stdout and "Proceed with prep? [y/N]" in run.stdout
        assert "pass --yes in scripts" in run.stderr
        assert not fleet.hosts[0].exists(NOFILE_PATH)

    def test_yes_at_the_prompt_runs_it_and_an_unchanged_host_is_not_asked_about(self, fleet_factory, tmp_path):
        fleet = fleet_factory(1)
        config = system_config(fleet, tmp_path / "c.yaml")
        run = fab("prep", "--config", str(config), env=ASK, stdin="y\n")
        assert run.returncode == 0, run.output
        assert fleet.hosts[0].exists(NOFILE_PATH)
        again = fab("prep", "--config", str(config), env=ASK)
        assert again.returncode == 0, again.output
        assert "nothing would change" in again.stdout and "[y/N]" not in again.stdout

    def test_dash_dash_yes_runs_without_a_preview(self, fleet_factory, tmp_path):
        fleet = fleet_factory(1)
        config = system_config(fleet, tmp_path / "c.yaml")
        run = fab("prep", "--config", str(config), "--yes", env=ASK)
        assert run.returncode == 0 and "checking what would change" not in run.stdout
        assert fleet.hosts[0].exists(NOFILE_PATH)


def test_diff_shows_each_managed_file_change_and_the_dry_run_keeps_it_a_proposal(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    config = system_config(fleet, tmp_path / "c.yaml")
    host.exec(f"mkdir -p /etc/sysctl.d && printf 'net.core.somaxconn = 1024\\n' > {SYSCTL_PATH}")
    run = fab("prep", "--config", str(config), "--dry-run", "--diff")
    assert run.returncode == 0, run.output
    assert f"diff {SYSCTL_PATH}:" in run.stdout
    assert "-net.core.somaxconn = 1024" in run.stdout and "+net.core.somaxconn = 65535" in run.stdout
    assert f"+++ {NOFILE_PATH} (new)" in run.stdout
    assert host.read(SYSCTL_PATH) == "net.core.somaxconn = 1024\n"


def test_every_run_keeps_a_log_per_host_locally_and_on_the_node(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = system_config(fleet, tmp_path / "c.yaml")
    logs = tmp_path / "logs"
    run = fab("prep", "--config", str(config), "--verbose", env={"LLMFAB_LOG_DIR": str(logs)})
    assert run.returncode == 0, run.output
    assert re.search(r"n1 +\[nofile-limit\] \+ create " + re.escape(NOFILE_PATH), run.stdout)
    (stamp,) = list(logs.iterdir())
    for host in fleet.hosts:
        local = (stamp / f"{host.name}.log").read_text()
        assert f"[nofile-limit] + create {NOFILE_PATH}" in local and "-- sysctl-net: changed" in local
        node = host.exec("cat /var/log/llmfab/prep-*.log; stat -c %a /var/log/llmfab/prep-*.log").stdout
        assert f"[nofile-limit] + create {NOFILE_PATH}" in node and node.rstrip().endswith("600")
    assert f"logs: {stamp}/" in run.stdout


def test_a_dry_run_leaves_no_log_on_the_node(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    config = system_config(fleet, tmp_path / "c.yaml")
    assert fab("prep", "--config", str(config), "--dry-run").returncode == 0
    assert not fleet.hosts[0].exists("/var/log/llmfab")


def test_a_backup_lands_under_var_backups_not_where_sysctl_reads(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    config = system_config(fleet, tmp_path / "c.yaml")
    host.exec(f"mkdir -p /etc/sysctl.d && printf 'net.core.somaxconn = 1024\\n' > {SYSCTL_PATH}")
    assert fab("prep", "--config", str(config)).returncode == 0
    assert "llmfab-backup" not in host.exec("ls -a /etc/sysctl.d").stdout
    backups = host.exec(f"cat /var/backups/llmfab{SYSCTL_PATH}.*").stdout
    assert backups == "net.core.somaxconn = 1024\n"


def test_undo_removes_what_prep_added_and_restores_what_it_changed(fleet_factory, tmp_path):
    fleet = fleet_factory(1, kernel_meta=True)
    host = fleet.hosts[0]
    config = system_config(fleet, tmp_path / "c.yaml")
    host.exec(f"mkdir -p /etc/sysctl.d && printf 'net.core.somaxconn = 1024\\n' > {SYSCTL_PATH}")
    assert fab("prep", "--config", str(config)).returncode == 0
    assert host.exec("apt-mark showhold").stdout.split()
    undone = fab("undo", "--config", str(config))
    assert undone.returncode == 0, undone.output
    assert not host.exists(NOFILE_PATH) and not host.exists("/etc/llmfab/node.env")
    assert host.read(SYSCTL_PATH) == "net.core.somaxconn = 1024\n"
    assert host.exec("apt-mark showhold").stdout.split() == []
    again = fab("undo", "--config", str(config))
    assert "changed=0" in summary(again), again.stdout


class TestTheOperatorsSSHSetup:
    def test_a_node_behind_a_bastion_is_reached_through_proxyjump_with_host_keys_checked(self, fleet_factory,
                                                                                           tmp_path):
        fleet = fleet_factory(2)
        bastion, node = fleet.hosts
        ssh_config = tmp_path / "ssh_config"
        ssh_config.write_text(
            f"Host {node.address}\n  ProxyJump jump\n"
            f"Host jump\n  HostName {bastion.address}\n  Port {bastion.port}\n  User root\n"
            f"  IdentityFile {fleet.client_key_path}\n"
        )
        config = system_config(fleet, tmp_path / "c.yaml", ssh={"config_file": str(ssh_config)})
        before = logins(bastion)
        run = fab("-H", "n2", "prep", "--config", str(config))
        assert run.returncode == 0, run.output
        assert f"n2=root@{node.address}:{node.port} via root@{bastion.address}:{bastion.port}" in run.stdout
        assert logins(bastion) == before + 1
        assert node.exists(NOFILE_PATH) and not bastion.exists(NOFILE_PATH)
        # The bastion's key is checked like a node's: an empty known_hosts refuses it.
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        raw = yaml.safe_load(config.read_text())
        raw["ssh"]["known_hosts"] = str(empty)
        config.write_text(yaml.safe_dump(raw))
        refused = fab("-H", "n2", "ping", "--config", str(config))
        assert refused.returncode == 1 and f"{bastion.address}" in refused.stdout and "is not in" in refused.stdout

    def test_user_and_key_come_from_the_ssh_config_file_given_with_dash_s(self, fleet_factory, tmp_path):
        fleet = fleet_factory(1)
        host = fleet.hosts[0]
        ssh_config = tmp_path / "ssh_config"
        ssh_config.write_text(f"Host {host.address}\n  User deploy\n  IdentityFile {fleet.client_key_path}\n")
        raw = yaml.safe_load(fleet.write_config(tmp_path / "c.yaml").read_text())
        raw["ssh"].pop("identity_file")
        raw["ssh"].pop("user")
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
        run = fab("-S", str(ssh_config), "ping", "--config", str(tmp_path / "c.yaml"))
        assert run.returncode == 0, run.output
        assert "logged in as deploy" in run.stdout and "sudo -n works" in run.stdout

    def test_dash_i_gives_the_key_and_a_wrong_one_fails_with_the_user_named(self, fleet_factory, tmp_path):
        fleet = fleet_factory(1)
        raw = yaml.safe_load(fleet.write_config(tmp_path / "c.yaml").read_text())
        raw["ssh"].pop("identity_file")
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
        good = fab("-i", str(fleet.client_key_path), "ping", "--config", str(tmp_path / "c.yaml"),
                   env={"HOME": str(tmp_path), "SSH_AUTH_SOCK": ""})
        assert good.returncode == 0, good.output
        wrong = tmp_path / "wrong_key"
        wrong.write_text("not a key\n")
        bad = fab("-i", str(wrong), "ping", "--config", str(tmp_path / "c.yaml"),
                  env={"HOME": str(tmp_path), "SSH_AUTH_SOCK": ""})
        assert bad.returncode == 1 and "unreachable=1" in bad.stdout


def test_ping_reports_every_node_and_a_down_one(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = fleet.write_config(tmp_path / "c.yaml")
    fleet.hosts[1].stop()
    run = fab("ping", "--config", str(config))
    assert run.returncode == 1
    assert "n1       127.0.0.11: ok: logged in as root on n1, is root" in run.stdout.replace(
        fleet.hosts[0].address, "127.0.0.11")
    assert "ok=1 unreachable=1; FAILED hosts: n2" in run.stdout
