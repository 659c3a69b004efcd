"""The kit manifest: what an air-gapped kit holds, for people and for programs.

``export-bundle`` writes ``artifacts/KIT.json`` and ``artifacts/KIT.txt``:
every artifact the steps need, the step that uses it, where it came from, its
version, digest and size, and the total. Both are listed in the artifacts'
SHA256SUMS like everything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from . import __version__
from .artifacts import Artifact, Cache, digest, wanted
from .config import ClusterConfig

JSON_NAME, TEXT_NAME = "KIT.json", "KIT.txt"


def describe(config: ClusterConfig, root: Path, needed: Optional[list[Artifact]] = None) -> dict:
    """The manifest of the kit at ROOT for CONFIG (every needed artifact must be there)."""
    cache = Cache(root)
    entries = [_entry(a, root, cache) for a in (needed or wanted(config))]
    return {
        "llmfab": __version__, "cluster": config.cluster.name, "release": config.system.os_release,
        "kernels": config.system.kernels, "engine": config.engine.name,
        "artifacts": entries, "total_bytes": sum(e["bytes"] for e in entries),
    }


def _entry(a: Artifact, root: Path, cache: Cache) -> dict:
    target = root / a.path
    entry = {"path": a.path, "kind": a.kind, "used_by": list(a.steps), "source": a.source,
             "sha256": cache.manifest.get(a.path) or digest(target), "bytes": _size(target)}
    if a.kind == "debs":
        closure = target / "closure.json"
        if closure.is_file():
            data = json.loads(closure.read_text())
            entry["source"] = f"{data['release']}/{data['arch']} archives" + "".join(f" + {r['name']}" for r in data["repos"])
            entry["debs"] = [{k: d[k] for k in ("package", "version", "sha256", "size")} for d in data["debs"]]
        else:
            entry["debs"] = [{"file": p.name, "sha256": digest(p), "size": p.stat().st_size}
                             for p in sorted(target.glob("*.deb"))]
        entry["version"] = f"{len(entry['debs'])} packages"
    elif a.kind == "images":
        id_file = target.with_name(target.name.removesuffix(".tar.gz") + ".id")
        entry["version"] = a.source.rsplit(":", 1)[-1]
        entry["image_id"] = id_file.read_text().strip() if id_file.is_file() else ""
    elif a.kind == "models":
        manifest = json.loads((target / "llmfab-manifest.json").read_text())
        entry["version"] = manifest.get("revision") or "default revision"
        entry["files"] = len(manifest["files"])
    else:
        entry["version"] = Path(a.path).name
    return entry


def write(manifest: dict, directory: Path) -> None:
    """KIT.json and KIT.txt into DIRECTORY."""
    (directory / JSON_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    (directory / TEXT_NAME).write_text(text(manifest))


def text(manifest: dict) -> str:
    """The manifest as a table a person reads before carrying the disk in."""
    lines = [f"llmfab kit for cluster {manifest['cluster']} ({manifest['release']}, kernels "
             f"{', '.join(manifest['kernels']) or 'none named'}, engine {manifest['engine']}), llmfab {manifest['llmfab']}",
             ""]
    for e in manifest["artifacts"]:
        lines.append(f"{e['path']:<55} {_human(e['bytes']):>9}  {e['version']}")
        lines.append(f"    source  {e['source']}")
        lines.append(f"    used by {', '.join(e['used_by']) or '-'}; sha256 {e['sha256']}")
        if e.get("image_id"):
            lines.append(f"    image   {e['image_id']}")
        for d in e.get("debs", []):
            name = f"{d['package']} {d['version']}" if "package" in d else d["file"]
            lines.append(f"      {name:<60} {d['sha256']}")
    lines += ["", f"total {_human(manifest['total_bytes'])} in {len(manifest['artifacts'])} artifacts"]
    return "\n".join(lines) + "\n"


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"
