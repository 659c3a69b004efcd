"""What every task does around its real work: load the config, pick the hosts, report, exit.

Tasks stay short: they build a Session (the run's frozen ``Run``, the fleet
and the reporter) from their arguments, hand it phases or a job with the hosts
each one covers, and let ``finish`` print the recap and choose the exit status.
"""

from __future__ import annotations

import getpass
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Iterator, Optional

from invoke.exceptions import Exit
from rich.text import Text

from . import config as config_mod
from .config import ClusterConfig, Node
from .errors import HostsFailed, LlmfabError, UsageError
from .confirm import confirm
from .exits import ExitStatus
from .fleet import Fleet
from .output import Reporter, console, recap
from .results import HostResult, overall_failed
from .run import Run, RunOptions
from .runlog import RunLogs
from .ssh import SSHOptions, target

SUDO_PASSWORD_ENV = "LLMFAB_SUDO_PASSWORD"


def cli_hosts(c) -> list[str]:
    """The -H hosts given to fab (see llmfab.executor)."""
    try:
        return list(c.config.llmfab.hosts)
    except AttributeError:
        return []


def cli_ssh(c) -> dict:
    """SSH overrides from Fabric's core flags (-i, -S, -t, -T; see llmfab.coreflags)."""
    try:
        return dict(c.config.llmfab.ssh)
    except AttributeError:
        return {}


def refuse_hosts(c, task: str) -> None:
    """Stop when -H is given to a task that works from the config alone (it would be ignored)."""
    if cli_hosts(c):
        raise UsageError(f"`fab {task}` contacts no host, so -H would be ignored: drop it "
                         "(the config's `nodes:` decide what it covers)")


def announce(out, config: ClusterConfig, nodes: list[Node], targets: dict) -> None:
    """Say which config was chosen and every address about to be contacted, before connecting."""
    routes = ", ".join(f"{n.name}={targets[n.name].describe()}" for n in nodes)
    out.print(Text(f"config: {config.source} (cluster {config.cluster.name}, from {config.chosen_by}): {routes}"))


def select_nodes(config: ClusterConfig, wanted: list[str]) -> list[Node]:
    """Map -H tokens (node names or addresses) to the config's nodes; no -H means all."""
    if not wanted:
        return list(config.nodes)
    by_key = {n.name: n for n in config.nodes} | {n.address: n for n in config.nodes}
    unknown = [w for w in wanted if w not in by_key]
    if unknown:
        known = ", ".join(f"{n.name} ({n.address})" for n in config.nodes)
        raise UsageError(
            f"-H names host(s) not in {config.source}: {', '.join(unknown)}. "
            f"Known nodes: {known}. Add them under `nodes:` or fix the spelling."
        )
    chosen: list[Node] = []
    for w in wanted:
        if by_key[w] not in chosen:
            chosen.append(by_key[w])
    return chosen


@dataclass
class Session:
    run: Run
    # The hosts the person chose (-H), or every node.
    nodes: list[Node]
    fleet: Fleet
    reporter: Reporter

    @property
    def config(self) -> ClusterConfig:
        return self.run.config

    @property
    def dry_run(self) -> bool:
        return self.run.options.dry_run

    @property
    def head_only(self) -> list[Node]:
        return [self.config.head]

    @property
    def everyone(self) -> list[Node]:
        return list(self.config.nodes)

    def with_run(self, run: Run) -> "Session":
        """This session with another Run (other options or engine); the fleet follows its SSH options."""
        if run.ssh is not None:
            self.fleet.options = run.ssh
        return replace(self, run=run)

    def phase(self, phase: str, on: Optional[list[Node]] = None) -> list[HostResult]:
        """Run PHASE of this session's run on ON (default: the chosen nodes), quietly."""
        return self.fleet.run_phase(self.run, phase, on=self.nodes if on is None else on)

    def run_phase(self, phase: str, yes: bool = True, on: Optional[list[Node]] = None) -> list[HostResult]:
        """Run PHASE on ON (default: the chosen nodes); unless YES, preview the changes and ask first."""
        nodes = self.nodes if on is None else on
        if not yes and not self.dry_run:
            confirm(self, phase, nodes)
        self.reporter.out.print(
            f"[bold]{phase}[/bold] on {len(nodes)} host(s) "
            f"({', '.join(n.name for n in nodes)}), up to {self.fleet.parallel} at once"
            + (" — dry run, nothing will change" if self.dry_run else "")
        )
        return self.phase(phase, on=nodes)

    def finish(self, results: list[HostResult], title: str) -> None:
        """Print the recap and where the logs are; exit non-zero if any host failed."""
        recap(self.reporter.out, results, title, dry_run=self.dry_run)
        logs = self.fleet.logs
        if logs is not None and logs.dir.is_dir():
            self.reporter.out.print(Text(f"logs: {logs.dir}/ (one per host; on each node under /var/log/llmfab/)",
                                         style="dim"))
        if overall_failed(results):
            raise HostsFailed()


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn llmfab's own errors into a message and the exit status their class names, no traceback.

    The one place that maps an error to an exit status (httpie's raw_main):
    tasks raise, they never pick a code themselves."""
    try:
        yield
    except LlmfabError as e:
        raise Exit(e.report() or None, code=int(e.exit_status))
    except KeyboardInterrupt as e:
        detail = getattr(e, "detail", "")
        raise Exit("interrupted" + (f" ({detail})" if detail else "")
                   + ": re-run the same command to finish; every step is safe to repeat",
                   code=int(ExitStatus.INTERRUPTED))


def open_session(
    c,
    config_path: Optional[str],
    *,
    dry_run: bool = False,
    parallel: Optional[int] = None,
    accept_new_host_keys: bool = False,
    ask_sudo_pass: bool = False,
    quiet: bool = False,
    stderr: bool = False,
    verbose: bool = False,
    diff: bool = False,
    options: Optional[RunOptions] = None,
) -> Session:
    """Validate everything that can be validated before the first connection, and say where it goes."""
    config = config_mod.load(config_path, example_ok=False)
    nodes = select_nodes(config, cli_hosts(c))
    overrides = cli_ssh(c)
    password = overrides.pop("sudo_password", None) or os.environ.get(SUDO_PASSWORD_ENV)
    if ask_sudo_pass and password is None:
        password = ask_password()
    ssh = SSHOptions.from_config(
        config, accept_new_host_keys=accept_new_host_keys or None, sudo_password=password, **overrides
    )
    if options is not None and options.command_timeout:
        ssh = replace(ssh, command_timeout=options.command_timeout)
    targets = {n.name: target(config, n, ssh) for n in nodes}
    reporter = Reporter(console(stderr=stderr), dry_run=dry_run, quiet=quiet, verbose=verbose)
    announce(reporter.out, config, nodes, targets)
    run = Run(config, replace(options or RunOptions(), dry_run=dry_run), ssh)
    fleet = Fleet(config, nodes, ssh, parallel or config.ssh.parallel, reporter, logs=RunLogs(), diff=diff)
    return Session(run, nodes, fleet, reporter)


def ask_password() -> str:
    """Ask once for the sudo password used for every host and step of this run."""
    if not sys.stdin.isatty():
        raise UsageError(f"--ask-sudo-pass needs a terminal to ask on: set {SUDO_PASSWORD_ENV} instead "
                         "(from a secret store, not on the command line)")
    try:
        return getpass.getpass("sudo password (used for all hosts): ")
    except EOFError:
        raise UsageError(f"no sudo password given: set {SUDO_PASSWORD_ENV} or answer the prompt") from None
