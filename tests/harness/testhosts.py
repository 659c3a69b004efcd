"""Test fleets: real OpenSSH servers on loopback addresses, with fake hardware.

Each TestHost (host.py) is an ``sshd`` listening on its own 127.0.0.x
address, in its own mount, UTS and PID namespaces, chrooted into an overlay
of the real root: writes stay in the host's upper dir, /proc/sys is
read-only, and stubs (tests/harness/stubs) shadow sysctl, systemctl,
modprobe, lsmod, nvidia-smi, ibstat and apt-get inside the host only. A
TestFleet starts hosts in parallel, owns the client key and known_hosts
file, and writes the llmfab config that points at them::

    with TestFleet(count=2, workdir=tmp_path / "fleet") as fleet:
        config = fleet.write_config(tmp_path / "llmfab.yaml")
        host = fleet.hosts[0]
        host.set_state("nvidia/driver_version", "535.161.03")
        ...  # run llmfab against `config`
        assert host.calls("systemctl")[-1].args == ("restart", "ssh")

The work dir holds what a person may want to look at (keys, known_hosts,
config, one log per host). The hosts' own files (overlay upper dirs) go to a
runtime dir, on /dev/shm when it is a roomy tmpfs: creating and deleting the
few hundred files of a host is far faster there than on many CI disks.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

from . import cleanup
from .config import deep_merge, fleet_config, write_yaml
from .host import (
    HarnessUnavailable,
    HostDown,
    HostStartError,
    TestHost,
    require_host_support,
)
from .keys import known_hosts_line, write_keypair
from .payload import HARNESS_DIR, build_payload
from .real import real_prefix

__all__ = [
    "HarnessUnavailable",
    "HostDown",
    "HostStartError",
    "TestFleet",
    "TestHost",
    "require_host_support",
]

SHM = Path("/dev/shm")
# Below this much free space /dev/shm (64 MiB in a default Docker container)
# could fill up mid-test; the runtime dir then goes in the work dir instead.
MIN_SHM_FREE = 1 << 30


def default_runtime_base(workdir: Path) -> Path:
    """Return /dev/shm if it is a tmpfs with room to spare, else the work dir."""
    try:
        stats = os.statvfs(SHM)
    except OSError:
        return workdir
    roomy = stats.f_bavail * stats.f_frsize >= MIN_SHM_FREE
    return SHM if roomy and os.access(SHM, os.W_OK) and _is_tmpfs(SHM) else workdir


class TestFleet:
    """A set of test hosts sharing a work dir, a client key and a known_hosts file.

    ``first_octet`` is the last octet of the first host's address (11 gives
    127.0.0.11, then .12, ...). ``kernel_meta`` is True for every host, or
    the names of the hosts that get the fake kernel meta-packages.
    ``runtime_base`` is where the hosts' runtime dir is made (default: see
    ``default_runtime_base``).
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self,
        count: int = 2,
        workdir: Path | str | None = None,
        first_octet: int = 11,
        port: int = 2222,
        prefix: str = "n",
        kernel_meta: bool | Iterable[str] = False,
        start_timeout: float = 30.0,
        runtime_base: Path | str | None = None,
    ):
        if count < 1 or first_octet < 1 or first_octet + count - 1 > 254:
            raise ValueError(f"{count} hosts from 127.0.0.{first_octet} do not fit in 127.0.0.0/24")
        self.workdir = Path(workdir or f"/tmp/llmfab-testfleet-{os.getpid()}").absolute()
        self.port = port
        self.start_timeout = start_timeout
        self.runtime_base = Path(runtime_base) if runtime_base else None
        self.runtime_dir = self.workdir / "runtime"  # replaced by a fresh dir at start()
        wanted = set() if kernel_meta is True or not kernel_meta else set(kernel_meta)
        self.hosts = [
            TestHost(self, f"{prefix}{i + 1}", f"127.0.0.{first_octet + i}", port,
                     kernel_meta is True or f"{prefix}{i + 1}" in wanted)
            for i in range(count)
        ]  # fmt: skip
        self.has_sudo = shutil.which("sudo") is not None
        # What hosts must see at the same paths: this checkout (the stand-in
        # engine), the Python running the tests (Ray) and the real programs.
        self.shared_paths: list[Path] = [
            HARNESS_DIR.parents[1], Path(sys.prefix), Path(sys.base_prefix), real_prefix()]

    def __enter__(self) -> TestFleet:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<TestFleet {len(self.hosts)} hosts in {self.workdir}>"

    @property
    def client_key_path(self) -> Path:
        """The private key that logs in as root, deploy and deploypw on every host."""
        return self.workdir / "client" / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        """known_hosts with every host's key, as ``[127.0.0.11]:2222 ssh-ed25519 ...``."""
        return self.workdir / "known_hosts"

    @property
    def payload_dir(self) -> Path:
        """What provision.sh installs into each new host; see payload.py."""
        return self.runtime_dir / "payload"

    def host(self, name: str) -> TestHost:
        """Return the host called ``name``."""
        return next(h for h in self.hosts if h.name == name)

    def start(self) -> None:
        """Create keys and payload, then start all hosts in parallel and wait for each."""
        require_host_support()
        runtime_base = self.runtime_base or default_runtime_base(self.workdir)
        cleanup.sweep_stale(runtime_base)
        self._claim_workdir(runtime_base)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix=cleanup.RUNTIME_PREFIX, dir=runtime_base))
        cleanup.write_mark(self.runtime_dir, self.workdir)
        self._write_keys()
        build_payload(
            self.payload_dir,
            client_public_key=self.client_key_path.with_suffix(".pub").read_text().strip(),
            hosts=[(h.name, h.address) for h in self.hosts],
            kernel_meta=any(h.kernel_meta for h in self.hosts),
        )
        deadline = time.monotonic() + self.start_timeout
        try:
            for host in self.hosts:
                host.spawn()
            for host in self.hosts:
                host.wait_ready(deadline)
        except BaseException:
            self.stop(remove=False)
            raise

    def stop(self, remove: bool = True) -> None:
        """Stop every host at once; unless ``remove`` is False, delete the fleet's dirs.

        The runtime dir goes even when ``remove`` is False unless it lies in
        the work dir: it may sit in memory (/dev/shm). The logs stay then.
        """
        running = [h for h in self.hosts if h.running]
        cleanup.kill_and_wait([h.pid_outside for h in running])
        for host in self.hosts:
            host.stop()
        if remove or self.workdir not in self.runtime_dir.parents:
            cleanup.remove_tree(self.runtime_dir)
        if remove:
            cleanup.remove_tree(self.workdir)

    def write_config(self, path: Path | str | None = None, **overrides: Any) -> Path:
        """Write the llmfab YAML config of this fleet; ``overrides`` deep-merge into it.

        Example: ``fleet.write_config(tmp_path / "c.yaml", ssh={"user": "deploy"})``.
        """
        data = fleet_config(
            port=self.port,
            identity_file=self.client_key_path,
            known_hosts=self.known_hosts_path,
            nodes=[(h.name, h.address) for h in self.hosts],
        )
        return write_yaml(Path(path or self.workdir / "llmfab.yaml"), deep_merge(data, overrides))

    def _claim_workdir(self, runtime_base: Path) -> None:
        """Make the work dir ours: new, empty, or an old fleet's (whose hosts end first)."""
        mark = cleanup.read_mark(self.workdir)
        if mark is not None:
            if mark.owner != cleanup.owner_token() and cleanup.owner_alive(mark.owner):
                raise FileExistsError(f"{self.workdir} belongs to a running fleet ({mark.owner})")
            cleanup.end_fleet(self.workdir, runtime_base)
        elif self.workdir.exists() and any(self.workdir.iterdir()):
            raise FileExistsError(f"{self.workdir} is not empty and not a fleet work dir")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cleanup.write_mark(self.workdir, self.workdir)

    def _write_keys(self) -> None:
        """Make the client key, one host key per host, and the known_hosts file."""
        write_keypair(self.client_key_path, "llmfab-testfleet-client")
        lines = []
        for host in self.hosts:
            public = write_keypair(host.dir / "ssh_host_ed25519_key", f"root@{host.name}")
            lines.append(known_hosts_line(host.address, host.port, public))
        self.known_hosts_path.write_text("".join(f"{line}\n" for line in lines))


def _is_tmpfs(path: Path) -> bool:
    """Tell whether ``path`` is the mount point of a tmpfs."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(path) and fields[fields.index("-") + 1] == "tmpfs":
            return True
    return False
