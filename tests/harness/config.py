"""The llmfab YAML config that describes a test fleet."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

import yaml


def fleet_config(
    *,
    port: int,
    identity_file: Path,
    known_hosts: Path,
    nodes: Iterable[tuple[str, str]],
) -> dict[str, Any]:
    """Return the llmfab config dict for hosts given as (name, address) pairs."""
    return {
        "cluster": {"name": "testfleet"},
        "ssh": {
            "user": "root",
            "port": port,
            "identity_file": str(identity_file),
            "known_hosts": str(known_hosts),
            # Tests never read the machine's own ~/.ssh/config.
            "config_file": None,
            "connect_timeout": 5,
        },
        "nodes": [{"name": name, "address": address} for name, address in nodes],
    }


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``overrides``: dicts merge, anything else replaces."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    """Write ``data`` as YAML, keys in their given order; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))
    return path
