"""fetch-artifacts: each artifact fetched once, checked by sha256, failures named."""

from pathlib import Path

from llmfab import artifacts, config, kit


def cluster(installer: Path, sha: str | None = None):
    nvidia = {"installer_url": f"file://{installer}"}
    if sha:
        nvidia["installer_sha256"] = sha
    return config.parse({"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}],
                         "nvidia": nvidia})


def test_an_installer_is_fetched_once_then_found_in_the_cache(tmp_path):
    installer = tmp_path / "cuda.run"
    installer.write_bytes(b"#!/bin/sh\necho installer\n")
    cfg = cluster(installer)
    first = artifacts.fetch_all(cfg, tmp_path / "cache", only=("files",))
    assert [o.status for o in first] == [artifacts.FETCHED]
    assert (tmp_path / "cache" / first[0].artifact.path).read_bytes() == installer.read_bytes()
    second = artifacts.fetch_all(cfg, tmp_path / "cache", only=("files",))
    assert [o.status for o in second] == [artifacts.CACHED]


def test_a_corrupted_artifact_is_fetched_again(tmp_path):
    installer = tmp_path / "cuda.run"
    installer.write_bytes(b"payload")
    cfg = cluster(installer)
    (o,) = artifacts.fetch_all(cfg, tmp_path / "cache", only=("files",))
    (tmp_path / "cache" / o.artifact.path).write_bytes(b"tampered")
    (again,) = artifacts.fetch_all(cfg, tmp_path / "cache", only=("files",))
    assert again.status == artifacts.FETCHED
    assert (tmp_path / "cache" / o.artifact.path).read_bytes() == b"payload"


def test_a_known_checksum_that_does_not_match_is_a_failure(tmp_path):
    installer = tmp_path / "cuda.run"
    installer.write_bytes(b"payload")
    (o,) = artifacts.fetch_all(cluster(installer, "0" * 64), tmp_path / "cache", only=("files",))
    assert o.status == artifacts.FAILED and "checksum mismatch" in o.detail


def test_what_cannot_be_fetched_is_reported_with_the_reason(tmp_path, monkeypatch):
    archives = tmp_path / "archives.yaml"
    archives.write_text("ubuntu-22.04:\n  codename: jammy\n  keyring: /nonexistent/ubuntu.gpg\n"
                        "  keyring_package: ubuntu-keyring\n  sources: []\n")
    monkeypatch.setattr(kit, "ARCHIVES", archives)
    cfg = cluster(tmp_path / "missing.run")
    outcomes = {o.artifact.path: o for o in artifacts.fetch_all(cfg, tmp_path / "cache", only=("files", "debs"))}
    assert outcomes["files/cuda_12.4.0_550.54.14_linux.run"].status == artifacts.FAILED
    assert "missing.run" in outcomes["files/cuda_12.4.0_550.54.14_linux.run"].detail
    # Without the archive's keyring apt could verify nothing: every group fails, naming the package to install.
    debs = [o for path, o in outcomes.items() if path.startswith("debs/")]
    assert debs and all(o.status == artifacts.FAILED and "install the ubuntu-keyring package" in o.detail for o in debs)


def test_the_engine_image_and_open_webuis_are_part_of_what_a_bundle_needs():
    cfg = cluster(Path("/nonexistent"))
    images = [a for a in artifacts.wanted(cfg, "sglang") if a.kind == "images"]
    assert [(a.source, a.steps) for a in images] == [("lmsysorg/sglang:v0.4.4-cu125", ("engine-image",)),
                                                    ("ghcr.io/open-webui/open-webui:v0.12.4", ("webui-image",))]


def test_offline_bundles_carry_nftables_for_the_engine_firewall():
    cfg = config.parse({"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}]})
    assert ("debs", "debs/firewall", "nftables") in [(a.kind, a.path, a.source) for a in artifacts.wanted(cfg)]
