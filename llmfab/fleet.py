"""Run one phase on many hosts at once, bounded, with honest per-host results.

Fabric's ``fab -H a,b task`` calls the task once per host, one after another,
and ``ThreadingGroup`` runs the same command everywhere with no bound. A node's
phase script differs per node (its identity, its rank), so the fan-out is ours:
a thread pool of at most ``parallel`` workers, each owning one host's Fabric
connection from connect to recap. One host failing never stops the others.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Protocol

import paramiko
from fabric import Connection

from .config import ClusterConfig, Node
from .results import HostResult, Status, StepResult, b64, parse_record, step_result
from .run import Run
from .runlog import RunLogs
from .script import render_phase
from .ssh import SSHOptions, UnknownHostKey, close, connect, run_script, stop_group


class Progress(Protocol):
    """What the fleet tells the terminal while it works (see llmfab.output)."""

    def host_started(self, node: Node) -> None: ...
    def step_started(self, node: Node, step: str) -> None: ...
    def step_progress(self, node: Node, step: str, message: str) -> None: ...
    def step_done(self, node: Node, result: StepResult) -> None: ...
    def step_output(self, node: Node, step: str, line: str) -> None: ...
    def step_diff(self, node: Node, path: str, diff: str) -> None: ...
    def host_done(self, result: HostResult) -> None: ...


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, after the hosts' remote steps were stopped; says where."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


# Phases that only read: they leave no log file on the node ("changes nothing").
# webui-admin reads a secret: no log, on the node or here, may keep it.
READ_ONLY_PHASES = {"check", "nccl", "status", "logs", "smoke", "model-verify", "webui-admin", "router-status"}
NODE_LOG_DIR = "/var/log/llmfab"


class Fleet:
    """The hosts of one run, and the bound on how many are worked at once."""

    def __init__(self, config: ClusterConfig, nodes: list[Node], options: SSHOptions, parallel: int, progress: Progress,
                 logs: Optional[RunLogs] = None, diff: bool = False):
        self.config = config
        self.nodes = nodes
        self.options = options
        self.parallel = max(1, parallel)
        self.progress = progress
        self.logs = logs
        self.diff = diff
        self._open: list[Connection] = []
        self._lock = threading.Lock()
        self.cancelled = threading.Event()
        # Per host: the connection its phase script runs on and that script's
        # process group, so that Ctrl-C can stop it on the node.
        self._groups: dict[str, tuple[Connection, str]] = {}
        self.stopped: set[str] = set()

    def run_phase(self, run: Run, phase: str, on: Optional[list[Node]] = None) -> list[HostResult]:
        """Render PHASE of RUN for each node (ON, default the fleet's) and run it on all of them in parallel."""
        nodes = list(self.nodes if on is None else on)
        dry_run = run.options.dry_run
        scripts = {n.name: render_phase(run, n, phase) for n in nodes}
        args = self.script_args(phase, dry_run)
        if self.logs is not None:
            for node in nodes:
                self.logs.begin(node.name, phase + (" (dry run)" if dry_run else ""), args)
        return self.map(lambda node: self._run_on(node, scripts[node.name], args), on=nodes)

    def script_args(self, phase: str, dry_run: bool) -> list[str]:
        """The phase script's options: dry run, diffs, step output back to us, the node's own log."""
        # Step output comes back (--output) when there is a run log to keep it in.
        args = ["--output"] if self.logs is not None else []
        if dry_run:
            args.append("--dry-run")
        if self.diff:
            args.append("--diff")
        if not dry_run and phase not in READ_ONLY_PHASES and self.logs is not None:
            args.append(f"--log={NODE_LOG_DIR}/{phase}-{self.logs.stamp}.log")
        return args

    def map(self, job: Callable[[Node], HostResult], on: Optional[list[Node]] = None) -> list[HostResult]:
        """Run JOB for each node (ON, default the fleet's) in the pool; results keep the nodes' order."""
        nodes = list(self.nodes if on is None else on)
        workers = max(1, min(self.parallel, len(nodes)))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llmfab")
        futures = [pool.submit(self._guarded, job, node) for node in nodes]
        try:
            while not all(f.done() for f in futures):
                time.sleep(0.05)
        except KeyboardInterrupt:
            self.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            started = sorted(self.stopped)
            raise Interrupted(f"stopped the remote step on: {', '.join(started)}" if started else
                              "no remote step was running, or none could be stopped") from None
        pool.shutdown(wait=True)
        return [f.result() for f in futures]

    def cancel(self) -> None:
        """Stop every host's work: the remote script's process group first (closing
        the SSH channel would not stop it), then the connections."""
        self.cancelled.set()
        with self._lock:
            groups = dict(self._groups)
        for name, (conn, group) in groups.items():
            if stop_group(conn, group, self.options.sudo_password):
                self.stopped.add(name)
        with self._lock:
            for conn in self._open:
                try:
                    close(conn)
                except Exception:  # closing is best effort while interrupted
                    pass

    def _guarded(self, job: Callable[[Node], HostResult], node: Node) -> HostResult:
        start = time.monotonic()
        try:
            result = job(node)
        except Exception as e:  # a bug in one host's job must not hide the others' results
            result = HostResult(node.name, node.address, error=f"internal error: {type(e).__name__}: {e}")
        result.seconds = time.monotonic() - start
        if self.logs is not None:
            self.logs.end(result)
        self.progress.host_done(result)
        return result

    def _run_on(self, node: Node, script: str, args: list[str]) -> HostResult:
        result = HostResult(node.name, node.address)
        self.progress.host_started(node)
        conn = self._connect(node, result)
        if conn is None:
            return result
        try:
            done = run_script(
                conn, script, args, self.options.sudo_password, self.options.command_timeout,
                lambda line: self._on_line(node, result, line, conn),
            )
            result.commands += 1
            if done.timed_out:
                stopped = self._stop(node)
        except (paramiko.SSHException, OSError, EOFError) as e:
            if self.cancelled.is_set():
                result.error = self._interrupted(node)
            else:
                result.error = f"connection lost: {e or type(e).__name__}"
            return result
        finally:
            with self._lock:
                self._groups.pop(node.name, None)
            self._close(conn)
        result.exit_code = done.exit_code
        result.stderr_tail = done.stderr
        if done.timed_out:
            result.error = (f"timed out after {self.options.command_timeout}s (ssh.command_timeout); "
                            + ("stopped the remote step" if stopped else "the remote step may still be running"))
        elif done.dead:
            result.error = ("the node stopped answering (no new SSH channel within a minute of silence); "
                            "its step may still be running")
            result.unreachable = True
        elif self.cancelled.is_set() and done.exit_code != 0:
            result.error = self._interrupted(node)
        elif done.exit_code != 0 and not result.count(Status.FAILED):
            result.error = _explain_exit(done.exit_code, done.stderr)
        return result

    def _stop(self, node: Node) -> bool:
        """Stop NODE's remote script (its process group); True when the signal went out."""
        with self._lock:
            entry = self._groups.get(node.name)
        return bool(entry) and stop_group(entry[0], entry[1], self.options.sudo_password)

    def _interrupted(self, node: Node) -> str:
        if node.name in self.stopped:
            return "interrupted: stopped the remote step (its process group) on this node"
        return "interrupted: the remote step may still be running on this node (it could not be stopped)"

    def open_connection(self, node: Node, result: HostResult) -> Optional[Connection]:
        """Connect to NODE for a task's own commands; None (and RESULT says why) when unreachable."""
        return self._connect(node, result)

    def _connect(self, node: Node, result: HostResult) -> Optional[Connection]:
        if self.cancelled.is_set():
            result.error, result.unreachable = "interrupted before connecting", True
            return None
        try:
            conn = connect(self.config, node, self.options)
        except UnknownHostKey as e:
            result.error = str(e)
        except paramiko.AuthenticationException as e:
            result.error = f"SSH authentication failed as {node.user or self.config.ssh.user}: {e}"
        except (socket.timeout, TimeoutError):
            result.error = f"no answer within {self.options.connect_timeout}s (ssh.connect_timeout)"
        except (paramiko.SSHException, OSError, EOFError) as e:
            result.error = (f"cannot connect: {_oneline(e)} (check the node's address and ssh.port / per-node port, "
                            "that sshd runs and no firewall blocks it; `fab ping` tries every node)")
        else:
            with self._lock:
                self._open.append(conn)
            return conn
        result.unreachable = True
        return None

    def close_connection(self, conn: Connection) -> None:
        """Close a connection from open_connection (and the jump hosts it went through)."""
        self._close(conn)

    def _close(self, conn: Connection) -> None:
        with self._lock:
            if conn in self._open:
                self._open.remove(conn)
        close(conn)

    def _on_line(self, node: Node, result: HostResult, line: str, conn: Optional[Connection] = None) -> None:
        if self.logs is not None:
            self.logs.line(node.name, line)
        record = parse_record(line)
        if record is None:
            return
        kind, fields = record
        if kind == "group" and fields and conn is not None:
            with self._lock:
                self._groups[node.name] = (conn, fields[0])
            return
        if kind == "out" and len(fields) >= 2:
            self.progress.step_output(node, fields[0], fields[1])
            return
        if kind == "diff" and len(fields) >= 3:
            self.progress.step_diff(node, fields[1], b64(fields[2]))
            return
        if kind == "start" and fields:
            self.progress.step_started(node, fields[0])
        elif kind == "reboot" and len(fields) >= 2:
            result.reboots.append((fields[0], fields[1]))
        elif kind == "progress" and len(fields) >= 2:
            self.progress.step_progress(node, fields[0], fields[1])
        elif kind not in ("result", "start") and fields:
            # The arrival time lets checks compare node clocks with ours.
            result.records.append((kind, fields[0], fields[1:] + [f"{time.time():.3f}"]))
        elif kind == "result":
            step = step_result(fields)
            result.steps.append(step)
            self.progress.step_done(node, step)


def _explain_exit(code: int, stderr: str) -> str:
    if "a password is required" in stderr or "a terminal is required" in stderr:
        return "sudo needs a password: re-run with --ask-sudo-pass (asked once for all hosts)"
    if "incorrect password" in stderr or "Sorry, try again" in stderr:
        return "sudo rejected the password"
    last = next((ln for ln in reversed(stderr.strip().splitlines()) if ln.strip()), "")
    return f"script exited with status {code}" + (f": {last.strip()}" if last else "")


def _oneline(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return " ".join(text.split())
