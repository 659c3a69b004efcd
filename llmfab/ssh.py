"""SSH transport: a Fabric Connection with host keys checked, and one streamed command.

Stock Fabric accepts any host key (paramiko's AutoAddPolicy). Here a key must be
in known_hosts, unless the user allowed trust-on-first-use, in which case the
new key is recorded. A phase script travels on the command's stdin, so a whole
phase costs one remote command per host.
"""

from __future__ import annotations

import os
import select
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import paramiko
from fabric import Config, Connection

from . import sshconfig
from .config import ClusterConfig, Node
from .errors import UsageError
from .sshconfig import Target, node_target

_known_hosts_lock = threading.Lock()


class UnknownHostKey(paramiko.SSHException):
    """The host's key is not in known_hosts and first use was not allowed."""


class RefuseUnknown(paramiko.MissingHostKeyPolicy):
    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        raise UnknownHostKey(
            f"host key of {hostname} ({key.get_name()}) is not in {self.known_hosts}: "
            "verify it and add it (ssh-keyscan), or re-run with --accept-new-host-keys"
        )


class RecordOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Trust-on-first-use: accept the key and append it to known_hosts."""

    def __init__(self, known_hosts: Path):
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key):
        line = f"{hostname} {key.get_name()} {key.get_base64()}\n"
        with _known_hosts_lock:
            self.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(self.known_hosts, "a") as f:
                f.write(line)
        client.get_host_keys().add(hostname, key.get_name(), key)


@dataclass(frozen=True)
class SSHOptions:
    known_hosts: Path
    identity_files: tuple[str, ...]
    accept_new_host_keys: bool
    connect_timeout: int
    command_timeout: int
    sudo_password: Optional[str] = None
    # The operator's OpenSSH client config (ssh.config_file, or fab -S); None reads none.
    ssh_config_file: Optional[str] = None

    @classmethod
    def from_config(cls, config: ClusterConfig, **overrides) -> "SSHOptions":
        s = config.ssh
        values = dict(
            known_hosts=Path(os.path.expanduser(s.known_hosts)),
            identity_files=(os.path.expanduser(s.identity_file),) if s.identity_file else (),
            accept_new_host_keys=s.accept_new_host_keys,
            connect_timeout=s.connect_timeout,
            command_timeout=s.command_timeout,
            ssh_config_file=s.config_file,
        )
        if overrides.get("identity_files"):
            overrides["identity_files"] = tuple(os.path.expanduser(p) for p in overrides["identity_files"])
        values.update({k: v for k, v in overrides.items() if v is not None})
        missing = [p for p in values["identity_files"] if not os.path.isfile(p)]
        if missing:
            raise UsageError(f"SSH key {', '.join(missing)} does not exist (ssh.identity_file in {config.source}, "
                             "or fab -i): fix the path, or drop it to use ~/.ssh/config and ssh-agent")
        return cls(**values)


def target(config: ClusterConfig, node: Node, options: SSHOptions) -> Target:
    """The route to NODE: llmfab's config, then ~/.ssh/config (see llmfab.sshconfig)."""
    return node_target(config, node, sshconfig.load(options.ssh_config_file), options.identity_files)


def connect(config: ClusterConfig, node: Node, options: SSHOptions) -> Connection:
    """Open a connection to NODE with its host key checked against known_hosts."""
    return open_target(target(config, node, options), options)


def open_target(hop: Target, options: SSHOptions) -> Connection:
    """Connect to HOP, through its jump host (connected the same careful way) if it has one."""
    gateway = open_target(hop.jump, options) if hop.jump is not None else hop.proxy_command
    connect_kwargs: dict = {"banner_timeout": options.connect_timeout, "auth_timeout": options.connect_timeout}
    if hop.identity_files:
        connect_kwargs["key_filename"] = list(hop.identity_files)
    conn = Connection(
        host=hop.host,
        user=hop.user,
        port=hop.port,
        connect_timeout=options.connect_timeout,
        connect_kwargs=connect_kwargs,
        gateway=gateway,
        config=Config(overrides={"load_ssh_configs": False}),
    )
    known = options.known_hosts
    if known.exists():
        conn.client.load_host_keys(str(known))
    policy_class = RecordOnFirstUse if options.accept_new_host_keys else RefuseUnknown
    conn.client.set_missing_host_key_policy(policy_class(known))
    try:
        conn.open()
    except Exception:
        if isinstance(gateway, Connection):
            gateway.close()
        raise
    conn.transport.set_keepalive(KEEPALIVE_S)
    return conn


