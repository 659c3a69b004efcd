"""Miniconda (runbook: "Miniconda安装"), optional and off by default."""

from __future__ import annotations

from ..config import ClusterConfig, Node
from . import Step, register

CHANNELS = {
    "default": [],
    # The runbook's mirrors, as one managed list instead of repeated `conda config --add`.
    "tsinghua": [
        "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main/",
        "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/free/",
        "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/r/",
        "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/msys2/",
    ],
    "aliyun": [
        "https://mirrors.aliyun.com/anaconda/pkgs/main/",
        "https://mirrors.aliyun.com/anaconda/pkgs/free/",
    ],
}


def condarc(channels: str) -> str:
    lines = ["# Managed by llmfab (miniconda.channels). Local edits are replaced on the next run.",
             "auto_activate_base: false", "show_channel_urls: true"]
    urls = CHANNELS[channels]
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
