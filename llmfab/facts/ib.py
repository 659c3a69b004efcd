"""RDMA facts: HCAs and their ports (ibstat, ibv_devinfo, ibstatus), RoCE GIDs, HCA -> netdev.

Each of the three port listings parses into the same ``IbDevices``; then
``hca_status(parsed, required)`` says, per HCA that NCCL_IB_HCA names, whether it
exists and has an Active port, and on which link layer. RoCE ports (link layer
Ethernet) also need NCCL_IB_GID_INDEX: ``roce_v2_gid_index`` reads it from
``show_gids``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from llmfab.facts.base import Fact, command_missing, never_raises

IBSTAT_COMMAND = "ibstat"
IBV_DEVINFO_COMMAND = "ibv_devinfo"
IBSTATUS_COMMAND = "ibstatus"
SHOW_GIDS_COMMAND = "show_gids"
IBDEV2NETDEV_COMMAND = "ibdev2netdev"

_STATES = {"active": "Active", "port_active": "Active", "down": "Down", "port_down": "Down",
           "init": "Init", "port_init": "Init", "armed": "Armed", "port_armed": "Armed"}


@dataclass(frozen=True)
class IbPort:
    """One HCA port. state: Active/Down/Init/Armed; link_layer: InfiniBand or Ethernet (RoCE)."""

    hca: str
    port: int
    state: Optional[str] = None
    physical_state: Optional[str] = None
    rate_gbps: Optional[int] = None
    link_layer: Optional[str] = None

    @property
    def active(self) -> bool:
        return self.state == "Active"


@dataclass(frozen=True)
class IbDevices:
    """HCAs and their ports, in the order the tool printed them."""

    ports: tuple = ()
    ca_types: tuple = ()  # (hca, "MT4129") pairs where the tool prints them
    reason: str = ""

    @property
    def hcas(self) -> "list[str]":
        """Every HCA named, also one whose ports an excerpt cut off."""
        return list(dict.fromkeys([p.hca for p in self.ports] + [h for h, _ in self.ca_types]))

    def ports_of(self, hca: str) -> "list[IbPort]":
        return [p for p in self.ports if p.hca == hca]


def _state(text: Optional[str]) -> Optional[str]:
    """'4: ACTIVE', 'PORT_ACTIVE (4)', 'Active' -> 'Active'."""
    if not text:
        return None
    word = re.sub(r"^\d+:\s*|\s*\(\d+\)$", "", text.strip())
    return _STATES.get(word.lower(), word)


def _rate(text: Optional[str]) -> Optional[int]:
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else None


def _no_devices(text: str, tool: str) -> str:
    missing = command_missing(text)
    if missing:
        return missing
    if re.search(r"No IB devices found|Failed to get IB devices list", text):
        return "%s found no RDMA device" % tool
    return "no HCA found in the %s output" % tool


def _collect(blocks: "list[dict]", types: "list[tuple]", text: str, tool: str) -> IbDevices:
    ports = tuple(IbPort(b["hca"], b["port"], _state(b.get("state")), _state(b.get("phys")),
                         _rate(b.get("rate")), b.get("link_layer")) for b in blocks)
    if not ports:
        return IbDevices(reason=_no_devices(text, tool))
    return IbDevices(ports=ports, ca_types=tuple(types))


@never_raises(lambda why: IbDevices(reason=why))
def parse_ibstat(text: str) -> IbDevices:
    """Parse ``ibstat``: "CA 'mlx5_0'", "Port 1:", then State/Physical state/Rate/Link layer."""
    blocks, types, hca = [], [], None
    keys = {"state": "state", "physical state": "phys", "rate": "rate", "link layer": "link_layer"}
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"CA '([^']+)'", s)
        if m:
            hca = m.group(1)
            continue
        m = re.match(r"Port (\d+):$", s)
        if m and hca:
            blocks.append({"hca": hca, "port": int(m.group(1))})
            continue
        key, _, value = s.partition(":")
        if key.lower() == "ca type" and hca:
            types.append((hca, value.strip()))
        elif key.lower() in keys and blocks and blocks[-1]["hca"] == hca:
            blocks[-1][keys[key.lower()]] = value.strip()
    return _collect(blocks, types, text, "ibstat")


@never_raises(lambda why: IbDevices(reason=why))
def parse_ibv_devinfo(text: str) -> IbDevices:
    """Parse ``ibv_devinfo``: "hca_id: X", "port: N", state/link_layer (no rate without -v)."""
    blocks, types, hca = [], [], None
    for line in text.splitlines():
        key, _, value = line.strip().partition(":")
        key, value = key.strip(), value.strip()
        if key == "hca_id":
            hca = value
        elif key == "vendor_part_id" and hca:
            types.append((hca, "MT" + value))
        elif key == "port" and hca and value.isdigit():
            blocks.append({"hca": hca, "port": int(value)})
        elif key in ("state", "link_layer", "active_speed") and blocks and blocks[-1]["hca"] == hca:
            blocks[-1]["rate" if key == "active_speed" else key] = value
    return _collect(blocks, types, text, "ibv_devinfo")


@never_raises(lambda why: IbDevices(reason=why))
def parse_ibstatus(text: str) -> IbDevices:
    """Parse ``ibstatus``: "Infiniband device 'mlx5_0' port 1 status:" then state/phys state/rate/link_layer."""
    blocks = []
    keys = {"state": "state", "phys state": "phys", "rate": "rate", "link_layer": "link_layer"}
    for line in text.splitlines():
        m = re.match(r"\s*Infiniband device '([^']+)' port (\d+) status:", line)
        if m:
            blocks.append({"hca": m.group(1), "port": int(m.group(2))})
            continue
        key, _, value = line.strip().partition(":")
        if key.strip() in keys and blocks:
            blocks[-1][keys[key.strip()]] = value.strip()
    return _collect(blocks, [], text, "ibstatus")


@dataclass(frozen=True)
class HcaStatus:
    """Whether one required HCA exists and has an Active port, and its link layer."""

    name: str
    present: bool
    active: bool
    link_layer: Optional[str] = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.present and self.active


def nccl_ib_hca_names(value: str, available: Iterable[str]) -> "list[str]":
    """Expand an NCCL_IB_HCA value ("mlx5_0,mlx5_1:1", "=mlx5_0", "^mlx5_2", "mlx5") into names to require.

    As in NCCL: a plain entry is a name prefix, "=" makes every entry exact,
    "^" excludes (then the HCAs left are required); ":port" suffixes are kept.
    """
    value, available = (value or "").strip(), list(available)
    exclude, exact = value.startswith("^"), False
    value = value.lstrip("^")
    if value.startswith("="):
        exact, value = True, value[1:]
    entries = [e.strip() for e in value.split(",") if e.strip()]
    def matches(hca, entry):
        name = entry.split(":")[0]
        return hca == name if exact else hca.startswith(name)
    if exclude:
        return [h for h in available if not any(matches(h, e) for e in entries)]
    names = []
    for entry in entries:
        hits = [h + entry[len(entry.split(":")[0]):] for h in available if matches(h, entry)]
        names.extend(hits or [entry])  # keep a missing one so it is reported absent
    return list(dict.fromkeys(names))


def hca_status(parsed: IbDevices, required: Optional[Iterable[str]] = None) -> "list[HcaStatus]":
    """Per required HCA ("mlx5_0" or "mlx5_0:1"; default: every HCA found): present, active, link layer."""
    wanted = list(required) if required is not None else parsed.hcas
    result = []
    for entry in wanted:
        name, _, port = entry.partition(":")
        ports = [p for p in parsed.ports_of(name) if not port or str(p.port) == port]
        if not ports:
            present = name in parsed.hcas and not port
            detail = "no port listed for %s" % entry if present else "%s not found (have: %s)" % (
                entry, ", ".join(parsed.hcas) or "none")
            result.append(HcaStatus(entry, present, False, detail=detail))
            continue
        up = [p for p in ports if p.active]
        best = (up or ports)[0]
        detail = "port %d %s/%s, %s" % (best.port, best.state, best.physical_state or "?", best.link_layer or "?")
        result.append(HcaStatus(entry, True, bool(up), best.link_layer, detail))
    return result


@dataclass(frozen=True)
class Gid:
    """One row of ``show_gids``: RoCE version v1/v2, IPv4 set for IPv4-mapped GIDs."""

    hca: str
    port: int
    index: int
    gid: str
    ipv4: Optional[str]
    version: str
    netdev: Optional[str] = None


@dataclass(frozen=True)
class GidTable:
    gids: tuple = ()
    reason: str = ""


@never_raises(lambda why: GidTable(reason=why))
def parse_show_gids(text: str) -> GidTable:
    """Parse ``show_gids``: DEV PORT INDEX GID [IPv4] VER DEV rows; header, prompt and trailer are skipped."""
    rows = []
    for line in text.splitlines():
        t = line.split()
        if len(t) not in (6, 7) or not (t[1].isdigit() and t[2].isdigit()) or ":" not in t[3]:
            continue
        ipv4 = t[4] if len(t) == 7 else None
        version = t[-2] if len(t) == 7 else t[4]
        rows.append(Gid(t[0], int(t[1]), int(t[2]), t[3], ipv4, version, t[-1]))
    if not rows:
        return GidTable(reason=command_missing(text) or "no GID rows in the show_gids output")
    return GidTable(gids=tuple(rows))


ZERO_GID = ":".join(["0000"] * 8)


def gids_command(hcas: Iterable[str]) -> str:
    """``show_gids`` when installed, else the same columns read from sysfs for HCAS (one shell command).

    Each sysfs row is DEV PORT INDEX GID [IPv4] VER NETDEV, as ``show_gids``
    prints it, so ``parse_show_gids`` reads both; the IPv4 comes from an
    IPv4-mapped GID (::ffff:a.b.c.d).
    """
    names = " ".join(h for h in hcas if re.match(r"^[A-Za-z0-9_]+$", h))
    return (
        "if command -v show_gids >/dev/null 2>&1; then show_gids; exit; fi; "
        f"for d in {names}; do for p in /sys/class/infiniband/$d/ports/*; do [ -d \"$p/gids\" ] || continue; "
        "for g in \"$p\"/gids/*; do i=${g##*/}; gid=$(cat \"$g\" 2>/dev/null) || continue; "
        f"[ \"$gid\" = {ZERO_GID} ] && continue; "
        "t=$(cat \"$p/gid_attrs/types/$i\" 2>/dev/null); n=$(cat \"$p/gid_attrs/ndevs/$i\" 2>/dev/null); "
        "v=v1; case $t in *v2*) v=v2 ;; esac; ip=''; "
        "case $gid in 0000:0000:0000:0000:0000:ffff:*) h=${gid#0000:0000:0000:0000:0000:ffff:}; h=${h/:/}; "
        "ip=$(printf '%d.%d.%d.%d' 0x${h:0:2} 0x${h:2:2} 0x${h:4:2} 0x${h:6:2}) ;; esac; "
        "printf '%s %s %s %s %s %s %s\\n' \"$d\" \"${p##*/}\" \"$i\" \"$gid\" \"$ip\" \"$v\" \"${n:-?}\"; "
        "done; done; done"
    )


def roce_v2_gid_index(table: GidTable, hca: str, port: int = 1) -> Optional[int]:
    """The lowest GID index of HCA:port that is RoCE v2 with an IPv4 address, or None."""
    hits = [g.index for g in table.gids
            if g.hca == hca and g.port == port and g.version.lower() == "v2" and g.ipv4]
    return min(hits) if hits else None


def common_roce_v2_gid_index(table: GidTable, hcas: Optional[Iterable[str]] = None) -> Optional[int]:
    """The RoCE v2 IPv4 GID index shared by every HCA (NCCL_IB_GID_INDEX is one number), or None."""
    names = list(hcas) if hcas is not None else list(dict.fromkeys(g.hca for g in table.gids))
    found = {roce_v2_gid_index(table, h) for h in names}
    return found.pop() if len(found) == 1 and None not in found else None


@dataclass(frozen=True)
class NetdevLink:
    hca: str
    port: int
    netdev: str
    up: bool


@dataclass(frozen=True)
class NetdevMap:
    links: tuple = ()
    reason: str = ""

    def netdev_of(self, hca: str) -> Optional[str]:
        return next((link.netdev for link in self.links if link.hca == hca), None)


@never_raises(lambda why: NetdevMap(reason=why))
def parse_ibdev2netdev(text: str) -> NetdevMap:
    """Parse ``ibdev2netdev``: "mlx5_0 port 1 ==> ens1f0 (Up)" (any spacing; trailing comments ignored)."""
    links = []
    for m in re.finditer(r"^\s*(\S+)\s+port\s+(\d+)\s+==>\s+(\S+)\s+\((Up|Down)\)", text, re.MULTILINE):
        links.append(NetdevLink(m.group(1), int(m.group(2)), m.group(3), m.group(4) == "Up"))
    if not links:
        return NetdevMap(reason=command_missing(text) or "no 'HCA port N ==> netdev' lines")
    return NetdevMap(links=tuple(links))


IBSTAT = Fact("ib.ibstat", IBSTAT_COMMAND, parse_ibstat)
IBV_DEVINFO = Fact("ib.ibv_devinfo", IBV_DEVINFO_COMMAND, parse_ibv_devinfo)
IBSTATUS = Fact("ib.ibstatus", IBSTATUS_COMMAND, parse_ibstatus)
SHOW_GIDS = Fact("ib.show_gids", SHOW_GIDS_COMMAND, parse_show_gids)
IBDEV2NETDEV = Fact("ib.ibdev2netdev", IBDEV2NETDEV_COMMAND, parse_ibdev2netdev)
