"""What the engines need to know about the cluster, and the docker argv they share.

Everything here is pure: it builds argv lists (never shell strings) that the
task layer runs over SSH or writes into an offline bundle.

API key design: the key lives in a file on the head (mode 0600). The file is
bind-mounted read-only into the head container at ``API_KEY_MOUNT`` and read
by the container's own ``bash -c`` at launch (``$(cat ...)``), so the key
never appears in any argv that llmfab renders, in ``docker inspect``, or in
llmfab's logs. Where the engine reads a key from its environment (vLLM:
``VLLM_API_KEY``) the payload exports it, so it is not in the engine's argv
either. Where it does not (SGLang), the payload passes ``--api-key`` with the
command substitution; the engine process's own argv then holds the key, and
SGLang echoes its server args in its startup log: keep that log private
(see RUNBOOK_FIXES.md).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from llmfab.engines.profile import EngineConfigError, EngineProfile, coerce_options

API_KEY_MOUNT = "/run/llmfab/api_key"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_HCA = re.compile(r"^[A-Za-z0-9_.-]+(:\d+)?$")
_SIZE = re.compile(r"^\d+(\.\d+)?[bkmgBKMG]?$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")


@dataclass(frozen=True)
class NodeInfo:
    """One host: its name, IPv4 on the fabric interface, and rank (0 = head)."""

    name: str
    address: str
    rank: int


@dataclass(frozen=True)
class Launch:
    """A deployment as the engines see it; defaults follow the runbook (2 x 8 H20).

    ``options`` are engine options as in config (``max_model_len: 65536``);
    validate them with ``validate_options`` before rendering.
    """

    nodes: tuple[NodeInfo, ...]
    model_path: str
    gpus_per_node: int = 8
    served_name: str = "DeepSeek-R1"
    port: int = 40000
    bind_host: str = "0.0.0.0"
    interface: str = "bond0"
    nccl_ib_hca: tuple[str, ...] = ()
    nccl_ib_gid_index: int | None = None
    api_key_file: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    shm_size: str = "10.24g"
    nofile: int = 1048576
    container_name: str = "llmfab-engine"
    labels: Mapping[str, str] = field(default_factory=dict)
    # The containers' own log directory, the only host path they may write:
    # llmfab's run logs sit one level up, root-only and never mounted.
    log_dir: str = "/var/log/llmfab/engine"
    config_dir: str = "/etc/llmfab/engine"
    ssh_dir: str = "/etc/llmfab/ssh"
    ray_port: int = 6379
    dist_port: int = 20001
    sshd_port: int = 2233
    # Ray's other listeners, pinned so that the firewall can name them: raylet,
    # object manager, dashboard agent (gRPC, HTTP), metrics, runtime-env agent
    # take six ports per rank after ray_port; the Ray Client server (Ray's own
    # default port) and a slice of the worker range per rank follow. Per rank,
    # because Ray binds them on every address: nodes that share one network
    # namespace (VMs on one host, the test hosts) would collide otherwise.
    ray_client_port: int = 10001
    ray_worker_ports: tuple[int, int] = (10002, 19999)
    # SGLang and vLLM's multi-node backend derive their ZMQ and store ports from
    # the dist port (SGLang: dist_port + 1.. for its scheduler sockets).
    dist_span: int = 100
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def head(self) -> NodeInfo:
        return next(n for n in self.nodes if n.rank == 0)

    @property
    def total_gpus(self) -> int:
        return len(self.nodes) * self.gpus_per_node

    def ordered(self) -> list[NodeInfo]:
        """Nodes by rank, head first."""
        return sorted(self.nodes, key=lambda n: n.rank)

    def ray_ports(self, rank: int) -> dict[str, int]:
        """Ray's pinned listeners of one rank by ``ray start`` flag (workers aside)."""
        names = ("node-manager-port", "object-manager-port", "dashboard-agent-grpc-port",
                 "dashboard-agent-listen-port", "metrics-export-port", "runtime-env-agent-port")
        base = self.ray_port + 1 + rank * len(names)
        return {name: base + i for i, name in enumerate(names)}

    def ray_worker_slice(self, rank: int) -> tuple[int, int]:
        """The worker ports of one rank: an equal share of ``ray_worker_ports``."""
        first, last = self.ray_worker_ports
        size = (last - first + 1) // len(self.nodes)
        return first + rank * size, first + (rank + 1) * size - 1


