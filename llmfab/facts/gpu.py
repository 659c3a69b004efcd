"""GPU facts from nvidia-smi: inventory (count, model, memory, driver), failures, fabric state.

Probes, best first:
- ``QUERY_COMMAND`` (CSV, stable across driver releases) -> ``parse_query_gpu``
- ``TABLE_COMMAND`` (the default table; also gives the CUDA version) -> ``parse_smi_table``
- ``QUERY_ALL_COMMAND`` (``nvidia-smi -q``; the Fabric block) -> ``parse_smi_q``
When nvidia-smi itself fails, every parser returns an inventory whose ``failure``
names the cause and a fix (``diagnose_smi_failure``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

from llmfab.facts.base import Diagnosis, Fact, Rule, command_missing, first_match, kv_lines, never_raises

QUERY_FIELDS = ("index", "name", "memory.total", "driver_version", "pci.bus_id", "uuid")
QUERY_COMMAND = "nvidia-smi --query-gpu=%s --format=csv,noheader,nounits" % ",".join(QUERY_FIELDS)
TABLE_COMMAND = "nvidia-smi"
QUERY_ALL_COMMAND = "nvidia-smi -q"

NA_VALUES = {"[N/A]", "N/A", "[Not Supported]", "Not Supported", ""}

SMI_FAILURE_RULES = [
    Rule("module-not-found", re.compile(r"modprobe: FATAL: Module nvidia not found"),
         "no NVIDIA kernel module for the running kernel (the driver was built for another kernel)",
         "Build the driver's module for `uname -r` (reinstall the driver package or run `dkms autoinstall`), "
         "then `modprobe nvidia` or reboot."),
    Rule("version-mismatch", re.compile(r"Driver/library version mismatch"),
         "the user-space driver library (NVML) differs from the loaded kernel module (a driver upgrade without reboot)",
         "Reboot (or unload and reload the nvidia modules) so the kernel module matches the installed "
         "driver, then hold the driver packages with `apt-mark hold`."),
    Rule("no-driver", re.compile(r"couldn't communicate with the NVIDIA driver"),
         "the NVIDIA driver is not loaded (often after a kernel upgrade left its module unbuilt)",
         "Install or rebuild the NVIDIA driver for the running kernel and load it (`modprobe nvidia`), "
         "then check `nvidia-smi` again."),
    Rule("gpu-lost", re.compile(r"Unable to determine the device handle for GPU\S* (?P<bus>\S+?):? .*|GPU is lost"),
         "a GPU fell off the bus or is in an error state",
         "Read `dmesg | grep -i xid` for the failing GPU, then reboot the node (or reseat/RMA the GPU)."),
    Rule("no-devices", re.compile(r"^No devices were found"),
         "the driver is loaded but sees no GPU (not passed through, or hidden by CUDA_VISIBLE_DEVICES/cgroups)",
         "Check `lspci | grep -i nvidia` on the host and the container's --gpus setting."),
]


@dataclass(frozen=True)
class Gpu:
    """One GPU as nvidia-smi reports it; fields it printed as [N/A] are None."""

    index: int
    name: str
    memory_mib: Optional[int] = None
    driver_version: Optional[str] = None
    bus_id: Optional[str] = None
    uuid: Optional[str] = None


@dataclass(frozen=True)
class GpuInventory:
    """The GPUs of a node. ``reason`` is "" when parsed; ``failure`` is set when nvidia-smi failed."""

    gpus: tuple = ()
    driver_version: Optional[str] = None
    cuda_version: Optional[str] = None
    failure: Optional[Diagnosis] = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason and self.failure is None and bool(self.gpus)

    @property
    def count(self) -> int:
        return len(self.gpus)

    @property
    def names(self) -> "set[str]":
        return {g.name for g in self.gpus}

    @property
    def min_memory_mib(self) -> Optional[int]:
        known = [g.memory_mib for g in self.gpus if g.memory_mib is not None]
        return min(known) if known else None


def diagnose_smi_failure(text: str) -> Optional[Diagnosis]:
    """Name the cause when nvidia-smi's output is one of its known failures, else None."""
    if command_missing(text):
        return Diagnosis("nvidia-smi is missing: no NVIDIA driver is installed", text.strip().splitlines()[0],
                         "Install the NVIDIA driver (it ships nvidia-smi) and reboot.")
    found = first_match(SMI_FAILURE_RULES, text)
    nvml = re.search(r"NVML library version: (\S+)", text)
    if found and nvml and "NVML" in found.cause:
        found = replace(found, cause=found.cause.replace("(NVML)", "(NVML %s)" % nvml.group(1)))
    return found


