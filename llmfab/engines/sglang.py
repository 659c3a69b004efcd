"""SGLang profiles and launch rendering.

Every node runs the same ``python3 -m sglang.launch_server`` with
``--tp-size 16 --nnodes 2 --node-rank R --dist-init-addr HEAD_IPv4:PORT``
(SGLang's ``benchmark/deepseek_v3/README.md``, two H20 x 8 nodes); only rank 0
serves HTTP. Containers get no ``--restart``: a rank restarted alone cannot
rejoin its group, so ranks are restarted together by the task layer.

Flag sources were read from the release wheels on PyPI: ``sglang-0.4.4``
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
from llmfab.engines.profile import (EngineProfile, Flag, Readiness,
                                    flag_table, render_flags)

_SA = "python/sglang/srt/server_args.py"
_FD = "python/sglang/srt/arg_groups/fields/"


def _f(tag: str, name: str, type_: str, path: str, line: int, **kw: Any) -> Flag:
    return Flag(name, type_, f"sgl-project/sglang@{tag}:{path}#L{line}", **kw)


def _flags_044() -> dict[str, Flag]:
    t, s = "v0.4.4", _SA
    return flag_table(
        _f(t, "--model-path", "str", s, 306, managed=True, note="model_path"),
        _f(t, "--served-model-name", "str", s, 436, managed=True, note="served_name"),
        _f(t, "--host", "str", s, 318, managed=True, note="bind_host"),
        _f(t, "--port", "int", s, 321, managed=True, note="port"),
        _f(t, "--api-key", "str", s, 624, managed=True, note="api_key_file"),
        _f(t, "--nnodes", "int", s, 684, managed=True, note="len(nodes)"),
        _f(t, "--node-rank", "int", s, 687, managed=True, note="node rank"),
        _f(t, "--dist-init-addr", "str", s, 678, managed=True, note="head IPv4:dist_port"),
        _f(t, "--tp-size", "int", s, 520, note="alias of --tensor-parallel-size"),
        _f(t, "--dp-size", "int", s, 650),
        _f(t, "--ep-size", "int", s, 669, note="alias of --expert-parallel-size"),
        _f(t, "--enable-ep-moe", "bool", s, 891),
        _f(t, "--enable-dp-attention", "bool", s, 886),
        _f(t, "--trust-remote-code", "bool", s, 369),
        _f(t, "--context-length", "int", s, 423),
        _f(t, "--mem-fraction-static", "float", s, 462),
        _f(t, "--max-running-requests", "int", s, 468),
        _f(t, "--max-total-tokens", "int", s, 474,
           note="caps the KV pool of all requests together, not the context length"),
        _f(t, "--chunked-prefill-size", "int", s, 481),
        _f(t, "--max-prefill-tokens", "int", s, 487),
        _f(t, "--kv-cache-dtype", "choice", s, 388, choices=("auto", "fp8_e5m2", "fp8_e4m3")),
        _f(t, "--quantization", "str", s, 395),
        _f(t, "--random-seed", "int", s, 538),
        _f(t, "--watchdog-timeout", "float", s, 550),
        _f(t, "--dist-timeout", "int", s, 556),
        _f(t, "--log-requests", "bool", s, 594),
        _f(t, "--show-time-cost", "bool", s, 606),
        _f(t, "--enable-metrics", "bool", s, 611),
        _f(t, "--enable-cache-report", "bool", s, 636),
        _f(t, "--reasoning-parser", "choice", s, 641, choices=("deepseek-r1",)),
        _f(t, "--attention-backend", "choice", s, 722,
           choices=("flashinfer", "triton", "torch_native")),
        _f(t, "--enable-flashinfer-mla", "bool", s, 743),
        _f(t, "--speculative-algorithm", "choice", s, 755, choices=("EAGLE", "NEXTN")),
        _f(t, "--speculative-draft-model-path", "str", s, 761),
        _f(t, "--speculative-num-steps", "int", s, 766),
        _f(t, "--speculative-eagle-topk", "int", s, 772),
        _f(t, "--speculative-num-draft-tokens", "int", s, 778),
        _f(t, "--disable-radix-cache", "bool", s, 841),
        _f(t, "--disable-cuda-graph", "bool", s, 846),
        _f(t, "--enable-torch-compile", "bool", s, 896),
        _f(t, "--torch-compile-max-bs", "int", s, 901),
        _f(t, "--cuda-graph-max-bs", "int", s, 907),
        _f(t, "--stream-output", "bool", s, 533),
        _f(t, "--allow-auto-truncate", "bool", s, 965),
    )


def _flags_0523() -> dict[str, Flag]:
    t = "v0.5.23"
    par, srv, sch, mdl = f"{_FD}parallel.py", f"{_FD}serving.py", f"{_FD}schedule.py", f"{_FD}model.py"
    obs, spec, ex, dev = f"{_FD}observability.py", f"{_FD}spec.py", f"{_FD}exec_.py", f"{_FD}device.py"
    return flag_table(
        _f(t, "--model-path", "str", mdl, 51, managed=True, note="model_path"),
        _f(t, "--served-model-name", "str", srv, 168, managed=True, note="served_name"),
        _f(t, "--host", "str", srv, 65, managed=True, note="bind_host"),
        _f(t, "--port", "int", srv, 66, managed=True, note="port"),
        _f(t, "--api-key", "str", srv, 160, managed=True, note="api_key_file"),
        _f(t, "--nnodes", "int", par, 43, managed=True, note="len(nodes)"),
        _f(t, "--node-rank", "int", par, 44, managed=True, note="node rank"),
        _f(t, "--dist-init-addr", "str", par, 32, managed=True, note="head IPv4:dist_port"),
        _f(t, "--tp-size", "int", par, 45, note="alias --tensor-parallel-size"),
        _f(t, "--dp-size", "int", par, 73),
        _f(t, "--attn-dp-size", "int", par, 81, note="replaces --dp-size + --enable-dp-attention"),
        _f(t, "--ep-size", "int", par, 281, note="aliases --expert-parallel-size, --ep"),
        _f(t, "--trust-remote-code", "bool", mdl, 106),
        _f(t, "--context-length", "int", mdl, 110),
        _f(t, "--quantization", "str", mdl, 177),
        _f(t, "--kv-cache-dtype", "choice", mdl, 197, choices=("auto", "fp8_e5m2", "fp8_e4m3"),
           note="subset of the choices at that line"),
        _f(t, "--mem-fraction-static", "float", f"{_FD}schedule.py", 27),
        _f(t, "--max-running-requests", "int", sch, 31),
        _f(t, "--max-total-tokens", "int", sch, 39,
           note="caps the KV pool of all requests together, not the context length"),
        _f(t, "--chunked-prefill-size", "int", sch, 52),
        _f(t, "--max-prefill-tokens", "int", sch, 71),
        _f(t, "--random-seed", "int", dev, 47),
        _f(t, "--watchdog-timeout", "float", dev, 66),
        _f(t, "--dist-timeout", "int", par, 29),
        _f(t, "--log-requests", "bool", obs, 36),
        _f(t, "--show-time-cost", "bool", obs, 69),
        _f(t, "--enable-metrics", "bool", obs, 70),
        _f(t, "--enable-cache-report", "bool", srv, 196),
        _f(t, "--allow-auto-truncate", "bool", srv, 254),
        _f(t, "--reasoning-parser", "str", _SA, 368),
        _f(t, "--speculative-algorithm", "str", spec, 31),
        _f(t, "--speculative-num-steps", "int", spec, 58),
        _f(t, "--speculative-eagle-topk", "int", spec, 62),
        _f(t, "--speculative-num-draft-tokens", "int", spec, 66),
        _f(t, "--enable-torch-compile", "bool", ex, 691),
        _f(t, "--torch-compile-max-bs", "int", ex, 698),
    )


SGLANG_0_4_4 = EngineProfile(
    engine="sglang", version="v0.4.4", image="lmsysorg/sglang:v0.4.4-cu125", digest=None,
    image_source="runbook pin (one tag instead of 'latest' in one place and v0.4.4-cu125 in "
                 "another); tag only: no digest could be verified from here",
    cuda_requires="12.5", min_driver="555.42.02",
    cuda_source="the image tag's -cu125 suffix (CUDA 12.5 base); the runbook's driver "
                "550.54.14 (CUDA 12.4) is older: the host check must flag it",
    launch_pattern="per-node", flags=_flags_044(),
    readiness=Readiness(health_path="/health", models_path="/v1/models",
                        info_path="/get_server_info",
                        extra_paths=("/health_generate", "/get_model_info"), budget_s=3600,
                        note="http_server.py: /health, /health_generate, /get_server_info"),
    api_key_flag="--api-key", api_key_env=None,
    notes=("no environment variable for the API key: llmfab's launcher reads the mounted file "
           "and adds --api-key inside the process; SGLang logs server_args (engine.py#L422), "
           "key included, so the launcher blanks it in everything the server prints",),
)

SGLANG_0_5_23 = EngineProfile(
    engine="sglang", version="v0.5.23", image="lmsysorg/sglang:v0.5.23-cu130", digest=None,
    image_source="SGLang's vX.Y.Z-cu130 tag pattern (v0.5.11-cu130, v0.5.12-cu130 are in "
                 "public deployment configs); this tag was not checked against Docker Hub",
    cuda_requires="13.0", min_driver="580.65.06",
    cuda_source="sglang-0.5.23 pins torch==2.14.1; release notes of downstream runners say "
                "0.5.23 ships on CUDA 13.0",
    launch_pattern="per-node", flags=_flags_0523(),
    readiness=Readiness(health_path="/health", models_path="/v1/models", info_path="/server_info",
                        extra_paths=("/health_generate", "/model_info"), budget_s=3600,
                        note="/get_server_info and /get_model_info are deprecated aliases"),
    api_key_flag="--api-key", api_key_env=None,
    removed={
        "stream_output": "removed in this version",
        "enable_ep_moe": "removed; use ep_size",
        "enable_dp_attention": "deprecated; use attn_dp_size",
        "disable_cuda_graph": "deprecated in this version (server_args.py#L410)",
        "cuda_graph_max_bs": "not verified for this version, so not rendered",
        "enable_flashinfer_mla": "removed; the attention backend is chosen by attention_backend",
        "attention_backend": "its choices were not verified for this version, so not rendered",
    },
    unverified=("--attention-backend (choices)", "--cuda-graph-max-bs"),
    notes=("logs resolved server args at start (entrypoints/engine.py#L311), API key included",),
)

PROFILES = {p.version: p for p in (SGLANG_0_4_4, SGLANG_0_5_23)}


def default_options(profile: EngineProfile) -> dict[str, Any]:
    """DeepSeek-R1 native FP8 on 2 x 8 H20: TP16, 64k context, metrics on, SGLang's own memory fraction.

    The runbook's ``max_total_tokens: 65536`` is not carried over: it caps the
    KV pool for all requests together; ``context_length`` caps one request.
    """
    # No trust_remote_code: DeepSeek-V3/R1 and Llama are native here, and remote code
    # from the (shared) model directory would run as root in the container.
    return {"tp_size": 16, "context_length": 65536,
            "enable_metrics": True, "enable_cache_report": True}


# DeepSeek-R1's thinking as reasoning_content, not inline in content (--reasoning-parser, see the flags).
REASONING = {"v0.4.4": {"reasoning_parser": "deepseek-r1"}, "v0.5.23": {"reasoning_parser": "deepseek-r1"}}


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
                 wait=(f"{profile.health_path} is 200 on the head" if n.rank == 0 else ""))
            for n in launch.ordered()]
