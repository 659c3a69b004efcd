"""Fact cases as data (tests/facts/<module>.<FACT>/<case>.json): captured output in, parsed fact out."""

from __future__ import annotations

import json

import pytest

from tests.facts.cases import case_files, fact_of, parsed

CASES = case_files()


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_each_fact_parses_its_captured_output_as_recorded(path):
    case = json.loads(path.read_text())
    assert parsed(path, case) == case["fact"]


def test_every_declared_fact_has_a_case():
    import importlib
    import pkgutil

    import llmfab.facts
    from llmfab.facts.base import Fact

    declared = {f"{m.name}.{name}" for m in pkgutil.iter_modules(llmfab.facts.__path__)
                for name, value in vars(importlib.import_module(f"llmfab.facts.{m.name}")).items()
                if isinstance(value, Fact)}
    assert declared == {p.parent.name for p in CASES}
    assert all(fact_of(p).name.split(".")[0] == p.parent.name.split(".")[0] for p in CASES)
