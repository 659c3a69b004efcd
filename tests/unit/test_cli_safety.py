"""No hidden default cluster, no silently ignored flag: what `fab` does before any connection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from llmfab import config as config_mod
from llmfab.coreflags import REFUSED, translate
from llmfab.errors import UsageError
from tasks import ns
from tasks.options import SHORT

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "configs/h20-2x8.yaml"
HOST_TASKS = ["prep", "deploy", "check", "status", "logs", "stop", "smoke", "model", "webui", "bench", "ping", "undo"]


def fab(*args: str, cwd: Path = REPO, env: dict | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("LLMFAB_CONFIG", "LLMFAB_ASSUME_YES")}
    logs = {"LLMFAB_LOG_DIR": str(cwd / "logs")} if cwd != REPO else {}
    return subprocess.run([sys.executable, "-m", "fabric", "-r", str(REPO), *args], cwd=cwd, input=stdin,
                          capture_output=True, text=True, env={**clean, "COLUMNS": "200", **logs, **(env or {})},
                          timeout=120)


def unreachable_config(tmp_path: Path) -> Path:
    """Two nodes on loopback addresses where nothing listens: any connection is refused at once."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "cluster": {"name": "lab"},
        "ssh": {"port": 2, "config_file": None, "known_hosts": str(tmp_path / "kh"), "connect_timeout": 2},
        "nodes": [{"name": "a1", "address": "127.0.0.201"}, {"name": "a2", "address": "127.0.0.202", "user": "ops"}],
    }))
    return path


@pytest.mark.parametrize("task", [t for t in HOST_TASKS if t in ns.tasks])
def test_a_task_that_touches_hosts_refuses_to_guess_the_cluster(task, tmp_path):
    run = fab(task, cwd=tmp_path)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "no config names them" in run.stderr
    assert "--config PATH" in run.stderr and "LLMFAB_CONFIG" in run.stderr and "llmfab.yaml" in run.stderr
    assert "10.10.0.11" not in run.stdout + run.stderr


def test_a_config_in_the_working_directory_counts_as_named(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMFAB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "llmfab.yaml").write_text("nodes: [{name: x1, address: 127.0.0.9}]\n")
    config = config_mod.load(example_ok=False)
    assert config.nodes[0].name == "x1" and config.chosen_by == "working directory"


def test_the_environment_variable_names_the_config(tmp_path, monkeypatch):
    path = tmp_path / "env.yaml"
    path.write_text("nodes: [{name: e1, address: 127.0.0.9}]\n")
    monkeypatch.setenv("LLMFAB_CONFIG", str(path))
    assert config_mod.resolve(None, example_ok=False) == (path, "$LLMFAB_CONFIG")


