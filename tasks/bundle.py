"""`fab export-bundle`: standalone bash bundles, one per node, for air-gapped clusters."""

from pathlib import Path

from rich.text import Text

from llmfab import bundle
from llmfab.output import console
from llmfab.config import load
from llmfab.session import refuse_hosts, reported_errors

from .options import EXAMPLE_CONFIG, engine_override, task


@task(
    name="export-bundle",
    help={
        "config": EXAMPLE_CONFIG,
        "out": "directory to write the bundles into (default: build/bundles/<cluster name>)",
        "tar": "also pack one llmfab-<node>.tar.gz per node (artifacts included)",
        "engine": "vllm | sglang | trtllm: the engine the bundle deploys (default: the config's)",
        "artifacts": "artifact cache to ship (from fab fetch-artifacts); stored once, linked from every node",
    },
)
def export_bundle(c, config=None, out=None, tar=False, artifacts=None, engine=None):
    """Render one self-contained bundle per node: copy it over, then `bash run.sh prep`.

    Needs no connection to any node. Each bundle holds run.sh, the same step
    scripts `fab` runs over SSH, the node's identity and SHA256SUMS, which run.sh
    verifies before changing anything.

    Example:
      fab export-bundle --config configs/h20-2x8.yaml --out build/bundles --tar
    """
    with reported_errors():
        refuse_hosts(c, "export-bundle")
        cfg = engine_override(load(config), engine, None, console())
        target = Path(out) if out else Path("build/bundles") / cfg.cluster.name
        written = bundle.export(cfg, target, tar=tar, artifacts=Path(artifacts) if artifacts else None)
    out_ = console()
    out_.print(f"config: {cfg.source} (cluster {cfg.cluster.name}, from {cfg.chosen_by})")
    for b in written:
        extra = f" + {b.tarball}" if b.tarball else ""
        out_.print(Text(f"{b.node.name:<8} {cfg.role(b.node):<6} {b.path}/ ({len(b.files)} files){extra}"))
        out_.print(Text(f"{'':<15} sha256 {b.digest}"))
    out_.print(Text(f"{len(written)} bundle(s) in {target}/ — on each node: "
                    "sudo bash run.sh --expect-sha256 <its sha256 above> prep", style="bold"))
    out_.print(Text("The sha256 (of the node's SHA256SUMS) pins every file of the bundle and its artifacts: "
                    "carry it to the node by another way than the bundle."))
    if not artifacts:
        out_.print("[yellow]no --artifacts: these bundles download from the internet on the node (apt, NVIDIA's "
                   "installer, the engine image). For an air-gapped site: fab fetch-artifacts --cache DIR on a "
                   "connected machine, then export-bundle --artifacts DIR.[/yellow]")
    else:
        out_.print("copy the whole export (the shared artifacts/ beside the node directories), or use --tar")
