"""Diagnosis on logs of the real vLLM (CPU build) captured by the real-engine tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmfab.facts.failures import diagnose_log

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "vllm-cpu"


@pytest.mark.parametrize("name", ["worker-killed-rank1.log", "worker-killed-exit-none-rank1.log"])
def test_a_killed_vllm_worker_is_named_with_its_exit_code(name):
    found = diagnose_log((FIXTURES / name).read_text())
    assert found and "a vLLM worker process on this node died (VllmWorker-1" in found[0].cause
    assert "Worker proc VllmWorker-1 died unexpectedly" in found[0].evidence_line


def test_a_healthy_head_log_yields_no_diagnosis():
    assert diagnose_log((FIXTURES / "healthy-head-rank0.log").read_text()) == []


@pytest.mark.parametrize("line, cause", [
    ("RuntimeError: Insufficient space in /dev/shm for shared-memory allocation: 160 MiB required, "
     "64 MiB free. Increase /dev/shm (e.g. --shm-size or --ipc=host).", "/dev/shm is too small"),
    ("torch.distributed.DistNetworkError: The server socket has failed to listen on any local network "
     "address. port: 21061, useIpv6: false, code: -98, name: EADDRINUSE, message: address already in use",
     "the rendezvous port 21061 is already taken"),
])
def test_real_vllm_start_failures_are_named(line, cause):
    # Both lines as the real vLLM printed them in the test hosts (before the harness's fixes).
    [found] = diagnose_log(line)
    assert cause in found.cause
