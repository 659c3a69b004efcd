"""Deploy scripts render cleanly for every engine and role, with each command line intact."""

import shlex
import subprocess
from pathlib import Path

import pytest

from llmfab import config as config_mod
from llmfab.deployment import DeploymentError, build
from llmfab.script import render_phase
from llmfab.run import Run
from llmfab.deployment import build as deployment

REPO = Path(__file__).resolve().parents[2]
PHASES = ["deploy", "smoke", "status", "logs", "stop", "check"]


@pytest.fixture(params=["vllm", "sglang", "trtllm"])
def cluster(request):
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.engine.name = request.param
    cfg.engine.api_key = "none" if request.param == "trtllm" else "generate"
    return cfg


def test_every_phase_script_is_clean_under_shellcheck_and_bash_n(cluster, tmp_path):
    paths = []
    for node in cluster.nodes:
        for phase in PHASES:
            path = tmp_path / f"{node.name}-{phase}.sh"
            path.write_text(render_phase(Run(cluster), node, phase))
            subprocess.run(["bash", "-n", str(path)], check=True)
            paths.append(str(path))
    subprocess.run(["shellcheck", "-S", "warning", *paths], check=True)


def test_each_launch_command_reaches_bash_as_one_command_with_every_argument(cluster, tmp_path):
    d = deployment(cluster)
    for node in cluster.nodes:
        for step in d.steps_for(node):
            # The same quoting the templates use: each argv element one shell word.
            line = " ".join(shlex.quote(a) for a in step.argv)
            probe = tmp_path / "argv.sh"
            probe.write_text(f'printf "%s\\0" {line}\n')
            out = subprocess.run(["bash", str(probe)], capture_output=True, check=True).stdout
            assert out.split(b"\0")[:-1] == [a.encode() for a in step.argv]


def test_the_head_waits_for_workers_and_workers_wait_for_the_head():
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    head, worker = cfg.nodes
    head_script = render_phase(Run(cfg), head, "deploy")
    worker_script = render_phase(Run(cfg), worker, "deploy")
    assert "LLMFAB_STEPS=(engine-image engine-api-key engine-files engine-firewall engine-launch engine-cluster engine-serve engine-ready)" in head_script
    assert "llmfab_port_open \"$head\" \"$port\"" in worker_script and "port=6379" in worker_script


def test_a_layout_that_does_not_use_every_gpu_is_refused():
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.engine.options = {"tensor_parallel_size": 8, "pipeline_parallel_size": 1}
    with pytest.raises(DeploymentError, match="16"):
        build(cfg)


def test_an_unknown_engine_option_is_refused_with_a_suggestion():
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.engine.options = {"max_modle_len": 1000}
    with pytest.raises(DeploymentError, match="did you mean 'max_model_len'"):
        build(cfg)


def test_trtllm_keys_are_made_once_per_cluster_root_only_and_only_the_head_gets_the_client_key(tmp_path, monkeypatch):
    import os
    from llmfab import mpikeys
    monkeypatch.setenv("LLMFAB_STATE", str(tmp_path / "state"))
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.engine.name, cfg.engine.api_key = "trtllm", "none"
    head, worker = cfg.nodes
    head_script, worker_script = render_phase(Run(cfg), head, "deploy"), render_phase(Run(cfg), worker, "deploy")
    keys = mpikeys.ensure(cfg.cluster.name)
    assert keys == mpikeys.ensure(cfg.cluster.name)  # made once, reused (bundles and fab deploy agree)
    where = tmp_path / "state" / cfg.cluster.name / "mpi-ssh"
    assert os.stat(where).st_mode & 0o777 == 0o700
    assert all(os.stat(p).st_mode & 0o777 == 0o600 for p in where.iterdir() if not p.name.endswith(".pub"))
    assert "LLMFAB_STEPS=(engine-image engine-ssh engine-mpi-check engine-files engine-firewall engine-launch engine-serve " \
           "engine-ready)" in head_script
    assert keys.client_private in head_script and keys.client_private not in worker_script
    for script in (head_script, worker_script):
        assert keys.client_public in script and keys.host_private in script
    pinned = f"[{head.address}]:2233,[{worker.address}]:2233 " + " ".join(keys.host_public.split()[:2])
    assert pinned in head_script


def test_the_trtllm_head_waits_for_every_workers_sshd_before_mpirun():
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.engine.name, cfg.engine.api_key = "trtllm", "none"
    script = render_phase(Run(cfg), cfg.nodes[0], "deploy")
    serve = script[script.index("step_engine_serve() {"):]
    assert serve.index('llmfab_port_open "${addresses[i]}" "$port"') < serve.index('llmfab_do "\'mpirun')
    assert "addresses=(10.10.0.12)" in serve and "port=2233" in serve
