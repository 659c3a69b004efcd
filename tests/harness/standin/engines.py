"""Parse each engine's command line into the few settings the stand-in acts on.

Unknown flags are kept (``Settings.argv`` holds everything) but otherwise
ignored, as the stand-in only needs where to listen, what to call the model,
how many GPUs and nodes the engine expects, and the API key.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import Any

# Versions used when the container's image tag does not name one.
DEFAULT_VERSIONS = {"vllm": "0.8.5", "sglang": "0.4.4", "trtllm": "1.0.0"}


@dataclass
class Settings:
    """What one engine process was asked to do."""

    engine: str
    version: str
    model: str
    served_name: str
    host: str
    port: int
    api_key: str | None
    world_size: int
    nnodes: int = 1
    node_rank: int = 0
    dist_addr: tuple[str, int] | None = None
    serves_http: bool = True
    executor: str = ""
    config_file: str | None = None
    reasoning: bool = False
    max_model_len: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)

    @property
    def local_gpus_needed(self) -> int:
        """GPUs this node must have: the world split evenly over the nodes."""
        return max(1, self.world_size // max(1, self.nnodes))


def image_version(engine: str) -> str:
    """Version from the container's image tag (STANDIN_IMAGE), e.g. v0.4.4-cu125 -> 0.4.4."""
    tag = os.environ.get("STANDIN_IMAGE", "").rpartition(":")[2]
    match = re.match(r"v?(\d+\.\d+\.\d+(?:\.post\d+|rc\d+)?)", tag)
    return match.group(1) if match else DEFAULT_VERSIONS[engine]


def version_tuple(version: str) -> tuple[int, ...]:
    """``0.5.23`` -> (0, 5, 23), ignoring suffixes."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _parser(*specs: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for names in specs:
        parser.add_argument(*names)
    return parser


def _split_addr(value: str, port: int | None = None) -> tuple[str, int]:
    host, _, text = value.rpartition(":")
    if port is not None and not host:
        return value, port
    if not host or not text.isdigit():
        raise SystemExit(f"invalid address {value!r}: expected IPv4:PORT")
    return host, int(text)


def parse_vllm(argv: list[str]) -> Settings:
    """``vllm serve MODEL ...`` (or the api_server module with ``--model``)."""
    module = bool(argv) and argv[0] == "--module"
    args = argv[1:] if module else argv
    parser = _parser(("--host",), ("--port",), ("--api-key",), ("--tensor-parallel-size", "-tp"),
                     ("--pipeline-parallel-size", "-pp"), ("--data-parallel-size", "-dp"),
                     ("--distributed-executor-backend",), ("--nnodes",), ("--node-rank",),
                     ("--master-addr",), ("--master-port",), ("--max-model-len",),
                     ("--reasoning-parser",), ("--model",))
    parser.add_argument("--served-model-name", nargs="+")
    parser.add_argument("--headless", action="store_true")
    parser.add_argument("--enable-reasoning", action="store_true")
    known, rest = parser.parse_known_args(args)
    model = known.model
    if not module and rest and not rest[0].startswith("-"):
        model = rest.pop(0)
    model = model or "facebook/opt-125m"
    tp, pp, dp = (int(v or 1) for v in (known.tensor_parallel_size,
                                        known.pipeline_parallel_size, known.data_parallel_size))
    nnodes = int(known.nnodes or 1)
    dist = None
    if nnodes > 1:
        dist = (known.master_addr or "127.0.0.1", int(known.master_port or 29501))
    return Settings(
        engine="vllm", version=image_version("vllm"), model=model,
        served_name=(known.served_model_name or [model])[0], host=known.host or "0.0.0.0",
        port=int(known.port or 8000),
        api_key=os.environ.get("VLLM_API_KEY") or known.api_key or None,
        world_size=tp * pp * dp, nnodes=nnodes, node_rank=int(known.node_rank or 0),
        dist_addr=dist, serves_http=not known.headless,
        executor=known.distributed_executor_backend or "",
        reasoning=bool(known.reasoning_parser),
        max_model_len=int(known.max_model_len) if known.max_model_len else None,
        options={"tensor_parallel_size": tp, "pipeline_parallel_size": pp,
                 "data_parallel_size": dp, "unparsed": rest},
        argv=["vllm", "serve", *argv] if not module else argv)


def parse_sglang(argv: list[str]) -> Settings:
    """``python3 -m sglang.launch_server --model-path ... --tp 16 --nnodes 2 ...``."""
    parser = _parser(("--model-path", "--model"), ("--served-model-name",), ("--host",),
                     ("--port",), ("--api-key",), ("--tp-size", "--tp", "--tensor-parallel-size"),
                     ("--dp-size", "--dp"), ("--nnodes",), ("--node-rank",), ("--dist-init-addr",),
                     ("--context-length",), ("--reasoning-parser",))
    known, rest = parser.parse_known_args(argv)
    if not known.model_path:
        raise SystemExit("launch_server.py: error: the following arguments are required: "
                         "--model-path")
    nnodes = int(known.nnodes or 1)
    dist = None
    if nnodes > 1:
        if not known.dist_init_addr:
            raise SystemExit("AssertionError: --dist-init-addr is required when --nnodes > 1")
        dist = _split_addr(known.dist_init_addr)
    tp = int(known.tp_size or 1)
    options = {key: value for key, value in vars(known).items() if value is not None}
    options["unparsed"] = rest
    return Settings(
        engine="sglang", version=image_version("sglang"), model=known.model_path,
        served_name=known.served_model_name or known.model_path,
        host=known.host or "127.0.0.1", port=int(known.port or 30000), api_key=known.api_key,
        world_size=tp, nnodes=nnodes, node_rank=int(known.node_rank or 0), dist_addr=dist,
        serves_http=int(known.node_rank or 0) == 0, reasoning=bool(known.reasoning_parser),
        max_model_len=int(known.context_length) if known.context_length else None,
        options=options, argv=["python3", "-m", "sglang.launch_server", *argv])


def parse_trtllm(argv: list[str]) -> Settings:
    """``trtllm-serve MODEL --host --port --tp_size ... --extra_llm_api_options FILE``."""
    parser = _parser(("--host",), ("--port",), ("--tp_size",), ("--pp_size",), ("--ep_size",),
                     ("--gpus_per_node",), ("--extra_llm_api_options", "--config"),
                     ("--max_seq_len",), ("--reasoning_parser",), ("--served_model_name",))
    known, rest = parser.parse_known_args(argv)
    if not rest or rest[0].startswith("-"):
        raise SystemExit("Error: Missing argument 'MODEL'.")
    model = rest.pop(0)
    served = known.served_model_name or (os.path.basename(model.rstrip("/"))
                                         if os.path.isdir(model) else model)
    tp, pp = int(known.tp_size or 1), int(known.pp_size or 1)
    return Settings(
        engine="trtllm", version=image_version("trtllm"), model=model, served_name=served,
        host=known.host or "localhost", port=int(known.port or 8000), api_key=None,
        world_size=tp * pp, config_file=known.extra_llm_api_options,
        reasoning=bool(known.reasoning_parser),
        max_model_len=int(known.max_seq_len) if known.max_seq_len else None,
        options={"tp_size": tp, "pp_size": pp, "ep_size": int(known.ep_size or 1),
                 "unparsed": rest},
        argv=["trtllm-serve", *argv])


PARSERS = {"vllm": parse_vllm, "sglang": parse_sglang, "trtllm": parse_trtllm}
