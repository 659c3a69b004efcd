"""Network interface facts from ``ip -o``: is the interface UP, which IPv4 addresses it has.

GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME must name an interface that exists, is
UP and carries an IPv4 address the other node can reach; ``interface_ready``
says whether one does, in words.
"""
from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Optional

from llmfab.facts.base import command_missing, never_raises

ADDR_COMMAND = "ip -o -4 addr show dev {iface}"
LINK_COMMAND = "ip -o link show dev {iface}"


def addr_command(iface: str) -> str:
    """The IPv4 probe for one interface, its name quoted."""
    return ADDR_COMMAND.format(iface=shlex.quote(iface))


def link_command(iface: str) -> str:
    """The link probe for one interface, its name quoted."""
    return LINK_COMMAND.format(iface=shlex.quote(iface))


def _no_such_device(text: str) -> str:
    m = re.search(r'Device "([^"]*)" does not exist', text)
    if m:
        return "interface %s does not exist" % m.group(1)
    return command_missing(text)


@dataclass(frozen=True)
class Ipv4:
    """One ``inet`` line: interface, address, prefix length, scope."""

    iface: str
    address: str
    prefixlen: int
    scope: Optional[str] = None

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network("%s/%d" % (self.address, self.prefixlen), strict=False)


@dataclass(frozen=True)
class Ipv4Addresses:
    addresses: tuple = ()
    reason: str = ""

    def of(self, iface: str) -> "list[Ipv4]":
        return [a for a in self.addresses if a.iface == iface]


INET = re.compile(r"^\d+:\s+(\S+?)\s+inet\s+(\d{1,3}(?:\.\d{1,3}){3})/(\d{1,2})(?:.*?\bscope (\S+))?")


@never_raises(lambda why: Ipv4Addresses(reason=why))
def parse_ip_addr(text: str) -> Ipv4Addresses:
    """Parse ``ip -o -4 addr [show dev IFACE]``; empty output means no IPv4 address (not an error)."""
    gone = _no_such_device(text)
    if gone:
        return Ipv4Addresses(reason=gone)
    found = []
    for line in text.splitlines():
        m = INET.match(line.strip())
        if m:
            found.append(Ipv4(m.group(1), m.group(2), int(m.group(3)), m.group(4)))
    if not found and text.strip():
        return Ipv4Addresses(reason="no 'inet' lines in the ip -o -4 addr output")
    return Ipv4Addresses(addresses=tuple(found))


@dataclass(frozen=True)
class Link:
    """One ``ip -o link`` line. ``up`` is the administrative UP flag; ``lower_up`` is carrier."""

    iface: str = ""
    index: Optional[int] = None
    flags: tuple = ()
    state: Optional[str] = None
    mtu: Optional[int] = None
    reason: str = ""

    @property
    def up(self) -> bool:
        return "UP" in self.flags

    @property
    def lower_up(self) -> bool:
        return "LOWER_UP" in self.flags


LINK = re.compile(r"^(\d+):\s+([^:@\s]+)(?:@\S+)?:\s+<([^>]*)>(?:.*?\bmtu (\d+))?(?:.*?\bstate (\S+))?")


@never_raises(lambda why: Link(reason=why))
def parse_ip_link(text: str) -> Link:
    """Parse ``ip -o link show dev IFACE`` (the first link line when several are given)."""
    gone = _no_such_device(text)
    if gone:
        return Link(reason=gone)
    for line in text.splitlines():
        m = LINK.match(line.strip())
        if m:
            return Link(iface=m.group(2), index=int(m.group(1)), flags=tuple(m.group(3).split(",")),
                        state=m.group(5), mtu=int(m.group(4)) if m.group(4) else None)
    return Link(reason="no link line in the ip -o link output")


def interface_ready(link: Link, addrs: Ipv4Addresses, peer: Optional[str] = None) -> "tuple[bool, str]":
    """Whether an interface can carry Gloo/NCCL sockets: UP, with carrier, an IPv4, and PEER on its subnet."""
    if link.reason:
        return False, link.reason
    if not link.up:
        return False, "%s is administratively down (no UP flag)" % link.iface
    if not link.lower_up and link.iface != "lo":
        return False, "%s is UP but has no carrier (no LOWER_UP)" % link.iface
    mine = addrs.of(link.iface)
    if not mine:
        return False, addrs.reason or "%s has no IPv4 address" % link.iface
    if peer:
        try:
            peer_ip = ipaddress.IPv4Address(peer)
        except ValueError:
            return False, "peer %r is not an IPv4 address" % peer
        if not any(peer_ip in a.network for a in mine):
            return False, "%s (%s) is not on the subnet of %s: traffic needs a route" % (
                peer, ", ".join("%s/%d" % (a.address, a.prefixlen) for a in mine), link.iface)
    return True, "%s is UP with %s" % (link.iface, ", ".join(a.address for a in mine))
