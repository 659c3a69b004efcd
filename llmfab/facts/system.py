"""Host facts `fab check` reads besides GPUs and HCAs: kernel modules, limits, /dev/shm, the clock.

Each parser takes the probe's text and never raises: text it cannot read
gives the empty value (no modules, no limit, no size).
"""
from __future__ import annotations

import re
from typing import Optional

from llmfab.facts.base import Fact, command_missing, never_raises

LSMOD_COMMAND = "lsmod"
MODULES_LOAD_COMMAND = "cat /etc/modules-load.d/*.conf 2>/dev/null || true"
NOFILE_COMMAND = "cat /etc/security/limits.conf /etc/security/limits.d/*.conf 2>/dev/null || true"
SHM_COMMAND = "df -k --output=size /dev/shm | tail -n 1"
CLOCK_COMMAND = "date +%s.%N"


@never_raises(lambda reason: ())
def parse_lsmod(text: str) -> tuple[str, ...]:
    """Names of the loaded kernel modules (``lsmod``'s first column, header aside); none when lsmod is missing."""
    if command_missing(text):
        return ()
    names = [line.split()[0] for line in text.splitlines() if line.split()]
    return tuple(n for n in names if n != "Module")


@never_raises(lambda reason: ())
def parse_modules_load(text: str) -> tuple[str, ...]:
    """Modules that /etc/modules-load.d loads at boot, ``-`` written ``_`` as the kernel does; comments skipped."""
    names = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return tuple(n.replace("-", "_") for n in names if n)


@never_raises(lambda reason: 0)
def parse_nofile(text: str) -> int:
    """The highest hard ``nofile`` limit for ``*`` or root in limits.conf(.d); 0 when none is set."""
    found = re.finditer(r"^\s*(\*|root)\s+hard\s+nofile\s+(\d+)", text, re.M)
    return max((int(m.group(2)) for m in found), default=0)


@never_raises(lambda reason: None)
def parse_kb(text: str) -> Optional[int]:
    """The first whole number of ``df -k`` output (KiB), or None."""
    m = re.search(r"\d+", text)
    return int(m.group()) if m else None


@never_raises(lambda reason: None)
def parse_clock(text: str) -> Optional[float]:
    """Seconds since the epoch from ``date +%s.%N``, or None."""
    try:
        return float(text.strip())
    except ValueError:
        return None


LSMOD = Fact("system.lsmod", LSMOD_COMMAND, parse_lsmod)
MODULES_LOAD = Fact("system.modules_load", MODULES_LOAD_COMMAND, parse_modules_load)
NOFILE = Fact("system.nofile", NOFILE_COMMAND, parse_nofile)
SHM = Fact("system.shm", SHM_COMMAND, parse_kb)
CLOCK = Fact("system.clock", CLOCK_COMMAND, parse_clock)
