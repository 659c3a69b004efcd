"""One test host: an sshd in its own namespaces, chrooted into an overlay root.

The host's processes run in private mount, UTS and PID namespaces (see
host_init.sh); its root is an overlay whose lower layer is the real root and
whose upper dir keeps every write the host makes. Tests reach inside without
SSH: ``exec`` runs a command through nsenter, and ``read``/``exists``/
``stat_mode``/``set_state`` go through /proc/PID/root of the host's PID 1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Iterable

from . import cleanup
from .calls import CALLS_LOG, Call, parse_calls
from .payload import HARNESS_DIR

if TYPE_CHECKING:
    from .testhosts import TestFleet

STATE_DIR = "/var/lib/llmfab-stubs"
HOST_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME=/root",
    "USER=root",
    "LOGNAME=root",
    "LANG=C.UTF-8",
)
REQUIRED_PROGRAMS = ("unshare", "nsenter", "mount", "chroot", "/usr/sbin/sshd", "dpkg-deb")


class HarnessUnavailable(RuntimeError):
    """This machine cannot run test hosts (not root, or a tool is missing)."""


class HostStartError(RuntimeError):
    """A test host did not come up; the message carries the end of its log."""


class HostDown(RuntimeError):
    """The host is stopped, so there is nothing inside it to run or read."""


def require_host_support() -> None:
    """Raise HarnessUnavailable unless test hosts can run here."""
    if os.geteuid() != 0:
        raise HarnessUnavailable("test hosts need root (namespaces, mounts, sshd); run as root")
    missing = [p for p in REQUIRED_PROGRAMS if not shutil.which(p)]
    if missing:
        raise HarnessUnavailable(
            f"test hosts need {', '.join(missing)}; on Debian: "
            "apt-get install -y util-linux openssh-server dpkg"
        )


class TestHost:
    """One test host of a fleet; see the module docstring."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, fleet: TestFleet, name: str, address: str, port: int, kernel_meta: bool):
        self.fleet = fleet
        self.name = name
        self.address = address
        self.port = port
        self.kernel_meta = kernel_meta
        self._process: subprocess.Popen | None = None
        self._init_pid: int | None = None

    def __repr__(self) -> str:
        state = "up" if self.running else "down"
        return f"<TestHost {self.name} {self.address}:{self.port} {state}>"

    @property
    def running(self) -> bool:
        """Tell whether the host's namespace is alive."""
        return self._process is not None and self._process.poll() is None

    @property
    def dir(self) -> Path:
        """The host's runtime files: upper, work and root dirs, host key."""
        return self.fleet.runtime_dir / self.name

    @property
    def log_path(self) -> Path:
        """The host's log: mount and provisioning errors, then sshd's own log."""
        return self.fleet.workdir / "logs" / f"{self.name}.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start the host (keeping its files from an earlier run) and wait for sshd."""
        self.spawn()
        self.wait_ready(time.monotonic() + timeout)

    def spawn(self) -> None:
        """Launch the host's namespace without waiting; see ``wait_ready``.

        Subclasses may wish to override this to change how hosts are launched.
        """
        if self.running:
            return
        _refuse_busy_port(self.address, self.port)
        for sub in ("upper", "work", "root"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOST_NAME": self.name,
            "HOST_ADDR": self.address,
            "HOST_PORT": str(self.port),
            "FLEET_PAYLOAD": str(self.fleet.payload_dir),
            "KERNEL_META": "1" if self.kernel_meta else "0",
            "HOST_BINDS": "\n".join(hidden_paths(self.fleet.shared_paths)),
        }
        argv = [
            "unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--",
            "bash", str(HARNESS_DIR / "host_init.sh"),
            cleanup.MARKER, cleanup.owner_token(), str(self.dir),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            # A session of its own: Ctrl-C in a terminal reaches the harness,
            # which stops hosts in order, and never the hosts directly.
            self._process = subprocess.Popen(
                argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        self._init_pid = None

    def wait_ready(self, deadline: float) -> None:
        """Wait until sshd accepts TCP connections; raise HostStartError if it never does."""
        while True:
            if not self.running:
                self._process.wait()  # type: ignore[union-attr]
                self._process = None
                raise HostStartError(f"{self.name} exited while starting:\n{self._log_tail()}")
            try:
                socket.create_connection((self.address, self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise HostStartError(f"{self.name}: sshd not up in time:\n{self._log_tail()}")
                time.sleep(0.02)
        self._init_pid = self._find_init_pid()

    @property
    def pid_outside(self) -> int:
        """The pid (as the real machine numbers it) whose death ends the host."""
        if self._process is None:
            raise HostDown(f"{self.name} is not running")
        # Before PID 1 is known, kill unshare: --kill-child takes its child along.
        return self._init_pid or self._process.pid

    def stop(self) -> None:
        """Kill the host's PID 1, which ends every process of the host; keep its files."""
        if self._process is None:
            return
        cleanup.kill_and_wait([self.pid_outside])
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None
        self._init_pid = None

    def exec(
        self, command: str, *, check: bool = False, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run ``bash -c command`` as root inside the host (via nsenter, not ssh)."""
        argv = [
            "nsenter", "--target", str(self._pid()), "--mount", "--uts", "--pid",
            "--root", "--wd", "--", "/usr/bin/env", "-i", *HOST_ENV, "/bin/bash", "-c", command,
        ]  # fmt: skip
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, errors="surrogateescape",
            timeout=timeout, check=check,
        )  # fmt: skip

    def read(self, path: str) -> str | None:
        """Return a file's text as the host sees it, or None if it does not exist."""
        try:
            return Path(self._host_path(path)).read_text(errors="surrogateescape")
        except FileNotFoundError:
            return None

    def exists(self, path: str) -> bool:
        """Tell whether a path exists inside the host."""
        return os.path.exists(self._host_path(path))

    def stat_mode(self, path: str) -> int | None:
        """Return a path's permission bits (e.g. 0o644) inside the host, or None if absent."""
        try:
            return os.stat(self._host_path(path)).st_mode & 0o7777
        except FileNotFoundError:
            return None

    def set_state(self, relpath: str, content: str | bytes | None) -> None:
        """Write (or with None, delete) a stub state file under /var/lib/llmfab-stubs."""
        rel = PurePosixPath(relpath)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"state path must be relative and stay below {STATE_DIR}: {relpath}")
        target = Path(self._host_path(f"{STATE_DIR}/{rel}"))
        if content is None:
            target.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        target.write_bytes(data)

    def calls(self, program: str | None = None) -> list[Call]:
        """Return the stub calls logged in this host, only ``program``'s if given."""
        return parse_calls(self.read(CALLS_LOG) or "", program)

    def _pid(self) -> int:
        """Return PID 1 of the host (as the real machine numbers it)."""
        if not self.running or self._init_pid is None:
            raise HostDown(f"{self.name} is not running")
        return self._init_pid

    def _find_init_pid(self) -> int:
        """Return the pid of unshare's child, the host's PID 1."""
        assert self._process is not None
        pid = self._process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN
            children = [e.name for e in os.scandir("/proc") if _parent_pid(e.name) == pid]
        if not children:
            raise HostStartError(f"{self.name}: unshare {pid} has no child")
        return int(children[0])

    def _host_path(self, path: str) -> str:
        """Map a path inside the host to one the real machine can open.

        /proc/PID/root enters the host's root, but an absolute symlink read
        through it would resolve against the real root, so symlinks are
        resolved here, against the host's root, one component at a time.
        """
        root = f"/proc/{self._pid()}/root"
        pending = list(PurePosixPath("/", path).parts[1:])
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in (".", ".."):
                resolved = resolved[:-1] if part == ".." else resolved
                continue
            candidate = "/".join([root, *resolved, part])
            if not os.path.islink(candidate):
                resolved.append(part)
                continue
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks in {path} inside {self.name}")
            target = PurePosixPath(os.readlink(candidate))
            resolved = [] if target.is_absolute() else resolved
            pending = [p for p in target.parts if p != "/"] + pending
        return "/".join([root, *resolved])

    def _log_tail(self, lines: int = 30) -> str:
        """Return the end of the host's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def hidden_paths(paths: Iterable[Path | str]) -> list[str]:
    """Those of ``paths`` that a host's overlay of ``/`` would not show, to bind in.

    The overlay shows the root filesystem only: a directory on another mount
    (a home on its own disk) would be an empty mount point inside, and the
    host's /tmp, /run and /dev/shm are fresh tmpfs. A checkout or a virtual
    environment there is bound in read-only at the same path.
    """
    root_dev = os.stat("/").st_dev
    found: list[str] = []
    for path in dict.fromkeys(Path(p).resolve() for p in paths):
        if not path.is_dir():
            continue
        fresh = any(path == Path(d) or Path(d) in path.parents for d in ("/tmp", "/run", "/dev/shm"))
        if fresh or os.stat(path).st_dev != root_dev:
            found.append(str(path))
    return found


def _refuse_busy_port(address: str, port: int) -> None:
    """Raise if something already listens where a host is to listen."""
    try:
        socket.create_connection((address, port), timeout=0.5).close()
    except OSError:
        return
    raise HostStartError(f"{address}:{port} is already in use; stop what listens there first")


def _parent_pid(pid: str) -> int | None:
    """Return the parent pid of a /proc entry, or None if it is no process."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
