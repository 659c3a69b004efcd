"""Export one self-contained bundle directory per node, for air-gapped clusters.

A node's bundle holds ``run.sh`` (the offline driver), ``steps/<phase>.sh`` (byte
for byte the script ``fab`` would send that node over SSH), ``node.env`` (its
identity and the cluster facts) and ``SHA256SUMS``, which ``run.sh`` checks
before it changes anything. SHA256SUMS also pins ``artifacts/SHA256SUMS``, so
one digest (that of the node's SHA256SUMS, printed by export) names every byte
the node will run or install.

Export replaces only what it made: every directory it writes carries a
``.llmfab-bundle`` marker, and a directory without one is never deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

from . import __version__, kitmanifest, serving
from .aptroot import sha256_of as _sha256
from .artifacts import missing as kit_gaps, wanted as kit_wanted
from .config import ClusterConfig, Node
from .errors import LlmfabError
from .run import Run
from .script import render_phase
from .shell import render
from .steps import PHASES
from .steps.preflight import expect
from .steps.system import identity

BUNDLE_PHASES = ("prep", "check", "deploy", "smoke", "status", "logs", "stop", "model", "model-verify", "webui", "stop-webui",
                 "undo")
PACKAGE = Path(__file__).resolve().parent
# The preflight judge runs on the node with its own python3: the same module fab uses.
CHECK_LIBRARY = ["__init__.py", "checks.py", "cuda.py", "facts/__init__.py", "facts/base.py", "facts/fabricmanager.py",
                 "facts/gpu.py", "facts/ib.py", "facts/net.py", "facts/failures.py", "facts/nccl.py",
                 "facts/system.py"]


MARKER = ".llmfab-bundle"
MARKER_TEXT = "written by llmfab export-bundle; the next export replaces this directory\n"


class BundleError(LlmfabError):
    """The export would overwrite something it did not create."""


@dataclass
class NodeBundle:
    node: Node
    path: Path
    files: list[str]
    tarball: Path | None = None
    # sha256 of the node's SHA256SUMS: one digest for every byte the node uses.
    digest: str = ""


def export(config: ClusterConfig, out: Path, tar: bool = False, artifacts: Path | None = None,
           complete: bool = True) -> list[NodeBundle]:
    """Write every node's bundle under OUT (replacing earlier exports of those nodes).

    ARTIFACTS (an artifact cache, see ``fab fetch-artifacts``) is copied once to
    OUT/artifacts; every node directory links to it. It must hold everything
    the steps take from a kit (COMPLETE; tests of other properties turn it
    off): what is missing is named and nothing is written.
    """
    manifest = None
    if artifacts is not None and complete:
        needed = kit_wanted(config)
        gaps = kit_gaps(config, artifacts, needed=needed)
        if gaps:
            raise BundleError(f"the artifact cache {artifacts} lacks what the steps need offline:\n" + "\n".join(
                f"  {a.path} ({', '.join(a.steps) or a.kind}): {problem}" for a, problem in gaps)
                + "\nfetch them: fab fetch-artifacts --cache " + str(artifacts) + " (--check lists them again)")
        manifest = kitmanifest.describe(config, artifacts, needed)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    targets = [out / node.name for node in config.ranked_nodes()]
    if artifacts is not None:
        targets.append(out / "artifacts")
    for target in targets:
        _refuse_foreign(target)
    pinned = _store_artifacts(artifacts, out / "artifacts", manifest) if artifacts is not None else None
    bundles = [_write_node(config, node, out / node.name, pinned) for node in config.ranked_nodes()]
    if tar:
        for b in bundles:
            b.tarball = _pack(b)
    return bundles


def _refuse_foreign(path: Path) -> None:
    """Stop before replacing a directory (or a link) that no export of llmfab made."""
    if path.is_symlink() or (path.exists() and not (path / MARKER).is_file()):
        raise BundleError(f"{path} exists and was not written by export-bundle (no {MARKER} in it): "
                          "move it away or choose another --out")


def phase_scripts(config: ClusterConfig, node: Node) -> dict[str, str]:
    """Phase -> the script NODE's bundle holds for it: with serving groups a node's
    bundle is its group's, and the router's phases see every group. (The kit's
    needs are read from these very scripts: llmfab/kit.py.)"""
    run, whole = Run(serving.node_config(config, node)), Run(config)
    phases = [p for p in BUNDLE_PHASES if p in PHASES] + serving.router_phases(config, node)
    return {phase: render_phase(whole if phase.startswith("router") else run, node, phase) for phase in phases}


def _write_node(config: ClusterConfig, node: Node, root: Path, artifacts_sums: str | None) -> NodeBundle:
    scripts = phase_scripts(config, node)
    phases = list(scripts)
    run = Run(serving.node_config(config, node))
    config = run.config
    staging = root.with_name(f".{root.name}.llmfab-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "steps").mkdir(parents=True)
    files = {
        "run.sh": render(
            "run.sh.j2", node=node, cluster=config.cluster.name, version=__version__, phases=phases,
            with_artifacts=artifacts_sums is not None,
        ),
        "node.env": identity(run, node)["content"],
        MARKER: MARKER_TEXT,
    }
    for phase, text in scripts.items():
        files[f"steps/{phase}.sh"] = text
    files["check/expect.json"] = json.dumps(asdict(expect(run, node)), indent=2) + "\n"
    for name in CHECK_LIBRARY:
        files[f"check/llmfab/{name}"] = (PACKAGE / name).read_text()
    for name, text in files.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        # Root-only: a deploy script may carry a user-given API key.
        path.chmod(0o700 if name.endswith(".sh") else 0o600)
    for directory in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
        directory.chmod(0o700)
    sums = [f"{_sha256(staging / n)}  {n}\n" for n in sorted(files)]
    if artifacts_sums is not None:
        # The chain: this file pins the artifacts' list, which pins every artifact.
        sums.append(f"{artifacts_sums}  artifacts/SHA256SUMS\n")
        (staging / "artifacts").symlink_to(Path("..") / "artifacts")
    (staging / "SHA256SUMS").write_text("".join(sums))
    (staging / "SHA256SUMS").chmod(0o600)
    # Swap in the finished directory so an interrupted export never leaves half a bundle.
    _replace(staging, root)
    return NodeBundle(node, root, sorted(files) + ["SHA256SUMS"], digest=_sha256(root / "SHA256SUMS"))


def _mark(directory: Path) -> None:
    (directory / MARKER).write_text(MARKER_TEXT)
    (directory / MARKER).chmod(0o600)


def _replace(staging: Path, dest: Path) -> None:
    """Swap STAGING in for DEST, which is absent or an earlier export (checked first)."""
    _refuse_foreign(dest)
    if dest.exists():
        shutil.rmtree(dest)
    os.replace(staging, dest)


def _store_artifacts(cache: Path, dest: Path, manifest: dict | None = None) -> str:
    """Copy the artifact cache once (hard links where possible), list it in SHA256SUMS
    and return that list's own sha256."""
    staging = dest.with_name(".artifacts.llmfab-tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cache, staging, copy_function=_link_or_copy, symlinks=True,
                    ignore=shutil.ignore_patterns("SHA256SUMS", "*.part", MARKER, ".aptroot"))
    links = [p for p in staging.rglob("*") if p.is_symlink()]
    if links:
        shutil.rmtree(staging)
        raise BundleError(f"the artifact cache holds links ({links[0].relative_to(staging)}): "
                          "a bundle carries plain files only")
    _mark(staging)
    if manifest is not None:
        kitmanifest.write(manifest, staging)
    files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
    for directory in [staging, *(p for p in staging.rglob("*") if p.is_dir())]:
        directory.chmod(0o700)
    (staging / "SHA256SUMS").write_text("".join(f"{_sha256(staging / f)}  {f}\n" for f in files))
    _replace(staging, dest)
    return _sha256(dest / "SHA256SUMS")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _pack(bundle: NodeBundle) -> Path:
    """One tarball per node, with the shared artifacts it links to copied in."""
    tarball = bundle.path.with_name(f"llmfab-{bundle.node.name}.tar.gz")
    # Root-only from the first byte: a deploy script may carry the API key.
    tarball.unlink(missing_ok=True)
    fd = os.open(tarball, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", dereference=True) as tar:
        tar.add(bundle.path, arcname=f"llmfab-{bundle.node.name}")
    return tarball
