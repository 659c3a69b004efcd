"""One Run per task, overrides through the parser, one exit status per kind of mistake."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

import tasks.bundle
import tasks.engine
import tasks.planning
from llmfab import config as config_mod
from llmfab.deployment import DeploymentError
from llmfab.errors import ConfigError, HostsFailed, LlmfabError, Refused, UsageError
from llmfab.exits import ExitStatus
from llmfab.run import Run, RunOptions
from llmfab.script import render_phase
from llmfab.steps.bench import BenchUnsupported
from tasks.options import engine_override

from tests.unit.test_cli_safety import fab, unreachable_config

REPO = Path(__file__).resolve().parents[2]


def example(**engine) -> config_mod.ClusterConfig:
    raw = yaml.safe_load((REPO / "configs" / "h20-2x8.yaml").read_text())
    raw["engine"] = {**(raw.get("engine") or {}), **engine}
    return config_mod.parse(raw, "example.yaml")


class TestTheEngineOverride:
    def test_another_engine_keeps_every_other_engine_field(self):
        cfg = example(nccl_timeout=900, port=41000)
        switched = cfg.with_engine("sglang")
        assert (switched.engine.name, switched.engine.nccl_timeout, switched.engine.port) == ("sglang", 900, 41000)

    def test_the_override_leaves_the_loaded_config_as_it_was(self):
        cfg = example(nccl_timeout=900)
        cfg.with_engine("sglang", "v0.4.4")
        assert cfg.engine.name == "vllm"

    def test_a_version_alone_keeps_the_engine_and_its_options(self):
        cfg = example(options={"max_model_len": 4096})
        switched = cfg.with_engine(None, "v0.33.0")
        assert (switched.engine.name, switched.engine.version, switched.engine.options) == \
            ("vllm", "v0.33.0", {"max_model_len": 4096})

    def test_another_engine_leaves_the_first_engines_options_out(self):
        assert example(options={"max_model_len": 4096}).with_engine("sglang").engine.options == {}

    def test_a_bad_engine_name_is_the_usual_config_error(self):
        with pytest.raises(ConfigError) as e:
            example().with_engine("foo")
        assert "engine.name" in e.value.render()

    def test_the_check_all_reduce_keeps_nccl_timeout_after_engine_sglang(self):
        run = Run(engine_override(example(nccl_timeout=900), "sglang", None))
        script = render_phase(run, run.config.head, "nccl")
        assert "limit=900" in script.replace("'", "")

    def test_deploy_check_and_export_bundle_share_one_override_function(self):
        from tasks import options
        assert tasks.bundle.engine_override is options.engine_override
        assert tasks.planning.engine_override is options.engine_override
        assert tasks.engine.session_engine is options.session_engine
        assert not hasattr(tasks.engine, "pick_engine") and not hasattr(tasks.engine, "choose_engine")


class TestTheRun:
    def test_a_run_cannot_be_changed(self):
        run = Run(example())
        with pytest.raises(dataclasses.FrozenInstanceError):
            run.options = RunOptions(dry_run=True)  # type: ignore[misc]

    def test_the_deployment_is_built_once_per_run(self):
        run = Run(example())
        assert run.deployment is run.deployment
        assert run.with_options(dry_run=True).deployment is run.deployment

    def test_upgrade_driver_is_a_run_option_not_a_config_change(self):
        cfg = example()
        script = render_phase(Run(cfg, RunOptions(upgrade_driver=True)), cfg.nodes[0], "prep")
        assert "upgrade=1" in script.replace("'", "") and cfg.nvidia.upgrade_driver is False

    def test_serve_and_pull_of_one_run_share_the_password(self):
        run = Run(example())
        head, worker = run.config.head, run.config.nodes[1]
        token = run.distribution.token
        assert token in render_phase(run, head, "model-serve") and token in render_phase(run, worker, "model-pull")

    def test_no_module_keeps_per_run_state_keyed_by_config(self):
        for path in (REPO / "llmfab").rglob("*.py"):
            assert "id(config)" not in path.read_text(), path


class TestExitStatusByErrorClass:
    @pytest.mark.parametrize("error, status", [
        (ConfigError("c.yaml", []), ExitStatus.CONFIG_INVALID), (UsageError("x"), ExitStatus.CONFIG_INVALID),
        (DeploymentError("x"), ExitStatus.REFUSED), (BenchUnsupported("x"), ExitStatus.REFUSED),
        (Refused("x"), ExitStatus.REFUSED), (HostsFailed(), ExitStatus.HOST_FAILED),
        (LlmfabError("x"), ExitStatus.HOST_FAILED)])
    def test_the_class_names_the_status(self, error, status):
        assert error.exit_status == status

    def test_no_task_picks_an_exit_code_itself(self):
        for path in (REPO / "tasks").glob("*.py"):
            text = path.read_text()
            assert "ExitStatus." not in text and "raise Exit(" not in text, path


def bad_option_config(tmp_path: Path) -> Path:
    path = unreachable_config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["engine"] = {"options": {"max_modle_len": 4096}}
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("task", ["export-bundle", "check", "plan", "deploy"])
def test_an_unknown_engine_option_is_refused_with_one_status_by_every_task(tmp_path, task):
    args = [task, "--config", str(bad_option_config(tmp_path))]
    if task == "export-bundle":
        args += ["--out", str(tmp_path / "out")]
    done = fab(*args, cwd=tmp_path)
    assert done.returncode == ExitStatus.REFUSED, done.stdout + done.stderr
    assert "max_modle_len" in done.stderr and "Traceback" not in done.stderr


def test_check_with_an_unknown_engine_ends_in_one_line_and_config_invalid(tmp_path):
    done = fab("check", "--config", str(unreachable_config(tmp_path)), "--engine", "foo", cwd=tmp_path)
    assert done.returncode == ExitStatus.CONFIG_INVALID
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "foo" in errors[0] and "Traceback" not in done.stderr
