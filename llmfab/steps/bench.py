"""The bench phase: the engine's own serving benchmark, run on the head inside the engine container.

No extra install: every engine image ships its serving benchmark, and the head
container already has the model (for the tokenizer) at the same path and
host networking. ``docker exec`` runs it there against the deployed endpoint.
What each engine version ships was read from its release:

- vLLM v0.8.5, v0.32.0 and v0.33.0: ``vllm bench serve`` (the wheels'
  ``vllm/entrypoints/cli/benchmark/serve.py`` over ``vllm/benchmarks/serve.py``),
  in the wheel the image installs. ``benchmarks/benchmark_serving.py`` is a
  source-tree script: missing from the images of April 2025 (vllm#16602), added
  to them some time before May 2025 (vllm#13598); llmfab does not rely on it.
- SGLang v0.4.4: ``python3 -m sglang.bench_serving``; its "random" prompts are
  cut from a ShareGPT file it downloads unless ``--dataset-path`` names one, so
  llmfab writes synthetic prompts on the head and copies them in.
- SGLang v0.5.23: ``python3 -m sglang.benchmark.serving`` (``sglang.bench_serving``
  is a deprecated alias there); ``random-ids`` draws random token ids, no download.
- TensorRT-LLM 1.0.0: ``python3 -m tensorrt_llm.serve.scripts.benchmark_serving``
  with ``--random-ids`` (without it, "random" downloads ShareGPT). Read from
  NVIDIA's 1.0-line docs (run-benchmark-with-trtllm-serve, the DeepSeek-R1
  quick-start recipe for 1.0.0rc6); the 1.0.0 image itself was not opened.

All of them read the API key from ``OPENAI_API_KEY``; the step passes it into
the container by name (``docker exec -e OPENAI_API_KEY``), so it is never in an
argv. Lengths are fixed, not sampled: every request has exactly the input and
output lengths asked for (EOS ignored), so runs of different engines compare.

Extension point: an engine version's profile file names its tool (``bench:``);
the task puts the workload in the run's options (a bundle gets the defaults).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..config import Node
from ..deployment import CONTAINER, Deployment
from ..errors import Refused
from ..run import Run
from . import HEAD, step
from .engine import key_file

PROMPTS_IN_CONTAINER = "/tmp/llmfab-bench-prompts.json"
PERCENTILES = "ttft,tpot,itl,e2el"
OUTPUT_LINES = 400


class BenchUnsupported(Refused):
    """No serving benchmark is known for this engine version, or the workload is invalid."""


@dataclass(frozen=True)
class Workload:
    """What one benchmark run sends: concurrency, fixed lengths, how many prompts."""

    concurrency: int = 32
    input_len: int = 1024
    output_len: int = 1024
    # 0: four rounds of the concurrency.
    prompts: int = 0
    # Seeds the random prompts; a new one per run keeps an earlier run's prefix
    # cache from serving this one.
    seed: int = 0
    timeout: int = 1800

    @property
    def num_prompts(self) -> int:
        return self.prompts or 4 * self.concurrency

    def problems(self) -> list[str]:
        wrong = [f"{name} must be at least {low}, got {value}" for name, value, low in (
            ("concurrency", self.concurrency, 1), ("input_len", self.input_len, 1),
            ("output_len", self.output_len, 1), ("prompts", self.prompts, 0), ("seed", self.seed, 0),
            ("timeout", self.timeout, 60))
            if value < low]
        return wrong

    def as_dict(self) -> dict:
        return {"concurrency": self.concurrency, "input_len": self.input_len, "output_len": self.output_len,
                "num_prompts": self.num_prompts, "seed": self.seed, "dataset": "random (fixed lengths)"}


@dataclass(frozen=True)
class Tool:
    """One engine version's serving benchmark, as its image ships it."""

    program: tuple[str, ...]
    arguments: Callable[[Deployment, Workload], list[str]]
    source: str
    # SGLang 0.4.4 cuts its "random" prompts from a ShareGPT-layout file.
    needs_prompts_file: bool = False


