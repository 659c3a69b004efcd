"""The fleet payload: what provision.sh installs into each new test host.

Built once per fleet in ``<workdir>/payload``::

    provision.sh        run chrooted in each host on its first start
    stubs/              the stub programs and their lib.sh
    fixtures/           field outputs the stubs print, source headers stripped
    client_key.pub      authorized for root, deploy and deploypw
    hosts               "<address> <name>" of every fleet host, for /etc/hosts
    debs/               the fake kernel meta-packages (only if a host wants them)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

HARNESS_DIR = Path(__file__).resolve().parent
STUBS_DIR = HARNESS_DIR / "stubs"
FIELD_FIXTURES = HARNESS_DIR.parent / "fixtures" / "field"

# Installed name in the host -> field fixture it is cut from.
STUB_FIXTURES = {
    "nvidia-smi-no-driver.txt": "gpu/nvidia-smi-fail-couldnt-communicate-after-kernel-upgrade.txt",
    "ibstat.txt": "ib/ibstat-h20-ib-ndr400-active.txt",
}

# Debian's kernel meta-package names: what "hold the kernel" steps hold.
KERNEL_META_PACKAGES = ("linux-image-amd64", "linux-headers-amd64")
KERNEL_META_VERSION = "6.1.0+llmfab1"


def fixture_body(path: Path) -> str:
    """Return a field fixture's output without its source header.

    A fixture starts with ``# source:``/``# what:`` lines ended by ``# ---``,
    then often the prompt line the output was captured with (``$ nvidia-smi``,
    ``# ibstat``); ``[...]`` lines mark where the publisher trimmed. None of
    them is output of the program, so all are dropped.
    """
    lines = path.read_text().splitlines()
    body = lines[lines.index("# ---") + 1 :]
    if body and body[0].startswith(("$ ", "# ")):
        body = body[1:]
    return "".join(f"{line}\n" for line in body if line.strip() != "[...]")


def build_payload(
    dest: Path, *, client_public_key: str, hosts: list[tuple[str, str]], kernel_meta: bool
) -> Path:
    """Build the payload directory at ``dest`` and return it."""
    dest.mkdir(parents=True)
    shutil.copy2(HARNESS_DIR / "provision.sh", dest / "provision.sh")
    shutil.copytree(STUBS_DIR, dest / "stubs")
    _copy_standin(dest / "standin")
    (dest / "fixtures").mkdir()
    for name, source in STUB_FIXTURES.items():
        (dest / "fixtures" / name).write_text(fixture_body(FIELD_FIXTURES / source))
    (dest / "client_key.pub").write_text(client_public_key + "\n")
    (dest / "hosts").write_text("".join(f"{address} {name}\n" for name, address in hosts))
    if kernel_meta:
        build_kernel_meta_debs(dest / "debs")
    return dest


# Captured outputs the stand-in engine prints (torchrun), by path under tests/fixtures.
STANDIN_FIXTURES = ("h200/allreduce-nccl.txt", "field/failures/nccl-net-ib-completion-error-h100-ib0.txt")


def _copy_standin(dest: Path) -> None:
    """The stand-in engine and the fixtures it prints, for hosts that cannot see this checkout.

    A host sees the machine's root through its overlay, but not /tmp (a tmpfs
    of its own) nor other mounts: a checkout there would be invisible, so the
    docker stub falls back to this copy (/usr/lib/llmfab-stubs/standin).
    """
    shutil.copytree(HARNESS_DIR / "standin", dest, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in STANDIN_FIXTURES:
        target = dest / "fixtures" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HARNESS_DIR.parent / "fixtures" / rel, target)


def build_kernel_meta_debs(dest: Path) -> list[Path]:
    """Build one empty .deb per kernel meta-package with dpkg-deb; return them."""
    dest.mkdir(parents=True, exist_ok=True)
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], check=True, capture_output=True, text=True
    ).stdout.strip()
    debs = []
    with tempfile.TemporaryDirectory(dir=dest) as scratch:
        for package in KERNEL_META_PACKAGES:
            tree = Path(scratch) / package
            (tree / "DEBIAN").mkdir(parents=True)
            (tree / "DEBIAN" / "control").write_text(_control(package, arch))
            deb = dest / f"{package}_{KERNEL_META_VERSION}_{arch}.deb"
            subprocess.run(
                ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)],
                check=True,
                capture_output=True,
            )
            debs.append(deb)
    return debs


def _control(package: str, arch: str) -> str:
    """Return the DEBIAN/control text of an empty fake meta-package."""
    return (
        f"Package: {package}\n"
        f"Version: {KERNEL_META_VERSION}\n"
        f"Architecture: {arch}\n"
        "Maintainer: llmfab test harness <llmfab-tests@localhost>\n"
        "Section: kernel\n"
        "Priority: optional\n"
        f"Description: fake {package} for llmfab tests\n"
        " Empty stand-in for Debian's kernel meta-package, installed in test\n"
        " hosts so that holding the kernel has a real package to hold.\n"
    )
