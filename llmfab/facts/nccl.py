"""NCCL facts: the all-reduce check's verdict and figures, and what NCCL_DEBUG=INFO says it used.

``parse_allreduce`` reads llmfab/scripts/allreduce_check.py's lines (ALLREDUCE,
ALLREDUCE_INFO, ALLREDUCE_OK, ALLREDUCE_FAIL) out of any surrounding noise;
``parse_nccl_debug`` reads NCCL's own INFO lines: version, network plugin,
IB devices, transports per channel, GPUDirect RDMA. Together they catch the
quiet failures: NCCL falling back to TCP sockets, or RDMA without GDR.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from llmfab.facts.base import Fact, never_raises

ALLREDUCE_SCRIPT = "llmfab/scripts/allreduce_check.py"
# What runs on each node (values filled in by the caller); rank 0's node prints the figures.
ALLREDUCE_COMMAND = ("torchrun --nnodes={nnodes} --node-rank={node_rank} --nproc-per-node={gpus} "
                     "--master-addr={master_addr} --master-port={master_port} "
                     "allreduce_check.py --min-bytes 1M --max-bytes 1G")

_KV = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class AllreduceSample:
    """One message size: mean time per all-reduce (slowest rank) and bandwidths in GB/s (1e9)."""

    size_bytes: int
    time_us: float
    algbw_GBps: float
    busbw_GBps: float


@dataclass(frozen=True)
class AllreduceFailure:
    rank: str
    phase: str
    reason: str


@dataclass(frozen=True)
class AllreduceReport:
    """The check's result. ``ok`` needs ALLREDUCE_OK and no ALLREDUCE_FAIL from any rank."""

    samples: tuple = ()
    world: Optional[int] = None
    completed: bool = False
    failures: tuple = ()
    info: tuple = ()  # (key, value) pairs of the ALLREDUCE_INFO line
    ranks: tuple = ()  # (rank, host) of every ALLREDUCE_RANK line: who got through init
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.completed and not self.failures and bool(self.samples)

    @property
    def peak_busbw_GBps(self) -> Optional[float]:
        return max((s.busbw_GBps for s in self.samples), default=None)

    def busbw_at(self, size_bytes: int) -> Optional[float]:
        return next((s.busbw_GBps for s in self.samples if s.size_bytes == size_bytes), None)

    def info_value(self, key: str) -> Optional[str]:
        return dict(self.info).get(key)


def _sample(fields: dict) -> Optional[AllreduceSample]:
    try:
        return AllreduceSample(int(fields["size_bytes"]), float(fields["time_us"]),
                               float(fields["algbw_GBps"]), float(fields["busbw_GBps"]))
    except (KeyError, ValueError):
        return None


@never_raises(lambda why: AllreduceReport(reason=why))
def parse_allreduce(text: str) -> AllreduceReport:
    """Parse the all-reduce check's output (one rank's or several nodes' logs concatenated)."""
    samples, failures, info, world, completed, ranks = {}, [], (), None, False, []
    for m in re.finditer(r"ALLREDUCE(_INFO|_OK|_FAIL|_RANK)?\b([^\n]*)", text):
        kind, rest = m.group(1) or "", m.group(2)
        if kind == "_FAIL":
            head, _, reason = rest.partition("reason=")
            fields = dict(_KV.findall(head))
            failures.append(AllreduceFailure(fields.get("rank", "?"), fields.get("phase", "?"), reason.strip()))
        elif kind == "_OK":
            fields = dict(_KV.findall(rest))
            completed = True
            world = int(fields["world"]) if fields.get("world", "").isdigit() else world
        elif kind == "_INFO":
            info = tuple(_KV.findall(rest))
            world = world or (int(dict(info)["world"]) if dict(info).get("world", "").isdigit() else None)
        elif kind == "_RANK":
            fields = dict(_KV.findall(rest))
            ranks.append((fields.get("rank", "?"), fields.get("host", "?")))
        elif kind == "":
            s = _sample(dict(_KV.findall(rest)))
            if s:
                samples[s.size_bytes] = s
    if not (samples or failures or completed or info):
        return AllreduceReport(reason="no ALLREDUCE lines: the check did not run or printed nothing")
    return AllreduceReport(samples=tuple(samples[k] for k in sorted(samples)), world=world,
                           completed=completed, failures=tuple(failures), info=info, ranks=tuple(ranks))


@dataclass(frozen=True)
class NcclDebug:
    """What NCCL_DEBUG=INFO shows about the communicator it built."""

    version: Optional[str] = None
    network: Optional[str] = None  # "IB" or "Socket" ("Using network X")
    ib_devices: tuple = ()  # "mlx5_0:1/IB", "mlx5_0:1/RoCE"
    socket_ifaces: tuple = ()  # "eth0:10.0.0.1"
    transports: tuple = ()  # "P2P/CUMEM", "NET/IB/0/GDRDMA", "NET/Socket/0" (distinct, first seen first)
    nnodes: Optional[int] = None
    gdr_rdma: bool = False  # a channel runs "via NET/IB/N/GDRDMA" (GPUDirect RDMA in use)
    warnings: tuple = ()  # "NCCL WARN" lines
    reason: str = ""

    @property
    def uses_ib_between_nodes(self) -> bool:
        return any(t.startswith("NET/IB") for t in self.transports)

    @property
    def socket_fallback(self) -> bool:
        """True when the communicator spans nodes but moves data over TCP sockets."""
        return (self.nnodes or 0) > 1 and any(t.startswith("NET/Socket") for t in self.transports)


@never_raises(lambda why: NcclDebug(reason=why))
def parse_nccl_debug(text: str) -> NcclDebug:
    """Parse NCCL_DEBUG=INFO lines from any log (engine, torchrun, nccl-tests)."""
    version = re.search(r"NCCL INFO NCCL version (\d+\.\d+\.\d+)", text)
    network = re.findall(r"NCCL INFO Using network (\w+)", text)
    ib = re.search(r"NCCL INFO NET/IB : Using ((?:\[\d+\]\S+\s*)+)", text)
    sock = re.search(r"NCCL INFO NET/Socket : Using ((?:\[\d+\]\S+\s*)+)", text)
    transports = re.findall(r"\bvia (\S+)", text)
    nnodes = [int(n) for n in re.findall(r"\bnNodes (\d+)", text)]
    warnings = [line.strip() for line in text.splitlines() if "NCCL WARN" in line]
    if not (version or network or transports or warnings):
        return NcclDebug(reason="no NCCL INFO/WARN lines (NCCL_DEBUG unset?)")

    def devices(m):
        return tuple(re.sub(r"^\[\d+\]|<\d+>$", "", d) for d in m.group(1).split()) if m else ()
    return NcclDebug(version=version.group(1) if version else None,
                     network=network[-1] if network else None,
                     ib_devices=devices(ib), socket_ifaces=devices(sock),
                     transports=tuple(dict.fromkeys(transports)),
                     nnodes=max(nnodes) if nnodes else None,
                     gdr_rdma=any("GDRDMA" in t for t in transports), warnings=tuple(warnings))


ALLREDUCE = Fact("nccl.allreduce", ALLREDUCE_COMMAND, parse_allreduce)
