"""The model's weights in an air-gapped kit (``fab fetch-artifacts --model``).

The kit holds ``models/<dir>/`` (``dir`` is the last part of ``model.path``)
with ``llmfab-manifest.json`` in the format the nodes' model step writes and
trusts: every file's name and size, and its sha256 when checksums are asked
for. ``run.sh model`` copies the directory onto the node, where the manifest
makes the copy checkable (``run.sh model-verify``).

Sources: a local directory or a ``file://`` URL (a copy of the model made
elsewhere, a mounted share); an ``http(s)://`` URL of a directory that serves
the model with its ``llmfab-manifest.json`` (a kit or node copy behind any
web server); else the hub's own command-line downloader (``hf`` or
``modelscope``, as ``model.source`` says) when it is installed. Copies and
downloads resume: a file already there with the source's size is kept, a
partial one is finished from where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

from .aptroot import sha256_of
from .config import ClusterConfig
from .errors import LlmfabError

MANIFEST = "llmfab-manifest.json"


class ModelFetchError(LlmfabError):
    """The model could not be placed in the kit; the message says why."""


def fetch(config: ClusterConfig, target: Path, source: str | None, checksums: bool = False) -> str:
    """Make TARGET a complete copy of the model, with its manifest; say what it holds."""
    m = config.model
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST).unlink(missing_ok=True)
    if source and source.startswith(("http://", "https://")):
        _http_tree(source, target)
        origin = source
    elif source:
        _copy_tree(_local_path(source), target)
        origin = source
    else:
        _hub(config, target)
        origin = m.source
    files = write_manifest(target, m.id, origin, m.revision or "", checksums)
    size = sum(f["size"] for f in files)
    return f"{len(files)} files, {size / 1e9:.2f} GB" + (", sha256 of each" if checksums else "")


def _local_path(source: str) -> Path:
    path = Path(unquote(urlparse(source).path)) if source.startswith("file://") else Path(source)
    if not path.is_dir():
        raise ModelFetchError(f"--model-from {source}: not a directory here (a local directory or file:// URL)")
    return path


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy SRC's files into DEST, keeping complete ones and finishing partial ones."""
    for f in sorted(p for p in src.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = f.relative_to(src)
        if any(part.startswith(".") for part in rel.parts):
            continue
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        size = f.stat().st_size
        if out.is_file() and out.stat().st_size == size:
            continue
        part = out.with_name(out.name + ".part")
        have = part.stat().st_size if part.exists() else 0
        with open(f, "rb") as r, open(part, "ab") as w:
            r.seek(have)
            shutil.copyfileobj(r, w, 1 << 20)
        os.replace(part, out)


def _http_tree(base: str, dest: Path) -> None:
    """Download every file the served directory's manifest lists, resuming partial
    ones (HTTP Range) and checking each size (and sha256 where it names one)."""
    base = base.rstrip("/") + "/"
    try:
        with urllib.request.urlopen(base + MANIFEST, timeout=60) as answer:
            listed = json.loads(answer.read())["files"]
    except (OSError, ValueError, KeyError) as e:
        raise ModelFetchError(f"--model-from {base}: no readable {MANIFEST} there ({e})") from None
    for f in listed:
        name, size = f["name"], int(f["size"])
        if name.startswith("/") or ".." in name.split("/"):
            raise ModelFetchError(f"{base}{MANIFEST} names {name!r}, outside the model directory")
        out = dest / name
        if not (out.is_file() and out.stat().st_size == size):
            _http_file(base + urllib.parse.quote(name), out)
        if out.stat().st_size != size or (f.get("sha256") and sha256_of(out) != f["sha256"]):
            out.unlink()
            raise ModelFetchError(f"{name}: not the size or sha256 {MANIFEST} names (removed; run again)")


def _http_file(url: str, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer, open(part, "ab" if have else "wb") as w:
            if have and getattr(answer, "status", 206) != 206:
                w.truncate(0)
            shutil.copyfileobj(answer, w, 1 << 20)
    except OSError as e:
        raise ModelFetchError(f"download of {url} failed (run again: it resumes): {e}") from None
    os.replace(part, out)


def _hub(config: ClusterConfig, target: Path) -> None:
    m = config.model
    tool = shutil.which("modelscope") if m.source == "modelscope" else (shutil.which("hf") or shutil.which("huggingface-cli"))
    if tool is None:
        raise ModelFetchError(f"no {m.source} downloader here: install it (pip install modelscope / huggingface_hub), "
                              "or pass --model-from DIR with a copy of the model")
    if m.source == "modelscope":
        cmd = [tool, "download", "--model", m.id, "--local_dir", str(target)]
    else:
        cmd = [tool, "download", m.id, "--local-dir", str(target)]
    if m.revision:
        cmd += ["--revision", m.revision]
    if subprocess.run(cmd).returncode != 0:
        raise ModelFetchError(f"{' '.join(cmd)} failed (run it again: it resumes)")


def write_manifest(directory: Path, model: str, source: str, revision: str, checksums: bool) -> list[dict]:
    """Write MANIFEST as the nodes' model step does; return its file entries."""
    files = []
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = f.relative_to(directory).as_posix()
        if rel == MANIFEST or any(part.startswith(".") for part in f.relative_to(directory).parts) or rel.endswith(".part"):
            continue
        files.append({"name": rel, "size": f.stat().st_size, "sha256": sha256_of(f) if checksums else ""})
    # Line for line what llmfab__write_manifest prints: the nodes read it with bash.
    entries = ",".join(f'\n    {{"name": "{f["name"]}", "size": {f["size"]}, "sha256": "{f["sha256"]}"}}' for f in files)
    text = (f'{{\n  "llmfab_manifest": 1,\n  "model": {json.dumps(model)},\n  "source": {json.dumps(source)},\n'
            f'  "revision": {json.dumps(revision)},\n  "files": [{entries}\n  ]\n}}\n')
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(text)
    os.replace(tmp, directory / MANIFEST)
    return files
