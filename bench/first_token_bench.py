#!/usr/bin/env python3
"""What llmfab adds to the real engine's start: deploy-to-first-token against a start by hand.

On two test hosts with the real vLLM (CPU build, tiny local model, TP 1 x PP 2
across the hosts), in one run and alternating, ROUNDS times each:
  llmfab  `fab deploy --skip-smoke`, then one streamed chat request: the time
          from the deploy's start to the request's first token
  hand    the very argv llmfab renders for each node (`vllm serve ...`, the
          worker `--headless`), started directly on both hosts at once with the
          same environment, /health polled every 0.2 s, then the same request
The difference is llmfab's cost: SSH, the image and key steps, the docker
layer, readiness polling. Target: at most 5 s.

Run as root from the repository root, after `bash .ci/setup`:
    .venv/bin/python bench/first_token_bench.py [--rounds 2]
Writes bench/results/first_token.json as well as printing a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmfab import config as config_mod  # noqa: E402
from llmfab.deployment import build  # noqa: E402
from llmfab.engines.launch import fabric_env  # noqa: E402
from llmfab.engines.vllm import serve_command  # noqa: E402
from tests.harness import real  # noqa: E402
from tests.harness.testhosts import TestFleet  # noqa: E402
from tests.integration.realenv import SERVED, build_tiny_model, real_config  # noqa: E402

FIRST_OCTET = 81
KEY = {"value": ""}  # the endpoint's key, read from the head after the first deploy


def first_token(url: str, key: str = "", timeout: float = 300) -> float:
    """Send one streamed chat request; return the monotonic time its first token arrived."""
    body = json.dumps({"model": SERVED, "stream": True, "max_tokens": 8,
                       "messages": [{"role": "user", "content": "hello"}]}).encode()
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url + "/v1/chat/completions", body, headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        for line in response:
            if line.startswith(b"data: ") and b'"content":"' in line:
                return time.monotonic()
    raise RuntimeError("the stream ended without a token")


def wait_health(url: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url}/health never answered")


def fab(*args: str) -> None:
    # A script answers no prompt: --yes for prep and deploy (LLMFAB_ASSUME_YES).
    done = subprocess.run([sys.executable, "-m", "fabric", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=900, stdin=subprocess.DEVNULL,
                          env={**os.environ, "LLMFAB_ASSUME_YES": "1"})
    if done.returncode != 0:
        raise RuntimeError(f"fab {' '.join(args)} failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")


def by_llmfab(config: Path, url: str) -> float:
    start = time.monotonic()
    fab("deploy", "--config", str(config), "--skip-smoke")
    seconds = first_token(url, KEY["value"]) - start
    fab("stop", "--config", str(config))
    return seconds


def _hand_command(cfg, node) -> str:
    """The node's `vllm serve` argv with the environment llmfab gives the container."""
    d = build(cfg)
    info = d.node_info(node)
    env = {**real.VLLM_CPU_ENV, **fabric_env(d.launch, info), "VLLM_HOST_IP": info.address,
           **({"VLLM_API_KEY": KEY["value"]} if KEY["value"] and info.rank == 0 else {}),
           "PATH": f"{real.real_prefix() / 'vllm' / 'bin'}:/usr/bin:/bin"}
    argv = serve_command(d.profile, d.launch, info)
    return (f"env {' '.join(shlex.quote(f'{k}={v}') for k, v in env.items())} "
            f"setsid {shlex.join(argv)} >/tmp/by-hand.log 2>&1 </dev/null & echo $!")


def by_hand(fleet: TestFleet, cfg, url: str) -> float:
    commands = {h.name: _hand_command(cfg, n) for h, n in zip(fleet.hosts, cfg.nodes)}
    start = time.monotonic()
    with ThreadPoolExecutor(len(fleet.hosts)) as pool:
        list(pool.map(lambda h: h.exec(commands[h.name], check=True), fleet.hosts))
    wait_health(url)
    seconds = first_token(url, KEY["value"]) - start
    for host in fleet.hosts:
        host.exec("pkill -9 -f '[v]llm serve' ; pkill -9 -f 'VLLM[:][:]' ; pkill -9 -f '[r]esource_tracker' ; true")
    wait_free(fleet, cfg)
    return seconds


def wait_free(fleet: TestFleet, cfg, timeout: float = 60) -> None:
    """Wait until the engine's ports on the head are free again (the hand-started engine is gone)."""
    ports = f"'( sport = :{cfg.engine.port} or sport = :{cfg.engine.dist_port} )'"
    deadline = time.monotonic() + timeout
    busy = ""
    while time.monotonic() < deadline:
        busy = fleet.hosts[0].exec(f"ss -ltnpH {ports}").stdout.strip()
        if not busy:
            return
        time.sleep(1)
    raise RuntimeError(f"the hand-started engine still holds its ports: {busy}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmfab-bench-") as tmp:
        base = Path(tmp)
        model = build_tiny_model(base / "model")
        with TestFleet(2, workdir=base / "fleet", first_octet=FIRST_OCTET, port=2281) as fleet:
            config = real_config(fleet, base, model, engine={"port": 41081, "dist_port": 21081})
            cfg = config_mod.load(config)
            url = f"http://{cfg.head.address}:{cfg.engine.port}"
            fab("deploy", "--config", str(config), "--skip-smoke")  # warm caches for both ways
            KEY["value"] = (fleet.hosts[0].read("/etc/llmfab/api_key") or "").strip()
            fab("stop", "--config", str(config))
            rows = {"llmfab": [], "hand": []}
            for _ in range(args.rounds):
                rows["hand"].append(by_hand(fleet, cfg, url))
                rows["llmfab"].append(by_llmfab(config, url))
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"{'way':<8} {'runs (s)':<24} median")
    for way, values in rows.items():
        print(f"{way:<8} {', '.join(f'{v:.1f}' for v in values):<24} {med[way]:.1f}")
    added = med["llmfab"] - med["hand"]
    print(f"llmfab adds {added:.1f} s to the first token (target <= 5 s)")
    out = REPO / "bench" / "results" / "first_token.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"runs": rows, "median": med, "added_s": added}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
