"""vLLM's Ray check: join the running cluster and wait for TP x PP GPUs in it.

As vLLM 0.8.5 does (vllm/executor/ray_utils.py): connect with
``ray.init(address="auto")`` from the head's container, warn when the
cluster has fewer GPUs than the world size, wait for them (the placement
group), and fail with vLLM's message when they do not come within
STANDIN_PG_TIMEOUT seconds. Once serving, a thread keeps watching: when the
cluster loses GPUs (a node died), the engine dies, as vLLM does when its Ray
workers go.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from . import logs


def _specs(host: str, world: int) -> list[dict[str, float]]:
    return [{"GPU": 1.0, f"node:{host}": 0.001}] + [{"GPU": 1.0}] * (world - 1)


def connect(node_ip: str | None) -> Any:
    """Import Ray and join the cluster on this host, or die like vLLM would."""
    try:
        import ray
    except ImportError:
        logs.die("ModuleNotFoundError: No module named 'ray' (the stand-in's Python has no Ray: "
                 "pip install ray)")
    try:
        ray.init(address="auto", _node_ip_address=node_ip, log_to_driver=False,
                 logging_level="WARNING")
    except Exception as error:  # ConnectionError and friends: whatever Ray raised, as vLLM shows it
        logs.die(f"{type(error).__name__}: {error}")
    return ray


def wait_for_gpus(world: int, node_ip: str | None) -> Any:
    """Return the connected ``ray`` module once the cluster has ``world`` GPUs."""
    ray = connect(node_ip)
    timeout = float(os.environ.get("STANDIN_PG_TIMEOUT", "30"))
    specs = _specs(node_ip or "127.0.0.1", world)
    have = ray.cluster_resources().get("GPU", 0)
    logs.vllm("INFO", "ray_utils.py:335", f"Connected to Ray cluster: {have:g} GPUs, need {world}")
    if have < world:
        logs.vllm("WARNING", "ray_utils.py:353", "The number of required GPUs exceeds the total "
                  "number of available GPUs in the placement group.")
    start = time.monotonic()
    report = 10.0
    while have < world:
        waited = time.monotonic() - start
        if waited > timeout:
            logs.die(f"ValueError: Cannot provide a placement group of placement_group_specs="
                     f"{specs} within {int(timeout)} seconds. See `ray status` to make sure the "
                     f"cluster has enough resources.")
        if waited > report:
            report *= 2
            logs.vllm("INFO", "ray_utils.py:230", f"Waiting for creating a placement group of "
                      f"specs for {int(waited)} seconds. specs={specs}. Check `ray status` to see "
                      f"if you have enough resources.")
        time.sleep(0.5)
        have = ray.cluster_resources().get("GPU", 0)
    logs.vllm("INFO", "ray_utils.py:362", f"Placement group ready: the Ray cluster has {have:g} "
              f"GPUs for a world size of {world}")
    return ray


def watch(ray: Any, world: int) -> None:
    """Die when the cluster no longer has ``world`` GPUs (checked every 2 s)."""
    def loop() -> None:
        while True:
            time.sleep(2)
            try:
                have = ray.cluster_resources().get("GPU", 0)
            except Exception as error:  # the GCS went away with the head
                logs.die(f"ERROR: lost the Ray cluster: {type(error).__name__}: {error}")
            if have < world:
                logs.die(f"ray.exceptions.ActorDiedError: The actor died unexpectedly before "
                         f"finishing this task. (the Ray cluster has {have:g} of {world} GPUs: "
                         f"a node left)")
    threading.Thread(target=loop, daemon=True).start()
