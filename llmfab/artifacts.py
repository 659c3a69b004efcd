"""Gather what an air-gapped cluster needs into a local artifact cache.

Layout of a cache (the same as a bundle's ``artifacts/``)::

    files/    installers (CUDA .run, Miniconda)
    debs/<group>/   .deb packages with their whole dependency closure, per group the
                    steps install (closure.json: each .deb's SHA256 from the signed index)
    wheels/   Python wheels (nvitop)
    images/   engine and Open WebUI images, `docker save` | gzip (+ .id: the image ID)
    models/<dir>/   the weights, when model.in_bundle
    MANIFEST.json   sha256 of every artifact, so a re-run fetches only what is
                    missing or does not match

What the cluster needs comes from the steps themselves (llmfab/kit.py reads
the rendered scripts): the .deb groups and images cannot drift from what the
nodes install. Each artifact is fetched by the tool made for it (urllib, apt
in a private root for the nodes' release, pip, docker); what cannot be
fetched here is reported with the reason, never skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

from . import aptroot, kit, kitmodel
from .config import ClusterConfig
from .errors import LlmfabError

FETCHED, CACHED, FAILED = "fetched", "cached", "failed"
KINDS = ("files", "debs", "wheels", "images", "models")
DEFAULT_KINDS = ("files", "debs", "wheels", "images")  # models: only with --model (hundreds of GB)


@dataclass(frozen=True)
class Artifact:
    kind: str  # files | debs | wheels | images | models
    path: str  # relative to the cache: files/x.run, debs/docker, wheels, images/x.tar.gz, models/x
    source: str  # a URL, a package list, a requirement, an image reference, a model id
    sha256: Optional[str] = None  # known in advance (config), else recorded on fetch
    group: Optional[kit.DebGroup] = field(default=None, compare=False)
    steps: tuple[str, ...] = ()
    release: str = ""  # debs: the nodes' release they must be for


@dataclass
class Outcome:
    artifact: Artifact
    status: str
    detail: str


def wanted(config: ClusterConfig, engine: Optional[str] = None) -> list[Artifact]:
    """Everything the configured cluster needs offline, read from its steps."""
    config = config.with_engine(engine) if engine else config
    needs = kit.needs(config)
    n = config.nvidia
    out = []
    if n.enabled:
        out.append(Artifact("files", f"files/{n.installer_name}", n.installer, n.installer_sha256, steps=("nvidia-driver",)))
    for group in needs.debs.values():
        out.append(Artifact("debs", f"debs/{group.name}", " ".join(group.packages), group=group,
                            steps=tuple(group.steps), release=config.system.os_release))
    if n.enabled and n.nvitop:
        out.append(Artifact("wheels", "wheels", "nvitop", steps=("nvitop",)))
    if config.miniconda.enabled:
        url = config.miniconda.installer_url
        out.append(Artifact("files", f"files/{url.rsplit('/', 1)[-1]}", url, config.miniconda.installer_sha256,
                            steps=("miniconda",)))
    for image in needs.images.values():
        out.append(Artifact("images", f"images/{image.archive}", image.ref, steps=tuple(image.steps)))
    if config.model.in_bundle:
        out.append(Artifact("models", f"models/{PurePosixPath(config.model.path).name}", config.model.id,
                            steps=("model-download",)))
    return out


def missing(config: ClusterConfig, root: Path, engine: Optional[str] = None,
            needed: Optional[list[Artifact]] = None) -> list[tuple[Artifact, str]]:
    """What the kit at ROOT lacks for CONFIG (or of NEEDED, when already known):
    each needed artifact with the problem."""
    cache = Cache(root)
    return [(a, problem) for a in (needed or wanted(config, engine)) if (problem := cache.problem(a, recorded=False))]


class Cache:
    """A directory of artifacts with a manifest of their checksums."""

    def __init__(self, root: Path):
        self.root = root
        self.manifest_path = root / "MANIFEST.json"
        self.manifest: dict[str, str] = json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else {}

    def valid(self, a: Artifact) -> bool:
        """Present, complete, and matching the expected (or recorded) checksum."""
        return self.problem(a) is None

    def problem(self, a: Artifact, recorded: bool = True) -> Optional[str]:
        """Why A is not ready in this cache (None when it is). RECORDED: a
        checksum must have been recorded on fetch (a kit checked for export may
        also be made by hand: complete, and matching what was recorded)."""
        target = self.root / a.path
        if a.group is not None and a.group.unresolved:
            return "; ".join(a.group.unresolved)
        if not target.exists():
            return "missing"
        if a.kind == "debs":
            absent = debs_missing(target, a.group.packages if a.group else a.source.split())
            if absent:
                return "no .deb for " + ", ".join(absent)
            broken = closure_problems(target, a.release)
            if broken:
                return broken
        if a.kind == "models" and not (target / kitmodel.MANIFEST).is_file():
            return f"incomplete: no {kitmodel.MANIFEST} (fetch-artifacts --model finishes it)"
        want = a.sha256 or self.manifest.get(a.path)
        if want is None:
            return "not fetched by fetch-artifacts (no checksum recorded in MANIFEST.json)" if recorded else None
        if digest(target) != want:
            return "differs from the checksum recorded when it was fetched"
        return None

    def record(self, a: Artifact) -> str:
        value = digest(self.root / a.path)
        self.manifest[a.path] = value
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.manifest_path)
        return value


def digest(path: Path) -> str:
    """sha256 of a file, or of a directory's files in name order."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def debs_missing(directory: Path, packages: list[str]) -> list[str]:
    """The package specs (NAME or NAME=VERSION) with no .deb in DIRECTORY."""
    names = {p.name for p in directory.glob("*.deb")}
    absent = []
    for spec in packages:
        name, _, version = spec.partition("=")
        prefix = f"{name}_{version.replace(':', '%3a')}_" if version else f"{name}_"
        if not any(n.startswith(prefix) for n in names):
            absent.append(spec)
    return absent


