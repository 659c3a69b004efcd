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
    "only": "comma-separated kinds to fetch: files,debs,wheels,images,models (default: all but models)",
    "check": "fetch nothing: list what the cache lacks for this config (exit 1 when anything does)",
    "model": "also put the model's weights in the kit (for model.in_bundle; hundreds of GB for R1)",
    "model_from": "with --model: copy the weights from this directory, file:// URL, or http(s):// URL serving "
                  "them with their llmfab-manifest.json, instead of the hub",
    "checksums": "with --model: record every file's sha256 in the kit's model manifest",
})
def fetch_artifacts(c, config=None, cache=None, engine=None, only=None, check=False, model=False, model_from=None,
                    checksums=False):
    """Download installers, .debs, wheels, images (and the model) into a kit, each with its sha256.

    Runs on any connected machine with apt (any Debian or Ubuntu release: the
    .debs are resolved for the nodes' release, system.os_release, in a private
    apt root, with signatures checked), pip and Docker. What to fetch comes
    from the steps themselves. A re-run fetches only what is missing or does
    not match; whatever cannot be fetched is listed with the reason and the
    exit status is non-zero. Then `fab export-bundle --artifacts CACHE`.

    Examples:
      fab fetch-artifacts --config llmfab.yaml --cache build/kit
      fab fetch-artifacts --config llmfab.yaml --cache build/kit --check
      fab fetch-artifacts --config llmfab.yaml --cache build/kit --model --model-from /data/DeepSeek-R1
    """
    with reported_errors():
        refuse_hosts(c, "fetch-artifacts")
        cfg = load(config)
        out = console()
        out.print(f"config: {cfg.source} (cluster {cfg.cluster.name}, from {cfg.chosen_by})")
        root = Path(cache) if cache else Path("build/artifacts") / cfg.cluster.name
        kinds = tuple(k.strip() for k in only.split(",")) if only else artifacts.DEFAULT_KINDS
        unknown = [k for k in kinds if k not in artifacts.KINDS]
        if unknown:
            raise UsageError(f"--only takes {','.join(artifacts.KINDS)}, not {','.join(unknown)}")
        if model or model_from:
            # The weights go in the kit: what model.in_bundle says (the config itself is left as read).
            cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"in_bundle": True})})
            kinds = tuple(dict.fromkeys(kinds + ("models",)))
        if check:
            _check(cfg, root, engine_name(engine), out)
            return

        def show(o: artifacts.Outcome) -> None:
            out.print(Text(f"{o.status:<8}", style=STYLE[o.status]) + Text(f" {o.artifact.path}  ({o.detail})"))

        outcomes = artifacts.fetch_all(cfg, root, engine=engine_name(engine), only=kinds, progress=show,
                                       model_from=model_from, checksums=checksums)
        failed = [o for o in outcomes if o.status == artifacts.FAILED]
        out.print(f"{len(outcomes)} artifact(s) in {root}/: {len(outcomes) - len(failed)} ready, {len(failed)} failed")
        if failed:
            raise HostsFailed()


def _check(cfg, root: Path, engine, out) -> None:
    """Say what the kit at ROOT lacks for CFG; fail when anything."""
    needed = artifacts.wanted(cfg, engine)
    gaps = artifacts.missing(cfg, root, needed=needed)
    for a in needed:
        problem = next((p for g, p in gaps if g.path == a.path), None)
        label = Text("missing ", style="bold red") if problem else Text("ready   ", style="green")
        out.print(label + Text(f" {a.path}  (for {', '.join(a.steps) or a.kind}" + (f"; {problem})" if problem else ")")))
    out.print(f"{len(needed)} artifact(s) needed by {cfg.cluster.name}'s steps: {len(needed) - len(gaps)} ready "
              f"in {root}/, {len(gaps)} missing")
    if gaps:
        raise HostsFailed()
