"""Every step case under tests/steps runs twice on one test host: it does what
the case expects, and the second run finds nothing left to do."""

from __future__ import annotations

import pytest

from llmfab.results import Status

from .runner import load_cases, prepare, run_script, script_for

CASES = load_cases()


def assert_files(host, expected: dict) -> None:
    for path, wanted in expected.items():
        text = host.read(path)
        if wanted is None:
            assert text is None, f"{path} should not exist"
            continue
        assert text is not None, f"{path} is missing"
        for piece in [wanted] if isinstance(wanted, str) else wanted:
            assert piece in text, f"{path} lacks {piece!r}:\n{text}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_step_does_what_its_case_says_and_then_nothing(case, fleet_factory):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    config = fleet.write_config(**case.config)
    prepare(host, case)
    script = script_for(case, config)
    expect = case.expect
    files_before = {path: host.read(path) for path in expect.get("files") or {}}
    dry = run_script(host, script, "--dry-run")
    assert dry.result.status == Status(expect.get("status", "changed")), f"dry run: {dry.result.message}"
    assert {path: host.read(path) for path in files_before} == files_before, "the dry run changed files"
    calls_before = len(host.calls())

    first = run_script(host, script)
    detail = f"{case.about}\n{first.result.message}\n{first.result.tail}\n{first.stderr}"
    assert first.result.status == Status(expect.get("status", "changed")), detail
    assert expect.get("message", "") in first.result.message, detail
    assert_files(host, expect.get("files") or {})
    for path, mode in (expect.get("modes") or {}).items():
        assert host.stat_mode(path) == int(str(mode), 8), f"{path} has mode {oct(host.stat_mode(path) or 0)}"
    calls = [[c.program, *c.args] for c in host.calls()[calls_before:]]
    for wanted in expect.get("calls") or []:
        assert any(call[:len(wanted)] == [str(w) for w in wanted] for call in calls), f"no call {wanted} in {calls}"

    again = run_script(host, script)
    assert again.result.status == Status(expect.get("again", "ok")), again.result.message
