"""Resolve and download .debs for the nodes' release from any machine with apt.

apt runs here with a configuration rooted in a private directory: its own
sources (the target release's archives, from configs/archives.yaml, plus the
vendor repositories the steps name), its own trusted keys, and an empty dpkg
status, so packages installed on this machine hide no dependency and this
machine's release does not matter. Nothing of the machine's own apt setup is
read (``APT_CONFIG`` names our file first, and it points ``Dir::Etc`` at the
private root); proxies still apply through ``http_proxy``.

What apt verifies: every index's signed InRelease against the release's
keyring (or the vendor's key), each Packages file against the InRelease's
hashes, and each downloaded .deb against the SHA256 in Packages. The closure
with those SHA256 values is written to ``debs/<group>/closure.json`` and
checked again here after the download; the InRelease files travel in
``debs/<group>/InRelease/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import LlmfabError
from .kit import DebGroup, Release, Repo

URI_LINE = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) (?P<hash>\S+)$")


class AptError(LlmfabError):
    """apt could not resolve or download; the message says why."""


@dataclass(frozen=True)
class Deb:
    package: str
    version: str
    file: str
    size: int
    sha256: str
    uri: str


class AptRoot:
    """apt configured in ROOT for one target release and architecture."""

    def __init__(self, root: Path, target: Release, arch: str = "amd64"):
        self.root, self.target, self.arch = root.resolve(), target, arch
        self.config = self.root / "apt.conf"
        self.signed: list[Path] = []  # the InRelease files the last update verified
        self.repos: list[Repo] = []  # the vendor repositories in the sources
        self.failures: dict[str, str] = {}  # vendor repository name -> why it is unusable

    def prepare(self, repos: list[Repo]) -> None:
        """Write the private apt tree: config, sources, keyrings, an empty status."""
        keyring = Path(self.target.keyring)
        if not keyring.is_file() and self.target.keyring_from:
            keyring = self._keyring_from(self.target.keyring_from)
        if not keyring.is_file():
            raise AptError(f"{keyring} is missing: install the {self.target.keyring_package or 'archive keyring'} "
                           f"package (the signing keys of {self.target.name}'s archive)")
        for sub in ("etc/apt/apt.conf.d", "etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
                    "keys", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "var/lib/dpkg/status").write_text("")
        shutil.copyfile(keyring, self.root / "keys" / "archive.gpg")
        lines = [f"deb [arch={self.arch} signed-by={self.root}/keys/archive.gpg] {uri} {' '.join(suites)} {' '.join(comps)}"
                 for uri, suites, comps in self._expanded_sources()]
        self.repos = []
        for repo in repos:
            key = self.root / "keys" / f"{repo.name}.asc"
            if not key.is_file():
                try:
                    _download(repo.key_url, key)
                except AptError as e:
                    # Only the groups from this repository fail; the others are fetched.
                    self.failures[repo.name] = str(e)
                    continue
            self.repos.append(repo)
            lines.append(repo.line.replace("@KEYRING@", str(key)))
        (self.root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
        self.config.write_text(self._apt_conf())

    def _keyring_from(self, name: str) -> Path:
        """The target's keyring file, out of its keyring package as release NAME's
        archive has it (verified against NAME's keyring, which this machine has)."""
        from .kit import release

        got = self.root / "keyring-package" / Path(self.target.keyring).name
        if got.is_file():
            return got
        helper = AptRoot(self.root / f"keyring-from-{name}", release(name), self.arch)
        helper.prepare([])
        helper.update()
        debs = helper.download([self.target.keyring_package], helper.root / "debs")
        deb = next(d for d in debs if d.package == self.target.keyring_package)
        tree = helper.root / "tree"
        done = subprocess.run(["dpkg-deb", "-x", str(helper.root / "debs" / deb.file), str(tree)], capture_output=True, text=True)
        inside = tree / self.target.keyring.lstrip("/")
        if done.returncode != 0 or not inside.is_file():
            raise AptError(f"{deb.file} from {name} holds no {self.target.keyring}: {done.stderr.strip()[-200:]}")
        got.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(inside, got)
        return got

    def _expanded_sources(self):
        # One line per suite: apt's one-line format takes one suite per line.
        for uri, suites, comps in self.target.sources:
            for suite in suites:
                yield uri, (suite,), comps

    def _apt_conf(self) -> str:
        r = self.root
        settings = {
            "Dir::Etc": f"{r}/etc/apt", "Dir::Etc::main": f"{r}/etc/apt/apt.conf.d/none",
            "Dir::Etc::parts": f"{r}/etc/apt/apt.conf.d", "Dir::Etc::sourcelist": f"{r}/etc/apt/sources.list",
            "Dir::Etc::sourceparts": f"{r}/etc/apt/sources.list.d", "Dir::Etc::preferences": f"{r}/etc/apt/preferences",
            "Dir::Etc::preferencesparts": f"{r}/etc/apt/preferences.d", "Dir::Etc::trusted": f"{r}/etc/apt/trusted.gpg",
            "Dir::Etc::trustedparts": f"{r}/etc/apt/trusted.gpg.d", "Dir::State": f"{r}/var/lib/apt",
            "Dir::State::status": f"{r}/var/lib/dpkg/status", "Dir::Cache": f"{r}/var/cache/apt",
            "Dir::Log": f"{r}/var/log/apt", "APT::Architecture": self.arch, "APT::Install-Recommends": "false",
            "APT::Install-Suggests": "false", "Acquire::Languages": "none", "Acquire::http::Timeout": "30",
            "Acquire::https::Timeout": "30", "APT::Get::AllowUnauthenticated": "false",
            "Acquire::AllowInsecureRepositories": "false",
            # Running as root, apt would download as _apt, who may not enter a private directory.
            "APT::Sandbox::User": "root" if os.geteuid() == 0 else "",
        }
        text = "".join(f'{k} "{v}";\n' for k, v in settings.items() if v)
        return text + f'APT::Architectures {{ "{self.arch}"; }};\n'

    def apt(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "APT_CONFIG": str(self.config), "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.run(["apt-get", "-q", *args], capture_output=True, text=True, env=env)

    def update(self) -> list[Path]:
        """apt-get update (signatures checked); the InRelease files it verified.
        A vendor repository that fails is recorded in ``failures`` (its groups
        fail, the others go on); a failure of the release's own archive stops here."""
        done = self.apt("update")
        problems = [line for line in (done.stdout + done.stderr).splitlines()
                    if line.startswith(("E:", "Err:")) or line.startswith(("W: Failed to fetch", "W: GPG error"))]
        archive = []
        for line in problems:
            repo = next((r for r in self.repos if _uri(r.line) in line), None)
            if repo is None:
                archive.append(line)
            else:
                self.failures[repo.name] = (self.failures.get(repo.name, "") + " " + line).strip()[-400:]
        if archive or (done.returncode != 0 and not problems):
            raise AptError("apt-get update failed: " + "; ".join(archive or [done.stderr.strip()])[-600:])
        self.signed = sorted((self.root / "var/lib/apt/lists").glob("*InRelease"))
        return self.signed

    def resolve(self, packages: list[str]) -> list[Deb]:
        """The packages and their whole dependency closure (nothing counts as installed)."""
        done = self.apt("install", "--print-uris", "-y", "-qq", *packages)
        if done.returncode != 0:
            raise AptError(f"apt could not resolve {' '.join(packages)} for {self.target.name}: "
                           + done.stderr.strip()[-600:])
        found = []
        for line in done.stdout.splitlines():
            m = URI_LINE.match(line.strip())
            if m:
                package, version = m["file"].split("_")[:2]
                found.append((package, version.replace("%3a", ":"), m["file"], int(m["size"]), m["uri"]))
        # --print-uris names MD5 sums; the SHA256 comes from the same signed index.
        sha = self._sha256s([f"{p}={v}" for p, v, *_ in found])
        return [Deb(p, v, f, size, sha[(p, v)], uri) for p, v, f, size, uri in found]

    def _sha256s(self, specs: list[str]) -> dict[tuple[str, str], str]:
        if not specs:
            return {}
        env = {**os.environ, "APT_CONFIG": str(self.config), "LC_ALL": "C"}
        done = subprocess.run(["apt-cache", "show", "--no-all-versions", *specs], capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise AptError(f"apt-cache show failed: {done.stderr.strip()[-300:]}")
        out = {}
        for stanza in done.stdout.split("\n\n"):
            fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
            if "SHA256" in fields:
                out[(fields["Package"], fields["Version"])] = fields["SHA256"]
        return out

    def download(self, packages: list[str], dest: Path) -> list[Deb]:
        """Download the closure of PACKAGES into DEST, each .deb checked against its SHA256."""
        debs = self.resolve(packages)
        (dest / "partial").mkdir(parents=True, exist_ok=True)
        done = self.apt("install", "--download-only", "-y", "-qq", "-o", f"Dir::Cache::archives={dest}", *packages)
        shutil.rmtree(dest / "partial", ignore_errors=True)
        (dest / "lock").unlink(missing_ok=True)
        if done.returncode != 0:
            raise AptError(f"apt could not download {' '.join(packages)}: {done.stderr.strip()[-600:]}")
        for deb in debs:
            path = dest / deb.file
            if not path.is_file() or sha256_of(path) != deb.sha256:
                raise AptError(f"{deb.file}: missing or not the SHA256 the signed index names ({deb.sha256[:12]})")
        return debs


def fetch_group(group: DebGroup, root: AptRoot, dest: Path) -> list[Deb]:
    """Fetch GROUP through ROOT (prepared and updated) into DEST: the .debs,
    closure.json and the InRelease files apt verified."""
    if group.unresolved:
        raise AptError("; ".join(group.unresolved))
    failed = [f"{r.name}: {root.failures[r.name]}" for r in group.repos if r.name in root.failures]
    if failed:
        raise AptError("the repository these packages come from is unusable: " + "; ".join(failed))
    staging = dest.with_name(dest.name + ".part")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    debs = root.download(group.packages, staging)
    (staging / "InRelease").mkdir()
    for f in root.signed:
        shutil.copyfile(f, staging / "InRelease" / f.name)
    (staging / "closure.json").write_text(json.dumps({
        "release": root.target.name, "arch": root.arch, "packages": group.packages,
        "repos": [asdict(r) for r in group.repos], "debs": [asdict(d) for d in debs],
    }, indent=2) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(staging, dest)
    return debs


def _uri(line: str) -> str:
    """The URI of a one-line sources entry (after its [options])."""
    return line.split("]", 1)[-1].split()[1] if "]" in line else line.split()[1]


def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            target.write_bytes(response.read())
    except (OSError, ValueError) as e:
        raise AptError(f"the signing key {url} could not be downloaded: {e}") from None


def sha256_of(path: Path) -> str:
    """The sha256 of one file, as sha256sum prints it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
