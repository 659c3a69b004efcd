"""Gather what an air-gapped cluster needs into a local artifact cache.

Layout of a cache (the same as a bundle's ``artifacts/``)::

    files/    installers (CUDA .run, Miniconda)
    debs/<group>/   .deb packages with their dependencies, per prep step
    wheels/   Python wheels (nvitop)
    images/   engine and Open WebUI images, `docker save` | gzip
    MANIFEST.json   sha256 of every artifact, so a re-run fetches only what is
                    missing or does not match

Each artifact is fetched by the tool made for it (urllib, apt-get, pip,
docker); what cannot be fetched here is reported with the reason, never
skipped silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from .config import ClusterConfig
from .errors import LlmfabError
from .steps.docker import engine as docker_step
from .deployment import build
from .run import Run
from .steps.engine import archive
from .steps.nvidia import BUILD_PACKAGES

FETCHED, CACHED, FAILED = "fetched", "cached", "failed"
KINDS = ("files", "debs", "wheels", "images")


@dataclass(frozen=True)
class Artifact:
    kind: str  # files | debs | wheels | images
    path: str  # relative to the cache: files/x.run, debs/docker, wheels, images/x.tar.gz
    source: str  # a URL, a package list, a requirement, an image reference
    sha256: Optional[str] = None  # known in advance (config), else recorded on fetch


@dataclass
class Outcome:
    artifact: Artifact
    status: str
    detail: str


def wanted(config: ClusterConfig, engine: Optional[str] = None) -> list[Artifact]:
    """Everything the configured cluster needs offline."""
    n = config.nvidia
    out = [Artifact("files", f"files/{n.installer_name}", n.installer, n.installer_sha256)]
    out.append(Artifact("debs", "debs/build", " ".join(BUILD_PACKAGES)))
    if n.fabricmanager:
        out.append(Artifact("debs", "debs/fabricmanager", f"nvidia-fabricmanager-{n.driver_branch}={n.driver_version}-1"))
    if config.docker.enabled:
        out.append(Artifact("debs", "debs/docker", " ".join(docker_step(Run(config), config.nodes[0])["packages"])))
        if config.docker.container_toolkit:
            out.append(Artifact("debs", "debs/container-toolkit", "nvidia-container-toolkit"))
    if n.nvitop:
        out.append(Artifact("wheels", "wheels", "nvitop"))
    if config.miniconda.enabled:
        url = config.miniconda.installer_url
        out.append(Artifact("files", f"files/{url.rsplit('/', 1)[-1]}", url, config.miniconda.installer_sha256))
    if config.engine.firewall:
        # deploy installs nftables where nft is missing (the engine firewall).
        out.append(Artifact("debs", "debs/firewall", "nftables"))
    image = build(config.with_engine(engine)).profile.image_ref
    out.append(Artifact("images", f"images/{archive(image)}", image))
    return out


class Cache:
    """A directory of artifacts with a manifest of their checksums."""

    def __init__(self, root: Path):
        self.root = root
        self.manifest_path = root / "MANIFEST.json"
        self.manifest: dict[str, str] = json.loads(self.manifest_path.read_text()) if self.manifest_path.exists() else {}

    def valid(self, a: Artifact) -> bool:
        """Present, and matching the expected (or recorded) checksum."""
        target = self.root / a.path
        if not target.exists():
            return False
        want = a.sha256 or self.manifest.get(a.path)
        return want is not None and digest(target) == want

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


def fetch_all(config: ClusterConfig, cache_dir: Path, *, engine: Optional[str] = None, only: tuple[str, ...] = KINDS,
              progress: Callable[[Outcome], None] = lambda o: None) -> list[Outcome]:
    cache = Cache(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for a in wanted(config, engine):
        if a.kind not in only:
            continue
        if cache.valid(a):
            outcome = Outcome(a, CACHED, f"sha256 {cache.manifest.get(a.path, a.sha256)[:12]} matches")
        else:
            outcome = _fetch_one(a, cache, config)
        outcomes.append(outcome)
        progress(outcome)
    return outcomes


def _fetch_one(a: Artifact, cache: Cache, config: ClusterConfig) -> Outcome:
    target = cache.root / a.path
    try:
        FETCHERS[a.kind](a, target, config)
    except FetchError as e:
        return Outcome(a, FAILED, str(e))
    if a.sha256 and digest(target) != a.sha256:
        # Never recorded, never left where export would copy it from.
        got = digest(target)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        return Outcome(a, FAILED, f"checksum mismatch: got {got[:12]}, expected {a.sha256[:12]} (removed)")
    value = cache.record(a)
    return Outcome(a, FETCHED, f"sha256 {value[:12]}")


class FetchError(LlmfabError):
    """One artifact could not be fetched; the message says why."""


def _download(a: Artifact, target: Path, config: ClusterConfig) -> None:
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


def _debs(a: Artifact, target: Path, config: ClusterConfig) -> None:
    """apt-get downloads the packages and their dependencies, for THIS machine's release."""
    release = _os_release()
    wanted_release = config.system.os_release
    if release != wanted_release:
        raise FetchError(f"needs a staging machine running {wanted_release} (this one runs {release}): "
                         "apt resolves dependencies for its own release")
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["apt-get", "install", "-y", "-qq", "--download-only", "--reinstall", "--no-install-recommends",
               "-o", f"Dir::Cache::archives={tmp}", *a.source.split()]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise FetchError(f"apt-get could not download {a.source}: {done.stderr.strip()[-300:]}")
        target.mkdir(parents=True, exist_ok=True)
        for deb in Path(tmp).glob("*.deb"):
            shutil.move(str(deb), target / deb.name)


def _wheels(a: Artifact, target: Path, config: ClusterConfig) -> None:
    target.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--platform", "manylinux2014_x86_64",
           "--python-version", config.system.python_version, "-d", str(target), a.source]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise FetchError(f"pip could not download {a.source}: {done.stderr.strip()[-300:]}")


def _image(a: Artifact, target: Path, config: ClusterConfig) -> None:
    if not shutil.which("docker"):
        raise FetchError("no docker CLI here: install Docker on the staging machine to save images")
    if subprocess.run(["docker", "image", "inspect", a.source], capture_output=True).returncode != 0:
        pulled = subprocess.run(["docker", "pull", a.source], capture_output=True, text=True)
        if pulled.returncode != 0:
            raise FetchError(f"docker pull {a.source} failed: {pulled.stderr.strip()[-300:]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    with open(part, "wb") as out:
        save = subprocess.Popen(["docker", "save", a.source], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        gz = subprocess.run(["gzip", "-c"], stdin=save.stdout, stdout=out)
        err = save.stderr.read().decode(errors="replace")
        if save.wait() != 0 or gz.returncode != 0:
            raise FetchError(f"docker save {a.source} failed: {err.strip()[-300:]}")
    os.replace(part, target)


def _os_release() -> str:
    fields = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    return f"{fields.get('ID', '').strip(chr(34))}-{fields.get('VERSION_ID', '').strip(chr(34))}"


FETCHERS: dict[str, Callable[[Artifact, Path, ClusterConfig], None]] = {
    "files": _download, "debs": _debs, "wheels": _wheels, "images": _image,
}
