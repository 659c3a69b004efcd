"""Stand-ins for the MPI side of TensorRT-LLM: ``mpirun`` and the containers' ``sshd``.

``mpirun`` reads Open MPI's options, checks that every remote host of ``-H``
answers on the ssh port of ``--mca plm_rsh_args`` (its ``-p``), and runs the
command once, with the world size in its environment. It keeps a connection
to each remote host's sshd stand-in: when one drops (that container ended),
the job ends with Open MPI's "lost communication" message, exit 1.

``sshd`` listens on this host's address (never 0.0.0.0: the test hosts share
one network namespace) and holds connections open; it authenticates nothing.
"""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

from .logs import die, say

BANNER = b"SSH-2.0-OpenSSH_9.2p1 llmfab-standin\r\n"
RULE = "-" * 74
ORTE_START = f"""{RULE}
ORTE was unable to reliably start one or more daemons.
This usually is caused by:

* not finding the required libraries and/or binaries on
  one or more nodes. Please check your PATH and LD_LIBRARY_PATH
  settings, or configure OMPI with --enable-orterun-prefix-by-default

* lack of authority to execute on one or more specified nodes.
  Please verify your allocation and authorities.

* the inability to write startup files into /tmp (--tmpdir/orte_tmpdir_base).
  Please check with your sys admin to determine the correct location to use.

* an inability to create a connection back to mpirun due to a
  lack of common network interfaces and/or no route found between
  them. Please check network connectivity (including firewalls
  and network routing requirements).
{RULE}"""

_VALUE_OPTIONS = {"-H", "--host", "-np", "-n", "--np", "--bind-to", "--map-by", "-x",
                  "--prefix", "-c", "--rank-by", "-wdir", "--wdir"}
_FLAGS = {"--allow-run-as-root", "--oversubscribe", "--report-bindings", "--tag-output",
          "--timestamp-output", "-v", "--verbose"}


def parse_mpirun(argv: list[str]) -> dict[str, Any]:
    """Open MPI options into a dict: hosts, np, mca, exports, command."""
    opts: dict[str, Any] = {"hosts": [], "np": None, "mca": {}, "exports": [], "command": []}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _FLAGS:
            i += 1
        elif arg in ("--mca", "-mca"):
            opts["mca"][argv[i + 1]] = argv[i + 2]
            i += 3
        elif arg in _VALUE_OPTIONS:
            value = argv[i + 1]
            if arg in ("-H", "--host"):
                for item in value.split(","):
                    host, _, slots = item.partition(":")
                    opts["hosts"].append((host, int(slots or 1)))
            elif arg in ("-np", "-n", "--np"):
                opts["np"] = int(value)
            elif arg == "-x":
                opts["exports"].append(value)
            i += 2
        elif arg.startswith("-"):
            die(f"mpirun (llmfab stand-in): unsupported option {arg}", 2)
        else:
            opts["command"] = argv[i:]
            break
    return opts


def ssh_port(rsh_args: str) -> int:
    """The ``-p`` of ssh arguments, else 22."""
    words = shlex.split(rsh_args)
    for i, word in enumerate(words[:-1]):
        if word == "-p":
            return int(words[i + 1])
    return 22


def _is_local(host: str, own: str) -> bool:
    return host in (own, "localhost", "127.0.0.1", socket.gethostname())


def mpirun(argv: list[str]) -> int:
    """Check the hosts, run the command once, end it when a remote host goes away."""
    opts = parse_mpirun(argv)
    if not opts["command"]:
        die("mpirun (llmfab stand-in): no executable was specified", 1)
    own = os.environ.get("STANDIN_HOST_ADDR", "127.0.0.1")
    hosts = opts["hosts"] or [(own, 1)]
    slots = sum(n for _, n in hosts)
    np = opts["np"] or slots
    if np > slots:
        die(f"{RULE}\nThere are not enough slots available in the system to satisfy the {np}\n"
            f"slots that were requested by the application:\n\n  {opts['command'][0]}\n\n"
            f"Either request fewer slots for your application, or make more slots\n"
            f"available for use.\n{RULE}")
    port = ssh_port(opts["mca"].get("plm_rsh_args", ""))
    links = {host: _reach(host, port, own) for host, _ in hosts if not _is_local(host, own)}
    env = dict(os.environ)
    for item in opts["exports"]:
        if "=" in item:
            key, _, value = item.partition("=")
            env[key] = value
    env.update(OMPI_COMM_WORLD_SIZE=str(np), OMPI_COMM_WORLD_RANK="0",
               STANDIN_MPI_WORLD_SIZE=str(np), STANDIN_MPI_HOSTS=",".join(h for h, _ in hosts))
    try:
        child = subprocess.Popen(opts["command"], env=env)
    except OSError as error:
        die(f"{RULE}\nmpirun was unable to launch the specified application as it could not "
            f"access\nor execute an executable:\n\nExecutable: {opts['command'][0]}\n"
            f"Error: {error.strerror}\n{RULE}")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, _f: child.send_signal(s))
    threading.Thread(target=_watch_hosts, args=(links, own, child), daemon=True).start()
    return child.wait()


