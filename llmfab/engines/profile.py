"""Engine profiles: one engine at one version, and the checks on its options.

A profile says what a pinned engine image accepts: the image (tag, digest
when known), the CUDA it needs, every flag llmfab may render together with
the engine source that defines it, its environment, and how to tell that it
is ready. Options in config use the flag's name without leading dashes and
with underscores (``max_model_len: 65536``).
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import yaml

FlagType = Literal["bool", "int", "float", "str", "choice", "json"]


class EngineConfigError(ValueError):
    """Options or a deployment that an engine profile refuses; ``errors`` lists every reason."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


@dataclass(frozen=True)
class Flag:
    """One command-line flag of one engine version and where it is defined.

    ``managed`` flags are rendered by llmfab from the deployment (port, node
    rank, addresses...) and may not be set as options.
    """

    name: str
    type: FlagType
    source: str
    choices: tuple[Any, ...] | None = None
    managed: bool = False
    note: str = ""

    @property
    def key(self) -> str:
        """Name of the option in config: no dashes, underscores."""
        return option_key(self.name)


def option_key(flag_name: str) -> str:
    """Turn ``--max-model-len`` or ``--tp_size`` into ``max_model_len`` / ``tp_size``."""
    return flag_name.lstrip("-").replace("-", "_")


@dataclass(frozen=True)
class Readiness:
    """Where to ask an engine whether it is up, and how long to wait for it."""

    health_path: str
    models_path: str
    info_path: str | None
    extra_paths: tuple[str, ...] = ()
    budget_s: int = 3600
    note: str = ""
    # Whether readiness also waits for info_path to answer (SGLang's server info).
    wait_info: bool = False


@dataclass(frozen=True)
class BenchTool:
    """The serving benchmark an engine version's image ships: its program and how its arguments are built.

    ``args`` names the argument builder (``llmfab/steps/bench.py``); ``needs_prompts_file``:
    SGLang 0.4.x cuts its "random" prompts from a ShareGPT-layout file.
    """

    program: tuple[str, ...]
    args: str
    source: str
    needs_prompts_file: bool = False


@dataclass(frozen=True)
class EngineProfile:
    """An engine at one version: image, CUDA need, flags with sources, env, readiness."""

    engine: str
    version: str
    image: str
    digest: str | None
    image_source: str
    cuda_requires: str
    min_driver: str
    cuda_source: str
    launch_pattern: str
    flags: Mapping[str, Flag]
    readiness: Readiness
    api_key_flag: str | None = None
    api_key_env: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    removed: Mapping[str, str] = field(default_factory=dict)
    config_keys: Mapping[str, Flag] = field(default_factory=dict)
    unverified: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # DeepSeek-R1's reasoning options, the bench tool, where the planner finds
    # its figures (tp, pp, fraction, context, kv, cap; parallel: the layout's
    # option keys), and the capacity rule (llmfab/capacity.py EngineRules).
    reasoning: Mapping[str, Any] = field(default_factory=dict, repr=False)
    bench: BenchTool | None = field(default=None, repr=False)
    layout: Mapping[str, Any] = field(default_factory=dict, repr=False)
    capacity: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def image_ref(self) -> str:
        """Image reference to pull: ``repo@sha256:...`` when pinned, else ``repo:tag``."""
        if self.digest:
            return f"{self.image.rsplit(':', 1)[0]}@{self.digest}"
        return self.image

    @property
    def health_path(self) -> str:
        return self.readiness.health_path

    @property
    def info_path(self) -> str | None:
        return self.readiness.info_path

    @property
    def models_path(self) -> str:
        return self.readiness.models_path

    def flag(self, key: str) -> Flag:
        """Return the flag (or config-file key) for option ``key``; KeyError when absent."""
        return self.flags[key] if key in self.flags else self.config_keys[key]

    def option_keys(self) -> list[str]:
        """Every option name this profile accepts in config."""
        return [*self.flags, *self.config_keys]

    def flag_names(self) -> set[str]:
        """Every ``--flag`` string this profile may render."""
        return {f.name for f in self.flags.values()}


