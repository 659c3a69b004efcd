"""SGLang profiles and launch rendering.

Every node runs the same ``python3 -m sglang.launch_server`` with
``--tp-size 16 --nnodes 2 --node-rank R --dist-init-addr HEAD_IPv4:PORT``
(SGLang's ``benchmark/deepseek_v3/README.md``, two H20 x 8 nodes); only rank 0
serves HTTP. Containers get no ``--restart``: a rank restarted alone cannot
rejoin its group, so ranks are restarted together by the task layer.

Each version is a data file, ``llmfab/engines/profiles/sglang-<version>.yaml``;
this module holds only how argv is built. Flag sources were read from the
release wheels: ``sglang-0.4.4``
(``python/sglang/srt/server_args.py`` in the repository) and ``sglang-0.5.23``,
whose flags are declared as annotated fields under
``python/sglang/srt/arg_groups/fields/`` and registered by
``arg_groups/arg_utils.py:add_cli_args_from_dataclass`` (``--`` + field name
with dashes, plus aliases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmfab.engines.launch import (prepare, Launch, NodeInfo, Step, base_mounts,
                                   docker_run, fabric_env, logged)
from llmfab.engines.profile import EngineProfile, load_profiles, render_flags

NAME = "sglang"
DEFAULT_VERSION = "v0.4.4"
"""The runbook's pin."""

PROFILES = load_profiles(NAME)
"""Versions, from llmfab/engines/profiles/sglang-*.yaml."""


def default_options(profile: EngineProfile) -> dict[str, Any]:
    """DeepSeek-R1 native FP8 on 2 x 8 H20: TP16, 64k context, metrics on, SGLang's own memory fraction.

    The runbook's ``max_total_tokens: 65536`` is not carried over: it caps the
    KV pool for all requests together; ``context_length`` caps one request.
    """
    # No trust_remote_code: DeepSeek-V3/R1 and Llama are native here, and remote code
    # from the (shared) model directory would run as root in the container.
    return {"tp_size": 16, "context_length": 65536,
            "enable_metrics": True, "enable_cache_report": True}


def default_mem_fraction(tp_size: int) -> float:
    """SGLang's own --mem-fraction-static when none is given, by tensor-parallel size.

    sglang 0.4.x ``srt/server_args.py`` ``__post_init__`` (0.79 at tp >= 16: 0.4.4
    lines 204-206); llmfab leaves the flag out unless engine.options sets it, and
    the capacity plan uses this figure. Later releases derive it from the GPU's
    memory instead; for them it is the plan's estimate.
    """
    for floor, fraction in ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87)):
        if tp_size >= floor:
            return fraction
    return 0.88


def default_layout(nodes: int, gpus_per_node: int) -> dict[str, int]:
    """One TP group over every GPU of the cluster, experts likewise (kept only where the version has the option)."""
    return {"tp_size": nodes * gpus_per_node, "pp_size": 1, "ep_size": nodes * gpus_per_node}


def check_parallelism(options: dict[str, Any], nodes: int, gpus_per_node: int) -> list[str]:
    """Refuse tp_size other than the cluster's GPU count, or ep/dp that do not divide it."""
    total = nodes * gpus_per_node
    tp = int(options.get("tp_size") or 1)
    errors = []
    if tp != total:
        errors.append(f"SGLang: tp_size is {tp}, but the cluster has {nodes} x {gpus_per_node} "
                      f"= {total} GPUs; set tp_size: {total}")
    for key in ("ep_size", "dp_size", "attn_dp_size"):
        size = int(options.get(key) or 1)
        if size < 1 or tp % size:
            errors.append(f"SGLang: {key} {size} must divide tp_size {tp}")
    return errors


def _prepare(profile: EngineProfile, launch: Launch) -> dict[str, Any]:
    return prepare(profile, launch, check_parallelism)


def serve_command(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[str]:
    """``python3 -m sglang.launch_server`` argv for one rank (the key is added by the payload)."""
    opts = _prepare(profile, launch)
    managed = {"model_path": launch.model_path, "served_model_name": launch.served_name,
               "host": launch.bind_host, "port": launch.port, "nnodes": len(launch.nodes),
               "node_rank": node.rank,
               "dist_init_addr": f"{launch.head.address}:{launch.dist_port}"}
    return ["python3", "-m", "sglang.launch_server", *render_flags(profile, managed),
            *render_flags(profile, opts)]


LAUNCHER_NAME = "sglang-launch.py"
LAUNCHER_SOURCE = Path(__file__).resolve().parent / "sglang_launch.py"


def launcher_path(launch: Launch) -> str:
    """Where the key-reading launcher (``sglang_launch.py``) lives on the head."""
    return f"{launch.config_dir}/{LAUNCHER_NAME}"


def container_argv(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[str]:
    """``docker run`` of one SGLang rank; rank 0 starts through the launcher that
    reads the API key file, so the key is in no argv and no log."""
    with_key = bool(launch.api_key_file) and node.rank == 0
    command = serve_command(profile, launch, node)
    mounts = base_mounts(launch, node, with_key=True)
    if with_key:
        command = ["python3", launcher_path(launch), *command[3:]]
        mounts.append((launcher_path(launch), launcher_path(launch), "ro"))
    payload = logged(command, f"{launch.log_dir}/sglang-rank{node.rank}.log")
    return docker_run(profile, launch, node, payload, fabric_env(launch, node), mounts)


def plan(profile: EngineProfile, launch: Launch) -> list[Step]:
    """One container per node, head first; readiness is asked of rank 0 only."""
    return [Step(n.name, f"start SGLang rank {n.rank}", container_argv(profile, launch, n),
                 wait=(f"{profile.health_path} is 200 on the head" if n.rank == 0 else ""),
                 log=f"{launch.log_dir}/sglang-rank{n.rank}.log")
            for n in launch.ordered()]


def files(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[dict[str, str]]:
    """Files the engine needs on NODE before launch: the key-reading launcher on the head."""
    if not (launch.api_key_file and node.rank == 0):
        return []
    return [{"path": launcher_path(launch), "mode": "0644", "content": LAUNCHER_SOURCE.read_text()}]


def internal_ports(profile: EngineProfile, launch: Launch) -> list[tuple[int, int, str]]:
    """The dist-init store and the ZMQ sockets SGLang derives from it, as (first, last, what)."""
    return [(launch.dist_port, launch.dist_port + launch.dist_span - 1, "SGLang dist-init store and ZMQ")]


def rendezvous_port(launch: Launch) -> int:
    """The port `fab check` expects free on every node besides the API port: the dist-init store."""
    return launch.dist_port
