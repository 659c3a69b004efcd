"""ip -o parsers and the socket-interface check.

The sample outputs below were captured with iproute2 6.1.0 (`ip -o ...`) on the
development machine of this project on 2026-11-28 (interfaces lo, eth0 and a
down ifb0); the H200 machine has no iproute2 (tests/fixtures/h200/ip-addr.txt).
"""
from fixture_text import load_fixture
from llmfab.facts import net

ADDR_ALL = (
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n"
    "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n")
LINK_ETH0 = ("4: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400 qdisc pfifo_fast state UP mode DEFAULT group "
             "default qlen 1000\\    link/ether 02:fc:00:00:00:01 brd ff:ff:ff:ff:ff:ff\n")
LINK_LO = ("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default "
           "qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n")
LINK_IFB0_DOWN = ("2: ifb0: <BROADCAST,NOARP> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 32\\"
                  "    link/ether e2:d6:71:6b:a5:c4 brd ff:ff:ff:ff:ff:ff\n")
NO_DEVICE = 'Device "nonexist" does not exist.\n'


def test_the_probes_quote_the_interface_name():
    assert net.addr_command("eth0") == "ip -o -4 addr show dev eth0"
    assert net.link_command("eth0; reboot") == "ip -o link show dev 'eth0; reboot'"


def test_addresses_come_with_their_interface_prefix_and_scope():
    addrs = net.parse_ip_addr(ADDR_ALL)
    assert [(a.iface, a.address, a.prefixlen, a.scope) for a in addrs.addresses] == [
        ("lo", "127.0.0.1", 8, "host"), ("eth0", "192.0.2.2", 24, "global")]
    assert str(addrs.of("eth0")[0].network) == "192.0.2.0/24"


def test_an_interface_without_ipv4_gives_no_addresses_and_no_error():
    addrs = net.parse_ip_addr("")
    assert addrs.addresses == () and addrs.reason == ""


def test_a_missing_interface_is_named_in_the_reason():
    assert net.parse_ip_addr(NO_DEVICE).reason == "interface nonexist does not exist"
    assert net.parse_ip_link(NO_DEVICE).reason == "interface nonexist does not exist"


def test_link_flags_state_and_mtu_are_read():
    eth0 = net.parse_ip_link(LINK_ETH0)
    assert (eth0.iface, eth0.index, eth0.mtu, eth0.state) == ("eth0", 4, 1400, "UP")
    assert eth0.up and eth0.lower_up
    lo = net.parse_ip_link(LINK_LO)
    assert lo.up and lo.state == "UNKNOWN"


def test_a_link_without_the_up_flag_is_down():
    ifb0 = net.parse_ip_link(LINK_IFB0_DOWN)
    assert not ifb0.up and ifb0.state == "DOWN"
    assert net.interface_ready(ifb0, net.parse_ip_addr(ADDR_ALL)) == (
        False, "ifb0 is administratively down (no UP flag)")


def test_an_up_interface_with_ipv4_on_the_peers_subnet_is_ready():
    ok, why = net.interface_ready(net.parse_ip_link(LINK_ETH0), net.parse_ip_addr(ADDR_ALL), peer="192.0.2.9")
    assert ok and why == "eth0 is UP with 192.0.2.2"


def test_a_peer_on_another_subnet_is_reported_like_the_h20_dist_init_timeout():
    # tests/fixtures/field/failures/sglang-dist-init-addr-c10d-socket-timeout-2node-h20.txt: 11.130.1.53/21 vs 33.18.27.52
    addrs = net.parse_ip_addr("2: eth0    inet 11.130.1.53/21 brd 11.130.7.255 scope global eth0\n")
    link = net.parse_ip_link(LINK_ETH0)
    ok, why = net.interface_ready(link, addrs, peer="33.18.27.52")
    assert not ok and "not on the subnet" in why


def test_no_iproute2_on_the_h200_machine_is_reported_not_guessed():
    assert net.parse_ip_addr(load_fixture("h200/ip-addr.txt")).reason == "ip is not installed (command not found)"
    assert net.parse_ip_link(load_fixture("h200/ip-link.txt")).reason == "ip is not installed (command not found)"
