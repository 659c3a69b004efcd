"""`fab ping`: can llmfab reach every node, log in, and become root? (like `ansible -m ping`)."""

from __future__ import annotations

import time

from rich.text import Text

from llmfab.errors import HostsFailed
from llmfab.records import Ping
from llmfab.results import HostResult
from llmfab.session import Session, open_session, reported_errors
from llmfab.ssh import sudo_prefix

from .options import SSH, task

# Who we are on the node, and whether root is within reach without a password prompt.
PROBE = "printf '%s %s ' \"$(uname -n)\" \"$(id -un)\"; {prefix}true && echo root-ok || echo root-no"


def ping_one(session: Session, node) -> HostResult:
    """Connect to NODE, run one harmless command, and say what it found."""
    result = HostResult(node.name, node.address)
    start = time.monotonic()
    conn = session.fleet.open_connection(node, result)
    if conn is None:
        return result
    try:
        prefix = sudo_prefix(conn.user, None)
        done = conn.run(PROBE.format(prefix=prefix.replace("--", "")), hide=True, warn=True,
                        timeout=session.fleet.options.connect_timeout * 3, in_stream=False)
        result.commands += 1
        hostname, user, root = (done.stdout.split() + ["?", "?", "?"])[:3]
        how = "is root" if user == "root" else ("sudo -n works" if root == "root-ok" else
                                                "sudo needs a password (use --ask-sudo-pass with prep/deploy)")
        result.records.append(("ping", "ping", [hostname, user, how, f"{time.monotonic() - start:.2f}"]))
    except Exception as e:  # report, never traceback: this is the "what is wrong" command
        result.error = f"logged in, but the probe failed: {type(e).__name__}: {e}"
    finally:
        session.fleet.close_connection(conn)
    return result


@task(help={**SSH})
def ping(c, config=None, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Check that every node answers over SSH, with its login user and a way to root; changes nothing.

    Uses the same route as every other task (the config, then ~/.ssh/config:
    User, Port, IdentityFile, ProxyJump) and the same host-key policy. Run it
    first on a new cluster.

    Example:
      fab ping --config mycluster.yaml
    """
    with reported_errors():
        session = open_session(c, config, parallel=parallel or None, quiet=True,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        results = session.fleet.map(lambda node: ping_one(session, node))
        _report(session.reporter.out, results)


def _report(out, results) -> None:
    """One line per host, then the count; HostsFailed when any host could not be reached."""
    for r in results:
        if r.failed:
            out.print(Text(f"{r.host:<8} {r.address}: {r.status.value}: {r.reason}", style="bold red"))
            continue
        p = r.records_of(Ping)[0]
        hostname, user, how, seconds = p.hostname, p.user, p.how, p.seconds
        out.print(Text(f"{r.host:<8} {r.address}: ok: logged in as {user} on {hostname}, {how} ({seconds}s)",
                       style="green"))
    bad = [r.host for r in results if r.failed]
    out.print(Text(f"ping: {len(results)} host(s): ok={len(results) - len(bad)} unreachable={len(bad)}"
                   + (f"; FAILED hosts: {', '.join(bad)}" if bad else ""), style="bold red" if bad else "bold"))
    if bad:
        raise HostsFailed()
