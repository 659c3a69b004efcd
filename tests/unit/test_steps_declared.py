"""A step is one declaration: id, title, what it changes, how to undo it, where it runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llmfab import docs
from llmfab.config import parse
from llmfab.run import Run
from llmfab.script import StepTemplateError, render_phase, render_step
from llmfab.steps import ALL, HEAD, STEPS, WORKERS, Step
from llmfab.steps.phases import PHASES, entries

TEMPLATES = Path(docs.__file__).resolve().parent / "templates"


def two_nodes() -> Run:
    return Run(parse({"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}]}))


def test_the_readme_table_of_prep_changes_is_generated_from_the_declarations():
    readme = docs.README.read_text()
    assert docs.with_table(readme) == readme, "README.md is stale: run python -m llmfab.docs"


def test_every_prep_step_says_what_it_changes_and_how_to_undo_it():
    for id, _ in entries("prep"):
        assert STEPS[id].changes and STEPS[id].undo, id


def test_every_declared_step_has_its_place_in_a_phase_and_every_listed_step_is_declared():
    listed = {id for phase in PHASES for id, _ in entries(phase)}
    assert listed == set(STEPS)


@pytest.mark.parametrize("id", sorted(STEPS))
def test_a_steps_template_is_named_for_its_id_and_defines_its_function(id):
    step = STEPS[id]
    path = TEMPLATES / step.template
    assert path.name == f"{id}.sh.j2" and path.is_file()
    assert re.search(rf"^{step.function}\(\) \{{", path.read_text(), re.M)


def test_rendering_fails_when_the_template_does_not_define_the_steps_function():
    wrong = Step("sysctl-net-typo", "t", "system", STEPS["sysctl-net"].context)
    with pytest.raises(StepTemplateError, match="step_sysctl_net_typo"):
        # The template of sysctl-net under another id: its function has the wrong name.
        render_step(_with_template(wrong, "system/sysctl-net.sh.j2"), two_nodes(), two_nodes().config.nodes[0])


def _with_template(step: Step, template: str) -> Step:
    class Other(Step):
        @property
        def template(self) -> str:
            return template
    return Other(**{f: getattr(step, f) for f in step.__dataclass_fields__})


def test_where_chooses_the_head_the_workers_or_every_node():
    run = two_nodes()
    head, worker = run.config.nodes
    step = STEPS["engine-rank"]
    assert step.where == WORKERS and step.runs_on(run, worker) and not step.runs_on(run, head)
    assert STEPS["engine-ready"].where == HEAD and STEPS["engine-ready"].runs_on(run, head)
    assert STEPS["sysctl-net"].where == ALL and all(STEPS["sysctl-net"].runs_on(run, n) for n in (head, worker))


def test_a_phase_list_may_narrow_where_a_step_runs():
    run = two_nodes()
    head = run.config.head
    assert "step_model_verify" not in render_phase(run, head, "model-pull")
    assert "step_model_verify" in render_phase(run, head, "model-verify")


def test_the_model_helpers_are_rendered_once_for_the_steps_that_need_them():
    run = two_nodes()
    script = render_phase(run, run.config.nodes[0], "model")
    assert script.count("llmfab__change() {") == 1
    assert "llmfab__change() {" not in render_phase(run, run.config.nodes[0], "prep")