def flag_table(*flags: Flag) -> dict[str, Flag]:
    """Index flags by option key, refusing duplicates."""
    table: dict[str, Flag] = {}
    for f in flags:
        if f.key in table:
            raise ValueError(f"duplicate flag {f.name}")
        table[f.key] = f
    return table


def _coerce(flag: Flag, value: Any) -> tuple[Any, str | None]:
    """Return (value in its rendered type, error or None) for one option."""
    want = flag.type
    if isinstance(value, str) and value.strip() in ("None", "none", "null"):
        return None, (f"the string {value!r} is not 'unset': write null or leave "
                      f"the option out (the runbook's '--quantization None' defect)")
    if want == "bool":
        if isinstance(value, bool):
            return value, None
        return None, f"expected bool (true/false), got {value!r}"
    if want == "int":
        if isinstance(value, bool):
            return None, f"expected int, got {value!r}"
        if isinstance(value, int):
            return value, None
        if isinstance(value, str):
            try:
                return int(value.strip()), None
            except ValueError:
                pass
        return None, f"expected int, got {value!r}"
    if want == "float":
        if isinstance(value, bool):
            return None, f"expected float, got {value!r}"
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None, f"expected float, got {value!r}"
        if not math.isfinite(number):
            return None, f"expected a finite float, got {value!r}"
        return number, None
    if want == "choice":
        allowed = flag.choices or ()
        if value in allowed or str(value) in {str(c) for c in allowed}:
            return value, None
        return None, f"expected one of {', '.join(map(str, allowed))}; got {value!r}"
    if want == "json":
        if isinstance(value, (dict, list)):
            return value, None
        return None, f"expected a mapping or list (rendered as JSON), got {value!r}"
    if isinstance(value, str) and value:
        return value, None
    return None, f"expected a non-empty string, got {value!r}"


