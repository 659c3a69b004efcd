"""Preflight: judge each node's probe outputs, then the nodes against each other.

The probes (``PROBES``) run on the nodes as one read-only step; this module is
pure: it takes their outputs, parses them with ``llmfab.facts`` and says pass,
warn or fail with the evidence and the fix in one sentence (../shared/NOTES.md
§2 is the list of what breaks multi-node deployments and what catches it).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Optional

from . import cuda
from .facts import fabricmanager, gpu, ib, net, system
from .facts.base import Fact

PASS, WARN, FAIL = "pass", "warn", "fail"
MIN_SHM_GB = 64
MAX_CLOCK_SKEW_S = 2.0
IMAGE_ID = "{{.Id}}"


@dataclass(frozen=True)
class Expect:
    """What a node should look like: built from the config and the deployment."""

    address: str
    gpus: int
    gpu_model: str
    driver: str
    hcas: tuple[str, ...]
    gid_index: Optional[int]
    interface: str
    head_address: str
    is_head: bool
    nofile: int
    model_path: str
    image: str
    image_archive: str
    min_driver: Optional[str]
    ports: tuple[int, ...]
    # The CUDA the engine image is built for (the rule is llmfab/cuda.py).
    image_cuda: Optional[str] = None
    # Bytes the model needs on disk (model.size_gb or llmfab/models/); 0: unknown.
    model_bytes: int = 0
    # nvidia.fabricmanager: false means nobody should run a fabric manager here.
    fabricmanager: bool = True
    # Port ranges no one but the cluster's nodes may reach (Ray, dist-init store, sshd).
    guarded: tuple[tuple[int, int], ...] = ()
    # Whether llmfab keeps the firewall table that filters them (engine.firewall).
    firewall: bool = True


@dataclass
class Check:
    name: str
    status: str
    evidence: str
    fix: str = ""


@dataclass
class NodeReport:
    node: str
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, evidence: str, fix: str, warn: bool = False) -> None:
        self.checks.append(Check(name, PASS if ok else (WARN if warn else FAIL), evidence, "" if ok else fix))


# The probes that are declared facts, by the name the check step reports them
# under: the judges read facts[gpu.QUERY], parsed by the fact's own parser.
# "gids" runs show_gids for the configured HCAs only (ib.gids_command).
FACTS: dict[str, Fact] = {
    "gpu": gpu.QUERY, "fm_active": fabricmanager.IS_ACTIVE, "smi_q": gpu.QUERY_ALL,
    "fm_version": fabricmanager.PACKAGE, "lsmod": system.LSMOD, "modules_load": system.MODULES_LOAD,
    "ibstat": ib.IBSTAT, "gids": ib.SHOW_GIDS, "shm": system.SHM, "nofile": system.NOFILE, "clock": system.CLOCK,
}
_PROBE_OF = {fact.name: name for name, fact in FACTS.items()}


class Facts:
    """One node's probe outputs, read through their facts: ``facts[gpu.QUERY]`` is the parsed value."""

    def __init__(self, out: dict[str, tuple[int, str]]):
        self.out = out

    def __getitem__(self, fact: Fact):
        return fact.process(_text(self.out, _PROBE_OF[fact.name]))


