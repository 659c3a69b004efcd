"""`fab model`: the weights on every node, complete and the same everywhere."""

from __future__ import annotations

import threading
from dataclasses import replace

from rich.text import Text

from llmfab.errors import HostsFailed
from llmfab.fleet import Fleet
from llmfab.records import Manifest, ModelFile
from llmfab.results import HostResult, Status
from llmfab.session import Session, open_session, reported_errors
from llmfab.steps import model as model_steps
from llmfab.topology import CHAIN

from .options import DRY_RUN, SSH, task

DAY = 86400


def listing(result: HostResult) -> dict[str, str]:
    """name -> size on that node ("missing" when absent), from its model-verify records."""
    return {f.name: f.size for f in result.records_of(ModelFile)}


def differences(reference: str, want: dict[str, str], host: str, have: dict[str, str]) -> list[str]:
    """How HOST's listing differs from REFERENCE's, one line per file."""
    out = []
    for name in sorted(want.keys() | have.keys()):
        a, b = want.get(name, "missing"), have.get(name, "missing")
        if a == b:
            continue
        if b == "missing":
            out.append(f"{host}: {name} is missing ({reference} has {a} bytes)")
        elif a == "missing":
            out.append(f"{host}: {name} ({b} bytes) is not on {reference}")
        else:
            out.append(f"{host}: {name} is {b} bytes, {reference} has {a}")
    return out


def compare(results: list[HostResult], head: str) -> list[str]:
    """Every difference between a verified node's model and the head's (else the first verified node's)."""
    verified = [r for r in results if not r.failed and listing(r)
                and any(s.step == "model-verify" and s.status == Status.OK for s in r.steps)]
    if len(verified) < 2:
        return []
    reference = next((r for r in verified if r.host == head), verified[0])
    want = listing(reference)
    return [line for r in verified if r is not reference
            for line in differences(reference.host, want, r.host, listing(r))]


def merge(*runs: list[HostResult]) -> list[HostResult]:
    """One result per host from several phases run one after another."""
    merged: dict[str, HostResult] = {}
    for run in runs:
        for r in run:
            m = merged.setdefault(r.host, HostResult(r.host, r.address))
            m.steps += r.steps
            m.records += r.records
            m.reboots += r.reboots
            m.error = m.error or r.error
            m.unreachable = m.unreachable or r.unreachable
            m.stderr_tail = m.stderr_tail or r.stderr_tail
            m.seconds += r.seconds
            m.commands += r.commands
    return list(merged.values())


def _phase_on(session: Session, phase: str, nodes) -> list[HostResult]:
    session.reporter.out.print(f"[bold]{phase}[/bold] on {', '.join(n.name for n in nodes)}"
                               + (" — dry run, nothing will change" if session.dry_run else ""))
    return session.phase(phase, on=list(nodes))


def distributed(session: Session, port: int, fanout: int = CHAIN, bwlimit_mb: float = 0) -> list[HostResult]:
    """Download on the head; the other nodes pull along a chain (or tree, or star) while their sources still receive."""
    config = session.config
    head = config.head
    workers = [n for n in session.nodes if n.name != head.name]
    first = _phase_on(session, "model", [head])
    if first[0].failed or not workers:
        return first
    plan = model_steps.plan(config, port, workers, fanout, round(bwlimit_mb * 1e6 / 1024))
    session = session.with_run(session.run.with_options(distribution=plan))
    shape = plan.topology
    servers = [n for n in [head] + workers if shape.receivers(n.name)]
    session.reporter.out.print(f"distributing along a {shape.describe()}"
                               + (f", each node sending at most {bwlimit_mb:g} MB/s" if bwlimit_mb else ""))
    try:
        serving = _phase_on(session, "model-serve", servers)
        if any(r.failed for r in serving):
            return merge(first, serving)
        # The manifest's digest travels over SSH, out of the transfer services' reach.
        digests = [m.sha256 for r in serving if r.host == head.name for m in r.records_of(Manifest)]
        if digests:
            session = session.with_run(session.run.with_options(
                distribution=replace(plan, manifest_sha256=digests[0])))
        pulled = _pull_phase(session, workers)
    finally:
        # Even after Ctrl-C: the services must not outlive the transfer (their
        # own time limit is only the backstop).
        session.fleet.cancelled.clear()
        stopped = _phase_on(session, "model-unserve", servers)
    return merge(first, serving, stopped, pulled)


