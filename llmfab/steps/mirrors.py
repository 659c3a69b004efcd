"""Site package mirrors for apt and pip (common behind the Great Firewall), optional."""

from __future__ import annotations

from urllib.parse import urlparse

from ..config import Node
from ..run import Run
from . import step


@step("apt-mirror", title="use the site's apt mirror", when="`mirrors.apt`",
      changes="`/etc/apt/sources.list.d/llmfab-mirror.list`; stock sources commented out (backup kept)",
      undo="restore the backup from `/var/backups/llmfab/`, remove the list",
      enabled=lambda run: run.config.mirrors.apt is not None)
def apt(run: Run, node: Node) -> dict:
    return {"mirror": run.config.mirrors.apt.rstrip("/")}


@step("pip-mirror", title="use the site's pip index", when="`mirrors.pip`",
      changes="`/etc/pip.conf`", undo="restore the backup or remove it",
      enabled=lambda run: run.config.mirrors.pip is not None)
def pip(run: Run, node: Node) -> dict:
    url = run.config.mirrors.pip
    content = (
        "# Managed by llmfab (mirrors.pip). Local edits are replaced on the next run.\n"
        f"[global]\nindex-url = {url}\n"
    )
    # trusted-host turns TLS checks off for the host: only a plain-http mirror
    # (which has none to turn off) needs it, never an https one.
    if urlparse(url).scheme == "http":
        content += f"trusted-host = {urlparse(url).hostname}\n"
    return {"content": content}