def probes(expect: Expect) -> dict[str, str]:
    """Probe name -> shell command, for one node."""
    model = expect.model_path
    cmds = {
        "gpu": gpu.QUERY.command,
        "fm_active": fabricmanager.IS_ACTIVE.command,
        "smi_q": gpu.QUERY_ALL.command,
        "fm_log": fabricmanager.STATUS_COMMAND + " 2>&1 || true",
        "fm_version": fabricmanager.PACKAGE.command,
        "lsmod": system.LSMOD.command,
        "modules_load": system.MODULES_LOAD.command,
        "ibstat": ib.IBSTAT.command,
        "gids": ib.gids_command([h.split(":")[0] for h in expect.hcas]),
        "addr": net.addr_command(expect.interface),
        "link": net.link_command(expect.interface),
        "route": f"ip -o route get {expect.head_address}",
        "shm": system.SHM.command,
        "nofile": system.NOFILE.command,
        "disk": f"p={_q(model)}; while [ ! -e \"$p\" ]; do p=$(dirname \"$p\"); done; df -k --output=avail \"$p\" | tail -n 1",
        "model_files": f"find {_q(model)} -maxdepth 1 -type f -printf '%f\\t%s\\n' 2>/dev/null || true",
        "model_index": f"cat {_q(model + '/model.safetensors.index.json')}",
        "image": f"docker image inspect -f '{IMAGE_ID}' {_q(expect.image)}",
        # In a bundle, deploy loads the image from the bundle's archive.
        "image_archive": f"[ -n \"${{LLMFAB_ARTIFACTS:-}}\" ] && ls \"$LLMFAB_ARTIFACTS\"/images/{_q(expect.image_archive)}",
        "ours": "docker ps -q --filter label=llmfab.engine 2>/dev/null || true",
        "listening": "ss -Hltn 2>/dev/null || netstat -ltn 2>/dev/null",
        "firewall": "nft list table inet llmfab",
        "clock": system.CLOCK.command,
    }
    return cmds


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def judge_node(node: str, expect: Expect, out: dict[str, tuple[int, str]]) -> NodeReport:
    """All per-node checks from the probe outputs (name -> (exit status, text))."""
    r = NodeReport(node)
    for check in (_gpu, _fabric_manager, _fabric_state, _peermem, _hcas, _interface, _shm, _nofile, _disk, _model,
                  _image, _ports, _exposure):
        check(r, expect, out)
    return r


def _text(out, name) -> str:
    return out.get(name, (1, ""))[1]


def _rc(out, name) -> int:
    return out.get(name, (1, ""))[0]


def _gpu(r: NodeReport, e: Expect, out) -> None:
    inv = Facts(out)[gpu.QUERY]
    if not inv.ok:
        why = inv.failure.cause if inv.failure else inv.reason
        fix = inv.failure.fix if inv.failure else "install the NVIDIA driver (fab prep)"
        r.add("gpus", False, f"nvidia-smi: {why}", fix)
        r.add("driver", False, "no driver answered", fix)
        return
    names = ", ".join(sorted(inv.names))
    r.add("gpus", inv.count == e.gpus and all(e.gpu_model.lower() in n.lower() for n in inv.names),
          f"{inv.count} x {names}", f"expected {e.gpus} x {e.gpu_model}: check the config's gpu section or the node")
    r.add("driver", inv.driver_version == e.driver, f"driver {inv.driver_version}",
          f"install driver {e.driver} (fab prep --upgrade-driver) so every node runs the configured driver")
    if e.image_cuda and inv.driver_version:
        _image_cuda(r, e.image_cuda, inv.driver_version)


def _image_cuda(r: NodeReport, image_cuda: str, driver: str) -> None:
    """The engine image's CUDA against the host driver, by NVIDIA's compatibility rule (llmfab/cuda.py)."""
    verdict, evidence = cuda.verdict(driver, image_cuda)
    if verdict == "too-old":
        r.add("image CUDA", False, evidence,
              f"upgrade the driver to branch {cuda.min_driver_branch(image_cuda)} or newer "
              "(nvidia.driver_version, fab prep --upgrade-driver), or use an engine version built for CUDA "
              f"{cuda.driver_cuda(driver)}; otherwise the container fails with error 804 / cuda>= unsatisfied")
    else:
        r.add("image CUDA", verdict == "ok", evidence,
              "nothing needed for engines' compiled kernels; a driver whose own CUDA is the image's avoids "
              "the minor-version limits (" + cuda.SOURCE + ")", warn=True)


