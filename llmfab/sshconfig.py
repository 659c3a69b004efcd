"""Where and how to reach a node: llmfab's config first, then the operator's ~/.ssh/config.

Real clusters sit behind bastions, with a login user and key per host written
in ``~/.ssh/config``. llmfab reads that file the way ``ssh ADDRESS`` would (the
node's ``address`` is looked up against its ``Host`` patterns) for HostName,
User, Port, IdentityFile, ProxyJump and ProxyCommand. Values set in llmfab's
own config win (they are the more specific statement); the file fills what
llmfab's config leaves unset. Jump hosts are connected to by llmfab itself, so
their host keys are checked like every node's (see llmfab.ssh).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Optional

import paramiko

from .config import ClusterConfig, Node
from .errors import UsageError


@dataclass(frozen=True)
class Target:
    """One SSH hop: where to connect, as whom, with which keys, through what."""

    host: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    jump: Optional["Target"] = None
    proxy_command: Optional[str] = None
    # Where each value came from, for `fab ping` and error messages.
    notes: tuple[str, ...] = field(default=(), compare=False)

    def describe(self) -> str:
        """user@host:port, and the route to it."""
        text = f"{self.user}@{self.host}:{self.port}"
        if self.jump is not None:
            text += f" via {self.jump.describe()}"
        elif self.proxy_command:
            text += f" via ProxyCommand {self.proxy_command!r}"
        return text


@lru_cache(maxsize=8)
def _parsed(path: str, mtime: float) -> paramiko.SSHConfig:
    return paramiko.SSHConfig.from_path(path)


def load(path: Optional[str]) -> Optional[paramiko.SSHConfig]:
    """The parsed SSH config at PATH, or None when there is none to read."""
    if not path:
        return None
    p = Path(os.path.expanduser(path))
    if not p.is_file():
        return None
    try:
        return _parsed(str(p), p.stat().st_mtime)
    except (OSError, paramiko.ConfigParseError) as e:
        raise UsageError(f"cannot read the SSH config {p}: {e} (fix it, or set ssh.config_file: null)") from None


def node_target(config: ClusterConfig, node: Node, ssh_config: Optional[paramiko.SSHConfig],
                identity_files: tuple[str, ...] = ()) -> Target:
    """How to reach NODE: llmfab's config where it says, ~/.ssh/config where it does not."""
    s = config.ssh
    explicit = s.model_fields_set
    user = node.user or (s.user if "user" in explicit else None)
    port = node.port or (s.port if "port" in explicit else None)
    return _target(node.address, user, port, identity_files, ssh_config, default_user=s.user, depth=0)


def _target(alias: str, user: Optional[str], port: Optional[int], identity_files: tuple[str, ...],
            ssh_config: Optional[paramiko.SSHConfig], default_user: str, depth: int) -> Target:
    if depth > 4:
        raise UsageError(f"ProxyJump chain to {alias} is longer than 4 hops (a loop in ~/.ssh/config?)")
    found = ssh_config.lookup(alias) if ssh_config is not None else {"hostname": alias}
    notes = []
    if ssh_config is not None and found.get("hostname", alias) != alias:
        notes.append(f"HostName {found['hostname']}")
    final_user = user or found.get("user") or default_user
    final_port = port or int(found.get("port", 22))
    # Like OpenSSH, an IdentityFile that does not exist is skipped (paramiko would fail on it).
    keys = identity_files or tuple(k for k in (os.path.expanduser(k) for k in found.get("identityfile", []))
                                   if os.path.isfile(k))
    jump = None
    proxy_command = None
    proxy_jump = found.get("proxyjump")
    if proxy_jump and proxy_jump.lower() != "none":
        # The first hop is reached first; later hops are reached through it.
        hops = [h.strip() for h in proxy_jump.split(",") if h.strip()]
        for hop in hops:
            hop_user, hop_host, hop_port = _split_hop(hop)
            hop_target = _target(hop_host, hop_user, hop_port, (), ssh_config, default_user, depth + 1)
            jump = hop_target if jump is None else _through(hop_target, jump)
        notes.append(f"ProxyJump {proxy_jump}")
    elif found.get("proxycommand") and found["proxycommand"].lower() != "none":
        proxy_command = found["proxycommand"]
        notes.append("ProxyCommand")
    return Target(found.get("hostname", alias), final_port, final_user, keys, jump, proxy_command, tuple(notes))


def _through(hop: Target, first: Target) -> Target:
    """HOP reached through FIRST (ProxyJump a,b: b is reached through a)."""
    if hop.jump is None:
        return Target(hop.host, hop.port, hop.user, hop.identity_files, first, hop.proxy_command, hop.notes)
    return Target(hop.host, hop.port, hop.user, hop.identity_files, _through(hop.jump, first), hop.proxy_command,
                  hop.notes)


def _split_hop(hop: str) -> tuple[Optional[str], str, Optional[int]]:
    """[user@]host[:port] of one ProxyJump hop."""
    user = None
    if "@" in hop:
        user, hop = hop.rsplit("@", 1)
    port = None
    if hop.startswith("["):
        host, _, rest = hop[1:].partition("]")
        if rest.startswith(":"):
            port = int(rest[1:])
        return user, host, port
    if hop.count(":") == 1:
        hop, port_text = hop.split(":")
        port = int(port_text)
    return user, hop, port
