"""A second run, Ctrl-C and a timeout never leave two llmfab runs on one node (review M5)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from .scenario import INSTALLER, INSTALLER_DIR, REPO, fab, prepared_config

# A CUDA installer that takes its time: the step runs it as the real one would.
SLOW_INSTALLER = "#!/bin/sh\necho started >/root/installer.started\nexec sleep 300\n"


def slow_prep(fleet, tmp_path, **ssh):
    config = prepared_config(fleet, tmp_path / "c.yaml", **({"ssh": ssh} if ssh else {}))
    for host in fleet.hosts:
        host.exec(f"cat > {INSTALLER_DIR}/{INSTALLER}", input=SLOW_INSTALLER, check=True)
    return config


def start_fab(*args: str) -> subprocess.Popen:
    # A script answers no prompt: LLMFAB_ASSUME_YES=1 stands for --yes, as in scenario.fab.
    return subprocess.Popen([sys.executable, "-m", "fabric", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "COLUMNS": "200", "LLMFAB_ASSUME_YES": "1"})


def wait_for(predicate, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.5)


def installer_running(host) -> bool:
    return host.exec("pgrep -f 'sleep 300'").returncode == 0


def test_a_second_run_is_refused_naming_the_first_and_ctrl_c_stops_the_remote_step(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    (n1,) = fleet.hosts
    config = slow_prep(fleet, tmp_path)
    first = start_fab("prep", "--config", str(config))
    try:
        wait_for(lambda: n1.exists("/root/installer.started"))
        second = fab("prep", "--config", str(config))
        assert second.returncode != 0
        assert "another llmfab run holds this node (phase prep, process group" in second.stdout, second.stdout
        assert "since 20" in second.stdout
        first.send_signal(signal.SIGINT)
        out, _ = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert "interrupted (stopped the remote step on: n1)" in out, out
    wait_for(lambda: not installer_running(n1), timeout=10)
    assert n1.exec("pgrep -f llmfab-run").returncode == 1


def test_a_command_timeout_stops_the_remote_step_and_says_so(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    (n1,) = fleet.hosts
    config = slow_prep(fleet, tmp_path, command_timeout=15)
    run = fab("prep", "--config", str(config), timeout=120)
    assert run.returncode != 0
    assert "timed out after 15s (ssh.command_timeout); stopped the remote step" in run.stdout, run.stdout
    wait_for(lambda: not installer_running(n1), timeout=10)
