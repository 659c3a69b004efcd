"""The preflight report: the free-disk threshold in the right unit, unreachable nodes never "passed"."""

from __future__ import annotations

import json

import pytest

from llmfab import checks


def disk_check(free_gb: float, model_gb: float = 700) -> checks.Check:
    r = checks.NodeReport("n1")
    kib = int(free_gb * 1e9 / 1024)
    e = checks.Expect.__new__(checks.Expect)
    object.__setattr__(e, "model_path", "/models/x")
    object.__setattr__(e, "model_bytes", int(model_gb * 1e9))
    checks._disk(r, e, {"disk": (0, f"{kib}\n")})
    (c,) = r.checks
    return c


@pytest.mark.parametrize("free_gb, status", [(1, checks.FAIL), (5, checks.FAIL), (70, checks.FAIL),
                                             (699, checks.FAIL), (700, checks.PASS), (7000, checks.PASS)])
def test_the_free_disk_check_reads_kib_as_bytes_against_the_models_size(free_gb, status):
    assert disk_check(free_gb).status == status


def test_the_json_report_lists_unreachable_nodes_and_fails():
    report = json.loads(checks.as_json([], [], {"n1": "cannot connect", "n2": "no answer"}))
    assert report["failed"] is True
    assert report["unreachable"] == {"n1": "cannot connect", "n2": "no answer"}
