"""Miniconda (runbook: "Miniconda安装"), optional and off by default."""

from __future__ import annotations

from ..config import Node
from ..run import Run
from . import step

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


@step("miniconda", title="install Miniconda with managed channels", when="enabled",
      changes=("batch install to `miniconda.prefix`, managed `PREFIX/.condarc` (`auto_activate_base: false`, "
               "mirror channels), `conda init`"),
      undo="`conda init --reverse`, remove the prefix", enabled=lambda run: run.config.miniconda.enabled)
def miniconda(run: Run, node: Node) -> dict:
    m = run.config.miniconda
    return {"prefix": m.prefix, "url": m.installer_url, "sha": m.installer_sha256 or "", "shell": m.shell,
            "condarc": condarc(m.channels)}
