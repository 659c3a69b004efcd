"""Run the stand-in: ``python3 -m standin MODE [ARGS...]`` (see the package docstring).

MODE is vllm (``vllm serve``'s arguments), sglang (``sglang.launch_server``'s),
trtllm (``trtllm-serve``'s), mpirun, sshd, or ``version ENGINE``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

from . import group, logs, mpi, raycheck
from .engines import PARSERS, Settings, image_version
from .server import Api, serve


def _fail_after() -> None:
    """STANDIN_FAIL_AFTER: exit 1 that many seconds from now (a simulated crash)."""
    seconds = os.environ.get("STANDIN_FAIL_AFTER")
    if seconds:
        last_words = f"stand-in: STANDIN_FAIL_AFTER={seconds}: simulated crash, exit 1"
        timer = threading.Timer(float(seconds), logs.die, [last_words])
        timer.daemon = True
        timer.start()


def announce(s: Settings) -> None:
    """The engine's first lines, with the exact argv (SGLang's, as the real one, shows the key)."""
    argv = json.dumps(s.argv)
    if s.engine == "vllm":
        logs.vllm("INFO", "api_server.py:1043", f"vLLM API server version {s.version}")
        logs.vllm("INFO", "api_server.py:1044", f"args: {argv}")
    elif s.engine == "sglang":
        logs.sglang(f"server_args=ServerArgs(argv={argv})")
    else:
        logs.say(f"[TensorRT-LLM] TensorRT-LLM version: {s.version}")
        logs.say(f"[TensorRT-LLM][INFO] argv: {argv}")


def model_config(s: Settings) -> dict[str, Any]:
    """The model's config.json, or die with what the engine says without one."""
    path = os.path.join(s.model, "config.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    if s.engine == "vllm":
        logs.die(f"ValueError: Invalid repository ID or local directory specified: '{s.model}'.\n"
                 "Please verify the following requirements:\n"
                 "1. Provide a valid Hugging Face repository ID.\n"
                 "2. Specify a local directory that contains a recognized configuration file.\n"
                 "   - For Hugging Face models: ensure the presence of a 'config.json'.\n"
                 "   - For Mistral models: ensure the presence of a 'params.json'.")
    if os.path.isdir(s.model):
        logs.die(f"OSError: {s.model} does not appear to have a file named config.json. Checkout "
                 f"'https://huggingface.co/{s.model}/tree/None' for available files.")
    logs.die(f"huggingface_hub.errors.HFValidationError: Repo id must be in the form 'repo_name' "
             f"or 'namespace/repo_name': '{s.model}'. Use `repo_type` argument if needed.")
    return {}


def _local_gpus() -> int:
    return int(os.environ.get("STANDIN_GPUS") or 0)


def _on_lost(s: Settings):
    first_rank = s.node_rank * s.local_gpus_needed

    def lost(peer: str) -> None:
        error = (f"RuntimeError: [../third_party/gloo/gloo/transport/tcp/pair.cc:534] "
                 f"Connection closed by peer {peer}")
        if s.engine == "sglang":
            logs.sglang(f"Scheduler hit an exception: {error}", rank=first_rank)
            logs.die(f"{logs.stamp()} Received sigquit from a child process. It usually means "
                     f"the child failed.")
        logs.vllm("ERROR", "multiproc_executor.py:470", f"Worker proc {first_rank} died: {error}")
        logs.die("vllm.v1.engine.exceptions.EngineDeadError: EngineCore encountered an issue. "
                 "See stack trace (above) for the root cause.")
    return lost


def prepare(s: Settings, host_addr: str) -> None:
    """Everything the real engine needs before it serves: GPUs, Ray, the other ranks."""
    local = _local_gpus()
    if s.engine == "vllm":
        use_ray = s.executor == "ray" or (not s.executor and s.nnodes == 1 and s.world_size > local)
        if use_ray:
            ray = raycheck.wait_for_gpus(s.world_size, os.environ.get("VLLM_HOST_IP") or host_addr)
            raycheck.watch(ray, s.world_size)
            return
        if local == 0:
            logs.die("RuntimeError: Failed to infer device type")
        if local < s.local_gpus_needed:
            logs.die(f"ValueError: please set tensor_parallel_size ({s.world_size}) to less than "
                     f"max local gpu count ({local})")
    elif s.engine == "sglang":
        if local == 0:
            logs.die("RuntimeError: No CUDA GPUs are available")
        if local < s.local_gpus_needed:
            logs.die("RuntimeError: CUDA error: invalid device ordinal")
        logs.sglang("Init torch distributed begin.", rank=s.node_rank * s.local_gpus_needed)
    else:
        _prepare_trtllm(s, local)
    group.form_group(s, host_addr, _on_lost(s))
    if s.engine == "sglang":
        logs.sglang("Init torch distributed ends.", rank=s.node_rank * s.local_gpus_needed)


def _prepare_trtllm(s: Settings, local: int) -> None:
    world = int(os.environ.get("STANDIN_MPI_WORLD_SIZE") or 1)
    if s.config_file and not os.path.isfile(s.config_file):
        logs.die(f"FileNotFoundError: [Errno 2] No such file or directory: '{s.config_file}'")
    if local == 0:
        logs.die("RuntimeError: No CUDA GPUs are available")
    if world != s.world_size:
        logs.die(f"RuntimeError: tp_size x pp_size = {s.world_size}, but the MPI world has "
                 f"{world} ranks (stand-in check)")


def bind_address(host: str, host_addr: str) -> str:
    """Where to listen: the wildcard means this host's own address (shared network namespace)."""
    if host in ("", "0.0.0.0", "::"):
        return host_addr
    return "127.0.0.1" if host == "localhost" else host


def run_engine(mode: str, argv: list[str]) -> int:
    """Parse, check, wait STANDIN_START_DELAY, then serve (or, headless, just stay up)."""
    try:
        s = PARSERS[mode](argv)
    except SystemExit as exit_:
        logs.die(str(exit_.code), 2)
    host_addr = os.environ.get("STANDIN_HOST_ADDR") or "127.0.0.1"
    _fail_after()
    announce(s)
    config = model_config(s)
    prepare(s, host_addr)
    time.sleep(float(os.environ.get("STANDIN_START_DELAY", "1")))
    if not s.serves_http:
        threading.Event().wait()
    try:
        serve(Api(s, config), bind_address(s.host, host_addr))
    except OSError as error:
        logs.die(f"ERROR:    [Errno {error.errno}] error while attempting to bind on address "
                 f"('{s.host}', {s.port}): {(error.strerror or '').lower()}")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        logs.die("usage: python3 -m standin MODE [ARGS...]; MODE: vllm, sglang, trtllm, mpirun, "
                 "sshd, version ENGINE", 2)
    mode, args = argv[0], argv[1:]
    if mode == "mpirun":
        return mpi.mpirun(args)
    if mode == "sshd":
        return mpi.sshd(args)
    if mode == "version":
        logs.say(image_version(args[0] if args else "vllm"))
        return 0
    if mode not in PARSERS:
        logs.die(f"unknown mode {mode!r}", 2)
    return run_engine(mode, args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
