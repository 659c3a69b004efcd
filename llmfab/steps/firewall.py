"""The engine's host firewall: only the cluster's nodes reach its internal ports.

Ray, the torch.distributed/ZMQ stores of SGLang and vLLM, and TensorRT-LLM's
sshd authenticate no one, and they listen on every interface of the host
network namespace. One nftables table of llmfab's own (``inet llmfab``) drops
packets to those ports unless they come from a node of the cluster or from
the host itself; the API port joins them when the endpoint has no key. The
table is written whole (``nft -f`` replaces it atomically), added at deploy,
removed at stop, and reported by status.
"""

from __future__ import annotations

import hashlib

from ..config import Node
from ..engines import internal_ports
from ..run import Run
from . import step

TABLE = "llmfab"
RULES_FILE = "/etc/llmfab/firewall.nft"


def filtered_ports(run: Run) -> list[tuple[int, int, str]]:
    """The port ranges only the cluster may reach, with what listens there."""
    config, d = run.config, run.deployment
    ports = internal_ports(d.profile, d.launch)
    if config.engine.api_key == "none":
        ports.append((config.engine.port, config.engine.port, "the API without a key"))
    return ports


def ruleset(run: Run) -> str:
    """The nftables text of llmfab's table: loaded as one transaction by ``nft -f``."""
    config = run.config
    sources = sorted({n.address for n in config.nodes} | {"127.0.0.1"})
    ranges = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b, _ in filtered_ports(run))
    body = (
        f"table inet {TABLE} {{\n"
        f"\tset cluster {{\n\t\ttype ipv4_addr\n\t\telements = {{ {', '.join(sources)} }}\n\t}}\n\n"
        f"\tchain input {{\n\t\ttype filter hook input priority filter - 10; policy accept;\n"
        f"\t\tip saddr @cluster accept\n"
        f"\t\ttcp dport {{ {ranges} }} drop comment \"@TAG@\"\n\t}}\n}}\n"
    )
    tag = "llmfab " + hashlib.sha256(body.encode()).hexdigest()[:12]
    # Declaring then deleting the table makes the load replace it, or create it.
    return f"table inet {TABLE}\ndelete table inet {TABLE}\n" + body.replace("@TAG@", tag)


def tag(run: Run) -> str:
    """The comment that marks the rules of this exact ruleset in `nft list` output."""
    return next(line for line in ruleset(run).splitlines() if "comment" in line).split('"')[1]


@step("engine-firewall", title="let only the cluster's nodes reach the engine's internal ports",
      enabled=lambda run: run.config.engine.firewall)
def apply(run: Run, node: Node) -> dict:
    return {"table": TABLE, "path": RULES_FILE, "rules": ruleset(run), "tag": tag(run),
            "ports": [f"{a}-{b} ({what})" if a != b else f"{a} ({what})" for a, b, what in filtered_ports(run)]}


@step("engine-firewall-remove", title="remove llmfab's engine firewall rules")
def remove(run: Run, node: Node) -> dict:
    return {"table": TABLE, "path": RULES_FILE}
