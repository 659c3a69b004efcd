"""Stand-in artifacts for offline bundles: empty .debs, a fake CUDA installer.

The layout is the artifact cache's (see llmfab.bundle): files/, debs/<group>/.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from llmfab import kit

from .scenario import fake_installer


# Services the real packages ship, so the systemctl stub knows them once installed.
UNITS = {"docker-ce": "docker", "containerd.io": "containerd", "nvidia-fabricmanager": "nvidia-fabricmanager"}


def build_deb(dest: Path, name: str, version: str = "1.0-llmfab") -> Path:
    """An empty package (plus its systemd unit, if the real one has one), built with the real dpkg-deb."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tree:
        unit = UNITS.get("nvidia-fabricmanager" if name.startswith("nvidia-fabricmanager-") else name)
        if unit:
            service = Path(tree) / "lib" / "systemd" / "system" / f"{unit}.service"
            service.parent.mkdir(parents=True)
            service.write_text(f"[Unit]\nDescription={unit} (stand-in)\n[Service]\nExecStart=/bin/true\n"
                               "[Install]\nWantedBy=multi-user.target\n")
        control = Path(tree) / "DEBIAN" / "control"
        control.parent.mkdir()
        control.write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
            f"Maintainer: llmfab tests <t@localhost>\nDescription: stand-in for {name}\n"
        )
        deb = dest / f"{name}_{version}_all.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, str(deb)],
                       check=True, capture_output=True)
    return deb


def stand_in_cache(root: Path, cfg) -> Path:
    """An artifact cache holding everything the steps of CFG take from a kit (read
    from the same definitions as fetch-artifacts: llmfab.kit), as stand-ins:
    empty .debs, a fake CUDA installer, image archives the docker stub loads."""
    needs = kit.needs(cfg)
    for group in needs.debs.values():
        assert not group.unresolved, group.unresolved
        for spec in group.packages:
            name, _, version = spec.partition("=")
            build_deb(root / "debs" / group.name, name, *([version] if version else []))
    for image in needs.images.values():
        stand_in_image(root, image.ref, image.archive)
    if cfg.nvidia.enabled and cfg.nvidia.nvitop:
        (root / "wheels").mkdir(parents=True, exist_ok=True)
        (root / "wheels" / "nvitop-1.0-py3-none-any.whl").write_bytes(b"a stand-in wheel\n")
    if cfg.nvidia.enabled:
        (root / "files").mkdir(parents=True, exist_ok=True)
        (root / "files" / cfg.nvidia.installer_name).write_text(
            fake_installer(cfg.nvidia.driver_version, cfg.nvidia.cuda_version))
    return root


def stand_in_image(root: Path, ref: str, archive: str) -> Path:
    """An image archive as `docker save | gzip` would leave it, for the docker stub to load."""
    import io
    import tarfile

    target = root / "images" / archive
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w:gz") as tar:
        for name, text in (("image-ref", ref + "\n"), ("image-id", "sha256:" + "a" * 64 + "\n")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    # The image ID fetch-artifacts records beside the archive; the node checks it after docker load.
    target.with_name(archive.removesuffix(".tar.gz") + ".id").write_text("sha256:" + "a" * 64 + "\n")
    return target
