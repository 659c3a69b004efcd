"""The capacity planner, checked against figures computed by hand.

Cluster of the project: 2 nodes x 8 H20, 96 GB each (taken as 96 x 10^9 B), fraction 0.9,
DeepSeek-R1 (61 layers, MLA latent 512 + rope 64 = 576 values per layer per token),
full context 163,840 tokens, overhead reserve 4 GB per GPU, BF16 KV cache unless stated.
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from llmfab.capacity import ENGINES, CapacityPlan, gb_from_mib, known_models, load_model, plan, render_plan
from llmfab.models import ModelSpec, UnknownModelError

R1 = load_model("deepseek-r1")
CLUSTER = dict(nodes=2, gpus_per_node=8, gpu_mem_gb=96, mem_fraction=0.9, kv_dtype="bf16", context_len=163_840)


def r1(dtype: str, engine: str, tp: int, pp: int, **overrides) -> CapacityPlan:
    return plan(R1, dtype=dtype, engine=engine, tp=tp, pp=pp, **{**CLUSTER, **overrides})


# --- the two headline layouts, FP8 ------------------------------------------------------------


def test_fp8_r1_on_sglang_tp16_keeps_44_gb_per_gpu_for_kv_and_632_720_tokens():
    p = r1("fp8", "sglang", tp=16, pp=1)
    assert p.budget_gb == pytest.approx(86.4)  # 0.9 x 96 GB
    assert p.weights_per_gpu_gb == pytest.approx(41.9375)  # 671 GB / (16 x 1)
    # SGLang's fraction covers weights + KV pool only; activations use the other 10%:
    assert p.kv_cache_gb == pytest.approx(44.4625)  # 86.4 - 41.9375
    assert p.kv_bytes_per_token == 70_272  # 61 x (512 + 64) x 2 B
    assert p.kv_bytes_per_token_per_gpu == 70_272  # latent not split by TP: all 61 layers on every rank
    assert p.kv_copies == 16  # one copy per TP rank
    assert p.pool_tokens == 632_720  # floor(44,462,500,000 B / 70,272 B) = floor(632,720.002)
    assert p.full_requests == pytest.approx(3.8618, abs=1e-4)  # 632,720 / 163,840


def test_fp8_r1_on_sglang_tp16_warns_that_fewer_than_four_full_length_requests_fit():
    p = r1("fp8", "sglang", tp=16, pp=1)
    assert p.verdict == "warn"  # 3.86 < 4 full-length requests
    assert any("3.9 full-length" in r for r in p.reasons)
    assert any("fp8_e5m2" in s for s in p.suggestions)  # FP8 KV halves 70,272 B -> 35,136 B per token


def test_fp8_r1_on_vllm_tp8_pp2_keeps_40_gb_per_gpu_and_holds_almost_seven_full_requests():
    p = r1("fp8", "vllm", tp=8, pp=2)
    assert p.weights_per_gpu_gb == pytest.approx(41.9375)  # 671 GB / (8 x 2)
    # vLLM's fraction covers everything, so the reserve comes out of it:
    assert p.kv_cache_gb == pytest.approx(40.4625)  # 0.9 x 96 - 41.9375 - 4
    assert p.layers_per_gpu == 31  # 61 layers over 2 stages: 31 + 30, the larger stage limits the pool
    assert p.kv_bytes_per_token_per_gpu == 35_712  # 31 x 576 x 2 B
    assert p.kv_copies == 8  # replicated on the 8 TP ranks of a stage
    assert p.pool_tokens == 1_133_022  # floor(40,462,500,000 / 35,712) = floor(1,133,022.5)
    assert p.full_requests == pytest.approx(6.9154, abs=1e-4)  # 1,133,022 / 163,840
    assert p.verdict == "ok"  # >= 4 requests and >= 8 GB of KV per GPU
    assert p.reasons == [] and p.suggestions == []


def test_trtllm_takes_its_fraction_of_the_memory_left_after_weights_and_buffers():
    p = r1("fp8", "trtllm", tp=16, pp=1)
    assert p.kv_cache_gb == pytest.approx(45.05625)  # 0.9 x (96 - 41.9375 - 4)
    assert p.pool_tokens == 641_169  # floor(45,056,250,000 / 70,272) = floor(641,169.3)


# --- BF16 does not fit ------------------------------------------------------------------------


def test_bf16_r1_on_sglang_tp16_is_refused_with_two_gb_left_and_fp8_suggested():
    p = r1("bf16", "sglang", tp=16, pp=1)
    assert p.weights_per_gpu_gb == pytest.approx(83.875)  # 1342 GB / 16
    assert p.kv_cache_gb == pytest.approx(2.525)  # 86.4 - 83.875: NOTES §1.15's "about 2 GB"
    assert p.pool_tokens == 35_931  # floor(2,525,000,000 / 70,272) = floor(35,931.8)
    assert p.verdict == "refuse"  # 35,931 tokens < one 163,840-token request
    assert any("fewer than one 163,840-token request" in r for r in p.reasons)
    assert any("FP8 checkpoint" in s and "41.9 GB" in s for s in p.suggestions)  # 671 / 16 = 41.94


def test_bf16_r1_on_vllm_tp8_pp2_is_refused_because_weights_and_reserve_exceed_the_budget():
    p = r1("bf16", "vllm", tp=8, pp=2)
    assert p.kv_cache_gb == pytest.approx(-1.475)  # 86.4 - 83.875 - 4
    assert p.pool_tokens == 0
    assert p.verdict == "refuse"
    assert any("87.9 GB needed" in r for r in p.reasons)  # 83.875 + 4
    assert any("FP8 checkpoint" in s for s in p.suggestions)
    assert any("3 x 8 GPUs as TP8 x PP3" in s for s in p.suggestions)  # 1342/24 = 55.9 GB: fits


# --- levers -------------------------------------------------------------------------------------


def test_a_lower_context_length_raises_concurrency():
    full = r1("fp8", "sglang", tp=16, pp=1)
    short = r1("fp8", "sglang", tp=16, pp=1, context_len=32_768)
    assert short.pool_tokens == full.pool_tokens  # the pool does not depend on the context length
    assert short.full_requests == pytest.approx(19.309, abs=1e-3)  # 632,720 / 32,768
    assert short.full_requests > full.full_requests
    assert short.verdict == "ok"


def test_an_fp8_kv_cache_halves_the_bytes_per_token_and_doubles_the_pool():
    p = r1("fp8", "sglang", tp=16, pp=1, kv_dtype="fp8")
    assert p.kv_bytes_per_token == 35_136  # 61 x 576 x 1 B
    assert p.pool_tokens == 1_265_440  # floor(44,462,500,000 / 35,136) = floor(1,265,440.0)
    assert p.verdict == "ok"  # 1,265,440 / 163,840 = 7.7 requests


def test_the_runbooks_max_total_tokens_caps_all_requests_together_and_refuses_full_context():
    p = r1("fp8", "sglang", tp=16, pp=1, max_total_tokens=65_536)
    assert p.fit_tokens == 632_720 and p.pool_tokens == 65_536
    assert p.verdict == "refuse"  # 65,536 < 163,840: not even one full-length request
    assert any("caps the KV pool of ALL requests" in r for r in p.reasons)
    assert any("drop --max-total-tokens" in s for s in p.suggestions)


def test_a_memory_fraction_that_starves_sglang_activations_is_a_warning():
    p = r1("fp8", "sglang", tp=16, pp=1, mem_fraction=0.97, context_len=32_768)
    # (1 - 0.97) x 96 = 2.88 GB outside the static pool < 4 GB reserve
    assert p.verdict == "warn"
    assert any("2.9 GB" in r and "activations" in r for r in p.reasons)


# --- layouts that cannot start ----------------------------------------------------------------


def test_tp_times_pp_must_equal_the_number_of_gpus_or_the_plan_is_refused():
    p = r1("fp8", "vllm", tp=8, pp=1)  # 8 of 16 GPUs
    assert p.verdict == "refuse"
    assert any("TP8 x PP1 = 8 GPUs" in r and "2 x 8 = 16" in r for r in p.reasons)
    assert p.suggestions == ["use a layout of all 16 GPUs: TP16 x PP1, TP8 x PP2, TP4 x PP4, TP2 x PP8"]


def test_tp_must_divide_the_attention_heads():
    p = plan(R1, dtype="fp8", engine="vllm", tp=24, pp=1, **{**CLUSTER, "nodes": 3})
    assert p.verdict == "refuse"  # 128 heads / 24
    assert any("not divisible by TP24" in r for r in p.reasons)


def test_a_context_longer_than_the_model_supports_is_refused():
    p = r1("fp8", "vllm", tp=8, pp=2, context_len=200_000)
    assert p.verdict == "refuse"
    assert any("163,840" in r for r in p.reasons)
    assert p.suggestions == ["set --max-model-len to 163,840 or less"]


def test_sglang_with_pipeline_parallelism_warns_about_its_version():
    p = r1("fp8", "sglang", tp=8, pp=2, context_len=32_768)
    assert p.verdict == "warn"
    assert any("--pp-size" in r for r in p.reasons)


def test_unknown_engines_and_impossible_numbers_are_errors_not_plans():
    with pytest.raises(ValueError, match="known: vllm, sglang, trtllm"):
        r1("fp8", "tgi", tp=16, pp=1)
    with pytest.raises(ValueError, match="mem_fraction"):
        r1("fp8", "vllm", tp=8, pp=2, mem_fraction=90)
    with pytest.raises(ValueError, match="no int4 checkpoint"):
        r1("int4", "vllm", tp=8, pp=2)


# --- model descriptions -----------------------------------------------------------------------


def test_model_names_are_case_insensitive_and_accept_the_repo_id():
    assert load_model("deepseek-ai/DeepSeek-R1") is R1
    assert load_model("DeepSeek-R1") is R1
    assert load_model("DEEPSEEK-V3").name == "deepseek-v3"


def test_an_unknown_model_name_is_an_error_that_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as err:
        load_model("gpt-5")
    for name in ("deepseek-r1", "deepseek-v3", "llama-3.1-70b"):
        assert name in str(err.value)
    assert set(known_models()) >= {"deepseek-r1", "deepseek-v3", "llama-3.1-70b"}


def test_deepseek_v3_has_the_same_kv_and_weights_as_r1():
    v3 = load_model("deepseek-v3")
    assert v3.kv_bytes_per_token("bf16") == R1.kv_bytes_per_token("bf16") == 70_272
    assert v3.weights_bytes("fp8") == 671 * 10**9 and v3.weights_bytes("bf16") == 1342 * 10**9


def test_the_gqa_entry_costs_two_x_layers_x_kv_heads_x_head_dim_bytes_per_token():
    llama = load_model("llama-3.1-70b")
    assert llama.kv_bytes_per_token("bf16") == 327_680  # 2 x 80 x 8 x 128 x 2 B
    p = plan(llama, dtype="bf16", engine="vllm", tp=8, pp=1, nodes=1, gpus_per_node=8, gpu_mem_gb=96,
             mem_fraction=0.9, kv_dtype="bf16", context_len=131_072)
    assert p.kv_bytes_per_token_per_gpu == 40_960  # 8 KV heads / TP8 = 1 per GPU: 2 x 80 x 1 x 128 x 2
    assert p.kv_cache_gb == pytest.approx(64.75)  # 0.9 x 96 - 141.2 / 8 - 4 = 86.4 - 17.65 - 4
    assert p.pool_tokens == 1_580_810  # floor(64,750,000,000 / 40,960) = floor(1,580,810.5)


def test_tp_beyond_the_kv_heads_replicates_them():
    llama = load_model("llama-3.1-70b")
    p = plan(llama, dtype="bf16", engine="vllm", tp=16, pp=1, **CLUSTER | {"context_len": 8192})
    assert p.kv_copies == 2  # 16 ranks, 8 KV heads: each head on 2 GPUs
    assert p.kv_bytes_per_token_per_gpu == 40_960  # still 1 head per GPU


def test_an_mha_model_is_one_small_entry_without_num_kv_heads():
    spec = ModelSpec.model_validate({
        "name": "tiny-mha", "hf_repo": "example/tiny-mha", "params_b": 7, "layers": 32, "hidden_size": 4096,
        "max_context": 4096, "attention": {"kind": "mha", "num_heads": 32, "head_dim": 128},
        "checkpoints": {"bf16": {"weights_gb": 14}},
    })
    assert spec.kv_bytes_per_token("bf16") == 524_288  # 2 x 32 x 32 x 128 x 2 B


# --- output -----------------------------------------------------------------------------------


def test_as_dict_holds_every_figure_and_is_json():
    d = r1("fp8", "vllm", tp=8, pp=2).as_dict()
    json.dumps(d)
    for key in ("weights_per_gpu_gb", "kv_cache_gb", "kv_bytes_per_token", "pool_tokens", "full_requests",
                "verdict", "reasons", "suggestions"):
        assert key in d


def test_render_plan_shows_a_table_with_units_then_the_verdict():
    console = Console(record=True, width=200)
    console.print(render_plan(r1("bf16", "sglang", tp=16, pp=1)))
    text = console.export_text()
    assert "KV per token" in text and "70,272" in text and " GB " in text and "tokens" in text
    assert text.index("REFUSE") > text.index("full-length requests")
    assert "FP8 checkpoint" in text


def test_gpu_memory_from_nvidia_smi_mib_is_converted_to_gb():
    assert gb_from_mib(97_871) == pytest.approx(102.625, abs=1e-3)  # 97,871 x 2^20 / 10^9
    assert set(ENGINES) == {"vllm", "sglang", "trtllm"}
