"""Golden argv per engine profile, as data (tests/engines/<profile>/<case>.yaml)."""

from __future__ import annotations

import pytest
import yaml

from llmfab.engines import list_engines, list_versions
from tests.engines.cases import case_files, render

CASES = case_files()


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_each_profile_renders_its_golden_argv(path):
    case = yaml.safe_load(path.read_text())
    assert render(path, case) == case["expect"]


def test_every_profile_has_at_least_one_golden_case():
    covered = {p.parent.name for p in CASES}
    assert {f"{e}-{v}" for e in list_engines() for v in list_versions(e)} <= covered


def test_every_profile_file_is_named_for_its_engine_and_version():
    from llmfab.engines.profile import PROFILE_DIR

    from llmfab.engines import get_profile
    for path in PROFILE_DIR.glob("*.yaml"):
        engine, version = path.stem.split("-", 1)
        assert get_profile(engine, version).version == version


def test_a_profiles_layout_names_options_it_accepts():
    from llmfab.engines import get_profile
    for engine in list_engines():
        for version in list_versions(engine):
            profile = get_profile(engine, version)
            for role in ("tp", "fraction", "context", "kv"):
                assert profile.layout[role] in profile.option_keys(), (engine, version, role)


def test_a_version_that_extends_another_restates_only_what_differs_and_keeps_inherited_citations(tmp_path, monkeypatch):
    from llmfab.engines import profile as profile_mod

    (tmp_path / "x-1.yaml").write_text(
        "engine: x\nversion: '1'\nimage: x:1\nimage_source: s\nlaunch_pattern: p\nsource: 'x@1:'\n"
        "cuda: {requires: '12.4', min_driver: 550.54.14, source: s}\n"
        "readiness: {health: /health, models: /v1/models, info: null}\n"
        "flags:\n  --tp: {type: int, src: a.py#L1}\n  --port: {type: int, src: a.py#L2, managed: true}\n")
    (tmp_path / "x-2.yaml").write_text("extends: x-1\nversion: '2'\nimage: x:2\nsource: 'x@2:'\n"
                                       "flags:\n  --tp: {src: b.py#L9}\n")
    monkeypatch.setattr(profile_mod, "PROFILE_DIR", tmp_path)
    two = profile_mod.load_profiles("x")["2"]
    assert two.image == "x:2" and two.flags["tp"].source == "x@2:b.py#L9" and two.flags["tp"].type == "int"
    assert two.flags["port"].managed and two.flags["port"].source == "x@1:a.py#L2"
