"""The test-host harness itself: real sshd hosts whose writes and fake hardware stay inside them."""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import paramiko
import pytest
import yaml

from tests.conftest import PORT
from tests.harness import HostDown, HostStartError
from tests.harness.cleanup import mounts_under
from tests.harness.payload import FIELD_FIXTURES, HARNESS_DIR, STUBS_DIR, fixture_body

REPO_ROOT = Path(__file__).resolve().parents[2]
H20_TABLE = FIELD_FIXTURES / "gpu" / "nvidia-smi-8xH20-driver535.txt"


def ssh(fleet, host, command: str, user: str = "root") -> subprocess.CompletedProcess[str]:
    """Run a command on a host with the real OpenSSH client, host keys checked strictly."""
    argv = [
        "ssh", "-F", "/dev/null", "-i", str(fleet.client_key_path),
        "-o", f"UserKnownHostsFile={fleet.known_hosts_path}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=5",
        "-p", str(host.port), f"{user}@{host.address}", command,
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def refuses_connections(host) -> bool:
    """Tell whether nothing listens on the host's address and port."""
    try:
        socket.create_connection((host.address, host.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def real_sysctl(key: str) -> str:
    """Read a kernel setting of the real machine."""
    return Path("/proc/sys", *key.split(".")).read_text().strip()


# --- SSH access -------------------------------------------------------------


def test_root_logs_in_with_the_fleet_key_and_strict_host_key_checking(two_hosts):
    for host in two_hosts.hosts:
        result = ssh(two_hosts, host, "hostname")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == host.name


def test_paramiko_trusts_the_known_hosts_file_and_nothing_else(two_hosts):
    host = two_hosts.hosts[1]
    client = paramiko.SSHClient()
    client.load_host_keys(str(two_hosts.known_hosts_path))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(host.address, port=host.port, username="root",
                       key_filename=str(two_hosts.client_key_path), look_for_keys=False,
                       allow_agent=False, timeout=5)  # fmt: skip
        _, stdout, _ = client.exec_command("cat /etc/hostname")
        assert stdout.read().decode().strip() == host.name
    finally:
        client.close()


def test_deploy_sudoes_without_a_password_and_deploypw_needs_its_own(two_hosts):
    assert two_hosts.has_sudo, "sudo is missing on this machine: apt-get install -y sudo"
    host = two_hosts.hosts[0]
    assert ssh(two_hosts, host, "sudo -n id -u", user="deploy").stdout.strip() == "0"
    assert ssh(two_hosts, host, "sudo -n true", user="deploypw").returncode != 0
    with_password = ssh(two_hosts, host, "echo s3cret-pw | sudo -S -p '' id -u", user="deploypw")
    assert with_password.stdout.strip() == "0", with_password.stderr


def test_the_written_config_names_every_host_and_takes_deep_overrides(two_hosts, tmp_path):
    path = two_hosts.write_config(tmp_path / "llmfab.yaml", ssh={"user": "deploy"})
    config = yaml.safe_load(path.read_text())
    assert config["cluster"] == {"name": "testfleet"}
    assert config["ssh"] == {
        "user": "deploy",
        "port": two_hosts.port,
        "identity_file": str(two_hosts.client_key_path),
        "known_hosts": str(two_hosts.known_hosts_path),
        "config_file": None,
        "connect_timeout": 5,
    }
    assert config["nodes"] == [
        {"name": "n1", "address": "127.0.0.11"},
        {"name": "n2", "address": "127.0.0.12"},
    ]


# --- isolation ----------------------------------------------------------------


def test_a_write_to_etc_stays_inside_its_host(two_hosts):
    n1, n2 = two_hosts.hosts
    marker = f"/etc/llmfab-harness-{os.getpid()}"
    n1.exec(f"echo written-in-n1 > {marker} && chmod 600 {marker}", check=True)
    assert n1.read(marker) == "written-in-n1\n"
    assert n1.stat_mode(marker) == 0o600
    assert not n2.exists(marker)
    assert n2.read(marker) is None
    assert not Path(marker).exists()


def test_each_host_has_its_own_hostname_and_process_table(two_hosts):
    for host in two_hosts.hosts:
        result = host.exec("hostname; cat /proc/1/cmdline | tr '\\0' ' '", check=True)
        name, pid1 = result.stdout.splitlines()
        assert name == host.name
        assert "sshd" in pid1 and "llmfab-testhost" in pid1
        assert host.exec(f"test -e /proc/{os.getpid()}").returncode != 0  # pytest is outside
    assert socket.gethostname() not in {h.name for h in two_hosts.hosts}


def test_no_host_mount_shows_on_the_real_machine_and_proc_sys_is_read_only(two_hosts):
    assert mounts_under(two_hosts.workdir) == []
    result = two_hosts.hosts[0].exec("echo 1 > /proc/sys/net/core/somaxconn")
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr


def test_the_sysctl_stub_never_changes_the_real_kernel_setting(two_hosts):
    n1, n2 = two_hosts.hosts
    before = real_sysctl("net.core.somaxconn")
    wanted = "1234" if before != "1234" else "2345"
    assert n1.exec(f"sysctl -w net.core.somaxconn={wanted}").stdout == f"net.core.somaxconn = {wanted}\n"
    assert n1.exec("sysctl -n net.core.somaxconn").stdout == f"{wanted}\n"
    assert n2.exec("sysctl -n net.core.somaxconn").stdout == f"{before}\n"
    assert real_sysctl("net.core.somaxconn") == before


def test_sysctl_system_applies_files_in_procps_order(two_hosts):
    host = two_hosts.hosts[0]
    host.exec(
        "mkdir -p /run/sysctl.d && "
        "echo 'net.core.somaxconn = 111' > /usr/lib/sysctl.d/60-a.conf && "
        "echo 'net.core.somaxconn = 222' > /etc/sysctl.d/60-a.conf && "  # shadows the one above
        "echo 'net.core.netdev_max_backlog = 333' > /run/sysctl.d/70-b.conf && "
        "echo 'net.core.netdev_max_backlog = 444' > /etc/sysctl.conf",
        check=True,
    )
    output = host.exec("sysctl --system").stdout.splitlines()
    applying = [line.split()[2] for line in output if line.startswith("* Applying")]
    assert "/etc/sysctl.d/60-a.conf" in applying
    assert "/usr/lib/sysctl.d/60-a.conf" not in applying
    assert applying.index("/etc/sysctl.d/60-a.conf") < applying.index("/run/sysctl.d/70-b.conf")
    assert applying[-1] == "/etc/sysctl.conf"
    assert host.exec("sysctl -n net.core.somaxconn net.core.netdev_max_backlog").stdout == "222\n444\n"


def test_sysctl_rejects_unknown_keys_unless_told_to_ignore_them(two_hosts):
    host = two_hosts.hosts[0]
    unknown = host.exec("sysctl -w net.core.no_such_key=1")
    assert unknown.returncode == 1
    assert "cannot stat /proc/sys/net/core/no_such_key" in unknown.stderr
    assert host.exec("sysctl -e -w net.core.no_such_key=1").returncode == 0
    host.set_state("sysctl/net.core.no_such_key", "7\n")
    assert host.exec("sysctl net.core.no_such_key").stdout == "net.core.no_such_key = 7\n"


def test_a_stopped_host_refuses_connections_and_restarts_with_its_files(two_hosts):
    n1, n2 = two_hosts.hosts
    n1.exec("echo kept > /etc/llmfab-kept", check=True)
    n1.stop()
    assert refuses_connections(n1)
    with pytest.raises(HostDown):
        n1.exec("true")
    assert ssh(two_hosts, n2, "true").returncode == 0
    n1.start()
    assert n1.read("/etc/llmfab-kept") == "kept\n"
    assert ssh(two_hosts, n1, "cat /etc/llmfab-kept").stdout == "kept\n"


def test_a_host_will_not_start_where_something_already_listens(fleet_factory):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.31", PORT))
        squatter.listen()
        with pytest.raises(HostStartError, match=f"127.0.0.31:{PORT} is already in use"):
            fleet_factory(1, first_octet=31)


# --- stubs --------------------------------------------------------------------


def test_the_systemctl_stub_keeps_unit_state_and_counts_restarts(two_hosts):
    n1, n2 = two_hosts.hosts
    assert n1.exec("systemctl is-active ssh").stdout == "inactive\n"
    n1.exec("systemctl enable --now ssh && systemctl restart ssh && systemctl restart ssh", check=True)
    assert n1.exec("systemctl is-active ssh && systemctl is-enabled ssh").stdout == "active\nenabled\n"
    assert n1.read("/var/lib/llmfab-stubs/systemd/ssh.service/restarts") == "2\n"
    assert n1.read("/var/lib/llmfab-stubs/systemd/ssh.service/starts") == "1\n"
    assert [c.args for c in n1.calls("systemctl")][1:4] == [
        ("enable", "--now", "ssh"), ("restart", "ssh"), ("restart", "ssh")
    ]
    assert n2.exec("systemctl is-active ssh").returncode == 3
    missing = n1.exec("systemctl start nvidia-fabricmanager")
    assert missing.returncode == 5 and "not found" in missing.stderr


def test_the_modprobe_stub_loads_modules_that_lsmod_lists(two_hosts):
    host = two_hosts.hosts[0]
    host.exec("modprobe nvidia-peermem && modprobe nvidia NVreg_EnableGpuFirmware=0", check=True)
    modules = [line.split()[0] for line in host.exec("lsmod").stdout.splitlines()[1:]]
    assert modules == ["nvidia", "nvidia_peermem"]
    host.exec("modprobe -r nvidia", check=True)
    assert "nvidia " not in host.exec("lsmod").stdout
    host.set_state("modules/missing/nvidia", "")
    assert "Module nvidia not found" in host.exec("modprobe nvidia").stderr


def test_nvidia_smi_fails_like_a_driverless_host_until_a_driver_is_set(two_hosts):
    host = two_hosts.hosts[0]
    result = host.exec("nvidia-smi")
    assert result.returncode == 9
    assert result.stdout.startswith("NVIDIA-SMI has failed because it couldn't communicate")
    host.set_state("nvidia/driver_version", "535.161.03")
    assert host.exec("nvidia-smi").returncode == 0


def test_the_nvidia_smi_table_reproduces_the_h20_fixture(two_hosts):
    host = two_hosts.hosts[0]
    host.set_state("nvidia/driver_version", "535.161.03")
    table = host.exec("nvidia-smi", check=True).stdout.splitlines()
    fixture = [line for line in fixture_body(H20_TABLE).splitlines() if line != "..."]
    positions = [table.index(line) for line in fixture[:11]]  # header and GPU 0
    assert positions == list(range(positions[0], positions[0] + 11))
    assert all(line in table for line in fixture)
    assert sum("NVIDIA H20" in line for line in table) == 8


def test_nvidia_smi_queries_follow_the_state_files(two_hosts):
    host = two_hosts.hosts[0]
    host.set_state("nvidia/driver_version", "550.54.15")
    host.set_state("nvidia/gpu_count", "4")
    query = "nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv"
    assert host.exec(query).stdout.splitlines() == [
        "index, name, memory.total [MiB], driver_version",
        *[f"{i}, NVIDIA H20, 97871 MiB, 550.54.15" for i in range(4)],
    ]
    assert host.exec(f"{query},noheader,nounits -i 1").stdout == "1, NVIDIA H20, 97871, 550.54.15\n"
    assert "CUDA Version: 12.4" in host.exec("nvidia-smi").stdout


def test_ibstat_prints_the_fixture_unless_a_test_sets_its_text(two_hosts):
    n1, n2 = two_hosts.hosts
    fixture = fixture_body(FIELD_FIXTURES / "ib" / "ibstat-h20-ib-ndr400-active.txt")
    assert n1.exec("ibstat").stdout == fixture
    assert n1.exec("ibstat -l").stdout == "mlx5_0\nmlx5_1\n"
    n2.set_state("ib/ibstat.txt", "CA 'mlx5_9'\n\tCA type: MT4129\n")
    assert n2.exec("ibstat -l").stdout == "mlx5_9\n"


def test_apt_get_installs_stand_in_packages_inside_its_host_only(two_hosts):
    n1, n2 = two_hosts.hosts
    n1.exec("apt-get update && apt-get install -y nvidia-fabricmanager-535=535.161.03-1", check=True)
    assert n1.read("/var/lib/llmfab-stubs/apt/installed/nvidia-fabricmanager-535") == "535.161.03-1\n"
    query = "dpkg-query -W nvidia-fabricmanager-535"
    assert n1.exec(query).stdout == "nvidia-fabricmanager-535\t535.161.03-1\n"
    assert n2.exec(query).returncode != 0
    assert subprocess.run(query.split(), capture_output=True).returncode != 0
    assert [c.args[0] for c in n1.calls("apt-get")] == ["update", "install"]


def test_the_calls_log_keeps_every_argument_exactly(two_hosts):
    host = two_hosts.hosts[0]
    host.exec("""sysctl -n 'kernel.pid_max' '' "it's" $'two\\nlines' 'a  b' >/dev/null 2>&1""")
    assert host.calls("sysctl")[-1].args == ("-n", "kernel.pid_max", "", "it's", "two\nlines", "a  b")
    assert host.calls("systemctl") == []


def test_kernel_meta_packages_are_real_packages_apt_mark_can_hold(fleet_factory):
    fleet = fleet_factory(2, kernel_meta={"n2"})
    n1, n2 = fleet.hosts
    query = "dpkg-query -W -f '${Package} ${Status}\\n' linux-image-amd64 linux-headers-amd64"
    assert sorted(n2.exec(query).stdout.splitlines()) == [
        "linux-headers-amd64 install ok installed",
        "linux-image-amd64 install ok installed",
    ]
    n2.exec("apt-mark hold linux-image-amd64 linux-headers-amd64", check=True)
    assert n2.exec("apt-mark showhold").stdout.split() == ["linux-headers-amd64", "linux-image-amd64"]
    assert n1.exec(query).returncode != 0
    assert subprocess.run(["dpkg-query", "-W", "linux-image-amd64"], capture_output=True).returncode != 0


def test_eight_hosts_start_and_each_answers_over_ssh(fleet_factory):
    started = time.monotonic()
    fleet = fleet_factory(8)
    assert time.monotonic() - started < 20
    names = [h.name for h in fleet.hosts]
    assert [h.address for h in fleet.hosts] == [f"127.0.0.{11 + i}" for i in range(8)]
    clients = [subprocess.Popen(["ssh", "-F", "/dev/null", "-i", str(fleet.client_key_path),
                                 "-o", f"UserKnownHostsFile={fleet.known_hosts_path}",
                                 "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
                                 "-p", str(h.port), f"root@{h.address}", "hostname"],
                                stdout=subprocess.PIPE, text=True) for h in fleet.hosts]  # fmt: skip
    assert [c.communicate(timeout=30)[0].strip() for c in clients] == names


def test_stubs_and_host_scripts_are_clean_under_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: apt-get install -y shellcheck"
    scripts = sorted(p.name for p in STUBS_DIR.iterdir())
    result = subprocess.run(
        ["shellcheck", "-x", "-P", "SCRIPTDIR", "-S", "warning", *scripts,
         str(HARNESS_DIR / "host_init.sh"), str(HARNESS_DIR / "provision.sh")],
        cwd=STUBS_DIR, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout


# --- lifecycle ----------------------------------------------------------------


def start_cli(workdir: Path, first_octet: int) -> subprocess.Popen[bytes]:
    """Start ``python -m tests.harness up 2`` and wait until it reports its hosts up."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness", "up", "2", "--workdir", str(workdir),
         "--first-octet", str(first_octet), "--port", str(PORT)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    output, deadline = b"", time.monotonic() + 30
    # Raw reads of the pipe: a buffered reader could hold lines select() cannot see.
    while b"Ctrl-C stops them." not in output:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(process.stdout.fileno(), 4096) if ready else b""
        if not chunk:
            process.kill()
            pytest.fail(f"harness CLI did not come up:\n{output.decode()}")
        output += chunk
    return process


def test_the_cli_stops_its_hosts_on_ctrl_c(tmp_path):
    process = start_cli(tmp_path / "cli", first_octet=61)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert b"test hosts stopped" in output
    assert refuses_connections(SimpleNamespace(address="127.0.0.61", port=PORT))
    assert not (tmp_path / "cli").exists()


def test_a_killed_run_leaves_nothing_that_blocks_the_next_start(tmp_path, fleet_factory):
    crashed = tmp_path / "crashed"
    process = start_cli(crashed, first_octet=71)
    process.kill()
    process.wait()
    survivor = SimpleNamespace(address="127.0.0.71", port=PORT)
    assert not refuses_connections(survivor), "hosts should outlive the CLI"
    fleet = fleet_factory(2, first_octet=71)
    assert ssh(fleet, fleet.hosts[0], "hostname").stdout == "n1\n"
    assert not crashed.exists()
