"""Miniconda (runbook: "Miniconda安装"), optional and off by default."""

from __future__ import annotations

from ..config import Node
from ..run import Run
from . import step


def condarc(urls: list[str]) -> str:
    # The runbook's mirrors, as one managed list instead of repeated `conda config --add`.
    lines = ["# Managed by llmfab (miniconda.channels). Local edits are replaced on the next run.",
             "auto_activate_base: false", "show_channel_urls: true"]
    if urls:
        lines += ["channels:"] + [f"  - {u}" for u in urls]
    return "\n".join(lines) + "\n"


@step("miniconda", title="install Miniconda with managed channels", when="enabled",
      changes=("batch install of the installer you name (`miniconda.installer_url` + sha256) to `miniconda.prefix`, "
               "managed `PREFIX/.condarc` (`auto_activate_base: false`, your mirror channels), `conda init`"),
      undo="`conda init --reverse`, remove the prefix", enabled=lambda run: run.config.miniconda.enabled)
def miniconda(run: Run, node: Node) -> dict:
    m = run.config.miniconda
    return {"prefix": m.prefix, "url": m.installer_url, "sha": m.installer_sha256 or "", "shell": m.shell,
            "condarc": condarc(m.channels)}
