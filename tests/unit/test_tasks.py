"""The CLI teaches: every task has a summary line and every argument its help."""

import subprocess
import sys
from pathlib import Path

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
