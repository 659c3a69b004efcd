"""`fab plan`: will the model fit this cluster's GPUs, and how many requests run at once?"""

from __future__ import annotations

import json

from llmfab import capacity, engines
from llmfab.engines import sglang
from llmfab.deployment import Deployment, build
from llmfab.errors import Refused
from llmfab.models import MODELS_DIR, MODELS_PATH_ENV, UnknownModelError, checkpoint_mismatch, load_model
from llmfab.output import console
from llmfab.config import load
from llmfab.session import refuse_hosts, reported_errors

from .options import EXAMPLE_CONFIG, engine_override, task

# Where each engine keeps the figures the planner needs, by option name: the
# layout: of its profile files (the same in every version of an engine).
LAYOUT = {name: engines.get_profile(name).layout for name in engines.ENGINES}


def _engine_default_fraction(engine: str, tp: int) -> float:
    """The memory fraction an engine uses when the options give none (vLLM and TRT-LLM: 0.9)."""
    return engines.plugin(engine).default_mem_fraction(tp)


def capacity_plan(config, d: Deployment, context_len: int | None = None) -> capacity.CapacityPlan | None:
    """The capacity plan of a deployment, or None when the model has no description."""
    try:
        spec = load_model(config.model.id)
    except UnknownModelError:
        return None
    keys, opts = d.profile.layout, d.options
    kv = str(opts.get(keys["kv"]) or "auto")
    return capacity.plan(
        spec, dtype=config.model.dtype, kv_dtype="fp8" if kv.startswith("fp8") else "bf16",
        nodes=len(config.nodes), gpus_per_node=config.gpu.per_node, gpu_mem_gb=config.gpu.memory_gb,
        tp=int(opts.get(keys["tp"]) or 1), pp=int(opts.get(keys["pp"]) or 1),
        mem_fraction=float(opts.get(keys["fraction"]) or _engine_default_fraction(d.engine, int(opts.get(keys["tp"]) or 1))),
        context_len=int(context_len or opts.get(keys["context"]) or spec.max_context),
        engine=d.engine, max_total_tokens=opts.get(keys["cap"]) if "cap" in keys else None,
        pp_supported=keys["pp"] in d.profile.option_keys(),
    )


@task(help={"config": EXAMPLE_CONFIG, "engine": "vllm | sglang | trtllm (default: the config's)",
            "version": "engine version profile, e.g. v0.8.5 (default: the config's, else the runbook's pin)",
            "context-len": "tokens of one full-length request (default: the engine's context option)",
            "json": "print the figures as JSON"})
def plan(c, config=None, engine=None, version=None, context_len=0, json_=False):
    """Check that the model fits the GPUs: weights, KV cache, concurrent full-length requests.

    Needs no hosts. Refuses (exit 3) a layout that cannot fit, with the reason
    and what to change; warns when the headroom is thin. `fab deploy` runs the
    same check first.

    Example:
      fab plan --config configs/h20-2x8.yaml --engine sglang
    """
    with reported_errors():
        refuse_hosts(c, "plan")
        cfg = load(config)
        cfg = engine_override(cfg, engine, version)
        d = build(cfg)
        result = capacity_plan(cfg, d, context_len or None)
        if result is None:
            raise Refused(f"no model description for {cfg.model.id}: describe it in a YAML file like those in "
                          f"{MODELS_DIR}, in a directory named by ${MODELS_PATH_ENV}")
        _print(cfg, d, result, json_)


def _print(cfg, d: Deployment, result: capacity.CapacityPlan, json_: bool) -> None:
    """The plan as a table (or JSON), with the notes; Refused when the layout cannot fit."""
    notes = console(stderr=json_)
    notes.print(f"config: {cfg.source} (cluster {cfg.cluster.name}, from {cfg.chosen_by})")
    mismatch = checkpoint_mismatch(load_model(cfg.model.id), cfg.model.id, cfg.model.dtype)
    if mismatch:
        notes.print(f"[yellow]note: {mismatch}[/yellow]")
    if json_:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        console().print(capacity.render_plan(result))
        if result.suggestions and any("TP" in s for s in result.suggestions):
            keys = d.profile.layout
            where = " and ".join(f"engine.options.{k}" for k in (keys["tp"], keys["pp"]) if k in d.profile.option_keys())
            console().print(f"a layout is set with {where} in {cfg.source}")
    if result.verdict == "refuse":
        raise Refused()