# SSH keepalives every 15 s; after a minute without any data from the node, the
# runner asks for a new channel, which a dead or frozen node cannot give.
KEEPALIVE_S = 15
SILENCE_S = 45
PROBE_TIMEOUT_S = 15


def stop_group(conn: Connection, group: str, password: Optional[str]) -> bool:
    """Send SIGTERM to the remote script's process group over a new channel; True when sent."""
    if not group.isdigit() or int(group) <= 1:
        return False
    try:
        chan = conn.transport.open_session(timeout=PROBE_TIMEOUT_S)
        chan.settimeout(PROBE_TIMEOUT_S)
        chan.exec_command(f"{sudo_prefix(conn.user, password)}kill -TERM -- -{group}")
        if password is not None and conn.user != "root":
            chan.sendall((password + "\n").encode())
        ok = chan.recv_exit_status() == 0
        chan.close()
        return ok
    except (paramiko.SSHException, OSError, EOFError):
        return False


def alive(transport: paramiko.Transport) -> bool:
    """Whether the node still answers: it must open (and we close) a new channel."""
    try:
        transport.open_session(timeout=PROBE_TIMEOUT_S).close()
        return True
    except (paramiko.SSHException, OSError, EOFError):
        return False


def close(conn: Connection) -> None:
    """Close CONN and the jump hosts it went through (Fabric leaves those open)."""
    while conn is not None:
        conn.close()
        conn = conn.gateway if isinstance(conn.gateway, Connection) else None


def sudo_prefix(user: str, password: Optional[str]) -> str:
    """How the script gets root: directly, through passwordless sudo, or sudo -S."""
    if user == "root":
        return ""
    if password is None:
        return "sudo -n -- "
    return "sudo -S -p '' -- "


def remote_command(size: int, prefix: str, args: list[str]) -> str:
    """The one command a host runs: save N bytes of stdin as the script, run it."""
    # setsid: the script leads a process group of its own, which the runner
    # stops as a whole on Ctrl-C or a timeout (closing the channel does not).
    return (
        'f=$(mktemp "${TMPDIR:-/tmp}/llmfab-run.XXXXXX") || exit 97; '
        "trap 'rm -f \"$f\"' EXIT; "
        f'head -c {size} >"$f" || exit 97; '
        f'{prefix}setsid -w bash "$f" {shlex.join(args)}'
    )


MAX_LINE = 1 << 20


@dataclass
class Completed:
    exit_code: int
    stderr: str
    timed_out: bool = False
    # The node stopped answering (no new channel after a silence).
    dead: bool = False


def run_script(
    conn: Connection,
    script: str,
    args: list[str],
    password: Optional[str],
    timeout: int,
    on_line: Callable[[str], None],
) -> Completed:
    """Run SCRIPT on the host with root rights; call ON_LINE for each stdout line as it arrives."""
    payload = script.encode()
    command = remote_command(len(payload), sudo_prefix(conn.user, password), args)
    chan = conn.transport.open_session(timeout=conn.connect_timeout)
    try:
        chan.exec_command(command)
        chan.sendall(payload)
        if password is not None and conn.user != "root":
            chan.sendall((password + "\n").encode())
        chan.shutdown_write()
        return _pump(chan, timeout, on_line)
    finally:
        chan.close()


def _pump(chan: paramiko.Channel, timeout: int, on_line: Callable[[str], None]) -> Completed:
    deadline = time.monotonic() + timeout
    heard = time.monotonic()
    out, err = b"", b""
    while True:
        if time.monotonic() > deadline:
            return Completed(124, err.decode(errors="replace"), timed_out=True)
        select.select([chan], [], [], 0.5)
        if chan.recv_ready() or chan.recv_stderr_ready():
            heard = time.monotonic()
        elif time.monotonic() - heard > SILENCE_S:
            if not alive(chan.get_transport()):
                return Completed(255, err.decode(errors="replace"), dead=True)
            heard = time.monotonic()
        while chan.recv_ready():
            out += chan.recv(65536)
        while chan.recv_stderr_ready():
            err = (err + chan.recv_stderr(65536))[-65536:]

        *lines, out = out.split(b"\n")
        out = out[-MAX_LINE:]  # a line without end is kept to its last megabyte
        for line in lines:
            on_line(line.decode(errors="replace"))
        if chan.exit_status_ready() and not chan.recv_ready() and not chan.recv_stderr_ready():
            if out:
                on_line(out.decode(errors="replace"))
            return Completed(chan.recv_exit_status(), err.decode(errors="replace")[-8192:])