def _value(text: str) -> Optional[str]:
    text = text.strip()
    return None if text in NA_VALUES else text


def _mib(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    m = re.match(r"(\d+)\s*(MiB)?$", text.strip())
    return int(m.group(1)) if m else None


def _failed(text: str, make):
    diag = diagnose_smi_failure(text)
    if diag:
        return make(failure=diag, reason="nvidia-smi failed: " + diag.cause)
    return None


def _header_columns(line: str) -> "list[str]":
    """'name, memory.total [MiB]' -> ['name', 'memory.total']."""
    return [re.sub(r"\s*\[.*?\]\s*$", "", c.strip()) for c in line.split(",")]


@never_raises(lambda why: GpuInventory(reason=why))
def parse_query_gpu(text: str) -> GpuInventory:
    """Parse ``--query-gpu`` CSV (our field order, or any order when a header line is present)."""
    failed = _failed(text, GpuInventory)
    if failed:
        return failed
    columns, gpus = list(QUERY_FIELDS), []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if "name" in _header_columns(line) and len(cells) > 1:
            columns = _header_columns(line)
            continue
        if len(cells) != len(columns):
            continue
        row = dict(zip(columns, cells))
        if "index" in row and not row["index"].isdigit():
            continue
        if not row.get("name") or row["name"].startswith(("#", "[")):
            continue
        gpus.append(Gpu(index=int(row.get("index", len(gpus))), name=row["name"],
                        memory_mib=_mib(_value(row.get("memory.total", ""))),
                        driver_version=_value(row.get("driver_version", "")),
                        bus_id=_value(row.get("pci.bus_id", "")), uuid=_value(row.get("uuid", ""))))
    if not gpus:
        return GpuInventory(reason="no GPU rows in the --query-gpu output")
    drivers = {g.driver_version for g in gpus if g.driver_version}
    return GpuInventory(gpus=tuple(gpus), driver_version=drivers.pop() if len(drivers) == 1 else None)


GPU_ROW = re.compile(r"^\|\s*(\d+)\s+(.*?)\s+(On|Off|N/A)\s*\|\s*([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)")
MEM_ROW = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


@never_raises(lambda why: GpuInventory(reason=why))
def parse_smi_table(text: str) -> GpuInventory:
    """Parse the default ``nvidia-smi`` table: driver and CUDA versions, GPU names, memory, bus ids."""
    failed = _failed(text, GpuInventory)
    if failed:
        return failed
    driver = re.search(r"Driver Version:\s*([\d.]+)", text)
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", text)
    gpus, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        m = GPU_ROW.match(line) if len(line) < 300 else None  # table rows are ~90 characters
        if not m:
            continue
        mem = MEM_ROW.search(lines[i + 1]) if i + 1 < len(lines) else None
        gpus.append(Gpu(index=int(m.group(1)), name=m.group(2).strip(),
                        memory_mib=int(mem.group(2)) if mem else None,
                        driver_version=driver.group(1) if driver else None, bus_id=m.group(4)))
    if not driver and not gpus:
        return GpuInventory(reason="no nvidia-smi table found")
    return GpuInventory(gpus=tuple(gpus), driver_version=driver.group(1) if driver else None,
                        cuda_version=cuda.group(1) if cuda else None)


@dataclass(frozen=True)
class FabricState:
    """One GPU's NVLink fabric registration (``nvidia-smi -q`` Fabric block)."""

    bus_id: Optional[str]
    state: Optional[str]
    status: Optional[str]
    clique_id: Optional[str] = None
    cluster_uuid: Optional[str] = None

    @property
    def verdict(self) -> str:
        """healthy | unhealthy | pending | not-applicable | unknown."""
        state = (self.state or "").lower()
        if state == "completed":
            return "healthy" if (self.status or "").lower() == "success" else "unhealthy"
        if state in ("in progress", "not started"):
            return "pending"
        if state in ("n/a", "not supported"):
            return "not-applicable"
        return "unknown"

    @property
    def healthy(self) -> bool:
        return self.verdict in ("healthy", "not-applicable")


@dataclass(frozen=True)
class SmiQuery:
    """What a preflight reads from ``nvidia-smi -q``: versions, GPUs, each GPU's fabric state."""

    gpus: tuple = ()
    fabric: tuple = ()
    driver_version: Optional[str] = None
    cuda_version: Optional[str] = None
    failure: Optional[Diagnosis] = None
    reason: str = ""

    @property
    def fabric_healthy(self) -> bool:
        """True when every GPU's fabric is registered (or the system has no NVLink fabric)."""
        return bool(self.fabric) and all(f.healthy for f in self.fabric)

    @property
    def unhealthy_fabric(self) -> tuple:
        return tuple(f for f in self.fabric if not f.healthy)


@never_raises(lambda why: SmiQuery(reason=why))
def parse_smi_q(text: str) -> SmiQuery:
    """Parse ``nvidia-smi -q``; a Fabric block without its GPU heading (an excerpt) still counts."""
    failed = _failed(text, SmiQuery)
    if failed:
        return failed
    top, gpus, fabric = {}, [], []
    gpu, path = None, []  # path: stack of (indent, heading)
    for indent, key, value in kv_lines(text):
        path = [(i, h) for i, h in path if i < indent]
        m = re.match(r"GPU ([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)$", "%s:%s" % (key, value))
        if m:
            gpu, path = {"bus_id": m.group(1)}, []
            gpus.append(gpu)
            continue
        if value is None:
            path.append((indent, key))
            if key == "Fabric":
                fabric.append({"bus_id": gpu["bus_id"] if gpu else None})
            continue
        where = [h for _, h in path]
        if where[-1:] == ["Fabric"] and fabric:
            fabric[-1][key] = value
        elif gpu is None and not where:
            top[key] = value
        elif gpu is not None and not where and key in ("Product Name", "GPU UUID"):
            gpu[key] = value
        elif gpu is not None and where == ["FB Memory Usage"] and key == "Total":
            gpu["Total"] = value
    if not gpus and not fabric and "Driver Version" not in top:
        return SmiQuery(reason="no nvidia-smi -q sections found")
    return SmiQuery(
        gpus=tuple(Gpu(index=i, name=g.get("Product Name", "?"), memory_mib=_mib(g.get("Total")),
                       driver_version=top.get("Driver Version"), bus_id=g["bus_id"], uuid=g.get("GPU UUID"))
                   for i, g in enumerate(gpus)),
        fabric=tuple(FabricState(f["bus_id"], f.get("State"), f.get("Status"),
                                 f.get("CliqueId"), f.get("ClusterUUID")) for f in fabric),
        driver_version=top.get("Driver Version"), cuda_version=top.get("CUDA Version"))


QUERY = Fact("gpu.query", QUERY_COMMAND, parse_query_gpu)
TABLE = Fact("gpu.table", TABLE_COMMAND, parse_smi_table)
QUERY_ALL = Fact("gpu.query_all", QUERY_ALL_COMMAND, parse_smi_q)
