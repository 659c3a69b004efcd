"""Seen from an address outside the cluster, a default deploy opens only what the README lists.

The test hosts share this machine's network namespace, so llmfab's nftables
table lives in the `nft` stub's state; `reachable` reads it the way the
kernel would apply it to a packet from a non-cluster address.
"""

from __future__ import annotations

import json
import re

from .scenario import fab, summary
from .test_deploy import deploy_config

OUTSIDER = "127.0.0.99"


def firewall(host) -> str | None:
    return host.read("/var/lib/llmfab-stubs/nft/tables/inet-llmfab")


def reachable(rules: str | None, source: str, port: int) -> bool:
    """Whether llmfab's table lets a TCP packet from SOURCE to PORT through."""
    if not rules:
        return True
    allowed = re.search(r"elements = \{ ([^}]*) \}", rules).group(1).split(", ")
    if source in allowed:
        return True
    ranges = re.search(r"tcp dport \{ ([^}]*) \} drop", rules).group(1)
    for part in ranges.split(", "):
        first, _, last = part.partition("-")
        if int(first) <= port <= int(last or first):
            return False
    return True


def listening_ports(host) -> set[int]:
    """TCP ports the host's own processes listen on, beyond 127.0.0.1 itself."""
    out = host.exec("ss -Hltnp").stdout
    ports = set()
    for line in out.splitlines():
        if "users:" not in line:  # another host's (or the machine's) socket
            continue
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        if address.strip("[]") not in ("127.0.0.1", "::1"):
            ports.add(int(port))
    return ports


def test_a_default_deploy_opens_only_the_keyed_api_and_ssh_to_a_non_cluster_address(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "vllm")
    run = fab("deploy", "--config", str(config), timeout=400)
    assert run.returncode == 0, run.output
    for host in fleet.hosts:
        rules = firewall(host)
        assert rules and "127.0.0.11, 127.0.0.12, 127.0.0.1 }" in rules.replace("127.0.0.1, 127.0.0.11, 127.0.0.12", "127.0.0.11, 127.0.0.12, 127.0.0.1"), rules
        listening = listening_ports(host)
        assert 6379 in listening or host is not fleet.hosts[0]
        open_ = {p for p in listening if reachable(rules, OUTSIDER, p)}
        # The README's "Security model": SSH, and on the head the API (keyed).
        assert open_ <= {fleet.port, 40000}, (host.name, sorted(open_), sorted(listening))
        assert all(reachable(rules, n.address, 6379) for n in fleet.hosts)
    head = fleet.hosts[0]
    unkeyed = head.exec("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.11:40000/v1/models")
    assert unkeyed.stdout == "401"

    status = fab("status", "--config", str(config))
    assert "firewall on: only cluster nodes reach 6379, 6380-6391, 10001, 10002-19999" in status.stdout, status.stdout

    stop = fab("stop", "--config", str(config))
    assert stop.returncode == 0, stop.output
    assert "remove firewall table inet llmfab" in stop.stdout
    assert all(firewall(h) is None and not h.exists("/etc/llmfab/firewall.nft") for h in fleet.hosts)
    again = fab("stop", "--config", str(config))
    assert "changed=0" in summary(again), again.stdout


def test_check_fails_when_an_engine_port_answers_beyond_the_cluster_without_llmfabs_rules(fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    config = deploy_config(fleet, tmp_path, "vllm")
    n1 = fleet.hosts[0]
    # A Ray worker port squatted on every address, as an engine left unfiltered would be.
    pid = n1.exec("setsid python3 -m http.server 10123 --bind 0.0.0.0 >/dev/null 2>&1 </dev/null & echo $!; sleep 1").stdout.strip()
    try:
        run = fab("check", "--config", str(config), "--json")
        assert run.stdout.startswith("{"), run.output
        (c,) = [c for c in json.loads(run.stdout)["nodes"]["n1"] if c["name"] == "exposure"]
        assert c["status"] == "fail" and "10123" in c["evidence"] and "fab deploy" in c["fix"], c
        rules = fab("deploy", "--config", str(config), "--skip-smoke", timeout=400)
        assert rules.returncode == 0, rules.output
        run = fab("check", "--config", str(config), "--json")
        assert run.stdout.startswith("{"), run.output
        (c,) = [c for c in json.loads(run.stdout)["nodes"]["n1"] if c["name"] == "exposure"]
        assert c["status"] == "pass", c
    finally:
        n1.exec(f"kill {pid} || true")
        fab("stop", "--config", str(config))
