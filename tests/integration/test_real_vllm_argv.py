"""The v0.32.0 profile against the real vLLM's own argument parser (no server started).

Each ``vllm serve`` argv llmfab renders, and every flag the profile lets a
config set, goes through the installed vLLM's real CLI (its subcommand
parsers and its own ``validate``), with only the final dispatch replaced by a
print of the parsed arguments.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from llmfab.config import ClusterConfig
from llmfab.deployment import build
from llmfab.engines import get_profile
from llmfab.engines.profile import render_value
from tests.harness import real

from .realenv import OPTIONS, require_real_programs

pytestmark = pytest.mark.real_engine

PARSE_ONLY = """
import json, sys
from vllm.entrypoints.cli import main, serve
def show(args):
    print("PARSED " + json.dumps({k: v for k, v in vars(args).items() if k != "dispatch_function"},
                                 default=str))
serve.ServeSubcommand.cmd = staticmethod(show)
sys.argv = sys.argv[1:]
main.main()
"""

# A valid value for each string flag (argparse takes any string; these are also real names).
STRINGS = {"quantization": "fp8", "reasoning_parser": "deepseek_r1", "generation_config": "auto",
           "tool_call_parser": "hermes"}
SAMPLES = {"bool": True, "int": 16, "float": 0.5, "json": {"method": "ngram", "num_speculative_tokens": 1}}


def parse(argv: list[str]) -> dict:
    """vLLM's parsed arguments for ``argv`` (``vllm serve ...``); fails with vLLM's message."""
    require_real_programs()
    done = subprocess.run([str(real.vllm_python()), "-c", PARSE_ONLY, *argv],
                          capture_output=True, text=True, timeout=180)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("PARSED ")]
    assert done.returncode == 0 and lines, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(lines[-1][len("PARSED "):])


def _config() -> ClusterConfig:
    return ClusterConfig.model_validate({
        "nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}],
        "gpu": {"per_node": 1}, "network": {"interface": "lo"},
        "model": {"path": "/models/tiny-llama", "served_name": "tiny"},
        "nvidia": {"driver_version": "580.65.06", "cuda_version": "13.0.0"},  # a CUDA 13 image
        "engine": {"name": "vllm", "version": real.VLLM_VERSION, "options": OPTIONS,
                   "api_key": "generate"},
    })


def test_the_real_vllm_parses_the_head_and_worker_argv_llmfab_renders():
    d = build(_config())
    for node in d.launch.nodes:
        from llmfab.engines.vllm import serve_command
        argv = serve_command(d.profile, d.launch, node)
        args = parse(argv)
        assert args["model_tag"] == "/models/tiny-llama"
        assert (args["nnodes"], args["node_rank"]) == (2, node.rank)
        assert args["master_addr"] == "10.0.0.1" and args["headless"] is (node.rank == 1)
        assert (args["tensor_parallel_size"], args["pipeline_parallel_size"]) == (1, 2)
        assert args["distributed_executor_backend"] == "mp"


def test_every_option_the_v0_32_0_profile_accepts_is_a_flag_of_the_real_vllm():
    profile = get_profile("vllm", real.VLLM_VERSION)
    argv = ["vllm", "serve", "/models/tiny-llama"]
    for key, flag in profile.flags.items():
        if flag.managed:
            continue
        if flag.type == "choice":
            value = flag.choices[-1]
        else:
            value = STRINGS.get(key, SAMPLES.get(flag.type))
        argv += render_value(flag, value)
    args = parse(argv)
    for key, flag in profile.flags.items():
        if not flag.managed and flag.type in ("bool", "int"):
            assert args[key] in (True, 16), (key, args[key])
