"""The kit's .debs, fetched for the nodes' release from this machine (Debian 12)
through a private apt root: other releases resolved with their whole closure and
their signatures checked, the running release installed offline on a test host.

Marked ``archives``: these download from the Debian and Ubuntu archives (CI has
that network). They keep to small groups: a few MB each.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmfab import aptroot, artifacts, config as config_mod, kit
from llmfab.script import HEADER, LIBRARY

from .scenario import copy_into

pytestmark = pytest.mark.archives

# No NVIDIA stack, no Docker: the groups left are small (python, firewall).
SMALL = {"nvidia": {"enabled": False}, "docker": {"enabled": False}}


def in_release(uri: str, suite: str) -> str:
    """The name apt gives the InRelease file of URI's SUITE in its lists."""
    return uri.split("://", 1)[1].rstrip("/").replace("/", "_") + f"_dists_{suite}_InRelease"


def small_cluster(release: str):
    return config_mod.parse({"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}],
                             "system": {"os_release": release}, **SMALL})


def test_debian_13_debs_are_fetched_on_debian_12_with_their_whole_closure_and_signed_hashes(tmp_path):
    cfg = small_cluster("debian-13")
    outcomes = artifacts.fetch_all(cfg, tmp_path / "kit", only=("debs",))
    assert {o.artifact.path: o.status for o in outcomes} == {"debs/python": "fetched", "debs/firewall": "fetched"}, \
        [o.detail for o in outcomes]
    firewall = tmp_path / "kit" / "debs" / "firewall"
    closure = json.loads((firewall / "closure.json").read_text())
    packages = {d["package"]: d for d in closure["debs"]}
    assert closure["release"] == "debian-13" and closure["arch"] == "amd64"
    # The closure as a bare trixie needs it: libc6 too, though this machine has its own (nothing counts as installed).
    assert {"nftables", "libnftables1", "libnftnl11", "libc6"} <= set(packages)
    assert packages["libc6"]["version"].startswith("2.41")
    # Each .deb is the one the signed index names, and the InRelease files apt verified travel along.
    for d in closure["debs"]:
        assert aptroot.sha256_of(firewall / d["file"]) == d["sha256"]
    trixie = kit.release("debian-13")
    assert sorted(p.name for p in (firewall / "InRelease").iterdir()) == sorted(
        in_release(uri, suite) for uri, suites, _ in trixie.sources for suite in suites)
    main_archive = in_release(trixie.sources[0][0], "trixie")
    assert "BEGIN PGP SIGNATURE" in (firewall / "InRelease" / main_archive).read_text()
    assert not [a.path for a, _ in artifacts.missing(cfg, tmp_path / "kit") if a.path.startswith("debs/")]
    # A second run finds everything in place and downloads nothing.
    again = artifacts.fetch_all(cfg, tmp_path / "kit", only=("debs",))
    assert {o.status for o in again} == {"cached"}


def test_ubuntu_22_04_resolves_on_debian_12_with_ubuntus_keyring_taken_from_debians_archive(tmp_path):
    root = aptroot.AptRoot(tmp_path / "aptroot", kit.release("ubuntu-22.04"))
    root.prepare([])
    signed = root.update()
    archive_uri = kit.release("ubuntu-22.04").sources[0][0]
    assert in_release(archive_uri, "jammy") in [p.name for p in signed]
    debs = {d.package: d for d in root.resolve(["python3-venv", "python3-pip"])}
    assert {"python3-venv", "python3.10-venv", "python3-pip", "libpython3.10-stdlib", "libc6"} <= set(debs)
    assert all(len(d.sha256) == 64 and d.uri.startswith(f"{archive_uri}/pool/") for d in debs.values())
    if not Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg").exists():
        assert (tmp_path / "aptroot" / "keyring-package" / "ubuntu-archive-keyring.gpg").is_file()


def test_an_archive_signed_by_a_key_the_keyring_lacks_is_refused(tmp_path, monkeypatch):
    archives = tmp_path / "archives.yaml"
    uri = kit.release("debian-13").sources[0][0]
    archives.write_text("debian-13:\n  codename: trixie\n  keyring: /usr/share/keyrings/debian-archive-removed-keys.gpg\n"
                        f"  sources:\n    - uri: {uri}\n      suites: [trixie]\n      components: [main]\n")
    root = aptroot.AptRoot(tmp_path / "aptroot", kit.release("debian-13", archives))
    root.prepare([])
    with pytest.raises(aptroot.AptError, match="NO_PUBKEY|not signed|signatures? (couldn't|could not) be verified"):
        root.update()


def test_bookworm_debs_from_the_kit_install_offline_on_a_test_host_and_a_second_run_has_nothing_to_do(
        fleet_factory, tmp_path):
    # The firewall group only, through the same private root fetch-artifacts uses.
    group = kit.needs(small_cluster("debian-12")).debs["firewall"]
    root = aptroot.AptRoot(tmp_path / "aptroot", kit.release("debian-12"))
    root.prepare(group.repos)
    root.update()
    debs = aptroot.fetch_group(group, root, tmp_path / "kit" / "debs" / "firewall")
    version = next(d.version for d in debs if d.package == "nftables")
    (host,) = fleet_factory(1).hosts
    copy_into(host, tmp_path / "kit", "/root/kit")
    script = HEADER.format(version="test", phase="kit", node="n1", cluster="kit", lock=0) + LIBRARY + (
        "step_kit_firewall() {\n  llmfab_apt_install firewall nftables\n}\n"
        "LLMFAB_STEPS=(kit-firewall)\nllmfab_main \"$@\"\n")
    host.exec("cat > /root/kit.sh", input=script, check=True)
    first = host.exec("LLMFAB_ARTIFACTS=/root/kit bash /root/kit.sh", timeout=300)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "install nftables from the bundle" in first.stdout
    assert host.exec("dpkg-query -W -f '${Version}' nftables").stdout == version
    # apt never asked an archive: the stub saw an install of the kit's files only.
    assert [c.args[0] for c in host.calls("apt-get")] == ["install"]
    second = host.exec("LLMFAB_ARTIFACTS=/root/kit bash /root/kit.sh", timeout=300)
    assert second.returncode == 0 and "installed: nftables" in second.stdout, second.stdout


def test_a_vendor_repository_out_of_reach_fails_only_the_groups_that_come_from_it(tmp_path):
    nowhere = kit.Repo("nowhere", "http://127.0.0.1:9/key.asc", "deb [signed-by=@KEYRING@] http://127.0.0.1:9/repo /")
    root = aptroot.AptRoot(tmp_path / "aptroot", kit.release("debian-13"))
    root.prepare([nowhere])
    root.update()
    assert "could not be downloaded" in root.failures["nowhere"]
    with pytest.raises(aptroot.AptError, match="nowhere: the signing key http://127.0.0.1:9/key.asc could not"):
        aptroot.fetch_group(kit.DebGroup("vendor", ["vendor-tool"], [nowhere]), root, tmp_path / "kit" / "vendor")
    debs = aptroot.fetch_group(kit.DebGroup("firewall", ["nftables"]), root, tmp_path / "kit" / "firewall")
    assert "nftables" in [d.package for d in debs]
