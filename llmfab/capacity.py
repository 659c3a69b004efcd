"""Plan capacity: do the weights fit, and how many full-length requests run at once?

Pure arithmetic on a model description (llmfab/models/*.yaml) and a layout; no host
is contacted. Every memory figure is in GB = 10^9 bytes. GPU memory is taken as
marketed ("96 GB" -> 96 x 10^9 B); the driver reports more (an H20 shows 97871 MiB
= 102.6 GB = 95.6 GiB in nvidia-smi) and the engines apply their fraction to what
the driver reports, so the marketed figure errs on the safe side by ~6 GB per GPU.
Pass ``gb_from_mib(97871)`` to plan with the driver's figure instead.

Per GPU, the planner computes:

- weights: total weight bytes / (TP x PP), an even split (see CapacityPlan.notes);
- the KV-cache budget, by the engine's own rule for its memory fraction (ENGINES);
- KV bytes per token: MLA caches layers x (kv_lora_rank + qk_rope_head_dim) values,
  MHA/GQA 2 x layers x kv_heads x head_dim. TP splits KV heads but not the MLA
  latent, which every TP rank holds in full; PP gives each stage its own layers,
  so a GPU holds ceil(layers / PP) of them;
- the tokens that fit, and how many ``context_len`` requests that is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .models import ModelSpec, dtype_bytes, known_models, load_model

__all__ = ["CapacityPlan", "ENGINES", "ModelSpec", "gb_from_mib", "known_models", "load_model", "plan", "render_plan"]

GB = 10**9
MIB = 2**20
DEFAULT_OVERHEAD_GB = 4.0  # activations, CUDA graphs, NCCL buffers per GPU; measure with your engine
DEFAULT_MIN_FULL_REQUESTS = 4.0  # fewer full-length requests at once than this: warn
DEFAULT_MIN_KV_GB = 8.0  # less KV cache per GPU than this: warn
MAX_SUGGESTED_FRACTION = 0.95

Verdict = Literal["ok", "warn", "refuse"]


def gb_from_mib(mib: float) -> float:
    """Convert the MiB that nvidia-smi reports to GB (10^9 B): 97871 MiB -> 102.6 GB."""
    return mib * MIB / GB


@dataclass(frozen=True)
class EngineRules:
    """How an engine turns its memory fraction into a KV-cache budget, and its flag names.

    fraction_of:
      total  (vLLM)    KV = f x mem - weights - overhead: the fraction covers everything.
      static (SGLang)  KV = f x mem - weights: the fraction covers weights and the KV pool;
                       activations and CUDA graphs live in the (1 - f) x mem left over.
      free   (TRT-LLM) KV = f x (mem - weights - overhead): a share of what is free after loading.
    """

    fraction_flag: str
    fraction_of: Literal["total", "static", "free"]
    context_flag: str
    kv_fp8: str
    token_cap_flag: str
    pp_caveat: Optional[str] = None


def _rules() -> dict[str, EngineRules]:
    """Each engine's rule, from its default version's profile file (``capacity:``)."""
    from . import engines

    return {name: EngineRules(**engines.get_profile(name).capacity) for name in engines.ENGINES}


ENGINES: dict[str, EngineRules] = _rules()


class CapacityPlan(BaseModel):
    """Every figure of one plan, per GPU unless named otherwise; GB = 10^9 bytes."""

    model: str
    engine: str
    dtype: str
    kv_dtype: str
    nodes: int
    gpus_per_node: int
    gpus: int
    tp: int
    pp: int
    gpu_mem_gb: float
    mem_fraction: float
    fraction_flag: str
    context_len: int
    overhead_gb: float
    budget_gb: float  # what the engine may allocate per GPU under its fraction
    weights_total_gb: float
    weights_per_gpu_gb: float
    kv_cache_gb: float  # KV-cache pool per GPU (negative: the weights do not fit)
    kv_bytes_per_token: int  # whole model, one copy
    kv_bytes_per_token_per_gpu: int
    layers_per_gpu: int  # the largest PP stage, which limits the pool
    kv_copies: int  # GPUs holding the same KV bytes (MLA: every TP rank)
    kv_layout: str
    fit_tokens: int  # tokens the KV pool holds
    max_total_tokens: Optional[int]  # an explicit cap on the pool, if set
    pool_tokens: int  # min(fit_tokens, max_total_tokens)
    full_requests: float  # pool_tokens / context_len
    verdict: Verdict
    reasons: list[str]
    suggestions: list[str]
    notes: list[str]

    def as_dict(self) -> dict:
        return self.model_dump(mode="json")


def _kv_budget(rules: EngineRules, mem: float, fraction: float, weights: float, overhead: float) -> float:
    """KV-cache bytes per GPU under the engine's fraction rule (may be negative)."""
    if rules.fraction_of == "total":
        return fraction * mem - weights - overhead
    if rules.fraction_of == "static":
        return fraction * mem - weights
    return fraction * (mem - weights - overhead)