@dataclass(frozen=True)
class LaunchStep:
    """One command of a launch plan: run ``argv`` on ``node``, then wait for ``wait``.

    ``log`` is the file the command writes (in ``log_dir``); ``waits_for`` are
    the (node, port) pairs that must answer before the command starts (a vLLM
    Ray worker: the head's GCS; TensorRT-LLM's mpirun: every worker's sshd).
    Steps read these fields instead of parsing the argv.
    """

    node: str
    what: str
    argv: list[str]
    wait: str = ""
    log: str = ""
    waits_for: tuple[tuple[NodeInfo, int], ...] = ()


Step = LaunchStep
"""The older name of LaunchStep."""


def _check_ipv4(errors: list[str], what: str, value: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        errors.append(f"{what} must be an IPv4 literal (no hostname, no IPv6), got {value!r}")


def _check_nodes(launch: Launch, errors: list[str]) -> None:
    if not launch.nodes:
        errors.append("at least one node is needed")
        return
    ranks = sorted(n.rank for n in launch.nodes)
    if ranks != list(range(len(launch.nodes))):
        errors.append(f"node ranks must be 0..{len(launch.nodes) - 1}, each once; got {ranks}")
    addresses = [n.address for n in launch.nodes]
    if len(set(addresses)) != len(addresses):
        errors.append(f"node addresses must be unique, got {addresses}")
    for n in launch.nodes:
        _check_ipv4(errors, f"address of node {n.name!r}", n.address)
        if not _NAME.match(n.name):
            errors.append(f"node name {n.name!r} has characters outside [A-Za-z0-9_.-]")


def _check_paths(launch: Launch, errors: list[str]) -> None:
    for what, path in (("model_path", launch.model_path), ("log_dir", launch.log_dir),
                       ("config_dir", launch.config_dir), ("ssh_dir", launch.ssh_dir),
                       ("api_key_file", launch.api_key_file)):
        if path is None:
            continue
        if not os.path.isabs(path) or os.path.normpath(path) != path.rstrip("/") or ":" in path:
            errors.append(f"{what} must be a normalised absolute path without ':' "
                          f"(the runbook's relative 'mnt/share/...' defect), got {path!r}")


def check_launch(launch: Launch) -> list[str]:
    """Check the deployment fields the renderers rely on; return readable errors."""
    errors: list[str] = []
    _check_nodes(launch, errors)
    _check_paths(launch, errors)
    for what, port in (("port", launch.port), ("ray_port", launch.ray_port),
                       ("dist_port", launch.dist_port), ("sshd_port", launch.sshd_port)):
        if not 1 <= port <= 65535:
            errors.append(f"{what} must be 1..65535, got {port}")
    _check_ipv4(errors, "bind_host", launch.bind_host)
    if launch.gpus_per_node < 1:
        errors.append(f"gpus_per_node must be positive, got {launch.gpus_per_node}")
    if not _IFACE.match(launch.interface):
        errors.append(f"interface {launch.interface!r} is not a network interface name")
    for hca in launch.nccl_ib_hca:
        if not _HCA.match(hca):
            errors.append(f"NCCL IB HCA {hca!r} is not a device name like mlx5_0")
    if not _NAME.match(launch.container_name):
        errors.append(f"container_name {launch.container_name!r} is not a docker name")
    if not _SIZE.match(launch.shm_size):
        errors.append(f"shm_size {launch.shm_size!r} is not a docker size like 10.24g")
    if not launch.served_name or any(c.isspace() for c in launch.served_name):
        errors.append(f"served_name must be one word, got {launch.served_name!r}")
    for key in launch.labels:
        if not _LABEL_KEY.match(key):
            errors.append(f"label key {key!r} is not a docker label key")
    return errors


def prepare(profile: EngineProfile, launch: Launch,
            check_parallelism: Callable[[dict[str, Any], int, int], list[str]],
            errors: list[str] | None = None) -> dict[str, Any]:
    """Validate a launch and its options for one engine module; return the coerced options.

    Every problem found (the launch's, the options', the parallel layout's, and
    the caller's own ``errors``) is raised together as one EngineConfigError.
    """
    errors = check_launch(launch) + list(errors or [])
    try:
        opts = coerce_options(profile, launch.options)
    except EngineConfigError as exc:
        errors += exc.errors
        opts = {}
    if opts:
        errors += check_parallelism(opts, len(launch.nodes), launch.gpus_per_node)
    require(errors)
    return opts


def require(errors: list[str]) -> None:
    """Raise EngineConfigError when any error was found."""
    if errors:
        raise EngineConfigError(errors)


def fabric_env(launch: Launch, node: NodeInfo) -> dict[str, str]:
    """NCCL/Gloo environment for one node, pinned to the fabric interface."""
    env = {"GLOO_SOCKET_IFNAME": launch.interface, "NCCL_SOCKET_IFNAME": launch.interface}
    if launch.nccl_ib_hca:
        env["NCCL_IB_HCA"] = ",".join(launch.nccl_ib_hca)
    if launch.nccl_ib_gid_index is not None:
        env["NCCL_IB_GID_INDEX"] = str(launch.nccl_ib_gid_index)
    env.update(launch.extra_env)
    return env


def container_name(launch: Launch, node: NodeInfo) -> str:
    """Same container name on every node: one engine container per host."""
    return launch.container_name


def docker_run(profile: EngineProfile, launch: Launch, node: NodeInfo, payload: str,
               env: Mapping[str, str], mounts: list[tuple[str, str, str]],
               extra: list[str] | None = None) -> list[str]:
    """``docker run -d`` argv with host networking, GPUs, IB and one ``bash -c`` payload.

    ``mounts`` are (host, container, mode). No ``-p`` (inert with host
    networking) and no ``--restart`` (ranks must restart together).
    """
    argv = ["docker", "run", "-d", "--name", container_name(launch, node),
            "--network", "host", "--ipc", "host", "--shm-size", launch.shm_size,
            "--gpus", "all", "--device", "/dev/infiniband", "--cap-add", "IPC_LOCK",
            "--ulimit", f"nofile={launch.nofile}:{launch.nofile}",
            "--ulimit", "memlock=-1:-1"]
    argv += extra or []
    labels = {"llmfab.engine": profile.engine, "llmfab.version": profile.version,
              "llmfab.rank": str(node.rank), **launch.labels}
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    for host, inside, mode in mounts:
        argv += ["-v", f"{host}:{inside}:{mode}"]
    for key, value in {**profile.env, **env}.items():
        argv += ["-e", f"{key}={value}"]
    argv += ["--entrypoint", "/bin/bash", profile.image_ref, "-c", payload]
    return argv


def base_mounts(launch: Launch, node: NodeInfo, with_key: bool) -> list[tuple[str, str, str]]:
    """Model read-only at the same absolute path, logs, and the key file on the head."""
    mounts = [(launch.model_path, launch.model_path, "ro"), (launch.log_dir, launch.log_dir, "rw")]
    if with_key and launch.api_key_file and node.rank == 0:
        mounts.append((launch.api_key_file, API_KEY_MOUNT, "ro"))
    return mounts


def logged(command: list[str], log_file: str, prelude: list[str] | None = None,
           raw_tail: str = "", program: str = "") -> str:
    """One ``bash -c`` payload: prelude statements, then ``exec command >> log``.

    ``raw_tail`` is appended unquoted (a variable reference such as
    ``"$LLMFAB_API_KEY"`` that the container shell must expand); ``program``,
    when given, replaces ``command[0]`` unquoted (``"$prefix/bin/mpirun"``).
    """
    lines = ["set -euo pipefail", *(prelude or [])]
    tail = f" {raw_tail}" if raw_tail else ""
    head = f"{program} {shlex.join(command[1:])}" if program else shlex.join(command)
    lines.append(f"exec {head}{tail} >>{shlex.quote(log_file)} 2>&1")
    return "; ".join(lines)


KEY_VAR = "LLMFAB_API_KEY"


def key_prelude(export_as: str | None = None) -> list[str]:
    """Statements that read the mounted key at launch, stopping when it is missing or empty.

    The variable stays unexported unless ``export_as`` names the engine's own
    environment variable.
    """
    lines = [f'{KEY_VAR}="$(cat {API_KEY_MOUNT})"', f'[ -n "${KEY_VAR}" ]']
    if export_as:
        lines.append(f'export {export_as}="${KEY_VAR}"')
    return lines