def _unknown(profile: EngineProfile, key: str) -> str:
    where = f"{profile.engine} {profile.version}"
    if key in profile.removed:
        return f"llmfab does not render option {key!r} for {where}: {profile.removed[key]}"
    close = difflib.get_close_matches(key, profile.option_keys(), n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown option {key!r} for {where}{hint}"


def validate_options(profile: EngineProfile, options: Mapping[str, Any]) -> list[str]:
    """Check options against a profile; return one readable error per problem."""
    errors: list[str] = []
    for key, value in options.items():
        flag = profile.flags.get(key) or profile.config_keys.get(key)
        if flag is None:
            errors.append(_unknown(profile, key))
            continue
        if flag.managed:
            errors.append(f"option {key!r} ({flag.name}) is set by llmfab from the "
                          f"deployment{': ' + flag.note if flag.note else ''}; remove it")
            continue
        if value is None:
            continue
        _, err = _coerce(flag, value)
        if err:
            errors.append(f"option {key!r} ({flag.name}): {err}")
    return errors


def coerce_options(profile: EngineProfile, options: Mapping[str, Any]) -> dict[str, Any]:
    """Return options in their rendered types, or raise EngineConfigError."""
    errors = validate_options(profile, options)
    if errors:
        raise EngineConfigError(errors)
    return {k: _coerce(profile.flag(k), v)[0] for k, v in options.items() if v is not None}


def render_value(flag: Flag, value: Any) -> list[str]:
    """Argv tokens for one flag: bare when true, nothing when false or None."""
    import json

    if value is None or value is False:
        return []
    if flag.type == "bool":
        return [flag.name]
    if flag.type == "json":
        return [flag.name, json.dumps(value, separators=(",", ":"), sort_keys=True)]
    if flag.type == "float":
        return [flag.name, repr(float(value))]
    return [flag.name, str(value)]


def render_flags(profile: EngineProfile, values: Mapping[str, Any]) -> list[str]:
    """Argv tokens for several flags in the order given; config-file keys are skipped."""
    argv: list[str] = []
    for key, value in values.items():
        if key in profile.flags:
            argv += render_value(profile.flags[key], value)
    return argv


PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
"""One YAML file per engine version: ``<engine>-<version>.yaml``."""

# libyaml's safe loader when PyYAML has it: every fab command loads the profiles (~20 ms instead of ~170).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _merged(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``; flag tables merge per flag, so a child restates only what differs."""
    out = dict(base)
    for key, value in over.items():
        if key in ("flags", "config_keys") and key in base:
            table = {name: dict(f) for name, f in base[key].items()}
            for name, f in (value or {}).items():
                table[name] = {**table.get(name, {}), **f}
            out[key] = table
        else:
            out[key] = value
    return out


def _raw(name: str, seen: tuple[str, ...] = ()) -> dict:
    """A profile file's keys with its ``extends:`` chain resolved."""
    if name in seen:
        raise ValueError(f"engine profile {name}: extends itself through {' -> '.join(seen)}")
    data = _cited(yaml.load((PROFILE_DIR / f"{name}.yaml").read_text(), Loader=_LOADER))
    parent = data.pop("extends", None)
    return _merged(_raw(parent, (*seen, name)), data) if parent else data


def _cited(data: dict) -> dict:
    """Each flag's ``src`` made whole with this file's ``source:`` prefix (or a named ``sources:`` entry),
    so that a flag inherited through ``extends:`` keeps the citation of the file that verified it."""
    prefix, sources = data.get("source", ""), data.get("sources", {})
    for key in ("flags", "config_keys"):
        for f in (data.get(key) or {}).values():
            if "src" in f:
                f["src"] = sources.get(f["src"]) or prefix + f["src"]
    return data


def _flags(data: dict, key: str) -> dict[str, Flag]:
    rows = []
    for name, f in (data.get(key) or {}).items():
        src = f["src"]
        choices = tuple(f["choices"]) if "choices" in f else None
        rows.append(Flag(name, f["type"], src, choices, f.get("managed", False), f.get("note", "")))
    return flag_table(*rows)


def profile_from(data: dict) -> EngineProfile:
    """An EngineProfile from a profile file's (resolved) keys."""
    ready, cuda, bench = data["readiness"], data["cuda"], data.get("bench")
    return EngineProfile(
        engine=data["engine"], version=str(data["version"]), image=data["image"], digest=data.get("digest"),
        image_source=data["image_source"], cuda_requires=str(cuda["requires"]), min_driver=str(cuda["min_driver"]),
        cuda_source=cuda["source"], launch_pattern=data["launch_pattern"], flags=_flags(data, "flags"),
        readiness=Readiness(ready["health"], ready["models"], ready.get("info"), tuple(ready.get("extra", ())),
                            ready.get("budget_s", 3600), ready.get("note", ""), ready.get("wait_info", False)),
        api_key_flag=data.get("api_key", {}).get("flag"), api_key_env=data.get("api_key", {}).get("env"),
        env=dict(data.get("env") or {}), removed=dict(data.get("removed") or {}),
        config_keys=_flags(data, "config_keys"), unverified=tuple(data.get("unverified", ())),
        notes=tuple(data.get("notes", ())), reasoning=dict(data.get("reasoning") or {}),
        bench=BenchTool(tuple(bench["program"]), bench["args"], bench["source"],
                        bench.get("needs_prompts_file", False)) if bench else None,
        layout=dict(data.get("layout") or {}), capacity=dict(data.get("capacity") or {}),
    )


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version))


def load_profiles(engine: str) -> dict[str, EngineProfile]:
    """Every version profile of ENGINE from its data files, oldest first."""
    found = [profile_from(_raw(path.stem)) for path in PROFILE_DIR.glob(f"{engine}-*.yaml")]
    for p in found:
        if p.engine != engine:
            raise ValueError(f"engine profile {p.engine}-{p.version}.yaml is in the files of {engine}")
    return {p.version: p for p in sorted(found, key=lambda p: _version_key(p.version))}
