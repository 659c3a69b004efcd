"""`fab fetch-artifacts`: everything an air-gapped cluster needs, gathered on a connected machine."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from llmfab import artifacts
from llmfab.errors import HostsFailed, UsageError
from llmfab.output import console
from llmfab.config import load
from llmfab.session import refuse_hosts, reported_errors

from .options import EXAMPLE_CONFIG, engine_name, task

STYLE = {artifacts.FETCHED: "yellow", artifacts.CACHED: "green", artifacts.FAILED: "bold red"}


@task(name="fetch-artifacts", help={
    "config": EXAMPLE_CONFIG,
    "cache": "artifact cache directory (default: build/artifacts/<cluster name>)",
    "engine": "engine whose image to save (default: the config's)",
    "only": "comma-separated kinds to fetch: files,debs,wheels,images (default: all)",
})
def fetch_artifacts(c, config=None, cache=None, engine=None, only=None):
    """Download installers, .debs, wheels and images into a local cache, each with its sha256.

    Run it on a connected staging machine (running the nodes' OS release, for
    the .debs), then `fab export-bundle --artifacts CACHE`. A re-run fetches
    only what is missing or does not match its checksum; whatever cannot be
    fetched is listed with the reason and the exit status is non-zero.
    """
    with reported_errors():
        refuse_hosts(c, "fetch-artifacts")
        cfg = load(config)
        out_ = console()
        out_.print(f"config: {cfg.source} (cluster {cfg.cluster.name}, from {cfg.chosen_by})")
        root = Path(cache) if cache else Path("build/artifacts") / cfg.cluster.name
        kinds = tuple(k.strip() for k in only.split(",")) if only else artifacts.KINDS
        unknown = [k for k in kinds if k not in artifacts.KINDS]
        if unknown:
            raise UsageError(f"--only takes {','.join(artifacts.KINDS)}, not {','.join(unknown)}")
        out = console()

        def show(o: artifacts.Outcome) -> None:
            out.print(Text(f"{o.status:<8}", style=STYLE[o.status]) + Text(f" {o.artifact.path}  ({o.detail})"))

        outcomes = artifacts.fetch_all(cfg, root, engine=engine_name(engine), only=kinds, progress=show)
        failed = [o for o in outcomes if o.status == artifacts.FAILED]
        out.print(f"{len(outcomes)} artifact(s) in {root}/: {len(outcomes) - len(failed)} ready, {len(failed)} failed")
        if failed:
            raise HostsFailed()
