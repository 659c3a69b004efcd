"""Miniconda (runbook: "Miniconda安装"), optional and off by default."""

from __future__ import annotations

from ..config import ClusterConfig, Node
from . import Step, register

def condarc(urls: list[str]) -> str:
    # The runbook's mirrors, as one managed list instead of repeated `conda config --add`.
    lines = ["# Managed by llmfab (miniconda.channels). Local edits are replaced on the next run.",
             "auto_activate_base: false", "show_channel_urls: true"]
    if urls:
        lines += ["channels:"] + [f"  - {u}" for u in urls]
    return "\n".join(lines) + "\n"


def miniconda(config: ClusterConfig, node: Node) -> dict:
    m = config.miniconda
    return {"prefix": m.prefix, "url": m.installer_url, "sha": m.installer_sha256 or "", "shell": m.shell,
            "condarc": condarc(m.channels)}


register(
    "prep",
    Step("miniconda", "install Miniconda with managed channels", "conda/miniconda.sh.j2", miniconda,
         enabled=lambda c: c.miniconda.enabled),
)