def _version(v: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", v))


def _fabric_manager(r: NodeReport, e: Expect, out) -> None:
    if not e.fabricmanager:
        r.add("fabric manager", True, "not managed here (nvidia.fabricmanager: false)", "")
        return
    facts = Facts(out)
    state, fm = facts[fabricmanager.IS_ACTIVE], facts[fabricmanager.PACKAGE]
    evidence = f"nvidia-fabricmanager {state.state or 'unknown'}, package {fm or 'not installed'}"
    if fabricmanager.nothing_to_do(_text(out, "fm_log")):
        waiting = [f for f in facts[gpu.QUERY_ALL].fabric if f.verdict == "pending"]
        evidence += "; it found no NVSwitch to manage (NV_WARN_NOTHING_TO_DO)" + (
            f", yet {len(waiting)} GPU(s) wait for fabric registration" if waiting
            else ": no NVSwitch here; set nvidia.fabricmanager: false")
        r.add("fabric manager", not waiting, evidence,
              "on NVLink 5 systems (B200 and later) install and start NVLSM with the fabric manager; "
              "GPUs stay 'In Progress' without it")
        return
    ok = state.active and fm is not None and fabricmanager.fm_matches_driver(fm, e.driver)
    r.add("fabric manager", ok, evidence,
          f"install nvidia-fabricmanager matching driver {e.driver} exactly and start it (fab prep); "
          "otherwise CUDA reports error 802 'system not yet initialized'")


def _fabric_state(r: NodeReport, e: Expect, out) -> None:
    """Every GPU's NVLink fabric registration (nvidia-smi -q): Completed/Success, or no fabric at all."""
    smi = Facts(out)[gpu.QUERY_ALL]
    if smi.failure or (smi.reason and not smi.fabric):
        r.add("NVLink fabric", False, f"nvidia-smi -q: {smi.failure.cause if smi.failure else smi.reason}",
              "read the fabric state by hand: nvidia-smi -q | grep -A3 Fabric", warn=True)
        return
    if not smi.fabric or all(f.verdict == "not-applicable" for f in smi.fabric):
        r.add("NVLink fabric", True, "no NVLink fabric to register (no Fabric block, or N/A)", "")
        return
    bad = smi.unhealthy_fabric
    shown = "; ".join(f"{f.bus_id or 'GPU'}: {f.state}/{f.status}" for f in bad[:3]) + ("; ..." if len(bad) > 3 else "")
    fix = ("set nvidia.fabricmanager: true and run fab prep: this node has an NVSwitch fabric"
           if not e.fabricmanager else
           "start nvidia-fabricmanager of exactly the driver's version and wait for State Completed, Status "
           "Success; a Completed state with an error status needs a node reboot (or the NVSwitch checked)")
    r.add("NVLink fabric", not bad,
          f"{len(smi.fabric) - len(bad)}/{len(smi.fabric)} GPUs Completed/Success" + (f"; {shown}" if bad else ""),
          fix + ": CUDA fails with error 802 until then")


def _peermem(r: NodeReport, e: Expect, out) -> None:
    facts = Facts(out)
    loaded, persisted = "nvidia_peermem" in facts[system.LSMOD], "nvidia_peermem" in facts[system.MODULES_LOAD]
    r.add("nvidia_peermem", loaded and persisted,
          f"{'loaded' if loaded else 'not loaded'}, {'persisted' if persisted else 'not in /etc/modules-load.d'}",
          "modprobe nvidia-peermem and list it in /etc/modules-load.d (fab prep) or GPUDirect RDMA is silently off")


def _hcas(r: NodeReport, e: Expect, out) -> None:
    facts = Facts(out)
    parsed, gids = facts[ib.IBSTAT], facts[ib.SHOW_GIDS]
    for hca in ib.hca_status(parsed, [h.split(":")[0] for h in e.hcas]):
        r.add(f"HCA {hca.name}", hca.ok, hca.detail or ("Active" if hca.ok else "not active"),
              f"bring {hca.name} up (ibstat shows its port state), or drop it from network.nccl_ib_hca")
        if hca.ok and (hca.link_layer or "").lower() == "ethernet":
            _gid_index(r, e, hca.name, gids)


def _gid_index(r: NodeReport, e: Expect, hca: str, gids: "ib.GidTable") -> None:
    """On RoCE, NCCL_IB_GID_INDEX must be the HCA's RoCE v2 IPv4 GID (show_gids or sysfs); not always 3."""
    port = next((int(h.split(":")[1]) for h in e.hcas if h.split(":")[0] == hca and ":" in h), 1)
    found = ib.roce_v2_gid_index(gids, hca, port)
    name = f"GID index {hca}"
    if found is None:
        why = gids.reason or f"no RoCE v2 GID with an IPv4 address on {hca} port {port}"
        r.add(name, False, f"configured {e.gid_index if e.gid_index is not None else 'none'}; {why}",
              f"give {hca}'s netdev an IPv4 address, then set network.nccl_ib_gid_index to its RoCE v2 "
              "index (show_gids)", warn=True)
        return
    if e.gid_index is None:
        r.add(name, False, f"RoCE link layer and no network.nccl_ib_gid_index; show_gids: RoCE v2 IPv4 is {found}",
              f"set network.nccl_ib_gid_index: {found}", warn=True)
        return
    r.add(name, e.gid_index == found, f"configured {e.gid_index}, {hca} port {port} RoCE v2 IPv4 GID is {found}",
          f"set network.nccl_ib_gid_index: {found} (NCCL otherwise uses a GID the switch drops: a hang after init)")


def _interface(r: NodeReport, e: Expect, out) -> None:
    link, addrs = net.parse_ip_link(_text(out, "link")), net.parse_ip_addr(_text(out, "addr"))
    ok, why = net.interface_ready(link, addrs)
    r.add(f"interface {e.interface}", ok, why,
          "use the NIC the nodes share (network.interface) and bring it up with an IPv4 address: Gloo/NCCL bind to it")
    if not e.is_head:
        route = _text(out, "route")
        via = re.search(r"\bdev (\S+)", route)
        r.add("route to head", _rc(out, "route") == 0 and via is not None and via.group(1) == e.interface,
              route.strip() or "no route", f"the head {e.head_address} must be reached through {e.interface}")


def _shm(r: NodeReport, e: Expect, out) -> None:
    kb = Facts(out)[system.SHM]
    r.add("/dev/shm", kb is not None and kb >= MIN_SHM_GB * 1024 * 1024, f"{(kb or 0) / 1024 / 1024:.0f} GB",
          "containers use --ipc=host; make /dev/shm large (NCCL shm transport)", warn=True)


def _nofile(r: NodeReport, e: Expect, out) -> None:
    best = Facts(out)[system.NOFILE]
    r.add("nofile limit", best >= e.nofile, f"hard nofile {best or 'default'}",
          f"raise nofile to {e.nofile} (fab prep writes /etc/security/limits.d/90-llmfab-nofile.conf)")


def _disk(r: NodeReport, e: Expect, out) -> None:
    """Free space for what the model still has to download: its size minus what is on disk."""
    free = _int(_text(out, "disk"))
    files = _model_files(out)
    index = _index(out)
    need, basis = _model_size(e, index)
    complete = bool(index and index.get("shards")) and all(files.get(s, 0) > 0 for s in index["shards"])
    have = sum(files.values())
    missing = 0 if complete else max(0, need - have)
    if free is None:
        r.add("free disk", False, f"df printed no free space for {e.model_path}", "check the model path's file system")
        return
    free_b = free * 1024
    evidence = f"{_gb(free_b)} free at {e.model_path}; " + (
        "every shard present" if complete else f"{_gb(missing)} still to download ({basis} {_gb(need)}, {_gb(have)} on disk)")
    if not need and not complete:
        r.add("free disk", False, evidence.split(";")[0] + "; the model's size is unknown",
              "set model.size_gb so the free space can be checked", warn=True)
        return
    r.add("free disk", free_b >= missing, evidence,
          f"free {_gb(missing - free_b)} more at {e.model_path}, or put the model on a larger local NVMe file system")


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _model_files(out) -> dict[str, int]:
    files = {}
    for line in _text(out, "model_files").splitlines():
        name, _, size = line.partition("\t")
        if size.strip().isdigit():
            files[name] = int(size)
    return files


def _index(out) -> Optional[dict]:
    """{'shards': [...], 'total_size': bytes or None} from model.safetensors.index.json, or None."""
    try:
        index = json.loads(_text(out, "model_index"))
        shards = sorted(set(index.get("weight_map", {}).values()))
        total = index.get("metadata", {}).get("total_size")
    except (ValueError, AttributeError):
        return None
    return {"shards": shards, "total_size": int(total) if isinstance(total, (int, float)) else None}


def _model_size(e: Expect, index: Optional[dict]) -> tuple[int, str]:
    """(bytes the model needs, where that figure comes from)."""
    if index and index["total_size"]:
        return index["total_size"], "index total_size"
    return e.model_bytes, "model size"


def _model(r: NodeReport, e: Expect, out) -> None:
    files = dict(line.split("\t", 1) for line in _text(out, "model_files").splitlines() if "\t" in line)
    try:
        index = json.loads(_text(out, "model_index"))
        shards = sorted(set(index.get("weight_map", {}).values()))
    except (ValueError, AttributeError):
        r.add("model files", False, f"no readable model.safetensors.index.json in {e.model_path}",
              "download the model to the same path on every node (fab model)")
        return
    missing = [s for s in shards if s not in files]
    empty = [s for s in shards if s in files and files[s].strip() == "0"]
    r.add("model files", not missing and not empty, f"{len(shards) - len(missing)}/{len(shards)} shards present"
          + (f"; missing {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}" if missing else ""),
          "complete the download (fab model resumes it) before deploying")


def _image(r: NodeReport, e: Expect, out) -> None:
    image_id = _text(out, "image").strip()
    ok = _rc(out, "image") == 0 and image_id.startswith("sha256:")
    if not ok and _rc(out, "image_archive") == 0:
        r.add("engine image", False, f"{e.image} not loaded yet; the bundle holds images/{e.image_archive}",
              "nothing to do: deploy loads it from the bundle", warn=True)
        return
    r.add("engine image", ok, image_id[:19] if ok else f"{e.image} not present",
          f"load or pull {e.image} on this node (fab deploy does; offline: the bundle's images/)")


def _ports(r: NodeReport, e: Expect, out) -> None:
    ours = bool(_text(out, "ours").strip())
    # Only listeners that would collide: on all addresses or on this node's own.
    listening = {int(port) for host, port in re.findall(r"(\S+):(\d+)\s", _text(out, "listening"))
                 if host.strip("[]") in ("0.0.0.0", "*", "::", e.address)}
    busy = [p for p in e.ports if p in listening]
    r.add("ports", not busy or ours, f"in use: {', '.join(map(str, busy))}" if busy else f"free: {', '.join(map(str, e.ports))}",
          "stop what holds these ports or change engine.port" + ("" if not busy else ""))


def _exposure(r: NodeReport, e: Expect, out) -> None:
    """Guarded ports that answer beyond this host must be filtered by llmfab's table."""
    listeners = re.findall(r"(\S+):(\d+)\s", _text(out, "listening"))
    exposed = sorted({int(port) for host, port in listeners
                      if not _loopback(host.strip("[]")) and _guarded(e, int(port))})
    if not exposed:
        r.add("exposure", True, "no unauthenticated engine port answers beyond this host", "")
        return
    shown = ", ".join(map(str, exposed))
    rules = _text(out, "firewall") if _rc(out, "firewall") == 0 else ""
    ranges = re.search(r"tcp dport \{ ([^}]*) \} drop", rules)
    covered = [(int(a), int(b or a)) for a, b in re.findall(r"(\d+)(?:-(\d+))?", ranges.group(1))] if ranges else []
    open_ = [p for p in exposed if not any(a <= p <= b for a, b in covered)]
    if not open_:
        r.add("exposure", True, f"{shown} answer on every address, llmfab's firewall lets only the cluster in", "")
        return
    fix = ("re-run fab deploy (engine.firewall: true loads llmfab's rules), or stop the engine"
           if e.firewall else "engine.firewall is false: filter these ports to the cluster's nodes yourself")
    r.add("exposure", False, f"{', '.join(map(str, open_))} answer beyond this host with no llmfab firewall rule "
          "(unauthenticated: code execution for anyone who reaches them)", fix, warn=not e.firewall)


def _loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost")


def _guarded(e: Expect, port: int) -> bool:
    return any(a <= port <= b for a, b in e.guarded)


def _int(text: str) -> Optional[int]:
    m = re.search(r"\d+", text)
    return int(m.group()) if m else None


def judge_cluster(expects: dict[str, Expect], outs: dict[str, dict[str, tuple[int, str]]],
                  collected_at: dict[str, float]) -> list[Check]:
    """Cross-node consistency: one driver, one image, clocks close to the head's."""
    checks: list[Check] = []
    drivers = {n: Facts(o)[gpu.QUERY].driver_version for n, o in outs.items()}
    same(checks, "driver version", drivers, "install the same driver on every node")
    images = {n: (_text(o, "image").strip() if _rc(o, "image") == 0 else None) for n, o in outs.items()}
    same(checks, "engine image ID", images, "load the same image (same digest) on every node: Ray refuses mixed versions")
    head = next((n for n, e in expects.items() if e.is_head), None)
    clocks = {n: Facts(o)[system.CLOCK] for n, o in outs.items()}
    if head and clocks.get(head) is not None:
        skew = {n: abs((c - collected_at[n]) - (clocks[head] - collected_at[head]))
                for n, c in clocks.items() if c is not None}
        worst = max(skew.values(), default=0.0)
        checks.append(Check("clock skew", PASS if worst <= MAX_CLOCK_SKEW_S else WARN, f"{worst:.2f}s at most",
                            "" if worst <= MAX_CLOCK_SKEW_S else "run chrony/NTP on every node"))
    return checks


def same(checks: list[Check], name: str, values: dict[str, Optional[str]], fix: str) -> None:
    distinct = {v for v in values.values()}
    ok = len(distinct) == 1 and None not in distinct
    evidence = "; ".join(f"{n}: {(v or 'none')[:24]}" for n, v in values.items())
    checks.append(Check(name, PASS if ok else FAIL, evidence, "" if ok else fix))


def as_json(nodes: list[NodeReport], cluster: list[Check], unreachable: dict[str, str] | None = None) -> str:
    """The report as JSON; nodes that could not be checked are listed with why, and count as failed."""
    unreachable = unreachable or {}
    return json.dumps({"nodes": {n.node: [asdict(c) for c in n.checks] for n in nodes},
                       "cluster": [asdict(c) for c in cluster],
                       "unreachable": unreachable,
                       "failed": failed(nodes, cluster) or bool(unreachable)}, indent=2)


def failed(nodes: list[NodeReport], cluster: list[Check]) -> bool:
    return any(c.status == FAIL for n in nodes for c in n.checks) or any(c.status == FAIL for c in cluster)


def expect_from_json(text: str) -> Expect:
    raw = json.loads(text)
    return Expect(**{k: tuple(tuple(i) if isinstance(i, list) else i for i in v) if isinstance(v, list) else v
                     for k, v in raw.items()})


def report_text(node: NodeReport) -> str:
    """A plain-text table of one node's checks (run.sh prints it; no rich on the node)."""
    lines = [f"{'check':<20} {'result':<6} evidence / fix"]
    for c in node.checks:
        lines.append(f"{c.name:<20} {c.status:<6} {c.evidence}")
        if c.fix:
            lines.append(f"{'':<27} fix: {c.fix}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """`python3 -m llmfab.checks EXPECT.json NODE < records`: judge one node from its probe records."""
    import base64
    import sys

    expect = expect_from_json(open(argv[0]).read())
    outs: dict[str, tuple[int, str]] = {}
    for line in sys.stdin:
        parts = line.rstrip("\n").split("\t")
        if parts[:2] == ["@@llmfab", "fact"] and len(parts) >= 6:
            outs[parts[3]] = (int(parts[4]), base64.b64decode(parts[5]).decode(errors="replace"))
    report = judge_node(argv[1], expect, outs)
    # Inside a bundle the fixes name run.sh's commands, not fab's.
    print(re.sub(r"\bfab (prep|deploy|model)\b", r"run.sh \1", report_text(report)))
    bad = any(c.status == FAIL for c in report.checks)
    counts = {s: sum(c.status == s for c in report.checks) for s in (PASS, WARN, FAIL)}
    print(f"{argv[1]}: pass={counts[PASS]} warn={counts[WARN]} fail={counts[FAIL]}")
    return 1 if bad else 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
