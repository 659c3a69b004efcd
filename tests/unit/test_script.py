"""A phase renders to one clean bash script; its steps probe, report and never write in dry-run."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from llmfab import config
from llmfab.results import Status, parse_record, step_result
from llmfab.script import render_phase
from llmfab.run import Run

RAW = {
    "cluster": {"name": "c1"},
    "nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}],
    "model": {"path": "/models/$(reboot); rm -rf ~"},
}


@pytest.fixture
def cluster():
    return config.parse(RAW)


def run_script(text: str, tmp_path: Path, *args: str) -> list:
    script = tmp_path / "prep.sh"
    script.write_text(text)
    out = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, cwd=tmp_path)
    results = []
    for line in out.stdout.splitlines():
        record = parse_record(line)
        if record and record[0] == "result":
            results.append(step_result(record[1]))
    return results


def test_the_prep_script_passes_shellcheck_and_bash_n(cluster, tmp_path):
    path = tmp_path / "prep.sh"
    path.write_text(render_phase(Run(cluster), cluster.nodes[1], "prep"))
    subprocess.run(["bash", "-n", str(path)], check=True)
    assert shutil.which("shellcheck"), "shellcheck must be installed (apt-get install shellcheck)"
    subprocess.run(["shellcheck", "-S", "warning", str(path)], check=True)


def test_each_node_gets_its_own_identity(cluster):
    n1 = render_phase(Run(cluster), cluster.nodes[0], "prep")
    n2 = render_phase(Run(cluster), cluster.nodes[1], "prep")
    assert "LLMFAB_ROLE=head" in n1 and "LLMFAB_ROLE=worker" in n2
    assert "LLMFAB_RANK=1" in n2


def test_a_hostile_model_path_stays_quoted_data_in_the_script(cluster):
    text = render_phase(Run(cluster), cluster.nodes[0], "prep")
    assert "LLMFAB_MODEL_PATH='/models/$(reboot); rm -rf ~'" in text


def test_dry_run_reports_each_step_and_changes_nothing(cluster, tmp_path):
    results = run_script(render_phase(Run(cluster), cluster.nodes[0], "prep"), tmp_path, "--dry-run")
    steps = [r.step for r in results]
    assert steps[:5] == ["os-check", "node-identity", "kernel-hold", "nofile-limit", "sysctl-net"]
    assert {"nvidia-driver", "fabric-manager", "docker", "container-toolkit", "gpudirect-rdma"} <= set(steps)
    by_step = {r.step: r for r in results}
    assert by_step["nofile-limit"].message.startswith("would create /etc/security/limits.d/")
    assert not os.path.exists("/etc/llmfab/node.env")


def test_an_unknown_option_is_refused(cluster, tmp_path):
    script = tmp_path / "p.sh"
    script.write_text(render_phase(Run(cluster), cluster.nodes[0], "prep"))
    out = subprocess.run(["bash", str(script), "--yes"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown option: --yes" in out.stderr


def test_a_failing_step_reports_its_reason_and_output_and_the_rest_are_skipped(tmp_path):
    lib = (Path(__file__).resolve().parents[2] / "llmfab" / "lib" / "llmfab.sh").read_text()
    text = "set -Eeuo pipefail\n" + lib + """
step_first() { echo "some output"; false; echo never; }
step_second() { llmfab_ok fine; }
LLMFAB_STEPS=(first second)
llmfab_main "$@"
"""
    results = run_script(text, tmp_path)
    assert results[0].status == Status.FAILED
    assert "command failed (exit 1)" in results[0].message
    assert "some output" in results[0].tail
    assert results[1].status == Status.SKIPPED and "first failed" in results[1].message


def test_a_step_that_fails_with_a_reason_reports_that_reason(tmp_path):
    lib = (Path(__file__).resolve().parents[2] / "llmfab" / "lib" / "llmfab.sh").read_text()
    text = "set -Eeuo pipefail\n" + lib + """
step_only() { llmfab_fail "driver 535 installed, 550 wanted: pass --upgrade-driver"; }
LLMFAB_STEPS=(only)
llmfab_main "$@"
"""
    (result,) = run_script(text, tmp_path)
    assert result.status == Status.FAILED
    assert result.message == "driver 535 installed, 550 wanted: pass --upgrade-driver"


def test_a_managed_file_is_written_atomically_with_a_backup_only_when_it_changes(tmp_path):
    lib = (Path(__file__).resolve().parents[2] / "llmfab" / "lib" / "llmfab.sh").read_text()
    target = tmp_path / "etc" / "x.conf"
    target.parent.mkdir()
    target.write_text("old\n")
    body = f"""
step_f() {{ llmfab_file {target} 0644 <<'CONTENT'
new
CONTENT
}}
LLMFAB_STEPS=(f)
llmfab_main "$@"
"""
    backup_dir = tmp_path / "backups"
    text = f"set -Eeuo pipefail\nLLMFAB_BACKUP_DIR={backup_dir}\n" + lib + body
    (first,) = run_script(text, tmp_path)
    assert first.status == Status.CHANGED and "backup kept" in first.message
    assert target.read_text() == "new\n"
    # The backup is kept away from the directory (apt's, sysctl's) that reads every file in it.
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.conf"]
    backups = list(backup_dir.rglob("x.conf.*"))
    assert len(backups) == 1 and backups[0].read_text() == "old\n"
    assert backups[0].parent == backup_dir / str(target.parent).lstrip("/")
    (second,) = run_script(text, tmp_path)
    assert second.status == Status.OK
    assert len(list(backup_dir.rglob("x.conf.*"))) == 1
    assert not list(target.parent.glob(".x.conf.llmfab-tmp.*"))


def test_a_failed_step_skips_the_rest_of_its_group_and_an_ungrouped_failure_skips_everything(tmp_path):
    lib = (Path(__file__).resolve().parents[2] / "llmfab" / "lib" / "llmfab.sh").read_text()
    body = """
step_driver() { llmfab_fail "refused"; }
step_fm() { llmfab_ok "fm"; }
step_docker() { llmfab_ok "docker"; }
step_base() { false; }
step_last() { llmfab_ok "last"; }
LLMFAB_STEPS=(driver fm docker base last)
LLMFAB_GROUPS=(driver=nvidia fm=nvidia docker=docker)
llmfab_main "$@"
"""
    results = run_script("set -Eeuo pipefail\n" + lib + body, tmp_path)
    assert [(r.step, r.status) for r in results] == [
        ("driver", Status.FAILED), ("fm", Status.SKIPPED), ("docker", Status.OK),
        ("base", Status.FAILED), ("last", Status.SKIPPED)]
