"""Model descriptions for the capacity planner: one small YAML file per model.

Each ``<name>.yaml`` next to this module holds what capacity needs and nothing
more: parameter count, layers, the attention layout that sizes the KV cache,
the loaded weight size per checkpoint dtype, and the longest context.

To add a model, copy ``llama-3.1-70b.yaml`` (GQA/MHA) or ``deepseek-r1.yaml``
(MLA) and fill in the figures from its ``config.json``. Sizes are GB = 10^9 bytes.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import UsageError

MODELS_DIR = Path(__file__).resolve().parent

WeightDtype = Literal["fp8", "bf16"]
KVDtype = Literal["fp8", "bf16", "fp16"]
DTYPE_BYTES: dict[str, int] = {"fp8": 1, "bf16": 2, "fp16": 2}


class UnknownModelError(UsageError, LookupError):
    """The model name matches no description in llmfab/models/."""


class Attention(BaseModel):
    """The attention layout: it decides how many bytes one token costs in the KV cache.

    - ``mla`` (DeepSeek): one compressed latent per layer per token,
      ``kv_lora_rank + qk_rope_head_dim`` values, shared by all heads, so tensor
      parallelism cannot split it: every TP rank holds a full copy.
    - ``gqa``/``mha``: a key and a value of ``head_dim`` per KV head per layer;
      TP splits the KV heads (MHA is GQA with ``num_kv_heads == num_heads``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["mla", "mha", "gqa"]
    num_heads: int = Field(ge=1)
    kv_lora_rank: Optional[int] = Field(None, ge=1)
    qk_rope_head_dim: Optional[int] = Field(None, ge=0)
    num_kv_heads: Optional[int] = Field(None, ge=1)
    head_dim: Optional[int] = Field(None, ge=1)

    @model_validator(mode="after")
    def _fields_for_kind(self) -> "Attention":
        if self.kind == "mla":
            if self.kv_lora_rank is None or self.qk_rope_head_dim is None:
                raise ValueError("mla attention needs kv_lora_rank and qk_rope_head_dim")
        else:
            if self.head_dim is None:
                raise ValueError(f"{self.kind} attention needs head_dim")
            if self.kind == "gqa" and self.num_kv_heads is None:
                raise ValueError("gqa attention needs num_kv_heads")
            if self.num_heads % self.kv_heads:
                raise ValueError("num_heads must be a multiple of num_kv_heads")
        return self

    @property
    def kv_heads(self) -> int:
        """KV heads per layer (MHA: one per attention head; MLA: the one shared latent)."""
        if self.kind == "mla":
            return 1
        return self.num_kv_heads or self.num_heads

    def values_per_layer(self) -> int:
        """Cached values per token per layer for one full copy of the KV cache."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return 2 * self.kv_heads * self.head_dim  # a key and a value per KV head


class Checkpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    weights_gb: float = Field(gt=0)  # loaded weights, all GPUs together
    repo: Optional[str] = None
    note: Optional[str] = None


class ModelSpec(BaseModel):
    """One model, as described by its YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hf_repo: str
    aliases: tuple[str, ...] = ()
    params_b: float = Field(gt=0)
    layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    max_context: int = Field(ge=1)
    attention: Attention
    checkpoints: dict[WeightDtype, Checkpoint] = Field(min_length=1)

    def weights_bytes(self, dtype: str) -> int:
        """Loaded weight bytes of the whole model in ``dtype`` (fp8 or bf16)."""
        if dtype not in self.checkpoints:
            raise ValueError(f"{self.name} has no {dtype} checkpoint (known: {', '.join(self.checkpoints)})")
        return round(self.checkpoints[dtype].weights_gb * 1e9)

    def kv_bytes_per_token(self, kv_dtype: str) -> int:
        """KV-cache bytes one token costs for all layers, one copy (no parallelism).

        MLA: layers x (kv_lora_rank + qk_rope_head_dim) x bytes.
        MHA/GQA: 2 x layers x num_kv_heads x head_dim x bytes.
        """
        return self.layers * self.attention.values_per_layer() * dtype_bytes(kv_dtype)

    def names(self) -> set[str]:
        """Every spelling load_model accepts for this model, lowercased."""
        spellings = {self.name, self.hf_repo, *self.aliases}
        spellings |= {s.rsplit("/", 1)[-1] for s in spellings}
        return {s.lower() for s in spellings}


def dtype_bytes(dtype: str) -> int:
    """Bytes per value of a weight or KV-cache dtype."""
    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPE_BYTES)})") from None


# More model descriptions, outside the package: directories of YAML files like
# those in MODELS_DIR, separated by ':' (so a new model needs no edit of llmfab).
MODELS_PATH_ENV = "LLMFAB_MODELS_PATH"


def model_dirs() -> list[Path]:
    """Where model descriptions are read from: $LLMFAB_MODELS_PATH's directories, then the package's."""
    extra = [Path(p).expanduser() for p in os.environ.get(MODELS_PATH_ENV, "").split(":") if p]
    return [*extra, MODELS_DIR]


@lru_cache(maxsize=None)
def _models_in(dirs: tuple[Path, ...]) -> dict[str, ModelSpec]:
    specs: dict[str, ModelSpec] = {}
    for directory in reversed(dirs):
        for path in sorted(directory.glob("*.yaml")):
            spec = ModelSpec.model_validate(yaml.safe_load(path.read_text()))
            specs[spec.name] = spec
    return specs


def all_models() -> dict[str, ModelSpec]:
    """Every described model, by canonical name (a $LLMFAB_MODELS_PATH file wins over the package's)."""
    return _models_in(tuple(model_dirs()))


def checkpoint_mismatch(spec: ModelSpec, model_id: str, dtype: str) -> Optional[str]:
    """A note when MODEL_ID is the repository of another dtype's checkpoint than DTYPE."""
    wanted = model_id.strip().lower()
    for other, checkpoint in spec.checkpoints.items():
        if other != dtype and checkpoint.repo and checkpoint.repo.lower() == wanted:
            return (f"model.id {model_id} is the {other} checkpoint, but model.dtype is {dtype}: the figures below "
                    f"assume {dtype} weights; set model.dtype: {other} (or point model.id at a {dtype} export)")
    return None


def known_models() -> list[str]:
    """Canonical names of the described models, sorted."""
    return sorted(all_models())


def load_model(name: str) -> ModelSpec:
    """Return the description of ``name``: a canonical name, an alias or a repo id, any case.

    ``deepseek-r1``, ``DeepSeek-R1`` and ``deepseek-ai/DeepSeek-R1`` are the same model.
    """
    wanted = name.strip().lower()
    for spec in all_models().values():
        if wanted in spec.names():
            return spec
    raise UnknownModelError(
        f"unknown model {name!r}; known models: {', '.join(known_models())} "
        f"(describe it in a YAML file like those in {MODELS_DIR}, in a directory named by ${MODELS_PATH_ENV})"
    )
