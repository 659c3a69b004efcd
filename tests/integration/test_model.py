"""`fab model` on test hosts: a stand-in hub serves small fake shards to the downloader stubs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from llmfab import config as config_mod
from llmfab.results import parse_record
from llmfab.script import render_phase
from llmfab.run import Run
from llmfab.steps import model as model_steps
from tests.harness.standin.docker_state import DEEPSEEK_R1_CONFIG

from .scenario import REPO, fab, summary

MODEL_ID = "deepseek-ai/DeepSeek-R1"
MODEL = "/models/DeepSeek-R1"
SHARDS = {"model-00001-of-00003.safetensors": 40_000, "model-00002-of-00003.safetensors": 30_000,
          "model-00003-of-00003.safetensors": 20_000}
HUB = "/var/lib/llmfab-stubs/model-hub/repos"
STUB = REPO / "tests" / "harness" / "stubs" / "model-hub"
PORT = "18730"  # the head's transfer service; not the default, so a developer's machine is left alone


def install_downloaders(host) -> None:
    """The downloader stubs where provision.sh puts them (for hosts provisioned before it did)."""
    for name in ("modelscope", "huggingface-cli"):
        if not host.exists(f"/usr/local/bin/{name}"):
            host.exec(f"install -m 0755 /dev/stdin /usr/local/bin/{name}", input=STUB.read_text(), check=True)


def publish(host, model_id: str = MODEL_ID) -> int:
    """Put a small fake repository on the host's stand-in hub; return its size in bytes."""
    repo = f"{HUB}/{model_id}"
    index = {"metadata": {"total_size": sum(SHARDS.values())},
             "weight_map": {f"model.layers.{i}.weight": name for i, name in enumerate(SHARDS)}}
    files = {"config.json": json.dumps(DEEPSEEK_R1_CONFIG), "model.safetensors.index.json": json.dumps(index)}
    host.exec(f"mkdir -p {repo}", check=True)
    for name, text in files.items():
        host.exec(f"cat > {repo}/{name}", input=text, check=True)
    for name, size in SHARDS.items():
        host.exec(f"head -c {size} /dev/urandom > {repo}/{name}", check=True)
    return sum(SHARDS.values()) + sum(len(t) for t in files.values())


def hosts_with_hub(fleet_factory, count: int = 2, publish_on=None):
    """A started fleet whose hosts have the downloaders; the model is on the hub of PUBLISH_ON's hosts (all)."""
    fleet = fleet_factory(count)
    for host in fleet.hosts:
        install_downloaders(host)
    for host in (fleet.hosts if publish_on is None else publish_on(fleet)):
        publish(host)
    return fleet


def model_config(fleet, tmp_path, **model):
    """The fleet's config with the model in MODEL; 1 MB for the free-disk check."""
    return fleet.write_config(tmp_path / "c.yaml", model={"path": MODEL, "size_gb": 0.001, **model})


def sizes(host, path: str = MODEL) -> dict[str, int]:
    out = host.exec(f"cd {path} && find . -type f ! -path '*/.*' -printf '%P %s\\n'", check=True).stdout
    return {name: int(size) for name, size in (line.split() for line in out.splitlines())}


def sums(host, path: str = MODEL) -> str:
    """sha256sum of the model's files (the manifest left out), sorted by name."""
    files = "find . -type f ! -path '*/.*' ! -name llmfab-manifest.json | sort"
    return host.exec(f"cd {path} && sha256sum $({files})", check=True).stdout


def transferred(host) -> int:
    return int((host.read("/var/lib/llmfab-stubs/model-hub/transferred") or "0").strip() or 0)


def test_every_node_downloads_the_model_and_a_second_run_transfers_nothing(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory)
    config = model_config(fleet, tmp_path)
    run = fab("model", "--config", str(config))
    assert run.returncode == 0, run.output
    for host in fleet.hosts:
        got = sizes(host)
        assert {name: got[name] for name in SHARDS} == SHARDS
        manifest = json.loads(host.read(f"{MODEL}/llmfab-manifest.json"))
        assert {f["name"]: f["size"] for f in manifest["files"]} == {n: s for n, s in got.items() if n != "llmfab-manifest.json"}
        assert [c.args[:3] for c in host.calls("modelscope")] == [("download", "--model", MODEL_ID)]
    assert "n1: 5 files" in run.stdout and "n2: 5 files" in run.stdout
    before = [transferred(h) for h in fleet.hosts]

    again = fab("model", "--config", str(config))
    assert again.returncode == 0, again.output
    assert "changed=0" in summary(again), again.stdout
    assert "nothing to transfer" in again.stdout
    assert [transferred(h) for h in fleet.hosts] == before
    assert all(len(h.calls("modelscope")) == 1 for h in fleet.hosts)


