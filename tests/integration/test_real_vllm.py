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

import pytest

from tests.harness import TestFleet
from tests.harness.standin import docker_state

from .realenv import SERVED, build_tiny_model, real_config, require_real_programs
from .scenario import fab, summary

pytestmark = pytest.mark.real_engine

# The ports the harness gives this module: other modules' fleets start at .11.
FIRST_OCTET = 61


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """Two started test hosts with the real vLLM image and the tiny model; the config path."""
    require_real_programs()
    from tests.conftest import PORT

    base = tmp_path_factory.mktemp("realvllm")
    model = build_tiny_model(base / "model")
    fleet = TestFleet(2, workdir=base / "fleet", first_octet=FIRST_OCTET, port=PORT)
    fleet.start()
    try:
        yield fleet, real_config(fleet, base, model)
    finally:
        fab("stop", "--config", str(base / "real.yaml"), timeout=120)
        fleet.stop(remove=not request.session.testsfailed)


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
    assert "vLLM API server version 0.32.0" in head.read("/var/log/llmfab/vllm-rank0.log")
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
    assert re.search(r"smoke: ttft_s=[0.9]+ tokens=[1-9]", smoke.stdout), smoke.stdout
    status = fab("status", "--config", str(config), timeout=120)
    assert status.returncode == 0, status.output
    assert "endpoint http://127.0.0.61:40000/health: up" in status.stdout, status.stdout


def test_the_served_model_answers_with_the_served_name(cluster):
    fleet, _ = cluster
    listing = fleet.hosts[0].exec("curl -fsS http://127.0.0.61:40000/v1/models").stdout
    assert [m["id"] for m in json.loads(listing)["data"]] == [SERVED]
