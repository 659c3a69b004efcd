"""llmfab against the real vLLM (CPU build) on two test hosts: deploy, smoke, status, bench, faults.

The engine "containers" of the docker stub run the real ``vllm serve`` with
llmfab's exact argv: the head (rank 0) and a ``--headless`` worker (rank 1)
rendezvous over vLLM's own multi-node launch and serve a tiny Llama, one
pipeline stage each. Starting vLLM costs about a minute, so the tests of this
module share one fleet and run in order: deploy first, faults last.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.harness.standin import docker_state

from . import browser
from .realenv import (DIST_PORT, ENDPOINT, SERVED, WEBUI_URL, WORKER, build_tiny_model, real_config, real_fleet,
                      require_real_programs)
from .scenario import copy_into, fab, summary

pytestmark = pytest.mark.real_engine

@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """Two started test hosts with the real vLLM image and the tiny model; the config path."""
    require_real_programs()
    base = tmp_path_factory.mktemp("realvllm")
    model = build_tiny_model(base / "model")
    with real_fleet(base, request) as fleet:
        yield fleet, real_config(fleet, base, model)


def _engines(host) -> list[dict]:
    return [c for c in docker_state.containers(host) if c["name"] == "llmfab-engine"]


def _vllm_processes(host) -> list[str]:
    listing = host.exec("ps -eo pid=,args= | grep -E '[v]llm serve|[V]LLM|[E]ngineCore' || true").stdout
    return [line for line in listing.splitlines() if line.strip()]


def test_fab_deploy_starts_the_real_vllm_on_both_hosts_and_the_smoke_test_streams_an_answer(cluster):
    fleet, config = cluster
    run = fab("deploy", "--config", str(config), timeout=600)
    assert run.returncode == 0, run.output
    assert "smoke: ttft_s=" in run.stdout and "ended with [DONE]" in run.stdout, run.stdout
    head, worker = fleet.hosts
    [c0], [c1] = _engines(head), _engines(worker)
    assert c0["status"] == c1["status"] == "running"
    # The real vLLM said who it is, and the worker ran headless as rank 1.
    assert re.search(r"version 0\.32\.0\n", head.read("/var/log/llmfab/engine/vllm-rank0.log"))
    assert "--headless" in c1["cmd"][-1] and "--node-rank 1" in c1["cmd"][-1]


def test_a_second_deploy_of_the_serving_cluster_changes_nothing(cluster):
    _, config = cluster
    again = fab("deploy", "--config", str(config), "--skip-smoke", timeout=300)
    assert again.returncode == 0, again.output
    assert "changed=0" in summary(again), again.stdout


def test_fab_smoke_and_status_see_the_real_server(cluster):
    _, config = cluster
    smoke = fab("smoke", "--config", str(config), timeout=300)
    assert smoke.returncode == 0, smoke.output
    assert re.search(r"smoke: ttft_s=[0-9.]+, chunks=[1-9]", smoke.stdout), smoke.stdout
    status = fab("status", "--config", str(config), timeout=120)
    assert status.returncode == 0, status.output
    assert f"endpoint {ENDPOINT}/health: up" in status.stdout, status.stdout


def test_the_served_model_answers_with_the_served_name_to_the_key_only(cluster):
    fleet, _ = cluster
    head = fleet.hosts[0]
    # The API is keyed by default: the key llmfab kept on the head opens it, nothing else does.
    assert head.exec("curl -sS -o /dev/null -w '%{http_code}' " + ENDPOINT + "/v1/models").stdout == "401"
    key = head.read("/etc/llmfab/api_key").strip()
    listing = head.exec(f"curl -fsS -H 'Authorization: Bearer {key}' {ENDPOINT}/v1/models").stdout
    assert [m["id"] for m in json.loads(listing)["data"]] == [SERVED]


def _admin(head) -> tuple[str, str]:
    kept = dict(line.split("=", 1) for line in head.read("/etc/llmfab/webui.env").splitlines())
    return "admin@llmfab.local", kept["WEBUI_ADMIN_PASSWORD"]


def test_a_person_signs_in_to_the_real_open_webui_as_its_admin_and_reads_a_streamed_answer(cluster, tmp_path):
    fleet, config = cluster
    head = fleet.hosts[0]
    run = fab("webui", "--config", str(config), timeout=600)
    assert run.returncode == 0, run.output
    url = WEBUI_URL
    email, password = _admin(head)
    assert url in run.stdout and f"Open WebUI admin: {email}  password: {password}" in run.stdout
    # Nobody can sign up: the first visitor is not offered the admin account.
    signup = head.exec("curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "
                       "-d '{\"name\": \"x\", \"email\": \"x@example.com\", \"password\": \"p\"}' "
                       f"{url}api/v1/auths/signup")
    assert signup.stdout == "403", signup
    with browser.page(tmp_path) as pg:
        pg.goto(url, wait_until="networkidle", timeout=120_000)
        assert pg.get_by_role("button", name="Create Admin Account").count() == 0
        browser.sign_in(pg, url, email, password)
        browser.dismiss_release_notes(pg)
        # DEFAULT_MODELS reached the program: the served model is already picked.
        assert SERVED in pg.locator("#chat-input").locator("xpath=ancestor::form").inner_text()
        answer = browser.ask(pg, "Say hello to the cluster")
        pg.screenshot(path=str(config.parent / "webui-chat.png"))
        token = pg.evaluate("localStorage.token")
    assert len(answer) > 5 and "tool choice" not in answer, answer
    # The answer came from the real vLLM through the endpoint llmfab rendered.
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in head.read("/var/log/llmfab/engine/vllm-rank0.log")
    # Its data directory is the one llmfab manages on the head.
    assert head.exists("/var/lib/llmfab/open-webui/webui.db")
    (config.parent / "webui-token").write_text(token)


def test_open_webui_keeps_its_secret_users_and_chats_across_stop_and_redeploy(cluster, tmp_path):
    fleet, config = cluster
    head = fleet.hosts[0]
    token = (config.parent / "webui-token").read_text()
    assert fab("stop", "--config", str(config), "--webui", timeout=120).returncode == 0
    assert not [c for c in docker_state.containers(head) if c["name"] == "llmfab-webui"]
    again = fab("webui", "--config", str(config), timeout=600)
    assert again.returncode == 0, again.output
    assert _admin(head)[1] not in again.output and "Open WebUI admin:" not in again.stdout
    # A session signed by the kept WEBUI_SECRET_KEY is still valid after the restart.
    me = head.exec(f"curl -fsS -H 'Authorization: Bearer {token}' {WEBUI_URL}api/v1/auths/")
    assert me.returncode == 0 and '"email":"admin@llmfab.local"' in me.stdout.replace(" ", ""), me
    with browser.page(tmp_path) as pg:
        browser.sign_in(pg, WEBUI_URL, *_admin(head))
        browser.dismiss_release_notes(pg)
        assert pg.get_by_text("Say hello to the cluster").count() >= 1


def test_fab_bench_runs_vllm_bench_serve_then_saves_compares_and_plots_the_result(cluster, tmp_path):
    _, config = cluster
    results = tmp_path / "bench"
    load = ("--concurrency", "2", "--input-len", "32", "--output-len", "16", "--prompts", "4")
    for _ in range(2):
        run = fab("bench", "--config", str(config), *load, "--results", str(results), timeout=600)
        assert run.returncode == 0, run.output
    saved = sorted(results.rglob("*.json"))
    assert len(saved) == 2 and saved[0].parent.parts[-3:-1] == ("vllm", "v0.32.0"), saved
    data = json.loads(saved[-1].read_text())
    assert data["metrics"]["completed"] == 4, data["metrics"]
    compare = fab("bench", "--config", str(config), "--compare", "--results", str(results), timeout=120)
    assert compare.returncode == 0, compare.output
    [png] = list(results.rglob("*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    (config.parent / "bench-compare.png").write_bytes(png.read_bytes())


def test_a_killed_worker_process_is_named_by_fab_status_within_seconds(cluster):
    fleet, config = cluster
    worker = fleet.hosts[1]
    assert worker.exec("pkill -9 -f 'VLLM::Worker'").returncode == 0
    deadline = time.monotonic() + 30
    while _engines(worker)[0]["exit_code"] is None and time.monotonic() < deadline:
        time.sleep(0.5)
    start = time.monotonic()
    status = fab("status", "--config", str(config), timeout=60)
    took = time.monotonic() - start
    assert status.returncode == 1, status.output
    assert "engine group broken" in status.stdout and f"n2 ({WORKER}, rank 1: Exited" in status.stdout
    assert "a vLLM worker process on this node died" in status.stdout, status.stdout
    assert took < 15, took


def test_a_redeploy_after_the_crash_restarts_every_rank_and_serves_again(cluster):
    fleet, config = cluster
    run = fab("deploy", "--config", str(config), timeout=600)
    assert run.returncode == 0, run.output
    assert "engine group broken" in run.stdout and "stopping every rank" in run.stdout, run.stdout
    assert "ended with [DONE]" in run.stdout
    assert all(c["status"] == "running" for h in fleet.hosts for c in _engines(h))


def test_a_worker_that_never_starts_is_named_and_the_whole_group_stopped_at_once(cluster):
    fleet, config = cluster
    head, worker = fleet.hosts
    assert fab("stop", "--config", str(config), timeout=120).returncode == 0
    image = "docker/images/vllm/vllm-openai:v0.32.0"
    kept = worker.read(f"/var/lib/llmfab-stubs/{image}")
    worker.set_state(image, None)
    try:
        start = time.monotonic()
        run = fab("deploy", "--config", str(config), timeout=600)
        took = time.monotonic() - start
    finally:
        worker.set_state(image, kept)
    assert run.returncode == 1, run.output
    assert f"n2 ({WORKER}) failed: engine-image" in run.stdout, run.stdout
    assert "stopping the engine on every node" in run.stdout
    assert not [c for h in fleet.hosts for c in _engines(h) if c["status"] == "running"]
    assert not _vllm_processes(head) and not _vllm_processes(worker)
    assert took < 120, run.stdout


def test_fab_stop_leaves_no_engine_process_on_any_host(cluster):
    fleet, config = cluster
    assert fab("deploy", "--config", str(config), "--skip-smoke", timeout=600).returncode == 0
    assert all(_vllm_processes(h) for h in fleet.hosts)
    stop = fab("stop", "--config", str(config), timeout=120)
    assert stop.returncode == 0, stop.output
    assert all(not _engines(h) and not _vllm_processes(h) for h in fleet.hosts)


def _run_sh(host, *args: str, timeout: int = 600):
    return host.exec("bash /root/bundle/run.sh " + " ".join(args), timeout=timeout)


@pytest.mark.parametrize("head_first", [False, True], ids=["worker-first", "head-first"])
def test_bundles_deploy_the_real_vllm_in_either_order_then_smoke_it_on_the_head(cluster, tmp_path, head_first):
    fleet, config = cluster
    assert fab("stop", "--config", str(config), timeout=120).returncode == 0
    _no_engine_left(fleet)
    out = tmp_path / "bundles"
    export = fab("export-bundle", "--config", str(config), "--out", str(out), timeout=120)
    assert export.returncode == 0, export.output
    head, worker = fleet.hosts
    for host in fleet.hosts:
        host.exec("rm -rf /root/bundle")
        copy_into(host, out / host.name, "/root/bundle")
    first, second = (head, worker) if head_first else (worker, head)
    with ThreadPoolExecutor(2) as pool:
        started = pool.submit(_run_sh, first, "deploy")
        time.sleep(10)
        later = pool.submit(_run_sh, second, "deploy")
        runs = {first.name: started.result(), second.name: later.result()}
    for name, run in runs.items():
        assert run.returncode == 0, (name, run.stdout[-3000:], run.stderr[-2000:])
    assert "serving tiny" in runs["n1"].stdout
    smoke = _run_sh(head, "smoke", timeout=300)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "ended with [DONE]" in smoke.stdout
    for host in fleet.hosts:
        assert _run_sh(host, "stop", timeout=120).returncode == 0
    assert not any(_engines(h) for h in fleet.hosts)
    _no_engine_left(fleet)


def _no_engine_left(fleet, timeout: float = 30) -> None:
    """No vLLM process on any host and the rendezvous port free (a killed process may take a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {h.name: _vllm_processes(h) for h in fleet.hosts}
        bound = fleet.hosts[0].exec(f"ss -ltnH 'sport = :{DIST_PORT}'").stdout.strip()
        if not any(left.values()) and not bound:
            return
        assert time.monotonic() < deadline, (left, bound)
        time.sleep(1)