def _load(w: Workload) -> list[str]:
    return ["--random-input-len", str(w.input_len), "--random-output-len", str(w.output_len),
            "--num-prompts", str(w.num_prompts), "--max-concurrency", str(w.concurrency),
            "--seed", str(w.seed), "--disable-tqdm"]


def _endpoint(d: Deployment) -> list[str]:
    return ["--host", d.launch.head.address, "--port", str(d.launch.port)]


def _vllm(d: Deployment, w: Workload) -> list[str]:
    # Both versions default to fixed lengths (0.8.5: range ratio 1.0 = [len, len];
    # 0.33.0: 0.0 = len +- 0), so no --random-range-ratio: its meaning changed.
    return [*_endpoint(d), "--endpoint", "/v1/completions", "--model", d.launch.model_path,
            "--served-model-name", d.launch.served_name, "--trust-remote-code",
            "--dataset-name", "random", *_load(w), "--ignore-eos", "--percentile-metrics", PERCENTILES]


def _sglang_044(d: Deployment, w: Workload) -> list[str]:
    # ignore_eos is on unless --disable-ignore-eos; range ratio 1.0 = fixed lengths.
    return ["--backend", "sglang", *_endpoint(d), "--model", d.launch.model_path,
            "--dataset-name", "random", "--dataset-path", PROMPTS_IN_CONTAINER,
            "--random-range-ratio", "1.0", *_load(w)]


def _sglang_0523(d: Deployment, w: Workload) -> list[str]:
    return ["--backend", "sglang", *_endpoint(d), "--model", d.launch.model_path,
            "--dataset-name", "random-ids", "--random-range-ratio", "1.0", *_load(w)]


def _trtllm(d: Deployment, w: Workload) -> list[str]:
    # 1.0.0 serves the model under its path (no --served_model_name); range ratio 0.0 = fixed.
    return ["--backend", "openai", *_endpoint(d), "--endpoint", "/v1/completions",
            "--model", d.launch.model_path, "--dataset-name", "random", "--random-ids", *_load(w),
            "--ignore-eos", "--percentile-metrics", PERCENTILES]


# The argument builders a profile's ``bench.args`` names (llmfab/engines/profiles/*.yaml).
ARGUMENTS: dict[str, Callable[[Deployment, Workload], list[str]]] = {
    "vllm": _vllm, "sglang-0.4": _sglang_044, "sglang-0.5": _sglang_0523, "trtllm": _trtllm}


def tool(d: Deployment) -> Tool:
    """The serving benchmark of D's engine version; BenchUnsupported when none is known."""
    found = d.profile.bench
    if found is None or found.args not in ARGUMENTS:
        raise BenchUnsupported(f"no serving benchmark is known for {d.engine} {d.profile.version}: add a "
                               f"bench: entry to llmfab/engines/profiles/{d.engine}-{d.profile.version}.yaml")
    return Tool(found.program, ARGUMENTS[found.args], found.source, found.needs_prompts_file)


def command(d: Deployment, w: Workload) -> list[str]:
    """The benchmark argv run inside the head's engine container."""
    problems = w.problems()
    if problems:
        raise BenchUnsupported("bench workload: " + "; ".join(problems))
    t = tool(d)
    return [*t.program, *t.arguments(d, w)]


@step("bench", title="run the engine's serving benchmark against the endpoint (head)", where=HEAD)
def bench(run: Run, node: Node) -> dict:
    d, w = run.deployment, run.workload
    return {
        "container": CONTAINER, "label": f"{d.engine} {d.profile.version}", "argv": command(d, w),
        "health": d.urls()["health"], "key_file": key_file(run),
        "prompts": PROMPTS_IN_CONTAINER if tool(d).needs_prompts_file else "", "count": w.num_prompts,
        "seed": w.seed, "timeout": w.timeout, "lines": OUTPUT_LINES,
    }
