"""The route to a node: llmfab's config first, the operator's ~/.ssh/config for the rest."""

from __future__ import annotations

import paramiko
import pytest

from llmfab import config as config_mod
from llmfab import sshconfig
from llmfab.errors import UsageError
from llmfab.ssh import SSHOptions, target

SSH_CONFIG = """
Host 10.1.0.*
  User ubuntu
  Port 2200
  IdentityFile ~/.ssh/gpu_key
  ProxyJump ops@bastion.example:2222
Host bastion.example
  IdentityFile ~/.ssh/bastion_key
Host 10.2.0.5
  ProxyJump hop1,hop2
Host hop2
  HostName 192.0.2.2
  User h2
Host 10.3.0.7
  ProxyCommand nc -X connect %h %p
"""


def cluster(**ssh) -> config_mod.ClusterConfig:
    return config_mod.parse({"ssh": ssh, "nodes": [
        {"name": "g1", "address": "10.1.0.1"},
        {"name": "g2", "address": "10.1.0.2", "user": "admin", "port": 22},
        {"name": "d1", "address": "10.2.0.5"},
        {"name": "p1", "address": "10.3.0.7"},
    ]})


@pytest.fixture
def parsed(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    for key in ("gpu_key", "bastion_key"):
        (tmp_path / ".ssh" / key).write_text("a key\n")
    return paramiko.SSHConfig.from_text(SSH_CONFIG)


def test_user_port_key_and_bastion_come_from_the_ssh_config_when_llmfab_sets_none(parsed, tmp_path):
    c = cluster()
    t = sshconfig.node_target(c, c.nodes[0], parsed)
    assert (t.user, t.host, t.port) == ("ubuntu", "10.1.0.1", 2200)
    assert t.identity_files == (f"{tmp_path}/.ssh/gpu_key",)
    assert (t.jump.user, t.jump.host, t.jump.port) == ("ops", "bastion.example", 2222)
    assert t.jump.identity_files == (f"{tmp_path}/.ssh/bastion_key",)
    assert t.describe() == "ubuntu@10.1.0.1:2200 via ops@bastion.example:2222"


def test_values_in_the_llmfab_config_win_over_the_ssh_config(parsed):
    c = cluster(user="deploy", port=2022)
    assert (sshconfig.node_target(c, c.nodes[0], parsed).user, sshconfig.node_target(c, c.nodes[0], parsed).port) \
        == ("deploy", 2022)
    per_node = sshconfig.node_target(c, c.nodes[1], parsed)
    assert (per_node.user, per_node.port) == ("admin", 22)


def test_an_identity_given_on_the_command_line_wins_over_the_ssh_config(parsed):
    c = cluster()
    assert sshconfig.node_target(c, c.nodes[0], parsed, ("/k/one",)).identity_files == ("/k/one",)


def test_a_proxyjump_chain_reaches_the_last_hop_through_the_first(parsed):
    c = cluster()
    t = sshconfig.node_target(c, c.nodes[2], parsed)
    assert t.jump.host == "192.0.2.2" and t.jump.user == "h2"
    assert t.jump.jump.host == "hop1" and t.jump.jump.jump is None


def test_a_proxycommand_is_kept_for_the_connection(parsed):
    c = cluster()
    t = sshconfig.node_target(c, c.nodes[3], parsed)
    assert t.proxy_command == "nc -X connect 10.3.0.7 22" and t.jump is None


def test_without_an_ssh_config_the_llmfab_defaults_apply():
    c = cluster()
    t = sshconfig.node_target(c, c.nodes[0], None)
    assert (t.user, t.host, t.port, t.jump) == ("root", "10.1.0.1", 22, None)


def test_a_missing_ssh_config_file_is_no_error(tmp_path):
    assert sshconfig.load(str(tmp_path / "absent")) is None
    assert sshconfig.load(None) is None


def test_an_unreadable_ssh_config_names_the_file_and_the_way_out(tmp_path):
    bad = tmp_path / "config"
    bad.write_text("Host x\n  ProxyJump\n")
    with pytest.raises(UsageError, match="ssh.config_file: null"):
        sshconfig.load(str(bad))


def test_the_config_file_setting_and_dash_s_choose_which_file_is_read(tmp_path):
    own = tmp_path / "cfg"
    own.write_text("Host 10.1.0.1\n  User fromfile\n")
    c = cluster(config_file=str(own))
    assert target(c, c.nodes[0], SSHOptions.from_config(c)).user == "fromfile"
    other = tmp_path / "other"
    other.write_text("Host 10.1.0.1\n  User fromflag\n")
    assert target(c, c.nodes[0], SSHOptions.from_config(c, ssh_config_file=str(other))).user == "fromflag"
    off = cluster(config_file=None)
    assert target(off, off.nodes[0], SSHOptions.from_config(off)).user == "root"


@pytest.mark.parametrize("hop, parts", [
    ("bastion", (None, "bastion", None)),
    ("ops@bastion:2222", ("ops", "bastion", 2222)),
    ("[fe80::1]:2200", (None, "fe80::1", 2200)),
])
def test_a_proxyjump_hop_is_split_into_user_host_and_port(hop, parts):
    assert sshconfig._split_hop(hop) == parts


def test_an_identity_file_in_the_ssh_config_that_does_not_exist_is_skipped_like_openssh_does(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    parsed = paramiko.SSHConfig.from_text("Host 10.1.0.1\n  IdentityFile ~/.ssh/absent\n")
    c = cluster()
    assert sshconfig.node_target(c, c.nodes[0], parsed).identity_files == ()


def test_a_named_key_that_does_not_exist_stops_before_any_connection(tmp_path):
    c = cluster(identity_file=str(tmp_path / "nope"))
    with pytest.raises(UsageError, match="does not exist"):
        SSHOptions.from_config(c)
    with pytest.raises(UsageError, match="fab -i"):
        SSHOptions.from_config(cluster(), identity_files=[str(tmp_path / "nope")])
