"""TensorRT-LLM profile and launch rendering (NGC release image).

One MPI world spans both nodes: each node runs a container with ``sshd`` on a
spare port (``--network host --ipc host --ulimit memlock=-1``), the head runs
``mpirun -H n1:8,n2:8 -np 16 ... trtllm-llmapi-launch trtllm-serve MODEL
--tp_size 16 --ep_size 16 --extra_llm_api_options FILE``. The extra-options
YAML (attention DP, FP8 KV cache, optional MTP) is rendered here too; the task
layer writes it to ``config_dir`` on every node.

Version note: 1.0.0 takes the YAML through ``--extra_llm_api_options``; later
serve.py copies declare ``--config`` with ``--extra_llm_api_options`` as an
alias (the 1.3.0rc11 DeepSeek example uses ``--config``). A newer profile
should switch ``CONFIG_FLAG``.

The version is a data file, ``llmfab/engines/profiles/trtllm-1.0.0.yaml``;
this module holds only how argv is built. Sources: the ``tensorrt-llm`` packages are stubs that fetch from NVIDIA's
own index, so no wheel could be read. Flags were read from a copy of
``tensorrt_llm/commands/serve.py`` of the 1.0 line held in the search index
(its commit could not be tied to the v1.0.0 tag) and cross-checked with
NVIDIA's published 1.0.0 documentation and the 0.20.0 DeepSeek-R1 example,
which use the same names.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from llmfab.engines.launch import (prepare, Launch, NodeInfo, Step, docker_run,
                                   fabric_env, logged)
from llmfab.engines.profile import EngineProfile, load_profiles, render_flags

CONFIG_FLAG = "--extra_llm_api_options"
SSH_KEY = "id_ed25519"
HOST_KEY = "ssh_host_ed25519_key"
SERVED_DIR = "/llmfab/served"
# Run in the image before launch (engine-mpi-check): exit 3 without sshd, 4 without orted.
MPI_PROBE = ('s=/usr/sbin/sshd; [ -x "$s" ] || exit 3; '
             'if [ -n "${OPAL_PREFIX:-}" ]; then o=$OPAL_PREFIX/bin/orted; [ -x "$o" ] || exit 4; '
             'else o=$(command -v orted) || exit 4; fi; echo "sshd $s"; echo "orted $o"')
# mpirun by absolute path and with --prefix (equivalent in Open MPI) from the image's Open MPI, so
# that orted started over ssh, whose session lacks the image's ENV, finds its binaries and libraries.
MPI_PRELUDE = ['prefix=${OPAL_PREFIX:-}',
               '[ -n "$prefix" ] || { orted=$(command -v orted); prefix=${orted%/bin/orted}; }',
               'export OPAL_PREFIX="$prefix"']
MPIRUN = '"$prefix/bin/mpirun" --prefix "$prefix"'


NAME = "trtllm"
DEFAULT_VERSION = "1.0.0"
"""The runbook names no TensorRT-LLM version."""

PROFILES = load_profiles(NAME)
"""Versions, from llmfab/engines/profiles/trtllm-*.yaml."""


def default_options(profile: EngineProfile) -> dict[str, Any]:
    """DeepSeek-R1 native FP8 on 2 x 8 H20: TP16/EP16, attention DP, FP8 KV cache, no MTP."""
    # No trust_remote_code: DeepSeek-V3/R1 and Llama are native here, and remote code
    # from the (shared) model directory would run as root in the container.
    return {"backend": "pytorch", "tp_size": 16, "ep_size": 16, "pp_size": 1,
            "max_batch_size": 64, "max_num_tokens": 8192, "max_seq_len": 65536,
            "kv_cache_free_gpu_memory_fraction": 0.85,
            "enable_attention_dp": True, "kv_cache_dtype": "fp8", "mtp_layers": 0,
            "enable_chunked_prefill": True}


def default_layout(nodes: int, gpus_per_node: int) -> dict[str, int]:
    """One TP group over every GPU of the MPI world, experts likewise."""
    return {"tp_size": nodes * gpus_per_node, "pp_size": 1, "ep_size": nodes * gpus_per_node}


def check_parallelism(options: dict[str, Any], nodes: int, gpus_per_node: int) -> list[str]:
    """Refuse tp_size x pp_size other than the GPU count, or an ep_size that does not divide tp."""
    total = nodes * gpus_per_node
    tp = int(options.get("tp_size") or 1)
    pp = int(options.get("pp_size") or 1)
    ep = int(options.get("ep_size") or 1)
    errors = []
    if tp * pp != total:
        errors.append(f"TensorRT-LLM: tp_size x pp_size = {tp} x {pp}, but the MPI world has "
                      f"{nodes} x {gpus_per_node} = {total} ranks; set tp_size: {total}")
    if ep < 1 or tp % ep:
        errors.append(f"TensorRT-LLM: ep_size {ep} must divide tp_size {tp}")
    return errors


def _prepare(profile: EngineProfile, launch: Launch) -> dict[str, Any]:
    refused = []
    if launch.api_key_file:
        refused.append(f"trtllm {profile.version}: no API key option was verified for "
                       f"trtllm-serve: set engine.api_key: none (llmfab's firewall then lets "
                       f"only the cluster's nodes reach port {launch.port}) and put an "
                       f"authenticating proxy in front of it for other clients")
    if "/" in launch.served_name or launch.served_name in (".", ".."):
        refused.append(f"trtllm {profile.version} names the model after its directory: model.served_name "
                       f"{launch.served_name!r} must be a plain name without '/'")
    return prepare(profile, launch, check_parallelism, refused)


def config_path(launch: Launch) -> str:
    """Where the extra-options YAML lives on every node (and in every container)."""
    return f"{launch.config_dir}/extra-llm-api-options.yml"


def extra_options_yaml(profile: EngineProfile, launch: Launch) -> str:
    """The extra LLM API options file for this launch, as YAML text."""
    opts = _prepare(profile, launch)
    doc: dict[str, Any] = {}
    if opts.get("enable_attention_dp"):
        doc["enable_attention_dp"] = True
    kv: dict[str, Any] = {}
    if opts.get("kv_cache_dtype", "auto") != "auto":
        kv["dtype"] = opts["kv_cache_dtype"]
    if opts.get("kv_cache_free_gpu_memory_fraction") is not None:
        kv["free_gpu_memory_fraction"] = float(opts["kv_cache_free_gpu_memory_fraction"])
    if kv:
        doc["kv_cache_config"] = kv
    if opts.get("enable_chunked_prefill"):
        doc["enable_chunked_prefill"] = True
    if int(opts.get("mtp_layers") or 0) > 0:
        doc["speculative_config"] = {"decoding_type": "MTP",
                                     "num_nextn_predict_layers": int(opts["mtp_layers"])}
    return "# rendered by llmfab for trtllm-serve " + profile.version + "\n" + \
        yaml.safe_dump(doc, sort_keys=True, default_flow_style=False)


def serve_command(profile: EngineProfile, launch: Launch) -> list[str]:
    """``trtllm-serve`` argv run by every MPI rank through ``trtllm-llmapi-launch``."""
    opts = _prepare(profile, launch)
    managed = {"host": launch.bind_host, "port": launch.port,
               "gpus_per_node": launch.gpus_per_node,
               CONFIG_FLAG.lstrip("-"): config_path(launch)}
    return ["trtllm-serve", served_path(launch), *render_flags(profile, managed),
            *render_flags(profile, opts)]


def served_path(launch: Launch) -> str:
    """The model inside the containers: a directory named served_name, which trtllm-serve 1.0 reports."""
    return f"{SERVED_DIR}/{launch.served_name}"


def _ssh_args(launch: Launch) -> str:
    """ssh for mpirun: the cluster's key, and the containers' host key pinned in known_hosts."""
    return (f"-p {launch.sshd_port} -i {launch.ssh_dir}/{SSH_KEY} -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={launch.ssh_dir}/known_hosts -o BatchMode=yes")


def mpirun_command(profile: EngineProfile, launch: Launch) -> list[str]:
    """``mpirun`` on the head: one rank per GPU, fabric env forwarded to remote ranks."""
    hosts = ",".join(f"{n.address}:{launch.gpus_per_node}" for n in launch.ordered())
    argv = ["mpirun", "--allow-run-as-root", "-H", hosts, "-np", str(launch.total_gpus),
            "--bind-to", "none", "--mca", "plm_rsh_args", _ssh_args(launch),
            "--mca", "btl_tcp_if_include", launch.interface,
            "--mca", "oob_tcp_if_include", launch.interface, "-x", "PATH", "-x", "LD_LIBRARY_PATH",
            "-x", "OPAL_PREFIX"]
    for key, value in fabric_env(launch, launch.head).items():
        argv += ["-x", f"{key}={value}"]
    return argv + ["trtllm-llmapi-launch", *serve_command(profile, launch)]


def _mounts(launch: Launch) -> list[tuple[str, str, str]]:
    return [(launch.model_path, served_path(launch), "ro"), (launch.log_dir, launch.log_dir, "rw"),
            (launch.config_dir, launch.config_dir, "ro"), (launch.ssh_dir, launch.ssh_dir, "ro")]


def container_argv(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[str]:
    """``docker run`` of one node's container: sshd on ``sshd_port`` for mpirun, keys only."""
    _prepare(profile, launch)
    sshd = ["/usr/sbin/sshd", "-D", "-e", "-p", str(launch.sshd_port), "-h", f"{launch.ssh_dir}/{HOST_KEY}",
            "-o", "PasswordAuthentication=no", "-o", "PermitRootLogin=prohibit-password",
            "-o", f"AuthorizedKeysFile={launch.ssh_dir}/authorized_keys",
            "-o", "StrictModes=no"]
    payload = logged(sshd, f"{launch.log_dir}/sshd-rank{node.rank}.log", ["mkdir -p /run/sshd"])
    return docker_run(profile, launch, node, payload, fabric_env(launch, node), _mounts(launch),
                      extra=["--ulimit", "stack=67108864"])