def _fraction_for(rules: EngineRules, mem: float, kv: float, weights: float, overhead: float) -> float:
    """The fraction that would give ``kv`` bytes of KV cache per GPU (inverse of _kv_budget)."""
    if rules.fraction_of == "total":
        return (kv + weights + overhead) / mem
    if rules.fraction_of == "static":
        return (kv + weights) / mem
    free = mem - weights - overhead
    return kv / free if free > 0 else math.inf


def _kv_per_gpu(spec: ModelSpec, tp: int, pp: int, kv_dtype: str) -> tuple[int, int, int, str]:
    """Return (KV bytes per token on one GPU, layers per GPU, copies, layout in words)."""
    att = spec.attention
    layers = math.ceil(spec.layers / pp)
    if att.kind == "mla":
        per_token = layers * att.values_per_layer() * dtype_bytes(kv_dtype)
        return per_token, layers, tp, f"MLA latent, not split by TP: all {tp} TP ranks hold a copy"
    heads = max(1, att.kv_heads // tp)
    copies = max(1, tp // att.kv_heads)
    per_token = 2 * layers * heads * att.head_dim * dtype_bytes(kv_dtype)
    layout = f"{att.kv_heads} KV heads over TP{tp}: {heads} per GPU"
    return per_token, layers, copies, layout + (f", each on {copies} GPUs" if copies > 1 else "")


def _memory(spec: ModelSpec, rules: EngineRules, *, dtype: str, kv_dtype: str, tp: int, pp: int,
            mem: float, fraction: float, overhead: float, context_len: int,
            max_total_tokens: Optional[int]) -> dict:
    """The memory figures of one layout, in bytes and tokens."""
    weights = spec.weights_bytes(dtype) / (tp * pp)
    kv = _kv_budget(rules, mem, fraction, weights, overhead)
    per_token, layers, copies, layout = _kv_per_gpu(spec, tp, pp, kv_dtype)
    fit = max(0, int(kv // per_token))
    pool = fit if max_total_tokens is None else min(fit, max_total_tokens)
    budget = weights + overhead + kv if rules.fraction_of == "free" else fraction * mem
    return dict(weights=weights, kv=kv, budget=budget, per_token=per_token, layers=layers, copies=copies,
                layout=layout, fit=fit, pool=pool, full_requests=pool / context_len)


def _layout_problems(spec: ModelSpec, nodes: int, gpus_per_node: int, tp: int, pp: int) -> list[str]:
    """Reasons this layout cannot start at all, whatever the memory."""
    problems = []
    if tp * pp != nodes * gpus_per_node:
        problems.append(f"TP{tp} x PP{pp} = {tp * pp} GPUs, but the cluster has {nodes} x {gpus_per_node} = "
                        f"{nodes * gpus_per_node}: TP x PP must use every GPU")
    if spec.attention.num_heads % tp:
        problems.append(f"{spec.name} has {spec.attention.num_heads} attention heads, not divisible by TP{tp}")
    kv_heads = spec.attention.kv_heads
    if spec.attention.kind != "mla" and kv_heads % tp and tp % kv_heads:
        problems.append(f"TP{tp} cannot split or replicate {kv_heads} KV heads evenly")
    if pp > spec.layers:
        problems.append(f"PP{pp} has more stages than {spec.name} has layers ({spec.layers})")
    return problems


def _memory_problems(p: CapacityPlan, rules: EngineRules, min_full: float,
                     min_kv_gb: float) -> tuple[list[str], list[str]]:
    """(refusals, warnings) about memory, in words a person can act on."""
    refuse, warn = [], []
    budget = f"{p.mem_fraction:.2f} x {p.gpu_mem_gb:g} GB"
    if p.kv_cache_gb <= 0:
        need = p.weights_per_gpu_gb + (0 if rules.fraction_of == "static" else p.overhead_gb)
        refuse.append(f"weights ({p.weights_per_gpu_gb:.1f} GB per GPU) leave no KV cache: {need:.1f} GB needed "
                      f"before any KV, the budget is {p.budget_gb:.1f} GB ({budget}, {p.fraction_flag})")
    elif p.pool_tokens < p.context_len:
        refuse.append(f"the KV pool holds {p.pool_tokens:,} tokens ({p.kv_cache_gb:.1f} GB per GPU), "
                      f"fewer than one {p.context_len:,}-token request")
    else:
        if p.full_requests < min_full:
            warn.append(f"only {p.full_requests:.1f} full-length ({p.context_len:,}-token) requests fit at once "
                        f"(fewer than {min_full:g}): long conversations will queue or be preempted")
        if p.kv_cache_gb < min_kv_gb:
            warn.append(f"only {p.kv_cache_gb:.1f} GB per GPU left for KV cache (less than {min_kv_gb:g} GB)")
    if p.max_total_tokens is not None and p.max_total_tokens < p.fit_tokens:
        warn.append(f"{rules.token_cap_flag} {p.max_total_tokens:,} caps the KV pool of ALL requests together "
                    f"({p.fit_tokens:,} tokens would fit); it is not the context length ({rules.context_flag})")
    if rules.fraction_of == "static" and (1 - p.mem_fraction) * p.gpu_mem_gb < p.overhead_gb:
        warn.append(f"{p.fraction_flag} {p.mem_fraction:.2f} leaves {(1 - p.mem_fraction) * p.gpu_mem_gb:.1f} GB "
                    f"outside the static pool for activations and CUDA graphs (reserve: {p.overhead_gb:g} GB)")
    return refuse, warn


def _nodes_needed(spec: ModelSpec, rules: EngineRules, args: dict, nodes: int, gpus_per_node: int,
                  min_full: float, pp_supported: bool = True) -> Optional[tuple[int, int, int]]:
    """The fewest nodes (with TP, PP) that hold ``min_full`` full-length requests, up to 8 more."""
    for n in range(nodes + 1, nodes + 9):
        gpus = n * gpus_per_node
        candidates = ((args["tp"], gpus // args["tp"]), (gpus // args["pp"], args["pp"])) if pp_supported \
            else ((gpus, 1),)
        for tp, pp in candidates:
            if tp * pp != gpus or _layout_problems(spec, n, gpus_per_node, tp, pp):
                continue
            if _memory(spec, rules, **{**args, "tp": tp, "pp": pp})["full_requests"] >= min_full:
                return n, tp, pp
    return None


def _suggest(spec: ModelSpec, p: CapacityPlan, rules: EngineRules, args: dict, min_full: float) -> list[str]:
    """What would turn a refusal or a warning into an ok plan."""
    out = []
    weights_bound = p.kv_cache_gb <= 0
    if p.dtype != "fp8" and "fp8" in spec.checkpoints:
        ckpt = spec.checkpoints["fp8"]
        fp8_gpu = ckpt.weights_gb / (p.tp * p.pp)
        out.append(f"use the FP8 checkpoint{f' ({ckpt.repo})' if ckpt.repo else ''}: {fp8_gpu:.1f} GB of weights "
                   f"per GPU instead of {p.weights_per_gpu_gb:.1f}" + (f"; {ckpt.note}" if ckpt.note else ""))
    if p.max_total_tokens is not None and p.max_total_tokens < p.fit_tokens:
        out.append(f"drop {rules.token_cap_flag}; limit one request's length with {rules.context_flag} instead")
    if not weights_bound and p.kv_dtype != "fp8":
        out.append(f"an FP8 KV cache ({rules.kv_fp8}) halves the bytes per token: twice the tokens")
    context = int(p.fit_tokens / min_full) // 1024 * 1024
    if not weights_bound and 1024 <= context < p.context_len:
        out.append(f"lower {rules.context_flag} to {context:,} to hold {min_full:g} full-length requests at once")
    target = max(min_full * p.context_len * p.kv_bytes_per_token_per_gpu, args["min_kv"])
    needed = _fraction_for(rules, args["mem"], target, args["weights"], args["overhead"])
    ceiling = 1 - p.overhead_gb / p.gpu_mem_gb if rules.fraction_of == "static" else MAX_SUGGESTED_FRACTION
    if p.mem_fraction < needed <= min(ceiling, MAX_SUGGESTED_FRACTION):
        out.append(f"raise {rules.fraction_flag} to {math.ceil(needed * 100) / 100:.2f}")
    more = _nodes_needed(spec, rules, args["layout"], p.nodes, p.gpus_per_node, min_full, args["pp_supported"])
    if more:
        out.append(f"add nodes: {more[0]} x {p.gpus_per_node} GPUs as TP{more[1]} x PP{more[2]}")
    return out


def plan(spec: ModelSpec, *, dtype: str, kv_dtype: str, nodes: int, gpus_per_node: int, gpu_mem_gb: float,
         tp: int, pp: int, mem_fraction: float, context_len: int, engine: str,
         overhead_gb: float = DEFAULT_OVERHEAD_GB, max_total_tokens: Optional[int] = None,
         min_full_requests: float = DEFAULT_MIN_FULL_REQUESTS, min_kv_gb: float = DEFAULT_MIN_KV_GB,
         pp_supported: bool = True) -> CapacityPlan:
    """Plan one layout of ``spec`` and judge it ok, warn or refuse.

    dtype: checkpoint weights, fp8 or bf16. kv_dtype: KV cache, bf16/fp16 or fp8.
    gpu_mem_gb: GB (10^9 B) per GPU as marketed, or ``gb_from_mib(<nvidia-smi MiB>)``.
    mem_fraction: the engine's fraction (vLLM --gpu-memory-utilization, SGLang
    --mem-fraction-static, TRT-LLM --kv_cache_free_gpu_memory_fraction); ENGINES says how each applies it.
    context_len: tokens of one full-length request. overhead_gb: per-GPU reserve for
    activations and CUDA graphs (default 4 GB; measure it on your engine).
    max_total_tokens: an explicit cap on the KV pool (SGLang --max-total-tokens), if any.
    Warn below ``min_full_requests`` full-length requests at once or ``min_kv_gb`` of KV per GPU.
    """
    rules = _engine(engine)
    _check_numbers(nodes=nodes, gpus_per_node=gpus_per_node, tp=tp, pp=pp, context_len=context_len,
                   gpu_mem_gb=gpu_mem_gb, mem_fraction=mem_fraction, max_total_tokens=max_total_tokens or 1)
    if overhead_gb < 0:
        raise ValueError(f"overhead_gb cannot be negative, got {overhead_gb}")
    dtype_bytes(kv_dtype)
    layout = dict(dtype=dtype, kv_dtype=kv_dtype, tp=tp, pp=pp, mem=gpu_mem_gb * GB, fraction=mem_fraction,
                  overhead=overhead_gb * GB, context_len=context_len, max_total_tokens=max_total_tokens)
    m = _memory(spec, rules, **layout)
    p = CapacityPlan(
        model=spec.name, engine=engine, dtype=dtype, kv_dtype=kv_dtype, nodes=nodes, gpus_per_node=gpus_per_node,
        gpus=nodes * gpus_per_node, tp=tp, pp=pp, gpu_mem_gb=gpu_mem_gb, mem_fraction=mem_fraction,
        fraction_flag=rules.fraction_flag, context_len=context_len, overhead_gb=overhead_gb,
        budget_gb=m["budget"] / GB, weights_total_gb=spec.weights_bytes(dtype) / GB,
        weights_per_gpu_gb=m["weights"] / GB, kv_cache_gb=m["kv"] / GB,
        kv_bytes_per_token=spec.kv_bytes_per_token(kv_dtype), kv_bytes_per_token_per_gpu=m["per_token"],
        layers_per_gpu=m["layers"], kv_copies=m["copies"], kv_layout=m["layout"], fit_tokens=m["fit"],
        max_total_tokens=max_total_tokens, pool_tokens=m["pool"], full_requests=m["full_requests"],
        verdict="ok", reasons=[], suggestions=[], notes=_notes(spec, rules, tp, pp, engine, gpu_mem_gb),
    )
    return _judge(spec, p, rules, layout, min_full_requests, min_kv_gb, pp_supported)


def _judge(spec: ModelSpec, p: CapacityPlan, rules: EngineRules, layout: dict, min_full: float,
           min_kv_gb: float, pp_supported: bool = True) -> CapacityPlan:
    """Fill in verdict, reasons and suggestions."""
    layout_refuse = _layout_problems(spec, p.nodes, p.gpus_per_node, p.tp, p.pp)
    too_long = p.context_len > spec.max_context
    if too_long:
        layout_refuse.append(f"context length {p.context_len:,} exceeds {spec.name}'s maximum of "
                             f"{spec.max_context:,} tokens")
    mem_refuse, warn = _memory_problems(p, rules, min_full, min_kv_gb)
    refuse = layout_refuse + mem_refuse
    if p.pp > 1 and rules.pp_caveat:
        warn.append(rules.pp_caveat)
    verdict: Verdict = "refuse" if refuse else "warn" if warn else "ok"
    suggestions = []
    if layout_refuse:  # memory advice about a layout that cannot start would mislead
        suggestions = [_valid_layouts(spec, p, pp_supported)] if len(layout_refuse) > too_long else []
        if too_long:
            suggestions.append(f"set {rules.context_flag} to {spec.max_context:,} or less")
    elif verdict != "ok":
        args = {"mem": layout["mem"], "overhead": layout["overhead"], "weights": p.weights_per_gpu_gb * GB,
                "layout": layout, "min_kv": min_kv_gb * GB, "pp_supported": pp_supported}
        suggestions = _suggest(spec, p, rules, args, min_full)
    return p.model_copy(update={"verdict": verdict, "reasons": refuse + warn, "suggestions": suggestions})


def _valid_layouts(spec: ModelSpec, p: CapacityPlan, pp_supported: bool = True) -> str:
    """Name the TP x PP layouts that use every GPU of this cluster (PP1 only for an engine without PP)."""
    layouts = [f"TP{tp} x PP{p.gpus // tp}" for tp in range(p.gpus, 0, -1)
               if p.gpus % tp == 0 and (pp_supported or tp == p.gpus)
               and not _layout_problems(spec, p.nodes, p.gpus_per_node, tp, p.gpus // tp)]
    if not layouts:
        return (f"no TP x PP layout of {p.gpus} GPUs suits {spec.name}"
                + ("" if pp_supported else f" with {p.engine}, which has no pipeline parallelism: change the node count"))
    return f"use a layout of all {p.gpus} GPUs: {', '.join(layouts[:4])}"


def _notes(spec: ModelSpec, rules: EngineRules, tp: int, pp: int, engine: str, gpu_mem_gb: float) -> list[str]:
    """The approximations behind the figures, for a person checking them."""
    notes = [f"weights per GPU assume an even split over TP{tp} x PP{pp}: embeddings, replicated layers, "
             "MoE expert placement and uneven PP stages make real ranks differ by a few percent",
             f"{engine}: {_rule_in_words(rules)}",
             f"GPU memory is {gpu_mem_gb:g} x 10^9 B; the driver may report more (an H20 \"96GB\" shows "
             "97871 MiB = 102.6 GB): plan with gb_from_mib(<nvidia-smi MiB>) to use the driver's figure"]
    if pp > 1 and spec.layers % pp:
        notes.append(f"{spec.layers} layers over PP{pp}: the largest stage has {math.ceil(spec.layers / pp)} "
                     "and limits the KV pool")
    return notes


def _rule_in_words(rules: EngineRules) -> str:
    return {
        "total": f"{rules.fraction_flag} covers weights, activations and KV cache",
        "static": f"{rules.fraction_flag} covers weights and the KV pool; activations use the rest",
        "free": f"{rules.fraction_flag} is a share of the memory free after weights and buffers",
    }[rules.fraction_of]


def _engine(engine: str) -> EngineRules:
    try:
        return ENGINES[engine]
    except KeyError:
        raise ValueError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})") from None


def _check_numbers(**values: float) -> None:
    """Reject values no layout could have (these are mistakes, not plans to judge)."""
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if values["mem_fraction"] > 1:
        raise ValueError(f"mem_fraction is a fraction of GPU memory (0-1], got {values['mem_fraction']}")


VERDICT_STYLE = {"ok": "bold green", "warn": "bold yellow", "refuse": "bold red"}


def render_plan(p: CapacityPlan) -> Group:
    """A table of the figures with their units, then the verdict, reasons and suggestions."""
    table = Table(title=f"{p.model} ({p.dtype} weights, {p.kv_dtype} KV) on {p.nodes} x {p.gpus_per_node} GPUs "
                        f"x {p.gpu_mem_gb:g} GB, {p.engine} TP{p.tp} x PP{p.pp}",
                  caption="GB = 10^9 bytes (1 GiB = 1.074 GB); per GPU unless stated")
    for column, justify in (("figure", "left"), ("value", "right"), ("unit", "left"), ("how", "left")):
        # Long flag names wrap inside the cell rather than being cut at 80 columns.
        table.add_column(column, justify=justify, overflow="fold")
    rows = [
        ("memory budget", f"{p.budget_gb:.2f}", "GB", f"{p.mem_fraction:.2f} via {p.fraction_flag}"),
        ("weights, all GPUs", f"{p.weights_total_gb:,.1f}", "GB", f"{p.dtype} checkpoint"),
        ("weights", f"{p.weights_per_gpu_gb:.2f}", "GB", f"approx: / (TP{p.tp} x PP{p.pp})"),
        ("overhead reserve", f"{p.overhead_gb:.2f}", "GB", "activations, CUDA graphs"),
        ("KV cache", f"{p.kv_cache_gb:.2f}", "GB", "what is left for the KV pool"),
        ("KV per token, model", f"{p.kv_bytes_per_token:,}", "B", f"{p.kv_dtype}, one copy of all layers"),
        ("KV per token", f"{p.kv_bytes_per_token_per_gpu:,}", "B", f"{p.layers_per_gpu} layers; {p.kv_layout}"),
        ("KV pool", f"{p.pool_tokens:,}", "tokens", _pool_how(p)),
        ("context length", f"{p.context_len:,}", "tokens", "one full-length request"),
        ("full-length requests", f"{p.full_requests:.2f}", "at once", "KV pool / context length"),
    ]
    for row in rows:
        table.add_row(*row)
    lines = [table, Text(f"{p.verdict.upper()}: " + _headline(p), style=VERDICT_STYLE[p.verdict])]
    lines += [Text(f"  - {reason}") for reason in p.reasons]
    lines += [Text(f"  try: {suggestion}", style="cyan") for suggestion in p.suggestions]
    return Group(*lines)


def _pool_how(p: CapacityPlan) -> str:
    if p.max_total_tokens is not None and p.max_total_tokens < p.fit_tokens:
        return f"capped at {p.max_total_tokens:,} ({p.fit_tokens:,} fit)"
    return "KV cache / KV per token"


def _headline(p: CapacityPlan) -> str:
    if p.verdict == "ok":
        return f"{p.full_requests:.1f} full-length requests fit at once, {p.kv_cache_gb:.1f} GB KV cache per GPU"
    if p.verdict == "warn":
        return "it fits, with thin headroom"
    return "this layout will not serve"
