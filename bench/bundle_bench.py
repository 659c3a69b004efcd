#!/usr/bin/env python3
"""Measure `export-bundle`: time to export 2 and 16 nodes, and disk used.

Artifact downloads are excluded: a stand-in artifact cache of a fixed size
(default 64 MiB, like a small installer plus packages) is exported with the
bundles, so the figure shows what sharing it costs. Targets: 16 nodes export in
under 2 s; 16 nodes take at most 1.05 x the disk of 2 nodes plus their per-node
scripts.

Run from the repository root:  python3 bench/bundle_bench.py [--artifact-mib 64]
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

from llmfab import bundle, config  # noqa: E402
from tests.integration.artifacts import stand_in_cache  # noqa: E402


def cluster(nodes: int):
    return config.parse({
        "cluster": {"name": f"bench-{nodes}"},
        "nodes": [{"name": f"n{i}", "address": f"10.0.{i // 250}.{i % 250 + 1}"} for i in range(nodes)],
        "engine": {"options": {"tensor_parallel_size": 8, "pipeline_parallel_size": nodes}},
        "system": {"kernels": ["5.15.0-119-generic"]},
    })


def disk_usage(root: Path) -> int:
    """Bytes on disk, counting each hard-linked or symlinked file once, as `du` does."""
    seen, total = set(), 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


def node_scripts(root: Path) -> int:
    return sum(disk_usage(p) for p in root.iterdir() if p.is_dir() and p.name != "artifacts")


def measure(nodes: int, cache: Path, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="llmfab-bundle-") as tmp:
            cfg = cluster(nodes)
            start = time.perf_counter()
            bundle.export(cfg, Path(tmp) / "out", artifacts=cache)
            times.append(time.perf_counter() - start)
            size, scripts = disk_usage(Path(tmp) / "out"), node_scripts(Path(tmp) / "out")
    return {"nodes": nodes, "export_s": round(min(times), 3), "disk_bytes": size, "node_scripts_bytes": scripts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact-mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="llmfab-cache-") as tmp:
        # A complete kit (export refuses any other): stand-ins for what the steps need,
        # the installer grown to the given size.
        cfg = cluster(2)
        cache = stand_in_cache(Path(tmp), cfg)
        (cache / "files" / cfg.nvidia.installer_name).write_bytes(os.urandom(args.artifact_mib << 20))
        two, sixteen = (measure(n, cache, args.repeats) for n in (2, 16))
    budget = 1.05 * two["disk_bytes"] + sixteen["node_scripts_bytes"]
    print(f"{'nodes':>5} {'export':>8} {'disk':>10} {'node scripts':>13}")
    for r in (two, sixteen):
        print(f"{r['nodes']:>5} {r['export_s']:>7.2f}s {r['disk_bytes'] / 2**20:>8.1f}MiB {r['node_scripts_bytes'] / 2**20:>11.2f}MiB")
    ok = sixteen["export_s"] < 2 and sixteen["disk_bytes"] <= budget
    print(f"16-node disk {sixteen['disk_bytes'] / 2**20:.1f} MiB vs budget {budget / 2**20:.1f} MiB "
          f"(1.05 x 2-node + 16 nodes' scripts); {'targets met' if ok else 'TARGETS MISSED'}")
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bundle.json").write_text(json.dumps([two, sixteen], indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
