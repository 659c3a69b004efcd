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
