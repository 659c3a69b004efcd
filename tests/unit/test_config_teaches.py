"""Config errors name the field by its whole path, and the NVIDIA installer pair is one NVIDIA publishes."""

from __future__ import annotations

import pytest

from llmfab import config
from llmfab.errors import ConfigError
from llmfab.script import render_phase
from llmfab.run import Run

NODES = [{"name": "n1", "address": "10.0.0.1"}]


def problems(raw: dict) -> list:
    with pytest.raises(ConfigError) as e:
        config.parse({"nodes": NODES, **raw})
    return e.value.problems


def test_an_engine_name_typo_gets_the_engine_fix_not_the_node_name_fix():
    (p,) = problems({"engine": {"name": "vlm"}})
    assert p.field == "engine.name" and "vllm, sglang, trtllm" in p.fix and "n1" not in p.fix


def test_a_node_name_error_still_gets_the_node_name_fix():
    with pytest.raises(ConfigError) as e:
        config.parse({"nodes": [{"name": "N1", "address": "10.0.0.1"}]})
    assert "such as n1" in e.value.problems[0].fix


def test_a_driver_and_cuda_pair_nvidia_does_not_publish_is_refused_with_the_ways_out():
    (p,) = problems({"nvidia": {"driver_version": "550.127.05"}})
    assert "no cuda_12.4.0_550.127.05_linux.run" in p.message and "bundles driver 550.54.14" in p.message
    assert "installer_url" in p.fix and "cuda_toolkit: false" in p.fix


def test_a_pair_is_free_when_the_installer_is_named_or_only_the_driver_is_installed():
    named = config.parse({"nodes": NODES, "nvidia": {"driver_version": "550.127.05",
                                                     "installer_url": "file:///srv/x.run"}})
    assert named.nvidia.installer == "file:///srv/x.run"
    alone = config.parse({"nodes": NODES, "nvidia": {"driver_version": "550.127.05", "cuda_toolkit": False}})
    assert alone.nvidia.installer.endswith("/550.127.05/NVIDIA-Linux-x86_64-550.127.05.run")


def test_without_the_cuda_toolkit_the_driver_step_neither_installs_nor_wants_nvcc():
    c = config.parse({"nodes": NODES, "nvidia": {"cuda_toolkit": False}})
    text = render_phase(Run(c), c.nodes[0], "prep")
    assert "local upgrade=0 toolkit=0" in text and "parts=(--silent)" in text


def test_the_nvidia_docker_and_system_steps_fail_independently():
    c = config.parse({"nodes": NODES})
    text = render_phase(Run(c), c.nodes[0], "prep")
    assert "LLMFAB_GROUPS=(build-prereqs=nvidia nvidia-driver=nvidia" in text
    assert "docker=docker container-toolkit=docker" in text


def test_the_example_config_shows_every_key_of_the_schema():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "configs" / "h20-2x8.yaml").read_text()
    sections = re.split(r"^(?=[a-z_]+:)", text, flags=re.M)
    shown = {s.split(":", 1)[0]: set(re.findall(r"^\s*#?\s*-?\s*([a-z_0-9]+):", s, re.M)) for s in sections if s[:1].isalpha()}
    for name, field in config.ClusterConfig.model_fields.items():
        if name in ("source", "chosen_by"):
            continue
        keys = config.Node.model_fields if name == "nodes" else getattr(field.annotation, "model_fields", {})
        assert name in shown, name
        assert not set(keys) - shown[name], f"{name}: {sorted(set(keys) - shown[name])} not in the example config"
    loaded = config.load(Path(__file__).resolve().parents[2] / "configs" / "h20-2x8.yaml")
    assert loaded.cluster.name == "h20-2x8"
