#!/usr/bin/env python3
"""Measure `fab model --distribute` to 1, 2, 4 and 8 nodes: a star against a chain, in one run.

The head holds a model of --files equal shards (--size-mb in all, random bytes,
with its manifest); every other node starts empty. For each shape and node
count the bench times what `fab model --distribute` does (the head's model
step, the transfer services, every pull, the checks, the services stopped),
in process, from the first SSH connection to the last verify.

Every node's link is limited to the same rate (--rate MB/s) with llmfab's own
`--bwlimit`: what a node sends in all is capped at that rate, shared among the
nodes that pull from it (each rsync gets rate / receivers). That is a NIC's
uplink: in a star the head's one link is split N ways, in a chain each node
sends one copy at the full rate. (tc cannot shape here: the test hosts share
this machine's network namespace and loopback, which other sessions use too.)
The target: a chain to 8 nodes within 1.3 x the time of one copy (1 node).

Run as root from the repository root (after .ci/setup):
    python3 bench/distribution_bench.py [--counts 1,2,4,8] [--size-mb 192] [--files 32] [--rate 24]
Writes bench/results/distribution.json as well as printing a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402

from llmfab import config as config_mod  # noqa: E402
from llmfab.fleet import Fleet  # noqa: E402
from llmfab.output import Reporter  # noqa: E402
from llmfab.run import Run  # noqa: E402
from llmfab.session import Session  # noqa: E402
from llmfab.ssh import SSHOptions  # noqa: E402
from tasks.model import distributed  # noqa: E402
from tests.harness.testhosts import TestFleet  # noqa: E402

MODEL = "/models/bench-model"
SLOT = int(os.environ.get("LLMFAB_TESTHOST_PORT", "2222")) - 2222
RSYNC_PORT = 28730 + SLOT  # transfer services of their own: other sessions share this network


def publish(head, files: int, shard_bytes: int) -> None:
    """Random shards, an index, a config and the manifest on the head, as a finished download leaves them."""
    names = [f"model-{i + 1:05d}-of-{files:05d}.safetensors" for i in range(files)]
    index = {"metadata": {"total_size": files * shard_bytes}, "weight_map": {f"layer.{i}": n for i, n in enumerate(names)}}
    head.exec(f"mkdir -p {MODEL} && cd {MODEL} && for n in {' '.join(names)}; do "
              f"head -c {shard_bytes} /dev/urandom > $n; done", check=True)
    head.exec(f"cat > {MODEL}/model.safetensors.index.json", input=json.dumps(index), check=True)
    head.exec(f"cat > {MODEL}/config.json", input='{"model_type": "llama"}', check=True)
    listing = head.exec(f"cd {MODEL} && find . -type f -printf '%P %s\\n' | LC_ALL=C sort", check=True).stdout
    entries = [f'    {{"name": "{n}", "size": {s}, "sha256": ""}}' for n, s in (ln.split() for ln in listing.splitlines())]
    manifest = ('{\n  "llmfab_manifest": 1,\n  "model": "bench/model",\n  "source": "modelscope",\n  "revision": "",\n'
                '  "files": [\n' + ",\n".join(entries) + "\n  ]\n}\n")
    head.exec(f"cat > {MODEL}/llmfab-manifest.json", input=manifest, check=True)


def session_for(cfg, names: list[str]) -> Session:
    nodes = [n for n in cfg.nodes if n.name in names]
    reporter = Reporter(Console(file=open(os.devnull, "w")), quiet=True)
    ssh = SSHOptions.from_config(cfg)
    fleet = Fleet(cfg, nodes, ssh, 64, reporter)
    return Session(Run(cfg, ssh=ssh), nodes, fleet, reporter)


def one_run(cfg, hosts, count: int, fanout: int, rate: float) -> float:
    for host in hosts[1:]:
        host.exec(f"rm -rf {MODEL}", check=True)
    session = session_for(cfg, [h.name for h in hosts[: count + 1]])
    start = time.perf_counter()
    results = distributed(session, RSYNC_PORT, fanout, rate)
    elapsed = time.perf_counter() - start
    failed = [f"{r.host}: {r.reason}" for r in results if r.failed]
    assert not failed, failed
    assert len(results) == count + 1
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1,2,4,8", help="worker counts (nodes besides the head)")
    parser.add_argument("--size-mb", type=int, default=192)
    parser.add_argument("--files", type=int, default=32)
    parser.add_argument("--rate", type=float, default=24.0, help="MB/s each node may send")
    args = parser.parse_args()
    counts = [int(n) for n in args.counts.split(",")]
    shard = args.size_mb * 1_000_000 // args.files
    rows = []
    with tempfile.TemporaryDirectory(prefix="llmfab-dist-bench-") as tmp:
        with TestFleet(count=max(counts) + 1, workdir=Path(tmp) / "hosts", first_octet=141,
                       port=2222 + SLOT) as fleet:
            publish(fleet.hosts[0], args.files, shard)
            cfg = config_mod.load(fleet.write_config(Path(tmp) / "cluster.yaml", model={
                "path": MODEL, "id": "bench/model", "size_gb": args.size_mb / 1000}))
            for shape, fanout in (("star", 0), ("chain", 1)):
                for count in counts:
                    seconds = one_run(cfg, fleet.hosts, count, fanout, args.rate)
                    rows.append({"shape": shape, "nodes": count, "seconds": round(seconds, 2)})
                    print(f"{shape:>5} to {count} node(s): {seconds:6.1f} s", flush=True)
    one = {r["shape"]: r["seconds"] for r in rows if r["nodes"] == min(counts)}
    print(f"\n{args.size_mb} MB in {args.files} files, every node sending at most {args.rate:g} MB/s")
    print(f"{'nodes':>5} {'star':>8} {'chain':>8} {'star/1':>7} {'chain/1':>8}")
    for count in counts:
        t = {r["shape"]: r["seconds"] for r in rows if r["nodes"] == count}
        print(f"{count:>5} {t['star']:>7.1f}s {t['chain']:>7.1f}s {t['star'] / one['star']:>7.2f} "
              f"{t['chain'] / one['chain']:>8.2f}")
    ratio = max(r["seconds"] for r in rows if r["shape"] == "chain") / one["chain"]
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "distribution.json").write_text(json.dumps(
        {"size_mb": args.size_mb, "files": args.files, "rate_mb_s": args.rate, "runs": rows}, indent=2) + "\n")
    met = ratio <= 1.3
    print(f"chain at {max(counts)} nodes: {ratio:.2f} x one copy: " + ("target met (<= 1.3)" if met else "TARGET MISSED"))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
