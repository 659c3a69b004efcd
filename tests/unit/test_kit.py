"""The kit: what it must hold is read from the steps, checked before export, and described."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmfab import aptroot, artifacts, bundle, config, kit, kitmanifest, kitmodel

REPO = Path(__file__).resolve().parents[2]
NODES = [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}]


def cluster(**extra):
    return config.parse({"nodes": NODES, "system": {"kernels": ["5.15.0-119-generic", "5.15.0-124-generic"]}, **extra})


class TestNeedsReadFromTheSteps:
    def test_every_group_the_steps_install_is_needed_with_the_steps_that_use_it(self):
        groups = kit.needs(cluster()).debs
        assert list(groups) == ["build", "headers", "python", "fabricmanager", "docker", "container-toolkit", "firewall"]
        assert groups["python"].packages == ["python3-venv", "python3-pip"]
        assert groups["python"].steps == ["nvitop", "model-download"]
        assert groups["fabricmanager"].packages == ["nvidia-fabricmanager-550=550.54.14-1"]

    def test_the_headers_are_those_of_every_configured_kernel(self):
        headers = kit.needs(cluster()).debs["headers"]
        assert headers.packages == ["linux-headers-5.15.0-119-generic", "linux-headers-5.15.0-124-generic"]

    def test_without_kernels_the_headers_are_unresolved_and_say_which_key_to_set(self):
        cfg = config.parse({"nodes": NODES})
        (problem,) = kit.needs(cfg).debs["headers"].unresolved
        assert "set system.kernels" in problem
        gaps = dict((a.path, p) for a, p in artifacts.missing(cfg, Path("/nonexistent")))
        assert "set system.kernels" in gaps["debs/headers"]

    def test_vendor_repositories_are_named_for_the_target_release(self):
        docker = kit.needs(cluster(system={"os_release": "debian-12", "kernels": ["6.1.0-28-amd64"]})).debs["docker"]
        (repo,) = docker.repos
        assert repo.name == "docker" and repo.line.startswith("deb [arch=amd64 signed-by=@KEYRING@] https://")
        assert repo.line.endswith("/linux/debian bookworm stable") and repo.key_url.endswith("/linux/debian/gpg")

    def test_switching_a_feature_off_drops_its_groups(self):
        groups = kit.needs(cluster(nvidia={"enabled": False}, docker={"enabled": False})).debs
        assert sorted(groups) == ["firewall", "python"]

    def test_both_images_come_from_the_steps_that_load_them(self):
        images = kit.needs(cluster(engine={"name": "sglang"})).images
        assert [(i.ref, i.steps) for i in images.values()] == [
            ("lmsysorg/sglang:v0.4.4-cu125", ["engine-image"]), ("ghcr.io/open-webui/open-webui:v0.12.4", ["webui-image"])]

    def test_with_serving_groups_the_routers_image_is_needed_too(self):
        cfg = config.parse({"nodes": NODES + [{"name": "n3", "address": "10.0.0.3"}, {"name": "n4", "address": "10.0.0.4"}],
                            "system": {"kernels": ["5.15.0-119-generic"]}, "serving": {"group_size": 2}})
        images = kit.needs(cfg).images
        assert images["llmfab/vllm-router:0.1.17"].steps == ["router-image"]

    def test_a_new_steps_group_is_picked_up_without_a_second_list(self):
        script = ('step_new_thing() {\n  local pkg=foo version=1.2-3\n'
                  '  llmfab_have foo || llmfab_apt_install extras "$pkg=$version" bar-$OS_CODENAME # why\n}\n')
        found = kit.scan(script, kit.release("ubuntu-22.04"), [], kit.Needs())
        assert found.debs["extras"].packages == ["foo=1.2-3", "bar-jammy"]
        assert found.debs["extras"].steps == ["new-thing"]


def complete_kit(root: Path, cfg) -> Path:
    for group in kit.needs(cfg).debs.values():
        for spec in group.packages:
            name, _, version = spec.partition("=")
            path = root / "debs" / group.name / f"{name}_{version or '1.0'}_all.deb"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"deb " + name.encode())
    for image in kit.needs(cfg).images.values():
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "images" / image.archive).write_bytes(b"image " + image.ref.encode())
        (root / "images" / image.archive.replace(".tar.gz", ".id")).write_text("sha256:" + "b" * 64 + "\n")
    (root / "files").mkdir(parents=True, exist_ok=True)
    (root / "files" / cfg.nvidia.installer_name).write_bytes(b"#!/bin/sh\n")
    (root / "wheels").mkdir(exist_ok=True)
    (root / "wheels" / "nvitop-1.0-py3-none-any.whl").write_bytes(b"wheel")
    return root


class TestExportChecksTheKit:
    def test_a_cache_with_one_dummy_file_is_refused_naming_everything_missing(self, tmp_path):
        cache = tmp_path / "cache"
        (cache / "debs" / "docker").mkdir(parents=True)
        (cache / "debs" / "docker" / "dummy.deb").write_bytes(b"x")
        with pytest.raises(bundle.BundleError) as refused:
            bundle.export(cluster(), tmp_path / "out", artifacts=cache)
        text = str(refused.value)
        assert "debs/docker (docker): no .deb for docker-ce, docker-ce-cli" in text
        assert "debs/headers (build-prereqs): missing" in text
        assert "images/ghcr.io_open-webui_open-webui_v0.12.4.tar.gz (webui-image): missing" in text
        assert not (tmp_path / "out").exists()

    def test_a_deb_that_differs_from_the_closure_apt_resolved_is_refused(self, tmp_path):
        cfg = cluster()
        cache = complete_kit(tmp_path / "cache", cfg)
        deb = next((cache / "debs" / "firewall").glob("*.deb"))
        (cache / "debs" / "firewall" / "closure.json").write_text(json.dumps(
            {"release": "ubuntu-22.04", "arch": "amd64", "repos": [], "packages": ["nftables"],
             "debs": [{"package": "nftables", "version": "1.0", "file": deb.name, "size": 3, "sha256": "0" * 64,
                       "uri": "http://example.invalid/"}]}))
        with pytest.raises(bundle.BundleError, match="debs/firewall .*1 .deb.s. of the closure missing or not"):
            bundle.export(cfg, tmp_path / "out", artifacts=cache)

    def test_debs_fetched_for_another_release_than_the_nodes_are_refused(self, tmp_path):
        cfg = cluster(system={"os_release": "debian-12", "kernels": ["6.1.0-28-amd64"]})
        cache = complete_kit(tmp_path / "cache", cfg)
        (cache / "debs" / "firewall" / "closure.json").write_text(json.dumps(
            {"release": "ubuntu-22.04", "arch": "amd64", "repos": [], "packages": ["nftables"], "debs": []}))
        with pytest.raises(bundle.BundleError, match="fetched for ubuntu-22.04, but the nodes run debian-12"):
            bundle.export(cfg, tmp_path / "out", artifacts=cache)

    def test_a_complete_kit_is_exported_with_its_manifest_listed_in_the_sums(self, tmp_path):
        cfg = cluster()
        cache = complete_kit(tmp_path / "cache", cfg)
        bundle.export(cfg, tmp_path / "out", artifacts=cache)
        shipped = tmp_path / "out" / "artifacts"
        manifest = json.loads((shipped / "KIT.json").read_text())
        paths = [e["path"] for e in manifest["artifacts"]]
        assert "debs/python" in paths and "images/ghcr.io_open-webui_open-webui_v0.12.4.tar.gz" in paths
        assert manifest["total_bytes"] == sum(e["bytes"] for e in manifest["artifacts"]) > 0
        webui = next(e for e in manifest["artifacts"] if e["path"].startswith("images/ghcr.io"))
        assert webui["image_id"] == "sha256:" + "b" * 64 and webui["used_by"] == ["webui-image"]
        listed = (shipped / "SHA256SUMS").read_text()
        assert "  KIT.json\n" in listed and "  KIT.txt\n" in listed
        text = (shipped / "KIT.txt").read_text()
        assert "debs/headers" in text and "linux-headers-5.15.0-124-generic_1.0_all.deb" in text
        assert text.rstrip().splitlines()[-1].startswith("total ")


class TestTheModelInTheKit:
    def test_a_local_copy_is_fetched_resuming_a_partial_file_with_the_nodes_manifest(self, tmp_path):
        src = tmp_path / "tiny"
        (src / "sub").mkdir(parents=True)
        (src / "config.json").write_text("{}")
        (src / "model-00001.safetensors").write_bytes(b"w" * 5000)
        (src / "sub" / "tokenizer.json").write_text("tok")
        cfg = cluster(model={"path": "/models/tiny", "in_bundle": True})
        target = tmp_path / "kit" / "models" / "tiny"
        target.mkdir(parents=True)
        (target / "model-00001.safetensors.part").write_bytes(b"w" * 1000)
        said = kitmodel.fetch(cfg, target, f"file://{src}", checksums=True)
        assert said.startswith("3 files") and "sha256 of each" in said
        assert (target / "model-00001.safetensors").read_bytes() == b"w" * 5000
        text = (target / kitmodel.MANIFEST).read_text()
        # Line for line what the node's bash writes: one file per line.
        assert '\n    {"name": "model-00001.safetensors", "size": 5000, "sha256": "' in text
        assert json.loads(text)["files"][2]["name"] == "sub/tokenizer.json"

    def test_a_served_copy_is_downloaded_over_http_and_a_partial_file_completed(self, tmp_path):
        import functools
        import http.server
        import threading

        src = tmp_path / "served"
        (src / "sub").mkdir(parents=True)
        (src / "model-00001.safetensors").write_bytes(b"w" * 5000)
        (src / "sub" / "tokenizer.json").write_text("tok")
        kitmodel.write_manifest(src, "tiny", "here", "", checksums=True)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(src))
        handler.log_message = lambda *a: None
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            target = tmp_path / "kit" / "models" / "tiny"
            target.mkdir(parents=True)
            (target / "model-00001.safetensors.part").write_bytes(b"w" * 1000)
            cfg = cluster(model={"path": "/models/tiny", "in_bundle": True})
            said = kitmodel.fetch(cfg, target, f"http://127.0.0.1:{server.server_port}/")
        finally:
            server.shutdown()
        assert said.startswith("2 files")
        assert (target / "model-00001.safetensors").read_bytes() == b"w" * 5000
        assert (target / "sub" / "tokenizer.json").read_text() == "tok"

    def test_a_missing_source_says_what_to_pass(self, tmp_path):
        with pytest.raises(kitmodel.ModelFetchError, match="not a directory here"):
            kitmodel.fetch(cluster(), tmp_path / "m", str(tmp_path / "nowhere"))


class TestThePrivateAptRoot:
    def test_reads_nothing_of_this_machines_apt_and_counts_nothing_as_installed(self, tmp_path):
        keyring = tmp_path / "archive.gpg"
        keyring.write_bytes(b"key")
        target = kit.Release("debian-13", "trixie", str(keyring), "", (("http://mirror.invalid/debian", ("trixie",), ("main",)),))
        root = aptroot.AptRoot(tmp_path / "root", target)
        root.prepare([])
        conf = root.config.read_text()
        for key in ("Dir::Etc::parts", "Dir::Etc::main", "Dir::Etc::sourceparts", "Dir::Etc::trustedparts", "Dir::State::status"):
            assert f'{key} "{root.root}/' in conf, key
        assert (root.root / "var/lib/dpkg/status").read_text() == ""
        assert (root.root / "etc/apt/sources.list").read_text() == (
            f"deb [arch=amd64 signed-by={root.root}/keys/archive.gpg] http://mirror.invalid/debian trixie main\n")

    def test_a_missing_keyring_names_the_package_that_has_it(self, tmp_path):
        target = kit.Release("ubuntu-22.04", "jammy", "/nonexistent/ubuntu.gpg", "ubuntu-keyring", ())
        with pytest.raises(aptroot.AptError, match="install the ubuntu-keyring package"):
            aptroot.AptRoot(tmp_path, target).prepare([])


def test_fetch_artifacts_check_lists_what_the_kit_lacks_for_a_config_and_fails(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text("nodes:\n  - {name: n1, address: 10.0.0.1}\nsystem:\n  kernels: [5.15.0-119-generic]\n")
    cache = complete_kit(tmp_path / "kit", config.load(str(cfg_path)))
    (cache / "images" / "ghcr.io_open-webui_open-webui_v0.12.4.tar.gz").unlink()
    run = subprocess.run([sys.executable, "-m", "fabric", "fetch-artifacts", "--config", str(cfg_path), "--cache", str(cache),
                          "--check"], cwd=REPO, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert run.returncode == 1, run.stdout + run.stderr
    assert "missing  images/ghcr.io_open-webui_open-webui_v0.12.4.tar.gz  (for webui-image; missing)" in run.stdout
    assert "ready    debs/headers  (for build-prereqs)" in run.stdout
    assert "11 artifact(s) needed by" in run.stdout and "10 ready" in run.stdout and "1 missing" in run.stdout