def test_an_interrupted_download_is_reported_and_the_next_run_resumes_it(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    (n1,) = fleet.hosts
    install_downloaders(n1)
    total = publish(n1)
    n1.set_state("model-hub/interrupt_after", "2")
    config = model_config(fleet, tmp_path)

    broken = fab("model", "--config", str(config))
    assert broken.returncode == 1
    assert "the download failed (exit 1)" in broken.stdout and "Connection reset by peer" in broken.stdout
    assert not n1.exists(f"{MODEL}/llmfab-manifest.json")

    resumed = fab("model", "--config", str(config))
    assert resumed.returncode == 0, resumed.output
    assert transferred(n1) == total  # no byte was fetched twice
    assert {n: s for n, s in sizes(n1).items() if n in SHARDS} == SHARDS


def test_a_missing_or_wrong_size_shard_is_named_per_node_and_the_next_run_repairs_it(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory)
    n1, n2 = fleet.hosts
    config = model_config(fleet, tmp_path)
    assert fab("model", "--config", str(config)).returncode == 0
    n1.exec(f"rm {MODEL}/model-00002-of-00003.safetensors", check=True)
    n2.exec(f"truncate -s 100 {MODEL}/model-00003-of-00003.safetensors", check=True)

    checked = fab("model", "--verify", "--config", str(config))
    assert checked.returncode == 1
    assert re.search(r"n1 \(127\.0\.0\.11\) failed: .*missing model-00002-of-00003\.safetensors", checked.stdout), checked.stdout
    assert re.search(r"n2 \(127\.0\.0\.12\) failed: .*wrong size model-00003-of-00003\.safetensors "
                     r"\(100 bytes, expected 20000\)", checked.stdout), checked.stdout
    assert all(len(h.calls("modelscope")) == 1 for h in fleet.hosts)  # verify downloads nothing

    repaired = fab("model", "--config", str(config))
    assert repaired.returncode == 0, repaired.output
    assert "remove 1 file(s) whose size differs from the manifest: model-00003-of-00003.safetensors" in repaired.stdout
    for host in fleet.hosts:
        assert {n: s for n, s in sizes(host).items() if n in SHARDS} == SHARDS


def test_nodes_whose_complete_models_differ_are_named(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory)
    n1, n2 = fleet.hosts
    n2.exec(f"head -c 12345 /dev/urandom > {HUB}/{MODEL_ID}/model-00001-of-00003.safetensors", check=True)
    config = model_config(fleet, tmp_path)
    run = fab("model", "--config", str(config))
    assert run.returncode == 1
    assert "n2: model-00001-of-00003.safetensors is 12345 bytes, n1 has 40000" in run.stdout
    assert "the nodes' models differ" in run.output


def test_the_free_disk_check_refuses_a_model_larger_than_the_disk_before_any_download(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, count=1)
    config = model_config(fleet, tmp_path, size_gb=10_000_000)
    run = fab("model", "--config", str(config))
    assert run.returncode == 1
    assert f"not enough disk at {MODEL}: the model needs 10.0 PB" in run.stdout
    assert not fleet.hosts[0].calls("modelscope")


def test_distribute_downloads_once_on_the_head_and_the_worker_pulls_it_with_rsync(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, publish_on=lambda f: f.hosts[:1])  # only the head reaches the hub
    n1, n2 = fleet.hosts
    config = model_config(fleet, tmp_path)
    run = fab("model", "--distribute", "--port", PORT, "--config", str(config))
    assert run.returncode == 0, run.output
    assert sums(n2) == sums(n1)
    assert n1.calls("modelscope") and not n2.calls("modelscope")
    assert re.search(r"pull [0-9.]+ KB from the head \(127\.0\.0\.11\)", run.stdout), run.stdout
    # The transfer service is gone, its one-time password with it, and never shown.
    assert not n1.exists("/run/llmfab/model-rsyncd")
    assert n1.exec("pgrep -f 'rsync --daemon'").returncode == 1
    assert not re.search(r"\b[0-9a-f]{48}\b", run.output)

    again = fab("model", "--distribute", "--port", PORT, "--config", str(config))
    assert again.returncode == 0, again.output
    assert "changed=0" in summary(again), again.stdout
    assert re.search(r"n2 +model-pull: ok \(/models/DeepSeek-R1 is complete .*nothing to transfer", again.stdout)


def test_huggingface_records_the_hubs_sha256_and_checksums_catch_a_changed_byte(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, count=1)
    (n1,) = fleet.hosts
    config = model_config(fleet, tmp_path, source="huggingface", checksums=True)
    run = fab("model", "--config", str(config))
    assert run.returncode == 0, run.output
    assert n1.calls("huggingface-cli")[0].args[:2] == ("download", MODEL_ID)
    manifest = json.loads(n1.read(f"{MODEL}/llmfab-manifest.json"))
    recorded = {f["name"]: f["sha256"] for f in manifest["files"]}
    real = {line.split()[1].removeprefix("./"): line.split()[0] for line in sums(n1).splitlines()}
    assert recorded == real

    n1.exec(f"printf X | dd of={MODEL}/model-00002-of-00003.safetensors bs=1 seek=7 conv=notrunc status=none",
            check=True)
    checked = fab("model", "--verify", "--config", str(config))
    assert checked.returncode == 1
    assert "checksum mismatch model-00002-of-00003.safetensors" in checked.stdout


def test_a_download_goes_on_when_the_connection_drops_and_the_next_run_waits_for_it(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, count=1)
    (n1,) = fleet.hosts
    n1.set_state("model-hub/delay", "2")
    config = model_config(fleet, tmp_path)
    first = subprocess.Popen([sys.executable, "-m", "fabric", "model", "--config", str(config)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not n1.calls("modelscope") and time.monotonic() < deadline:
        time.sleep(0.2)
    first.kill()  # the connection drops; the download runs in a session of its own
    first.wait()

    second = fab("model", "--config", str(config))
    assert second.returncode == 0, second.output
    assert "a download started earlier is still running" in second.stdout
    assert re.search(r"model-download: downloading DeepSeek-R1: .* of 1\.0 MB \(\d+%\)", second.stdout)
    assert len(n1.calls("modelscope")) == 1
    assert {n: s for n, s in sizes(n1).items() if n in SHARDS} == SHARDS


def results(output: str) -> dict[str, tuple[str, str]]:
    """step -> (status, message) from a phase script's record lines."""
    found = {}
    for line in output.splitlines():
        record = parse_record(line)
        if record and record[0] == "result":
            step, status, message = record[1][:3]
            found[step] = (status, message)
    return found


def test_offline_the_same_script_copies_the_weights_from_the_bundle_or_only_verifies(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    (n1,) = fleet.hosts
    publish(n1)
    n1.exec(f"mkdir -p /srv/bundle/artifacts/models && cp -a {HUB}/{MODEL_ID} /srv/bundle/artifacts/models/",
            check=True)
    cfg = config_mod.load(model_config(fleet, tmp_path, in_bundle=True))
    n1.exec("cat > /tmp/model.sh", input=render_phase(Run(cfg), cfg.nodes[0], "model"), check=True)
    copied = n1.exec("LLMFAB_ARTIFACTS=/srv/bundle/artifacts bash /tmp/model.sh")
    assert copied.returncode == 0, copied.stdout + copied.stderr
    assert results(copied.stdout)["model-download"][0] == "changed"
    assert "copy the model from the bundle" in results(copied.stdout)["model-download"][1]
    assert {n: s for n, s in sizes(n1).items() if n in SHARDS} == SHARDS
    assert not n1.calls("modelscope")

    n1.exec(f"rm -rf {MODEL}", check=True)
    cfg.model.in_bundle = False
    n1.exec("cat > /tmp/model.sh", input=render_phase(Run(cfg), cfg.nodes[0], "model"), check=True)
    verified = n1.exec("LLMFAB_ARTIFACTS=/srv/bundle/artifacts bash /tmp/model.sh")
    assert verified.returncode == 1
    steps = results(verified.stdout)
    assert steps["model-download"][0] == "ok" and "the weights are not in the bundle" in steps["model-download"][1]
    assert steps["model-verify"] == ("failed", f"no model at {MODEL} on this node: run fab model")


def test_on_a_shared_file_system_only_the_head_downloads_and_the_others_wait_for_it(
        fleet_factory, tmp_path, monkeypatch):
    # One test host plays both nodes of a shared model directory; its file
    # system is declared shared for the test.
    fleet = hosts_with_hub(fleet_factory, count=1)
    (host,) = fleet.hosts
    fs = host.exec("stat -f -c %T /", check=True).stdout.strip()
    monkeypatch.setattr(model_steps, "SHARED_FILESYSTEMS", [*model_steps.SHARED_FILESYSTEMS, fs])
    cfg = config_mod.load(model_config(fleet, tmp_path))
    cfg.nodes.append(cfg.nodes[0].model_copy(update={"name": "n9", "address": "127.0.0.99"}))
    head, worker = cfg.nodes
    host.exec("cat > /tmp/worker.sh", input=render_phase(Run(cfg), worker, "model"), check=True)
    host.exec("cat > /tmp/head.sh", input=render_phase(Run(cfg), head, "model"), check=True)
    host.exec("setsid bash /tmp/worker.sh >/tmp/worker.out 2>&1 </dev/null &", check=True)

    assert host.exec("bash /tmp/head.sh").returncode == 0
    deadline = time.monotonic() + 30
    while "model-verify" not in results(host.read("/tmp/worker.out") or "") and time.monotonic() < deadline:
        time.sleep(0.5)
    steps = results(host.read("/tmp/worker.out"))
    assert steps["model-download"] == ("ok", f"{MODEL} is on a shared file system ({fs}): the head downloaded it "
                                             "(5 files, 90.5 KB)")
    assert steps["model-verify"][0] == "ok"
    assert len(host.calls("modelscope")) == 1


@pytest.mark.parametrize("source", ["modelscope", "huggingface"])
def test_every_model_script_is_clean_under_shellcheck_and_bash_n(tmp_path, source):
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.model.source = source
    cfg.model.checksums = source == "huggingface"
    paths = []
    for node in cfg.nodes:
        for phase in ("model", "model-verify", "model-serve", "model-pull", "model-unserve"):
            path = tmp_path / f"{node.name}-{phase}.sh"
            path.write_text(render_phase(Run(cfg), node, phase))
            subprocess.run(["bash", "-n", str(path)], check=True)
            paths.append(str(path))
    subprocess.run(["shellcheck", "-S", "warning", *paths], check=True)