class _StopServingOnFailure:
    """Progress that stops a node's transfer service as soon as its pull fails.

    Its receivers then fail at once ("the source node stopped serving") instead
    of waiting for files that will never come, and theirs after them.
    """

    def __init__(self, session: Session):
        self._inner = session.fleet.progress
        self._session = session
        self.threads: list[threading.Thread] = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def host_done(self, result: HostResult) -> None:
        self._inner.host_done(result)
        run = self._session.run
        node = next((n for n in run.config.nodes if n.name == result.host), None)
        if result.failed and node is not None and model_steps.forwards(run, node):
            fleet = Fleet(run.config, [node], self._session.fleet.options, 1, _Quiet())
            thread = threading.Thread(target=fleet.run_phase, args=(run, "model-unserve"), daemon=True)
            thread.start()
            self.threads.append(thread)


class _Quiet:
    def __getattr__(self, name):
        return lambda *args: None


def _pull_phase(session: Session, workers) -> list[HostResult]:
    watcher = _StopServingOnFailure(session)
    inner, session.fleet.progress = session.fleet.progress, watcher
    try:
        return _phase_on(session, "model-pull", workers)
    finally:
        session.fleet.progress = inner
        for thread in watcher.threads:
            thread.join()


def human(size: int) -> str:
    """A byte count for people, in the units the steps use (GB = 10^9 bytes)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def report(session: Session, results: list[HostResult]) -> list[str]:
    """Print each node's model and the differences between nodes; return the differences."""
    out = session.reporter.out
    for r in results:
        files = listing(r)
        present = [int(s) for s in files.values() if s.isdigit()]
        if files:
            missing = f" ({len(files) - len(present)} missing)" if len(present) < len(files) else ""
            out.print(f"{r.host}: {len(present)} files{missing}, {human(sum(present))} at {session.config.model.path}")
    found = compare(results, session.config.head.name)
    for line in found:
        out.print(Text(line, style="bold red"))
    return found


@task(help={**SSH, "dry-run": DRY_RUN,
            "distribute": "download once on the head; the workers pull from it over the cluster network",
            "verify": "only check every node's model (changes nothing)",
            "port": "TCP port of the nodes' transfer services with --distribute "
                    f"(default {model_steps.DISTRIBUTE_PORT})",
            "fanout": "with --distribute: how many nodes pull from each node: 1 a chain (default; about one "
                      "copy's time at any node count), 2 a binary tree, 0 a star (all from the head)",
            "bwlimit": "with --distribute: MB/s each node may send in all, shared among the nodes pulling "
                       "from it (default: no limit)",
            "timeout": "seconds a node may take (default: ssh.command_timeout, at least a day); a download "
                       "still running then goes on in the background"})
def model(c, config=None, dry_run=False, distribute=False, verify=False, port=model_steps.DISTRIBUTE_PORT,
          fanout=CHAIN, bwlimit=0.0, timeout=0, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Download the model to every node, then check all nodes hold the same complete copy.

    Each node downloads model.id from model.source (ModelScope or Hugging Face)
    into model.path after a free-disk check. Downloads resume where they
    stopped, report progress, and go on in the background if the connection
    drops (run again to wait for them). A node whose copy matches its
    llmfab-manifest.json transfers nothing. With --distribute the head
    downloads once and the workers pull it along a chain: each from the node
    before it, file by file while that node still receives (rsync from
    read-only services that live for this run only). Every node is
    then verified: each shard of model.safetensors.index.json present with the
    right size, and the same files and sizes as the head.

    Examples:
      fab model
      fab model --distribute
      fab model --distribute --fanout 0 --bwlimit 100
      fab -H n2 model --verify
    """
    with reported_errors():
        session = open_session(c, config, dry_run=dry_run, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        limit = int(timeout) or max(session.config.ssh.command_timeout, DAY)
        session = session.with_run(replace(session.run.with_options(command_timeout=limit),
                                           ssh=replace(session.run.ssh, command_timeout=limit)))
        if verify:
            results = session.run_phase("model-verify")
        elif distribute:
            results = distributed(session, int(port), int(fanout), float(bwlimit))
        else:
            results = session.run_phase("model")
        differ = report(session, results)
        session.finish(results, "model" + (" (dry run)" if dry_run else ""))
        if differ:
            raise HostsFailed("the nodes' models differ (see above): run fab model on the nodes named, or "
                              "fab model --distribute to copy the head's")

