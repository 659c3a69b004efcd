"""Find and end test hosts, and remove fleet directories, safely.

Every test host's processes carry ``llmfab-testhost OWNER HOST_DIR`` on their
command line, OWNER being ``<pid>.<start time>`` of the Python process that
started the fleet. A fleet's work dir and its runtime dir (where the host
dirs live) each hold a mark file naming the owner and the work dir; nothing
without such a mark is ever removed.

A crashed run leaves hosts whose owner is gone: ``sweep_stale`` ends them,
freeing their addresses and ports, and removes their directories. Mounts
live in each host's private mount namespace and vanish with it;
``remove_tree`` still refuses to delete through a mount it can see.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = "llmfab-testhost"
FLEET_MARK = ".llmfab-testfleet"
RUNTIME_PREFIX = "llmfab-testfleet-"


@dataclass(frozen=True)
class MarkedProcess:
    """A process of some test host, as found in /proc."""

    pid: int
    owner: str
    host_dir: Path


@dataclass(frozen=True)
class FleetMark:
    """What a fleet's mark file says: who started it, and its work dir."""

    owner: str
    workdir: Path


def process_token(pid: int) -> str | None:
    """Return ``<pid>.<start time>``, unique for a process across pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (start time), counted after the ")" that ends the command name.
    return f"{pid}.{stat.rsplit(')', 1)[1].split()[19]}"


def owner_token() -> str:
    """Return the token of this process, to mark what it starts."""
    return process_token(os.getpid()) or str(os.getpid())


def owner_alive(token: str) -> bool:
    """Tell whether the process a token names is still running."""
    pid = int(token.split(".")[0])
    return _exists(pid) and process_token(pid) == token


def write_mark(directory: Path, workdir: Path) -> None:
    """Mark a directory as part of this process's fleet whose work dir is ``workdir``."""
    (directory / FLEET_MARK).write_text(f"{owner_token()}\n{workdir}\n")


def read_mark(directory: Path) -> FleetMark | None:
    """Return a directory's fleet mark, or None if it has none."""
    try:
        owner, workdir = (directory / FLEET_MARK).read_text().splitlines()[:2]
    except (OSError, ValueError):
        return None
    return FleetMark(owner, Path(workdir))


def marked_processes() -> list[MarkedProcess]:
    """Return every live process that carries the test-host marker."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if MARKER in argv[:-2] and _exists(int(entry.name)):
            i = argv.index(MARKER)
            found.append(MarkedProcess(int(entry.name), argv[i + 1], Path(argv[i + 2])))
    return found


def kill_and_wait(pids: list[int], timeout: float = 10.0) -> None:
    """SIGKILL the processes and wait until they are gone (zombies count as gone).

    Killing a PID namespace's first process kills every process in it.
    """
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while any(_exists(pid) for pid in pids):
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {pids} survived SIGKILL for {timeout} s")
        time.sleep(0.005)


def sweep_stale(runtime_base: Path) -> None:
    """End the hosts of fleets whose owner died, and remove those fleets' directories."""
    processes = marked_processes()
    kill_and_wait([p.pid for p in processes if not owner_alive(p.owner)])
    for runtime in _runtime_dirs(runtime_base, processes):
        mark = read_mark(runtime)
        if mark is not None and not owner_alive(mark.owner):
            remove_fleet(runtime, mark)


def end_fleet(workdir: Path, runtime_base: Path) -> int:
    """End every host of the fleet at ``workdir`` and remove its directories.

    Return how many host processes were ended.
    """
    processes = marked_processes()
    runtimes = [
        d for d in _runtime_dirs(runtime_base, processes)
        if (mark := read_mark(d)) is not None and mark.workdir == workdir
    ]  # fmt: skip
    doomed = [p.pid for p in processes if p.host_dir.parent in runtimes]
    kill_and_wait(doomed)
    for runtime in runtimes:
        remove_tree(runtime)
    if read_mark(workdir) is not None:
        remove_tree(workdir)
    return len(doomed)


def remove_fleet(runtime: Path, mark: FleetMark) -> None:
    """Remove a fleet's runtime dir, and its work dir when that bears the same mark."""
    remove_tree(runtime)
    if read_mark(mark.workdir) == mark:
        remove_tree(mark.workdir)


def mounts_under(path: Path) -> list[str]:
    """Return the mount points this process can see at or below ``path``."""
    prefix = str(path.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return points


def remove_tree(path: Path) -> None:
    """Delete a directory tree, first detaching any mount inside it.

    rmtree through a bind mount of / would delete the real machine's files:
    when a mount stays after detaching, this raises instead of deleting.
    """
    if not path.exists():
        return
    for point in sorted(mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    if mounts_under(path):
        raise RuntimeError(f"refusing to delete {path}: still mounted {mounts_under(path)}")
    shutil.rmtree(path)


def _runtime_dirs(runtime_base: Path, processes: list[MarkedProcess]) -> list[Path]:
    """Return the runtime dirs of live hosts plus any fleet runtime dir in the base."""
    found = {p.host_dir.parent for p in processes}
    if runtime_base.is_dir():
        found.update(runtime_base.glob(f"{RUNTIME_PREFIX}*"))
    return sorted(found)


def _exists(pid: int) -> bool:
    """Tell whether a process runs (exited but unreaped ones do not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (\\040 is a space)."""
    return field.encode().decode("unicode_escape") if "\\" in field else field
