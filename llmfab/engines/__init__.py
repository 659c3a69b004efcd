"""Engine profiles (engine x version) and the launch argv they render.

Call from tasks::

    from llmfab.engines import get_profile, default_options, render_plan, Launch, NodeInfo
    profile = get_profile("vllm")                   # runbook default: v0.8.5
    errors = validate_options(profile, options)     # readable, one per problem
    steps = render_plan(profile, launch)            # list[Step]: node, what, argv, wait

An engine is a plug-in: a module registered in ``ENGINES`` (the one list of
engine names) with ``NAME``, ``DEFAULT_VERSION``, ``PROFILES`` (loaded from its
data files, ``profiles/<engine>-<version>.yaml``) and its behaviour:
``default_options``, ``check_parallelism``, ``plan``, ``internal_ports``,
``rendezvous_port``, ``default_mem_fraction``, ``default_layout``, ``files``. An engine version is a data
file only.

Each Step's ``argv`` is a list of strings for ``subprocess``/Fabric (join it
with ``shlex.join`` only to display or to write into a script).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

from llmfab.engines import sglang, trtllm, vllm
from llmfab.engines.launch import API_KEY_MOUNT, Launch, LaunchStep, NodeInfo, Step, check_launch
from llmfab.engines.profile import (BenchTool, EngineConfigError, EngineProfile, Flag, Readiness,
                                    coerce_options, validate_options)

__all__ = [
    "API_KEY_MOUNT", "DEFAULT_VERSIONS", "ENGINES", "PROFILES", "BenchTool", "EngineConfigError", "EngineProfile",
    "Flag", "Launch", "LaunchStep", "NodeInfo", "Readiness", "Step", "check_launch", "check_parallelism",
    "coerce_options", "default_options", "get_profile", "list_engines", "list_versions", "plugin",
    "internal_ports", "readiness_urls", "reasoning_options", "render_plan", "validate_options",
]

ENGINES: dict[str, ModuleType] = {module.NAME: module for module in (vllm, sglang, trtllm)}
"""The one registry of engine names: config validation, defaults, capacity, planning and bench derive from it."""

PROFILES: dict[str, dict[str, EngineProfile]] = {
    name: dict(module.PROFILES) for name, module in ENGINES.items()}

DEFAULT_VERSIONS = {name: module.DEFAULT_VERSION for name, module in ENGINES.items()}
"""The runbook's pins (TensorRT-LLM: the runbook names no version)."""

_ALIASES = {"tensorrt-llm": "trtllm", "tensorrt_llm": "trtllm", "trt-llm": "trtllm"}


def list_engines() -> list[str]:
    """Engine names that have profiles."""
    return sorted(PROFILES)


def list_versions(engine: str) -> list[str]:
    """Versions with a profile for one engine, oldest first."""
    return list(PROFILES[_engine(engine)])


def _engine(engine: str) -> str:
    name = _ALIASES.get(engine.lower(), engine.lower())
    if name not in PROFILES:
        raise KeyError(f"unknown engine {engine!r}; known: {', '.join(list_engines())}")
    return name


def get_profile(engine: str, version: str | None = None) -> EngineProfile:
    """Profile for ``engine`` at ``version`` (default: the runbook's pin).

    ``v`` prefixes are optional: ``0.8.5`` and ``v0.8.5`` name the same profile.
    """
    name = _engine(engine)
    wanted = version or DEFAULT_VERSIONS[name]
    for key, profile in PROFILES[name].items():
        if key.lstrip("v") == wanted.lstrip("v"):
            return profile
    raise KeyError(f"no {name} profile for version {wanted!r}; known: "
                   f"{', '.join(PROFILES[name])}")


def plugin(engine: str) -> ModuleType:
    """The module that knows how ENGINE builds its argv (see ``ENGINES``)."""
    return ENGINES[_engine(engine)]


def _module(profile: EngineProfile) -> Any:
    return ENGINES[profile.engine]


def default_options(profile: EngineProfile) -> dict[str, Any]:
    """Options for DeepSeek-R1 (native FP8) on 2 nodes x 8 H20 for this profile."""
    return _module(profile).default_options(profile)


REASONING_MODELS = {"deepseek-r1"}
"""Models whose output starts with a thinking part the engines' reasoning parsers split off."""


def reasoning_options(profile: EngineProfile, model: str) -> dict[str, Any]:
    """The reasoning-parser options of this profile for MODEL (a name from llmfab/models/), or {}."""
    if model not in REASONING_MODELS:
        return {}
    return dict(profile.reasoning)


def check_parallelism(profile: EngineProfile, options: dict[str, Any], nodes: int,
                      gpus_per_node: int) -> list[str]:
    """Errors when the parallel sizes do not use exactly the cluster's GPUs."""
    check: Callable[..., list[str]] = _module(profile).check_parallelism
    return check(options, nodes, gpus_per_node)


def render_plan(profile: EngineProfile, launch: Launch) -> list[Step]:
    """Ordered launch steps (argv lists); raises EngineConfigError listing every problem."""
    return _module(profile).plan(profile, launch)


def internal_ports(profile: EngineProfile, launch: Launch) -> list[tuple[int, int, str]]:
    """The engine's cluster-internal listeners as (first, last, what): none of them
    authenticates, so only the cluster's nodes may reach them (the firewall step)."""
    return _module(profile).internal_ports(profile, launch)


def readiness_urls(profile: EngineProfile, launch: Launch) -> dict[str, str]:
    """URLs on the head to poll: health, models, and info when the version has one."""
    base = f"http://{launch.head.address}:{launch.port}"
    urls = {"health": base + profile.readiness.health_path,
            "models": base + profile.readiness.models_path}
    if profile.readiness.info_path:
        urls["info"] = base + profile.readiness.info_path
    return urls
