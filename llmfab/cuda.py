"""Which host driver runs which image CUDA: NVIDIA's compatibility rule, as data.

Source: NVIDIA, "CUDA Compatibility", Minor Version Compatibility, Table 1
(https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html):
from CUDA 11 on, an application built with any toolkit of one major release
runs on every driver at or above that major's minimum: CUDA 13.x >= 580,
CUDA 12.x >= 525, CUDA 11.x >= 450 (newer drivers through backward
compatibility). So an image for CUDA 12.5 runs on driver 550 (CUDA 12.4), and
an image for CUDA 13.0 needs driver 580 or newer.

The one limit of minor-version compatibility is PTX: code compiled to PTX of a
newer minor release cannot be JIT-compiled by an older driver. Engines ship
compiled kernels (SASS) for Hopper, so llmfab warns, rather than fails, when
the driver's own CUDA is older than the image's within one major release.
"""

from __future__ import annotations

import re
from typing import Optional

SOURCE = "https://docs.nvidia.com/deploy/cuda-compatibility/minor-version-compatibility.html (Table 1)"

# CUDA major -> the lowest driver branch that runs any toolkit of that major.
MIN_DRIVER_BRANCH = {11: 450, 12: 525, 13: 580}

# Driver branch -> the CUDA version it ships (what `nvidia-smi` prints as "CUDA Version").
DRIVER_CUDA = {450: "11.0", 455: "11.1", 460: "11.2", 465: "11.3", 470: "11.4", 495: "11.5", 510: "11.6",
               515: "11.7", 520: "11.8", 525: "12.0", 530: "12.1", 535: "12.2", 545: "12.3", 550: "12.4",
               555: "12.5", 560: "12.6", 565: "12.7", 570: "12.8", 575: "12.9", 580: "13.0"}


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version or ""))


def branch(driver: str) -> int:
    """550 for driver 550.54.14."""
    return _numbers(driver)[0]


def min_driver_branch(cuda: str) -> Optional[int]:
    """The lowest driver branch that runs CUDA ``cuda`` (12.5 -> 525, 13.0 -> 580); None if unknown."""
    return MIN_DRIVER_BRANCH.get(_numbers(cuda)[0]) if _numbers(cuda) else None


def driver_cuda(driver: str) -> Optional[str]:
    """The CUDA version driver ``driver`` ships (550.54.14 -> 12.4); the nearest older branch's if unlisted."""
    known = [b for b in DRIVER_CUDA if b <= branch(driver)]
    return DRIVER_CUDA[max(known)] if known else None


def runs(driver: str, cuda: str) -> bool:
    """True when a host with ``driver`` can run an image built for CUDA ``cuda`` (the rule above)."""
    need = min_driver_branch(cuda)
    return need is not None and branch(driver) >= need


def full_support(driver: str, cuda: str) -> bool:
    """True when the driver's own CUDA is at least the image's (no minor-version limits apply)."""
    own = driver_cuda(driver)
    return own is not None and _numbers(own)[:2] >= _numbers(cuda)[:2]


def verdict(driver: str, cuda: str) -> tuple[str, str]:
    """("ok" | "minor-compat" | "too-old", one sentence of evidence) for ``driver`` running ``cuda``."""
    own = driver_cuda(driver) or "?"
    if not runs(driver, cuda):
        need = min_driver_branch(cuda)
        floor = f"driver >= {need}" if need else "a driver llmfab has no rule for"
        return "too-old", f"image CUDA {cuda} needs {floor}; host driver {driver} (CUDA {own})"
    if full_support(driver, cuda):
        return "ok", f"image CUDA {cuda}, host driver {driver} (CUDA {own})"
    return "minor-compat", (f"image CUDA {cuda} runs on driver {driver} (CUDA {own}) through CUDA minor-version "
                            f"compatibility, without PTX JIT of newer code")
