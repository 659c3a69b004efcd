"""The CLI teaches: every task has a summary line and every argument its help."""

import subprocess
import sys
from pathlib import Path

import pytest

from tasks import ns

REPO = Path(__file__).resolve().parents[2]


def test_every_task_has_a_one_line_summary_and_help_for_every_argument():
    for name, task in ns.tasks.items():
        assert task.__doc__ and task.__doc__.strip().splitlines()[0].endswith("."), name
        args = [a for a in task.get_arguments() if a.name != "c"]
        undocumented = [a.name for a in args if not a.help]
        assert not undocumented, f"{name}: no help for {undocumented}"


def test_fab_list_shows_the_tasks_from_the_repository_root():
    out = subprocess.run([sys.executable, "-m", "fabric", "--list"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("prep", "deploy", "export-bundle", "check", "plan", "smoke", "status", "stop", "bench"):
        assert f"  {name} " in out.stdout


def test_fab_runs_a_task_once_for_all_of_its_hosts():
    # An unknown -H host is refused by llmfab itself, before any connection: proof
    # that the task saw the whole list instead of one call per host.
    out = subprocess.run([sys.executable, "-m", "fabric", "-H", "n1,nx", "prep", "--dry-run",
                          "--config", "configs/h20-2x8.yaml"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2
    assert "-H names host(s) not in" in out.stderr and "nx" in out.stderr and "n1 (10.10.0.11)" in out.stderr


def test_a_bad_engine_name_ends_in_one_line_naming_the_option_and_the_fix():
    out = subprocess.run([sys.executable, "-m", "fabric", "check", "--config", "configs/h20-2x8.yaml", "--engine", "foo"],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == "error: --engine: 'foo' is not an engine; use sglang, trtllm or vllm"


@pytest.mark.parametrize("args, says", [
    (["check", "--parallel", "abc"], "--parallel: 'abc' is not a whole number"),
    (["deploy", "--version", "9.9"], "--version: no vllm profile '9.9'; use one of v0.8.5, "),
    (["export-bundle", "--engine", "foo", "--out", "/nonexistent"], "--engine: 'foo' is not an engine"),
])
def test_every_bad_option_ends_in_one_line_without_a_traceback(args, says):
    out = subprocess.run([sys.executable, "-m", "fabric", args[0], "--config", "configs/h20-2x8.yaml", *args[1:]],
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and says in out.stderr


def test_a_cuda_13_engine_version_is_refused_on_the_configured_driver_550():
    from llmfab.config import load
    from llmfab.deployment import DeploymentError, build
    cfg = load(REPO / "configs" / "h20-2x8.yaml")
    cfg.engine.version = "v0.33.0"
    with pytest.raises(DeploymentError) as e:
        build(cfg)
    assert "needs driver branch 580 or newer" in str(e.value) and "engine.version to v0.8.5" in str(e.value)
    cfg.nvidia.driver_version = "580.65.06"
    assert build(cfg).profile.version == "v0.33.0"