def closure_problems(directory: Path, release: str = "") -> Optional[str]:
    """What differs from the closure apt resolved (closure.json), if it was recorded,
    or from the nodes' RELEASE it must be for."""
    listing = directory / "closure.json"
    if not listing.is_file():
        return None
    closure = json.loads(listing.read_text())
    if release and closure["release"] != release:
        return f"fetched for {closure['release']}, but the nodes run {release} (system.os_release): fetch again"
    debs = closure["debs"]
    bad = [d["file"] for d in debs
           if not (directory / d["file"]).is_file() or aptroot.sha256_of(directory / d["file"]) != d["sha256"]]
    return f"{len(bad)} .deb(s) of the closure missing or not the signed index's SHA256: {', '.join(bad[:5])}" if bad else None


@dataclass
class Fetching:
    """What one fetch run shares between artifacts: the config, the private apt root."""

    config: ClusterConfig
    cache: "Cache"
    model_from: Optional[str] = None
    checksums: bool = False
    _apt: Optional[aptroot.AptRoot] = None
    _failure: Optional[aptroot.AptError] = None

    def apt(self, groups: list[kit.DebGroup]) -> aptroot.AptRoot:
        """One private apt root for the nodes' release, updated once per run
        (a failure is kept: every group reports it, none retries it)."""
        if self._failure is not None:
            raise self._failure
        if self._apt is None:
            target = kit.release(self.config.system.os_release)
            root = aptroot.AptRoot(self.cache.root / ".aptroot", target)
            repos: list[kit.Repo] = []
            for g in groups:
                repos += [r for r in g.repos if r not in repos]
            try:
                root.prepare(repos)
                root.update()
            except aptroot.AptError as e:
                self._failure = e
                raise
            self._apt = root
        return self._apt