def _reach(host: str, port: int, own: str) -> socket.socket:
    """Connect to a remote host's sshd as ssh would, or die as mpirun does."""
    try:
        conn = socket.create_connection((host, port), timeout=5, source_address=(own, 0))
        conn.settimeout(5)
        banner = conn.recv(256)
        conn.settimeout(None)
    except OSError as error:
        reason = "Connection refused" if isinstance(error, ConnectionRefusedError) else (
            error.strerror or "Connection timed out")
        die(f"ssh: connect to host {host} port {port}: {reason}\n{ORTE_START}")
    if not banner.startswith(b"SSH-"):
        die(f"kex_exchange_identification: Connection closed by remote host\n"
            f"Connection closed by {host} port {port}\n{ORTE_START}")
    return conn


def _watch_hosts(links: dict[str, socket.socket], own: str, child: subprocess.Popen) -> None:
    selector = selectors.DefaultSelector()
    for host, conn in links.items():
        selector.register(conn, selectors.EVENT_READ, host)
    while links:
        for key, _ in selector.select():
            try:
                data = key.fileobj.recv(4096)  # type: ignore[union-attr]
            except OSError:
                data = b""
            if data:
                continue
            say(f"{RULE}\nORTE has lost communication with a remote daemon.\n\n"
                f"  HNP daemon   : [[4242,0],0] on node {own}\n"
                f"  Remote daemon: [[4242,0],1] on node {key.data}\n\n"
                f"This is usually due to either a failure of the TCP network\n"
                f"connection to the node, or possibly an internal failure of\n"
                f"the daemon itself. We cannot recover from this failure, and\n"
                f"therefore will terminate the job.\n{RULE}")
            child.kill()
            child.wait()
            die("", 1)


def sshd(argv: list[str]) -> int:
    """Listen on every -p port (default 22) of this host's address; hold connections."""
    ports: list[int] = []
    i = 0
    while i < len(argv):
        if argv[i] in ("-p", "-o", "-f", "-h", "-E"):
            if argv[i] == "-p":
                ports.append(int(argv[i + 1]))
            i += 2
        elif argv[i] in ("-D", "-e", "-d", "-q"):
            i += 1
        else:
            die(f"sshd (llmfab stand-in): unsupported option {argv[i]}", 2)
    own = os.environ.get("STANDIN_HOST_ADDR", "127.0.0.1")
    servers = []
    for port in ports or [22]:
        try:
            servers.append(socket.create_server((own, port)))
        except OSError as error:
            say(f"error: Bind to port {port} on {own} failed: {error.strerror}.")
    if not servers:
        die("fatal: Cannot bind any address.", 255)
    for server in servers:
        say(f"Server listening on {own} port {server.getsockname()[1]}.")
        threading.Thread(target=_accept, args=(server,), daemon=True).start()
    threading.Event().wait()
    return 0


def _accept(server: socket.socket) -> None:
    while True:
        conn, peer = server.accept()
        threading.Thread(target=_hold, args=(conn, peer), daemon=True).start()


def _hold(conn: socket.socket, peer: tuple[str, int]) -> None:
    try:
        conn.sendall(BANNER)
        while conn.recv(4096):
            pass
    except OSError:
        pass
    finally:
        conn.close()
    print(f"Connection closed by {peer[0]} port {peer[1]}", file=sys.stderr, flush=True)
