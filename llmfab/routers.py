"""The router in front of the serving groups: one maintained router per engine, pinned like the engines.

- vLLM: ``vllm-router`` 0.1.17 (the vLLM project's router): OpenAI API, health
  checks of its workers, retries on another worker, and ``/add_worker`` /
  ``/remove_worker`` to take a group out and put it back during a rolling
  re-deploy.
- SGLang (and TensorRT-LLM, whose trtllm-serve speaks the same OpenAI API):
  ``sglang-router`` 0.3.2 (SGLang's model gateway): the same duties; workers
  are added with ``POST /workers`` and removed with ``DELETE /workers/{id}``.

Both are Rust programs installed from the package index (their flags were read
from ``--help`` of these exact versions). They run as a container like the
engine (``--network host``); the image is llmfab's own, built from
``llmfab/routers/Dockerfile`` with the pinned package (``serving.router.image``
names another).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from .config import ClusterConfig

CONTAINER = "llmfab-router"


@dataclass(frozen=True)
class RouterProfile:
    engine: str
    package: str
    version: str
    program: tuple[str, ...]  # the command, before the flags
    api: str  # "legacy": /add_worker?url= and /remove_worker?url=; "workers": POST /workers, DELETE /workers/{id}

    @property
    def image(self) -> str:
        return f"llmfab/{self.package}:{self.version}"


VLLM_ROUTER = RouterProfile("vllm", "vllm-router", "0.1.17", ("vllm-router",), "legacy")
SGLANG_ROUTER = RouterProfile("sglang", "sglang-router", "0.3.2", ("sglang-router", "launch"), "workers")
PROFILES = {"vllm": VLLM_ROUTER, "sglang": SGLANG_ROUTER, "trtllm": SGLANG_ROUTER}


def profile(config: ClusterConfig) -> RouterProfile:
    return PROFILES[config.engine.name]


def image(config: ClusterConfig) -> str:
    return config.serving.router.image or profile(config).image


def argv(config: ClusterConfig, workers: list[str], bind: str) -> list[str]:
    """The router's command line: listen on BIND:port, route to WORKERS (URLs), check them often.

    Its Prometheus exporter listens on 127.0.0.1 only: metrics are for the node's own collectors."""
    r = config.serving.router
    return [*profile(config).program, "--host", bind, "--port", str(r.port), "--worker-urls", *workers,
            "--policy", r.policy, "--prometheus-host", "127.0.0.1", "--prometheus-port", str(r.metrics_port),
            "--health-check-interval-secs", str(r.health_interval), "--health-failure-threshold", "2",
            "--health-success-threshold", "1", "--log-level", "info"]


def fingerprint(image_ref: str, command: list[str]) -> str:
    blob = json.dumps({"image": image_ref, "argv": command}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
