"""`fab plan` says which config it read, warns on a checkpoint of another dtype, and reads models from outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llmfab import models

REPO = Path(__file__).resolve().parents[2]
LLAMA = """nodes: [{name: a1, address: 10.0.0.1}, {name: a2, address: 10.0.0.2}]
model: {id: meta-llama/Llama-3.1-70B-Instruct, path: /m/llama}
engine: {options: {tensor_parallel_size: 8, pipeline_parallel_size: 2}}
"""


def plan(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != "LLMFAB_CONFIG"}
    return subprocess.run([sys.executable, "-m", "fabric", "-r", str(REPO), "plan", *args], cwd=cwd,
                          capture_output=True, text=True, env={**clean, "COLUMNS": "80", **(env or {})})


def test_a_bf16_repository_planned_as_fp8_gets_a_note_naming_the_fix(tmp_path):
    (tmp_path / "c.yaml").write_text(LLAMA)
    run = plan("--config", "c.yaml", cwd=tmp_path)
    assert "is the bf16 checkpoint, but model.dtype is fp8" in run.stdout and "model.dtype: bf16" in run.stdout


def test_plan_json_keeps_notes_off_stdout(tmp_path):
    (tmp_path / "c.yaml").write_text(LLAMA)
    run = plan("--config", "c.yaml", "--json", cwd=tmp_path)
    json.loads(run.stdout)
    assert "config: c.yaml" in run.stderr


def test_plan_says_when_it_uses_the_built_in_example(tmp_path):
    run = plan(cwd=tmp_path)
    assert "from built-in example" in run.stdout


def test_a_long_flag_name_wraps_instead_of_being_cut_at_80_columns(tmp_path):
    # TensorRT-LLM has no verified API key option: it is planned only with api_key: none (issue 11).
    example = (REPO / "configs" / "h20-2x8.yaml").read_text()
    (tmp_path / "c.yaml").write_text(example.replace("  api_key: generate", "  api_key: none", 1))
    run = plan("--config", "c.yaml", "--engine", "trtllm", cwd=tmp_path)
    assert "…" not in run.stdout and "--kv_cache_free_gpu_memory_frac" in run.stdout


def test_a_model_described_outside_the_package_is_found(tmp_path, monkeypatch):
    text = (models.MODELS_DIR / "llama-3.1-70b.yaml").read_text()
    (tmp_path / "mine.yaml").write_text(text.replace("name: llama-3.1-70b", "name: my-llama")
                                        .replace("hf_repo: meta-llama/Llama-3.1-70B-Instruct", "hf_repo: me/my-llama")
                                        .replace("aliases: [", "aliases: [x-unused, "))
    monkeypatch.setenv(models.MODELS_PATH_ENV, str(tmp_path))
    assert models.load_model("me/my-llama").name == "my-llama"
    monkeypatch.delenv(models.MODELS_PATH_ENV)
    assert "my-llama" not in models.known_models()
