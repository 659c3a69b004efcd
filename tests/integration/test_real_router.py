"""Two serving groups of the real vLLM (CPU build) behind the real vllm-router, on two test hosts.

Each host is a group of its own (TP 1 x PP 1) with its own head; the router
runs on the first. The tests share one fleet and run in order: deploy, a
group's server killed while the router keeps answering, that group deployed
alone again, then a rolling re-deploy under load with no failed request.
Every vLLM start costs about a minute on 2 cores: five in all.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import pytest
import yaml

from tests.harness import TestFleet, real
from tests.harness.standin import docker_state

from .realenv import build_tiny_model, keep_logs, real_config, require_real_programs
from .scenario import fab

pytestmark = pytest.mark.real_engine

SLOT = (int(os.environ.get("LLMFAB_TESTHOST_PORT", "2222")) - 2222) % 17
FIRST_OCTET = 171 + 2 * SLOT
A, B = f"127.0.0.{FIRST_OCTET}", f"127.0.0.{FIRST_OCTET + 1}"
# Below the ephemeral range (32768-60999), where an outgoing connection could hold one first.
ENGINE_PORT, DIST_PORT = 30061 + SLOT, 25061 + 100 * SLOT
ROUTER_PORT, METRICS_PORT = 30161 + SLOT, 30261 + SLOT
ROUTER = f"http://{A}:{ROUTER_PORT}"
OPTIONS = {"tensor_parallel_size": 1, "pipeline_parallel_size": 1, "max_model_len": 512,
           "max_num_batched_tokens": 512, "max_num_seqs": 8}
SERVING = {"group_size": 1, "router": {"port": ROUTER_PORT, "metrics_port": METRICS_PORT, "policy": "round_robin",
                                       "health_interval": 2}}


@pytest.fixture(scope="module")
def groups(tmp_path_factory, request):
    """Two started test hosts, one serving group each, the router on the first; the config path."""
    require_real_programs()
    from tests.conftest import PORT

    base = tmp_path_factory.mktemp("realrouter")
    model = build_tiny_model(base / "model")
    fleet = TestFleet(2, workdir=base / "fleet", first_octet=FIRST_OCTET, port=PORT)
    fleet.start()
    try:
        for host in fleet.hosts:
            real.add_router_image(host)
        config = real_config(fleet, base, model, engine={"port": ENGINE_PORT, "dist_port": DIST_PORT,
                                                         "options": dict(OPTIONS)}, serving=SERVING)
        yield fleet, config
    finally:
        if request.session.testsfailed:
            keep_logs(fleet, base / "logs")
        fab("stop", "--config", str(base / "real.yaml"), timeout=120)
        fleet.stop(remove=not request.session.testsfailed)


def _ask(key: str, timeout: float = 60) -> int:
    """One short chat completion through the router; its HTTP status (0: no answer)."""
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}).encode()
    req = urllib.request.Request(ROUTER + "/v1/chat/completions", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            json.load(resp)
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


class Load:
    """A bounded load generator: WORKERS threads asking through the router until stopped."""

    def __init__(self, key: str, workers: int = 2):
        self.key, self.codes, self._stop = key, [], threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(workers)]

    def _run(self) -> None:
        while not self._stop.is_set():
            self.codes.append(_ask(self.key))
            time.sleep(0.1)

    def __enter__(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=90)


def _router_health(url: str) -> bool | None:
    """Whether the router sees worker URL healthy (None: it does not list it)."""
    with urllib.request.urlopen(ROUTER + "/workers", timeout=10) as resp:
        listing = json.load(resp)["workers"]
    return next((w["is_healthy"] for w in listing if w["url"] == url), None)


def _key(fleet) -> str:
    return fleet.hosts[0].read("/etc/llmfab/api_key").strip()


def _engine(host) -> dict:
    [c] = [c for c in docker_state.containers(host) if c["name"] == "llmfab-engine"]
    return c


def test_fab_deploy_brings_up_both_groups_then_the_router_which_answers_from_both(groups):
    fleet, config = groups
    run = fab("deploy", "--config", str(config), "--yes", timeout=900)
    assert run.returncode == 0, run.output
    assert f"router sees http://{A}:{ENGINE_PORT} healthy" in run.stdout, run.stdout
    assert f"router sees http://{B}:{ENGINE_PORT} healthy" in run.stdout, run.stdout
    # One key for both groups: the router passes the client's on to either head.
    assert fleet.hosts[1].read("/etc/llmfab/api_key").strip() == _key(fleet)
    assert [_ask(_key(fleet)) for _ in range(4)] == [200] * 4
    assert _ask("wrong-key") == 401
    status = fab("status", "--config", str(config), timeout=120)
    assert status.returncode == 0, status.output
    assert "group 1 (head n1" in status.stdout and "group 2 (head n2" in status.stdout, status.stdout
    assert f"router on n1: running at {ROUTER}" in status.stdout, status.stdout


def test_with_one_groups_server_killed_the_router_keeps_answering_and_deploy_group_brings_it_back(groups):
    fleet, config = groups
    key = _key(fleet)
    fleet.hosts[1].exec("pkill -KILL -f '[v]llm serve' || true")
    assert [_ask(key) for _ in range(8)] == [200] * 8
    # The router's own health checks (every 2 s, 2 failures) mark it unhealthy within seconds.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _router_health(f"http://{B}:{ENGINE_PORT}") is not False:
        time.sleep(1)
    status = fab("status", "--config", str(config), timeout=120)
    assert status.returncode != 0
    assert f"router sees http://{B}:{ENGINE_PORT} unhealthy" in status.stdout, status.stdout
    again = fab("deploy", "--config", str(config), "--group", "2", "--yes", timeout=900)
    assert again.returncode == 0, again.output
    assert f"router sees http://{B}:{ENGINE_PORT} healthy" in again.stdout, again.stdout


def test_a_rolling_redeploy_under_load_replaces_each_group_with_no_failed_request(groups, tmp_path):
    fleet, config = groups
    before = [_engine(h)["labels"]["llmfab.fingerprint"] for h in fleet.hosts]
    changed = yaml.safe_load(config.read_text())
    changed["engine"]["options"]["max_num_seqs"] = 6
    new_config = config.with_name("rolled.yaml")
    new_config.write_text(yaml.safe_dump(changed))
    with Load(_key(fleet)) as load:
        time.sleep(2)
        start = time.monotonic()
        run = fab("deploy", "--config", str(new_config), "--rolling", "--yes", timeout=900)
        seconds = time.monotonic() - start
        time.sleep(2)
    print(f"rolling re-deploy: {seconds:.0f} s, {len(load.codes)} requests through the router, "
          f"{sum(c != 200 for c in load.codes)} failed")
    assert run.returncode == 0, run.output
    assert run.stdout.index("rolling: group 1") < run.stdout.index("rolling: group 2")
    failed = [c for c in load.codes if c != 200]
    assert not failed and len(load.codes) >= 20, (len(load.codes), failed)
    after = [_engine(h)["labels"]["llmfab.fingerprint"] for h in fleet.hosts]
    assert all(a != b for a, b in zip(after, before)), (before, after)
    assert "--max-num-seqs 6" in " ".join(_engine(fleet.hosts[1])["cmd"])


def test_stop_group_takes_one_group_down_and_the_router_answers_from_the_other(groups):
    fleet, config = groups
    stop = fab("stop", "--config", str(config), "--group", "1", timeout=120)
    assert stop.returncode == 0, stop.output
    assert not [c for c in docker_state.containers(fleet.hosts[0]) if c["name"] == "llmfab-engine"]
    assert [c["name"] for c in docker_state.containers(fleet.hosts[0]) if c["status"] == "running"] == ["llmfab-router"]
    assert [_ask(_key(fleet)) for _ in range(6)] == [200] * 6
