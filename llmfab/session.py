"""What every task does around its real work: load the config, pick the hosts, report, exit.

Tasks stay short: they build a Session from their arguments, hand it a phase or
a job, and let ``finish`` print the recap and choose the exit status.
"""

from __future__ import annotations

import getpass
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

from invoke.exceptions import Exit

from . import config as config_mod
from .config import ClusterConfig, Node
from .errors import ConfigError, LlmfabError, UsageError
from .exits import ExitStatus
from .fleet import Fleet
from .output import Reporter, console, recap
from .results import HostResult, overall_failed
from .ssh import SSHOptions

SUDO_PASSWORD_ENV = "LLMFAB_SUDO_PASSWORD"


def cli_hosts(c) -> list[str]:
    """The -H hosts given to fab (see llmfab.executor)."""
    try:
        return list(c.config.llmfab.hosts)
    except AttributeError:
        return []


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

    def run_phase(self, phase: str) -> list[HostResult]:
        self.reporter.out.print(
            f"[bold]{phase}[/bold] on {len(self.nodes)} host(s) "
            f"({', '.join(n.name for n in self.nodes)}), up to {self.fleet.parallel} at once"
            + (" — dry run, nothing will change" if self.dry_run else "")
        )
        return self.fleet.run_phase(phase, dry_run=self.dry_run)

    def finish(self, results: list[HostResult], title: str) -> None:
        """Print the recap and exit non-zero if any host failed."""
        recap(self.reporter.out, results, title, dry_run=self.dry_run)
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
) -> Session:
    """Validate everything that can be validated before the first connection."""
    config = config_mod.load(config_path)
    nodes = select_nodes(config, cli_hosts(c))
    password = os.environ.get(SUDO_PASSWORD_ENV)
    if ask_sudo_pass and password is None:
        # Asked once here, used for every host and step of this run.
        password = getpass.getpass("sudo password (used for all hosts): ")
    options = SSHOptions.from_config(
        config, accept_new_host_keys=accept_new_host_keys or None, sudo_password=password
    )
    reporter = Reporter(console(), dry_run=dry_run, quiet=quiet)
    fleet = Fleet(config, nodes, options, parallel or config.ssh.parallel, reporter)
    return Session(config, nodes, fleet, reporter, dry_run)
