"""What every task does around its real work: load the config, pick the hosts, report, exit.

Tasks stay short: they build a Session from their arguments, hand it a phase or
a job, and let ``finish`` print the recap and choose the exit status.
"""

from __future__ import annotations

import getpass
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from invoke.exceptions import Exit
from rich.text import Text

from . import config as config_mod
from .config import ClusterConfig, Node
from .errors import ConfigError, LlmfabError, UsageError
from .confirm import confirm
from .exits import ExitStatus
from .fleet import Fleet
from .output import Reporter, console, recap
from .results import HostResult, overall_failed
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
    config: ClusterConfig
    nodes: list[Node]
    fleet: Fleet
    reporter: Reporter
    dry_run: bool = False

    def run_phase(self, phase: str, yes: bool = True) -> list[HostResult]:
        """Run PHASE on the session's nodes; unless YES, preview the changes and ask first."""
        if not yes and not self.dry_run:
            confirm(self, phase)
        self.reporter.out.print(
            f"[bold]{phase}[/bold] on {len(self.nodes)} host(s) "
            f"({', '.join(n.name for n in self.nodes)}), up to {self.fleet.parallel} at once"
            + (" — dry run, nothing will change" if self.dry_run else "")
        )
        return self.fleet.run_phase(phase, dry_run=self.dry_run)

    def finish(self, results: list[HostResult], title: str) -> None:
        """Print the recap and where the logs are; exit non-zero if any host failed."""
        recap(self.reporter.out, results, title, dry_run=self.dry_run)
        logs = self.fleet.logs
        if logs is not None and logs.dir.is_dir():
            self.reporter.out.print(Text(f"logs: {logs.dir}/ (one per host; on each node under /var/log/llmfab/)",
                                         style="dim"))
        if overall_failed(results):
            raise Exit(code=int(ExitStatus.HOST_FAILED))


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn llmfab's own errors into a message and a named exit status, no traceback."""
    try:
        yield
    except ConfigError as e:
        raise Exit(e.render(), code=int(ExitStatus.CONFIG_INVALID))
    except UsageError as e:
        raise Exit(f"error: {e}", code=int(ExitStatus.CONFIG_INVALID))
    except LlmfabError as e:
        raise Exit(f"error: {e}", code=int(ExitStatus.HOST_FAILED))
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
) -> Session:
    """Validate everything that can be validated before the first connection, and say where it goes."""
    config = config_mod.load(config_path, example_ok=False)
    nodes = select_nodes(config, cli_hosts(c))
    overrides = cli_ssh(c)
    password = overrides.pop("sudo_password", None) or os.environ.get(SUDO_PASSWORD_ENV)
    if ask_sudo_pass and password is None:
        password = ask_password()
    options = SSHOptions.from_config(
        config, accept_new_host_keys=accept_new_host_keys or None, sudo_password=password, **overrides
    )
    targets = {n.name: target(config, n, options) for n in nodes}
    reporter = Reporter(console(stderr=stderr), dry_run=dry_run, quiet=quiet, verbose=verbose)
    announce(reporter.out, config, nodes, targets)
    fleet = Fleet(config, nodes, options, parallel or config.ssh.parallel, reporter, logs=RunLogs(), diff=diff)
    return Session(config, nodes, fleet, reporter, dry_run)


def ask_password() -> str:
    """Ask once for the sudo password used for every host and step of this run."""
    if not sys.stdin.isatty():
        raise UsageError(f"--ask-sudo-pass needs a terminal to ask on: set {SUDO_PASSWORD_ENV} instead "
                         "(from a secret store, not on the command line)")
    try:
        return getpass.getpass("sudo password (used for all hosts): ")
    except EOFError:
        raise UsageError(f"no sudo password given: set {SUDO_PASSWORD_ENV} or answer the prompt") from None
