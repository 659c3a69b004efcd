"""Fabric manager facts: is the service active, does its version match the driver, CUDA error 802.

On NVSwitch systems (8-GPU HGX boards such as 8x H20) CUDA does not start until
nv-fabricmanager has configured the fabric, and the service refuses to start
unless its version equals the loaded driver's exactly. The failure seen from
the engines is CUDA error 802, "system not yet initialized".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from llmfab.facts.base import Diagnosis, Fact, Rule, command_missing, never_raises

UNIT = "nvidia-fabricmanager"
IS_ACTIVE_COMMAND = "systemctl is-active %s" % UNIT
STATUS_COMMAND = "systemctl status %s --no-pager --full" % UNIT
JOURNAL_COMMAND = "journalctl -u %s --no-pager -n 200" % UNIT
VERSION_COMMAND = "nv-fabricmanager --version"

_MISMATCH = (r"fabric manager NVIDIA GPU driver interface version (?P<fm>\d[\d.]*\d) "
             r"(?:don'?t|doesn'?t|do not|does not) match with driver version (?P<driver>\d[\d.]*\d)")

FM_RULES = [
    Rule("fm-version-mismatch", re.compile(_MISMATCH),
         "fabric manager {fm} does not match the loaded driver {driver}, so it exits and CUDA stays uninitialised",
         "Install nvidia-fabricmanager {driver} (exactly the driver's version), hold both with `apt-mark hold`, "
         "then `systemctl restart nvidia-fabricmanager`."),
    Rule("fm-nothing-to-do", re.compile(r"NV_WARN_NOTHING_TO_DO"),
         "the fabric manager found no NVSwitch to configure (NV_WARN_NOTHING_TO_DO): expected on nodes without "
         "NVSwitch, where it is no failure and no version mismatch",
         "Without NVSwitch set nvidia.fabricmanager: false and disable the service; on NVLink 5 systems "
         "(B200 and later) install and start NVLSM with it."),
    Rule("cuda-802", re.compile(r"system not yet initiali[sz]ed|cudaErrorSystemNotReady|[Ee]rror 802\b|code=802\b"),
         "CUDA error 802: the NVSwitch fabric is not initialised (fabric manager not running, or mismatched "
         "with the driver)",
         "Install nvidia-fabricmanager of exactly the driver's version, `systemctl enable --now "
         "nvidia-fabricmanager`, and wait until `nvidia-smi -q` shows Fabric State Completed, Status Success."),
    Rule("fm-failed", re.compile(r"nvidia-fabricmanager\S*: (?:Control process exited|Failed with result)|"
                                 r"Job for nvidia-fabricmanager\S* failed|Failed to start .*[Ff]abric [Mm]anager"),
         "the fabric manager service failed to start",
         "Read `journalctl -u nvidia-fabricmanager` for the first error (most often a version mismatch with "
         "the driver) and fix that before restarting the service."),
]


@dataclass(frozen=True)
class ServiceState:
    """``systemctl is-active``: active, inactive, failed, activating...; None when it could not tell."""

    state: Optional[str] = None
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.state == "active"


@never_raises(lambda why: ServiceState(reason=why))
def parse_is_active(text: str) -> ServiceState:
    """Parse ``systemctl is-active`` (one word; 'inactive' also for a unit that is not installed)."""
    missing = command_missing(text)
    if missing:
        return ServiceState(reason=missing)
    if "not been booted with systemd" in text or "Failed to connect to bus" in text:
        return ServiceState(reason="no systemd on this host: cannot ask for the unit's state")
    words = text.split()
    known = {"active", "inactive", "failed", "activating", "deactivating", "reloading", "unknown", "maintenance"}
    if len(words) == 1 and words[0] in known:
        return ServiceState(state=words[0])
    return ServiceState(reason="not a systemctl is-active answer: %r" % text.strip()[:80])


@dataclass(frozen=True)
class FabricManagerLog:
    """What ``systemctl status`` / ``journalctl`` text says about the fabric manager."""

    active: Optional[bool] = None  # from "Active: ..." when present
    fm_version: Optional[str] = None  # from a version-mismatch message
    driver_version: Optional[str] = None
    started: bool = False  # saw NVSwitches configured / "Started"
    diagnoses: tuple = ()
    reason: str = ""

    @property
    def version_mismatch(self) -> bool:
        return self.fm_version is not None and self.fm_version != self.driver_version


def diagnose_fabricmanager(text: str) -> "list[Diagnosis]":
    """Every fabric-manager cause the text shows, once each, in rule order."""
    lines = text.splitlines()
    return [hit[1] for hit in (rule.scan(lines) for rule in FM_RULES) if hit]


@never_raises(lambda why: FabricManagerLog(reason=why))
def parse_fm_log(text: str) -> FabricManagerLog:
    """Parse ``systemctl status`` or journal text: active state, both versions of a mismatch, diagnoses."""
    active = re.search(r"^\s*Active:\s*(\S+)", text, re.MULTILINE)
    mismatch = re.search(_MISMATCH, text)
    started = bool(re.search(r"Successfully configured all the available NVSwitches|"
                             r"Started \"?N[Vv]idia Fabric Manager|Started nvidia-fabricmanager", text))
    diagnoses = tuple(diagnose_fabricmanager(text))
    if not (active or mismatch or started or diagnoses or "fabric" in text.lower()):
        return FabricManagerLog(reason=command_missing(text) or "no fabric manager status or journal lines")
    return FabricManagerLog(active=(active.group(1) == "active") if active else None,
                            fm_version=mismatch.group("fm") if mismatch else None,
                            driver_version=mismatch.group("driver") if mismatch else None,
                            started=started, diagnoses=diagnoses)


def nothing_to_do(text: str) -> bool:
    """True when the fabric manager said NV_WARN_NOTHING_TO_DO: it found no NVSwitch to configure.

    On nodes without NVSwitch (PCIe GPUs, NVLink bridges) that is the expected
    outcome, not a failure; on NVLink 5 systems it means NVLSM is missing.
    """
    return "NV_WARN_NOTHING_TO_DO" in (text or "")


def parse_version(text: str) -> Optional[str]:
    """The first driver-style version (e.g. 550.127.05) in ``nv-fabricmanager --version`` or dpkg output."""
    m = re.search(r"\b(\d{3}\.\d{2,3}(?:\.\d{2})?)\b", text or "")
    return m.group(1) if m else None


def fm_matches_driver(fm_version: Optional[str], driver_version: Optional[str]) -> bool:
    """True when both are known and equal, ignoring a package revision ("550.127.05-1")."""
    def core(v):
        return (v or "").split("-")[0].strip()
    return bool(core(fm_version)) and core(fm_version) == core(driver_version)


PACKAGE_COMMAND = "dpkg-query -W -f='${Package} ${Version}\\n' 'nvidia-fabricmanager*' 2>/dev/null | grep -v ' $' || true"


@never_raises(lambda reason: None)
def parse_package(text: str) -> Optional[str]:
    """The installed nvidia-fabricmanager package's version from ``dpkg-query`` lines, or None."""
    versions = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    return next(iter(versions.values()), None)


IS_ACTIVE = Fact("fabricmanager.is_active", IS_ACTIVE_COMMAND, parse_is_active)
PACKAGE = Fact("fabricmanager.package", PACKAGE_COMMAND, parse_package)
STATUS = Fact("fabricmanager.status", STATUS_COMMAND, parse_fm_log)
JOURNAL = Fact("fabricmanager.journal", JOURNAL_COMMAND, parse_fm_log)