def test_tasks_that_touch_no_host_may_still_use_the_example(monkeypatch, tmp_path):
    monkeypatch.delenv("LLMFAB_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert config_mod.resolve(None) == (config_mod.DEFAULT_CONFIG, "built-in example")


def test_the_resolved_config_and_every_address_are_printed_before_connecting(tmp_path):
    run = fab("prep", "--config", str(unreachable_config(tmp_path)), "--yes", cwd=tmp_path)
    first = run.stdout.splitlines()[0]
    assert first.startswith(f"config: {tmp_path}/c.yaml (cluster lab, from --config): ")
    assert "a1=root@127.0.0.201:2" in first and "a2=ops@127.0.0.202:2" in first


def test_an_unreachable_host_is_counted_and_the_fix_is_named(tmp_path):
    run = fab("prep", "--config", str(unreachable_config(tmp_path)), "--yes", cwd=tmp_path)
    assert run.returncode == 1
    assert "unreachable=2" in run.stdout and "FAILED hosts: a1, a2" in run.stdout
    assert "fab ping" in run.stdout and "ssh.port" in run.stdout


def test_an_llmfab_config_before_the_task_name_stops_with_the_right_usage():
    run = fab("--config", EXAMPLE, "plan")
    assert run.returncode == 2
    assert f"fab TASK --config {EXAMPLE}" in run.stderr and "2 x 8" not in run.stdout


def test_an_invoke_config_before_the_task_name_is_still_invokes(tmp_path):
    own = tmp_path / "invoke.yaml"
    own.write_text("run: {echo: false}\n")
    run = fab("--config", str(own), "plan", "--config", EXAMPLE)
    assert run.returncode == 0, run.stderr


@pytest.mark.parametrize("flag", ["-R", "--dry", "-e", "-w", "--pty"])
def test_a_fabric_flag_llmfab_cannot_honour_is_refused_before_any_task_runs(flag, tmp_path):
    run = fab(flag, "prep", "--config", str(unreachable_config(tmp_path)), "--yes", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and "connecting" not in run.stdout and "config:" not in run.stdout


def test_fab_dash_r_names_the_dry_run_option():
    assert "--dry-run" in REFUSED["dry"]


def core(**values) -> SimpleNamespace:
    names = ["identity", "ssh-config", "connect-timeout", "command-timeout", "prompt-for-sudo-password", "config",
             *REFUSED]
    return SimpleNamespace(args={n: SimpleNamespace(value=values.get(n.replace("-", "_"))) for n in names})


def test_fabric_ssh_flags_become_llmfab_ssh_settings():
    got = translate(core(identity=["~/k1"], ssh_config="/x/cfg", connect_timeout=7, command_timeout=99), None)
    assert got == {"identity_files": ["~/k1"], "ssh_config_file": "/x/cfg", "connect_timeout": 7,
                   "command_timeout": 99}


def test_a_sudo_password_fabric_asked_for_is_used():
    fabric_config = SimpleNamespace(sudo=SimpleNamespace(password="pw"))
    assert translate(core(prompt_for_sudo_password=True), fabric_config) == {"sudo_password": "pw"}


def test_each_refused_flag_raises_a_usage_error():
    for name in REFUSED:
        with pytest.raises(UsageError):
            translate(core(**{name.replace("-", "_"): True}), None)


def test_a_short_flag_means_the_same_in_every_task():
    meanings: dict[str, set[str]] = {}
    for task in ns.tasks.values():
        for arg in task.get_arguments():
            for short in (n for n in arg.names if len(n) == 1):
                meanings.setdefault(short, set()).add(arg.names[0])
    assert all(len(longs) == 1 for longs in meanings.values()), meanings
    assert {s: longs.pop() for s, longs in meanings.items()} == {v: k for k, v in SHORT.items() if v in meanings}


def test_a_non_dry_run_without_a_terminal_or_yes_changes_nothing_when_hosts_cannot_be_previewed(tmp_path):
    # Nothing is reachable, so nothing would change: the run goes on and reports the hosts unreachable.
    run = fab("prep", "--config", str(unreachable_config(tmp_path)), cwd=tmp_path)
    assert run.returncode == 1 and "checking what would change first" in run.stdout


def test_the_llmfab_command_refuses_a_prompt_flag_before_fabric_prompts(tmp_path):
    run = llmfab_cmd("--prompt-for-passphrase", "ping", cwd=tmp_path)
    assert run.returncode == 2 and "ssh-agent" in run.stderr and "Traceback" not in run.stderr


def test_the_llmfab_command_works_from_any_directory(tmp_path):
    run = llmfab_cmd("plan", "--config", str(REPO / EXAMPLE), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "OK" in run.stdout or "fits" in run.stdout.lower()


@pytest.mark.parametrize("task", ["plan", "export-bundle"])
def test_dash_h_on_a_task_that_contacts_no_host_is_refused(task, tmp_path):
    run = fab("-H", "n1", task, "--config", EXAMPLE, cwd=tmp_path)
    assert run.returncode == 2 and "-H would be ignored" in run.stderr


def test_check_json_on_unreachable_nodes_prints_only_json_and_fails(tmp_path):
    import json

    run = fab("check", "--json", "--config", str(unreachable_config(tmp_path)), cwd=tmp_path)
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert report["failed"] is True and sorted(report["unreachable"]) == ["a1", "a2"]
    assert "config:" in run.stderr


def llmfab_cmd(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `llmfab` console script, from CWD, importing this checkout (not another installed copy)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", "from llmfab.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONPATH": path})


def test_an_unknown_flag_gets_the_nearest_real_one(tmp_path):
    run = llmfab_cmd("prep", "--dryrun", cwd=tmp_path)
    assert run.returncode == 1 and "did you mean --dry-run?" in run.stderr


def test_an_unknown_flag_with_nothing_near_lists_the_tasks_flags(tmp_path):
    run = llmfab_cmd("check", "--dry-run", cwd=tmp_path)
    assert "`check` has no --dry-run" in run.stderr and "--nccl" in run.stderr


@pytest.mark.parametrize("task", ["plan", "export-bundle"])
def test_an_unknown_engine_is_a_usage_error_with_the_names_not_a_traceback(task, tmp_path):
    run = fab(task, "--engine", "sglan", "--config", str(REPO / EXAMPLE), cwd=tmp_path)
    assert run.returncode == 2 and "did you mean sglang?" in run.stderr and "Traceback" not in run.stderr


def test_an_engine_from_the_command_line_says_which_config_options_it_leaves_out(tmp_path):
    raw = yaml.safe_load((REPO / EXAMPLE).read_text())
    raw["engine"]["options"] = {"max_model_len": 65536}
    raw["ssh"]["config_file"] = None
    raw["nodes"] = [{"name": "a1", "address": "127.0.0.201"}]
    raw["ssh"]["port"] = 2
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = fab("deploy", "--engine", "sglang", "--config", str(path), "--dry-run", cwd=tmp_path)
    assert "--engine sglang leaves out engine.options (max_model_len)" in run.stdout


def test_a_bundle_without_artifacts_says_it_will_download_from_the_internet(tmp_path):
    run = fab("export-bundle", "--config", str(REPO / EXAMPLE), "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "no --artifacts: these bundles download from the internet" in run.stdout


def test_an_unknown_engine_version_is_a_usage_error_with_the_nearest(tmp_path):
    run = fab("plan", "--config", str(REPO / EXAMPLE), "--version", "v0.8", cwd=tmp_path)
    assert run.returncode == 2 and "did you mean v0.8.5?" in run.stderr
