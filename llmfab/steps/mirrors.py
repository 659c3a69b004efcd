"""Site package mirrors for apt and pip (common behind the Great Firewall), optional."""

from __future__ import annotations

from urllib.parse import urlparse

from ..config import ClusterConfig, Node
from . import Step, register


def apt(config: ClusterConfig, node: Node) -> dict:
    return {"mirror": config.mirrors.apt.rstrip("/")}


def pip(config: ClusterConfig, node: Node) -> dict:
    url = config.mirrors.pip
    content = (
        "# Managed by llmfab (mirrors.pip). Local edits are replaced on the next run.\n"
        f"[global]\nindex-url = {url}\n"
    )
    # trusted-host turns TLS checks off for the host: only a plain-http mirror
    # (which has none to turn off) needs it, never an https one.
    if urlparse(url).scheme == "http":
        content += f"trusted-host = {urlparse(url).hostname}\n"
    return {"content": content}


register(
    "prep",
    Step("apt-mirror", "use the site's apt mirror", "mirrors/apt.sh.j2", apt, enabled=lambda c: c.mirrors.apt is not None),
    Step("pip-mirror", "use the site's pip index", "mirrors/pip.sh.j2", pip, enabled=lambda c: c.mirrors.pip is not None),
)
