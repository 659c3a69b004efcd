"""Multi-node rendezvous: a stand-in for torch.distributed's TCPStore.

Node rank 0 listens on this host's address at the dist-init port (SGLang's
``--dist-init-addr``, vLLM's ``--master-addr/--master-port``) and waits for
every other node rank; those connect (retrying) and stay connected. Once the
group is whole the listener closes: a rank restarted alone cannot rejoin, as
with a real NCCL group. A dropped connection means a rank died: rank 0 and
the others then exit 1. Timeouts print torch's c10d messages.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import socket
import threading
import time
from typing import Callable

from .engines import Settings
from .logs import die, say

Lost = Callable[[str], None]


def _timeout() -> float:
    return float(os.environ.get("STANDIN_DIST_TIMEOUT", "600"))


def form_group(s: Settings, host_addr: str, on_lost: Lost) -> None:
    """Block until the group of ``s.nnodes`` nodes is whole, then watch it in a thread."""
    if s.nnodes <= 1 or s.dist_addr is None:
        return
    if s.node_rank == 0:
        peers = _wait_for_ranks(s, host_addr, _timeout())
    else:
        peers = {0: _join(s, host_addr, _timeout())}
    threading.Thread(target=_watch, args=(peers, on_lost), daemon=True).start()


def _hello(s: Settings) -> bytes:
    return json.dumps({"node_rank": s.node_rank, "nnodes": s.nnodes,
                       "world_size": s.world_size}).encode() + b"\n"


def _wait_for_ranks(s: Settings, host_addr: str, timeout: float) -> dict[int, socket.socket]:
    """Rank 0: accept one connection per other node rank, checking what each says."""
    assert s.dist_addr is not None
    port = s.dist_addr[1]
    try:
        server = socket.create_server((host_addr, port))
    except OSError as error:
        die(f"torch.distributed.DistNetworkError: The server socket has failed to listen on any "
            f"local network address. port: {port}, useIpv6: 0, code: -{error.errno}, name: "
            f"{errno.errorcode.get(error.errno or 0, '?')}, message: {error.strerror}")
    deadline = time.monotonic() + timeout
    peers: dict[int, socket.socket] = {}
    per_node = s.local_gpus_needed
    while len(peers) < s.nnodes - 1:
        server.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            conn, _ = server.accept()
        except socket.timeout:
            die(f"[rank0]: torch.distributed.DistStoreError: Timed out after {int(timeout) + 1} "
                f"seconds waiting for clients. {per_node * (1 + len(peers))}/{s.world_size} "
                f"clients joined.")
        rank, problem = _check_hello(conn, s, peers)
        if problem:
            conn.sendall(f"error {problem}\n".encode())
            conn.close()
            say(f"[rank0]: rendezvous refused a node: {problem}")
            continue
        conn.sendall(b"ok\n")
        peers[rank] = conn
    server.close()
    return peers


def _check_hello(conn: socket.socket, s: Settings,
                 peers: dict[int, socket.socket]) -> tuple[int, str]:
    """Read a joining rank's greeting: (its node rank, what is wrong or "")."""
    conn.settimeout(10)
    try:
        hello = json.loads(conn.makefile("rb").readline() or b"{}")
    except (OSError, ValueError):
        return -1, "no greeting"
    conn.settimeout(None)
    rank = int(hello.get("node_rank", -1))
    if hello.get("nnodes") != s.nnodes or hello.get("world_size") != s.world_size:
        return rank, (f"node rank {rank} has nnodes={hello.get('nnodes')}, world size "
                      f"{hello.get('world_size')}; rank 0 has nnodes={s.nnodes}, world size "
                      f"{s.world_size}")
    if not 0 < rank < s.nnodes or rank in peers:
        return rank, f"node rank {rank} is out of range or already joined"
    return rank, ""


def _join(s: Settings, host_addr: str, timeout: float) -> socket.socket:
    """Ranks > 0: connect to rank 0 until it answers, then greet it."""
    assert s.dist_addr is not None
    deadline = time.monotonic() + timeout
    first_rank = s.node_rank * s.local_gpus_needed
    while True:
        try:
            conn = socket.create_connection(s.dist_addr, timeout=2, source_address=(host_addr, 0))
            break
        except OSError:
            if time.monotonic() > deadline:
                ms = int(timeout * 1000)
                die(f"[rank{first_rank}]: torch.distributed.DistNetworkError: The client socket "
                    f"has timed out after {ms}ms while trying to connect to "
                    f"({s.dist_addr[0]}, {s.dist_addr[1]}).")
            time.sleep(0.5)
    conn.sendall(_hello(s))
    conn.settimeout(30)
    try:
        reply = conn.makefile("rb").readline().decode().strip()
    except OSError:
        reply = "error no answer"
    if reply != "ok":
        die(f"[rank{first_rank}]: RuntimeError: rendezvous with {s.dist_addr[0]}:"
            f"{s.dist_addr[1]} failed: {reply.removeprefix('error ')}")
    conn.settimeout(None)
    return conn


def _watch(peers: dict[int, socket.socket], on_lost: Lost) -> None:
    """Wait for any peer connection to drop, then call ``on_lost`` with its address."""
    selector = selectors.DefaultSelector()
    for conn in peers.values():
        selector.register(conn, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            conn = key.fileobj
            assert isinstance(conn, socket.socket)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                try:
                    host, port = conn.getpeername()[:2]
                except OSError:
                    host, port = "?", 0
                on_lost(f"[{host}]:{port}")
