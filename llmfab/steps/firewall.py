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

from ..config import ClusterConfig, Node
from ..engines import internal_ports
from . import Step, register
from .engine import deployment

TABLE = "llmfab"
RULES_FILE = "/etc/llmfab/firewall.nft"


def filtered_ports(config: ClusterConfig) -> list[tuple[int, int, str]]:
    """The port ranges only the cluster may reach, with what listens there."""
    d = deployment(config)
    ports = internal_ports(d.profile, d.launch)
    if config.engine.api_key == "none":
        ports.append((config.engine.port, config.engine.port, "the API without a key"))
    return ports


def ruleset(config: ClusterConfig) -> str:
    """The nftables text of llmfab's table: loaded as one transaction by ``nft -f``."""
    sources = sorted({n.address for n in config.nodes} | {"127.0.0.1"})
    ranges = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b, _ in filtered_ports(config))
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


def tag(config: ClusterConfig) -> str:
    """The comment that marks the rules of this exact ruleset in `nft list` output."""
    return next(line for line in ruleset(config).splitlines() if "comment" in line).split('"')[1]


def apply(config: ClusterConfig, node: Node) -> dict:
    return {"table": TABLE, "path": RULES_FILE, "rules": ruleset(config), "tag": tag(config),
            "ports": [f"{a}-{b} ({what})" if a != b else f"{a} ({what})" for a, b, what in filtered_ports(config)]}


def remove(config: ClusterConfig, node: Node) -> dict:
    return {"table": TABLE, "path": RULES_FILE}


register("deploy", Step("engine-firewall", "let only the cluster's nodes reach the engine's internal ports",
                        "firewall/apply.sh.j2", apply, enabled=lambda c: c.engine.firewall),
         before="engine-launch")
register("stop", Step("engine-firewall-remove", "remove llmfab's engine firewall rules",
                      "firewall/remove.sh.j2", remove))