def fetch_all(config: ClusterConfig, cache_dir: Path, *, engine: Optional[str] = None, only: tuple[str, ...] = DEFAULT_KINDS,
              model_from: Optional[str] = None, checksums: bool = False,
              progress: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    cache = Cache(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    run = Fetching(config, cache, model_from, checksums)
    todo = [a for a in wanted(config, engine) if a.kind in only]
    groups = [a.group for a in todo if a.group is not None]
    outcomes = []
    for a in todo:
        if a.kind == "models" and "models" in only and not config.model.in_bundle:
            continue
        if cache.valid(a):
            outcome = Outcome(a, CACHED, f"sha256 {cache.manifest.get(a.path, a.sha256)[:12]} matches")
        else:
            outcome = _fetch_one(a, run, groups)
        outcomes.append(outcome)
        progress(outcome)
    return outcomes


def _fetch_one(a: Artifact, run: Fetching, groups: list[kit.DebGroup]) -> Outcome:
    cache = run.cache
    target = cache.root / a.path
    try:
        detail = FETCHERS[a.kind](a, target, run, groups) or ""
    except (FetchError, aptroot.AptError, kitmodel.ModelFetchError) as e:
        return Outcome(a, FAILED, str(e))
    if a.sha256 and digest(target) != a.sha256:
        # Never recorded, never left where export would copy it from.
        got = digest(target)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return Outcome(a, FAILED, f"checksum mismatch: got {got[:12]}, expected {a.sha256[:12]} (removed)")
    value = cache.record(a)
    return Outcome(a, FETCHED, f"sha256 {value[:12]}" + (f"; {detail}" if detail else ""))


class FetchError(LlmfabError):
    """One artifact could not be fetched; the message says why."""


def _download(a: Artifact, target: Path, run: Fetching, groups) -> None:
    """Resumable download: a .part file grows until complete, then is renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(a.source, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response, open(part, "ab" if have else "wb") as out:
            if have and getattr(response, "status", 206) != 206:
                out.truncate(0)
            shutil.copyfileobj(response, out, 1 << 20)
    except (OSError, ValueError) as e:
        raise FetchError(f"download of {a.source} failed: {e}") from None
    os.replace(part, target)


def _debs(a: Artifact, target: Path, run: Fetching, groups) -> str:
    """The group's packages and their whole closure for the nodes' release (any machine with apt)."""
    if not shutil.which("apt-get"):
        raise FetchError("no apt-get here: fetch .debs on a machine with apt, or in a container (README, Air-gapped)")
    root = run.apt(groups)
    debs = aptroot.fetch_group(a.group, root, target)
    size = sum(d.size for d in debs)
    return f"{len(debs)} .debs ({size / 1e6:.1f} MB) for {root.target.name}, signatures and SHA256 checked"


def _wheels(a: Artifact, target: Path, run: Fetching, groups) -> None:
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
           "--python-version", run.config.system.python_version, "-d", str(target), a.source]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(f"pip could not download {a.source}: {done.stderr.strip()[-300:]}")


def _image(a: Artifact, target: Path, run: Fetching, groups) -> str:
    """docker save | gzip, with the image ID beside it (checked after docker load on the node)."""
    if not shutil.which("docker"):
        raise FetchError("no docker CLI here: save the images on a connected machine with Docker (--only images)")
    if subprocess.run(["docker", "image", "inspect", a.source], capture_output=True).returncode != 0:
        pulled = subprocess.run(["docker", "pull", a.source], capture_output=True, text=True)
        if pulled.returncode != 0:
            raise FetchError(f"docker pull {a.source} failed: {pulled.stderr.strip()[-300:]}")
    image_id = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", a.source],
                              capture_output=True, text=True).stdout.strip()
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with open(part, "wb") as out:
        save = subprocess.Popen(["docker", "save", a.source], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        gz = subprocess.run(["gzip", "-c"], stdin=save.stdout, stdout=out)
        err = save.stderr.read().decode(errors="replace")
        if save.wait() != 0 or gz.returncode != 0:
            raise FetchError(f"docker save {a.source} failed: {err.strip()[-300:]}")
    os.replace(part, target)
    if image_id:
        target.with_name(target.name.removesuffix(".tar.gz") + ".id").write_text(image_id + "\n")
    return f"image {image_id[:19]}"


def _model(a: Artifact, target: Path, run: Fetching, groups) -> str:
    return kitmodel.fetch(run.config, target, run.model_from, checksums=run.checksums or run.config.model.checksums)


FETCHERS: dict[str, Callable[..., Optional[str]]] = {
    "files": _download, "debs": _debs, "wheels": _wheels, "images": _image, "models": _model,
}