def serve_exec_argv(profile: EngineProfile, launch: Launch) -> list[str]:
    """``docker exec -d`` on the head: mpirun the server, logging to a file."""
    payload = logged(mpirun_command(profile, launch), f"{launch.log_dir}/trtllm-serve.log", MPI_PRELUDE,
                     program=MPIRUN)
    return ["docker", "exec", "-d", launch.container_name, "bash", "-c", payload]


def plan(profile: EngineProfile, launch: Launch) -> list[Step]:
    """Containers with sshd (head first), then mpirun on the head."""
    steps = [Step(n.name, f"start TensorRT-LLM container rank {n.rank} (sshd :{launch.sshd_port})",
                  container_argv(profile, launch, n),
                  wait=f"{n.address}:{launch.sshd_port} answers (the head waits for it before mpirun)",
                  log=f"{launch.log_dir}/sshd-rank{n.rank}.log")
             for n in launch.ordered()]
    steps.append(Step(launch.head.name, "mpirun trtllm-serve on the head",
                      serve_exec_argv(profile, launch),
                      wait=f"{profile.health_path} is 200; write {shlex.quote(config_path(launch))} "
                           f"on every node first", log=f"{launch.log_dir}/trtllm-serve.log",
                      waits_for=tuple((n, launch.sshd_port) for n in launch.ordered() if n.rank != 0)))
    return steps


def files(profile: EngineProfile, launch: Launch, node: NodeInfo) -> list[dict[str, str]]:
    """Files the engine needs on NODE before launch: the extra-options YAML on every node."""
    return [{"path": config_path(launch), "mode": "0644", "content": extra_options_yaml(profile, launch)}]


def internal_ports(profile: EngineProfile, launch: Launch) -> list[tuple[int, int, str]]:
    """The containers' sshd that mpirun reaches, as (first, last, what)."""
    return [(launch.sshd_port, launch.sshd_port, "the containers' sshd (mpirun)")]


def rendezvous_port(launch: Launch) -> int:
    """The port `fab check` expects free on every node besides the API port: the containers' sshd."""
    return launch.sshd_port


def default_mem_fraction(tp_size: int) -> float:
    """TensorRT-LLM's kv_cache_free_gpu_memory_fraction when none is given."""
    return 0.9
