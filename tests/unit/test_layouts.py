"""Layouts beyond 2 x 8: defaults from the cluster, hints that fit the engine and name the YAML path."""

from __future__ import annotations

import pytest

from llmfab import capacity, config
from llmfab.deployment import DeploymentError, build
from llmfab.models import load_model


def cluster(n: int, **extra) -> config.ClusterConfig:
    c = config.parse({"nodes": [{"name": f"a{i}", "address": f"10.0.0.{i}"} for i in range(1, n + 1)], **extra})
    c.source = "c.yaml"
    return c


@pytest.mark.parametrize("nodes, engine, layout", [
    (4, "vllm", {"tensor_parallel_size": 8, "pipeline_parallel_size": 4}),
    (2, "vllm", {"tensor_parallel_size": 8, "pipeline_parallel_size": 2}),
    (4, "sglang", {"tp_size": 32}),
    (4, "trtllm", {"tp_size": 32, "ep_size": 32, "pp_size": 1}),
])
def test_without_layout_options_every_gpu_of_the_cluster_is_used(nodes, engine, layout):
    # TensorRT-LLM has no verified API key option: it deploys only with api_key: none (issue 11).
    d = build(cluster(nodes, engine={"api_key": "none"} if engine == "trtllm" else {}), engine)
    assert {k: d.options[k] for k in layout} == layout


def test_a_layout_in_the_config_is_kept_and_a_wrong_one_names_the_yaml_path_and_file():
    c = cluster(4, engine={"options": {"tensor_parallel_size": 8, "pipeline_parallel_size": 2}})
    with pytest.raises(DeploymentError) as e:
        build(c)
    assert "engine.options.pipeline_parallel_size" in str(e.value) and "c.yaml" in str(e.value)
    assert "pipeline_parallel_size: 4" in str(e.value)


def test_an_engine_without_pipeline_parallelism_is_never_told_to_use_pp():
    spec = load_model("deepseek-r1")
    p = capacity.plan(spec, dtype="fp8", kv_dtype="fp8", nodes=3, gpus_per_node=8, gpu_mem_gb=96, tp=24, pp=1,
                      mem_fraction=0.9, context_len=65536, engine="sglang", pp_supported=False)
    assert p.verdict == "refuse"
    assert not any("PP3" in s for s in p.suggestions) and "no pipeline parallelism" in p.suggestions[0]
    with_pp = capacity.plan(spec, dtype="fp8", kv_dtype="fp8", nodes=3, gpus_per_node=8, gpu_mem_gb=96, tp=24, pp=1,
                            mem_fraction=0.9, context_len=65536, engine="vllm")
    assert any("TP8 x PP3" in s for s in with_pp.suggestions)
