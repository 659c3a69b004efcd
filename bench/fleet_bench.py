#!/usr/bin/env python3
"""Measure llmfab's fan-out against the SSH transport floor, on 1, 16 and 64 test hosts.

For each host count, in one run on the same machine:
  floor   one bare `true` over fresh Fabric connections to every host, in parallel
  first   a first `prep` on fresh hosts
  noop    a second `prep` (nothing to change)
and the remote commands each run opened per host. All test hosts share this
machine's cores (their sshd work included), so absolute times mean little here:
the targets are ratios to the floor of the same run, at the largest count:
  noop <= 1.3 x floor and <= 3 remote commands per host; first <= 2 x floor.
(Run it on a quiet machine: other work on the cores moves every ratio.)

Run as root from the repository root:  python3 bench/fleet_bench.py [--counts 1,16,64]
Writes bench/results/fleet.json as well as printing a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from llmfab import config as config_mod  # noqa: E402
from llmfab.fleet import Fleet  # noqa: E402
from llmfab.results import HostResult  # noqa: E402
from llmfab.run import Run  # noqa: E402
from llmfab.ssh import SSHOptions  # noqa: E402
from tests.harness.testhosts import TestFleet  # noqa: E402
from tests.integration.scenario import prepared_config  # noqa: E402


class Quiet:
    def host_started(self, node): ...
    def step_started(self, node, step): ...
    def step_progress(self, node, step, message): ...
    def step_done(self, node, result): ...
    def step_output(self, node, step, line): ...
    def step_diff(self, node, path, diff): ...
    def host_done(self, result): ...


def make_fleet(cfg) -> Fleet:
    return Fleet(cfg, list(cfg.nodes), SSHOptions.from_config(cfg), parallel=64, progress=Quiet())


def floor(cfg) -> float:
    """One `true` per host over fresh connections, all hosts at once."""
    from llmfab.ssh import connect

    fleet = make_fleet(cfg)

    def job(node) -> HostResult:
        r = HostResult(node.name, node.address)
        conn = connect(cfg, node, fleet.options)
        try:
            conn.client.exec_command("true")[1].channel.recv_exit_status()
            r.commands = 1
        finally:
            conn.close()
        return r

    start = time.perf_counter()
    results = fleet.map(job)
    elapsed = time.perf_counter() - start
    assert not any(r.failed for r in results), [r.reason for r in results if r.failed]
    return elapsed


def prep(cfg) -> tuple[float, int]:
    fleet = make_fleet(cfg)
    start = time.perf_counter()
    results = fleet.run_phase(Run(cfg), "prep")
    elapsed = time.perf_counter() - start
    failed = [f"{r.host}: {r.reason}" for r in results if r.failed]
    assert not failed, failed
    return elapsed, max(r.commands for r in results)


# The runbook's system tuning (the benchmark's prep): NVIDIA and Docker steps off.
SYSTEM_ONLY = {"nvidia": {"enabled": False}, "docker": {"enabled": False}}


def measure(count: int, repeats: int, scope: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="llmfab-bench-") as tmp:
        port = int(os.environ.get("LLMFAB_TESTHOST_PORT", "2222"))
        with TestFleet(count=count, workdir=Path(tmp) / "hosts", kernel_meta=True, first_octet=101, port=port) as hosts:
            extra = SYSTEM_ONLY if scope == "system" else {}
            cfg = config_mod.load(prepared_config(hosts, Path(tmp) / "cluster.yaml", **extra))
            floors = [floor(cfg) for _ in range(repeats)]
            first, first_cmds = prep(cfg)
            noops = [prep(cfg) for _ in range(repeats)]
    f = statistics.median(floors)
    noop = statistics.median(t for t, _ in noops)
    return {
        "hosts": count,
        "floor_s": round(f, 3),
        "first_prep_s": round(first, 3),
        "noop_prep_s": round(noop, 3),
        "first_ratio": round(first / f, 2),
        "noop_ratio": round(noop / f, 2),
        "commands_per_host_first": first_cmds,
        "commands_per_host_noop": max(c for _, c in noops),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,16,64")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scope", choices=("system", "full"), default="system",
                        help="system: the runbook's system tuning (the targets' prep); full: every prep step, stubs included")
    args = parser.parse_args()
    rows = [measure(int(n), args.repeats, args.scope) for n in args.counts.split(",")]
    print(f"{'hosts':>5} {'floor':>8} {'first':>8} {'noop':>8} {'first/floor':>11} {'noop/floor':>10} {'cmds':>5}")
    for r in rows:
        print(f"{r['hosts']:>5} {r['floor_s']:>7.2f}s {r['first_prep_s']:>7.2f}s {r['noop_prep_s']:>7.2f}s "
              f"{r['first_ratio']:>11} {r['noop_ratio']:>10} {r['commands_per_host_noop']:>5}")
    top = rows[-1]
    ok = top["noop_ratio"] <= 1.3 and top["first_ratio"] <= 2 and all(r["commands_per_host_noop"] <= 3 for r in rows)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"fleet-{args.scope}.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
