"""Stand-in artifacts for offline bundles: empty .debs, a fake CUDA installer.

The layout is the artifact cache's (see llmfab.bundle): files/, debs/<group>/.
"""

from __future__ import annotations

import platform
import subprocess
import tempfile
from pathlib import Path

from llmfab.steps.nvidia import BUILD_PACKAGES

from .scenario import CUDA, DRIVER, INSTALLER, fake_installer


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


def stand_in_cache(root: Path, docker_packages: list[str]) -> Path:
    """An artifact cache holding what an offline `prep` installs."""
    debs = root / "debs"
    for name in BUILD_PACKAGES:
        build_deb(debs / "build", name)
    build_deb(debs / "headers", f"linux-headers-{platform.release()}")
    build_deb(debs / "fabricmanager", f"nvidia-fabricmanager-{DRIVER.split('.')[0]}", f"{DRIVER}-1")
    for name in docker_packages:
        build_deb(debs / "docker", name)
    build_deb(debs / "container-toolkit", "nvidia-container-toolkit")
    (root / "files").mkdir(parents=True, exist_ok=True)
    (root / "files" / INSTALLER).write_text(fake_installer(DRIVER, CUDA))
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
    return target
