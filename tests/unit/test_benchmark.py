"""fab bench: reports parsed from the engines' real output, runs saved and compared, the phase script."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmfab.engines import list_engines, list_versions
from llmfab import benchmark
from llmfab import config as config_mod
from llmfab.script import render_phase
from llmfab.run import Run, RunOptions
from llmfab.steps import HEAD, PHASES, STEPS
from llmfab.steps import bench as bench_step
from llmfab.deployment import build as deployment

from fixture_text import load_fixture

REPO = Path(__file__).resolve().parents[2]
SGLANG = "field/bench/sglang-bench_serving-deepseek-v32-tp8.txt"
VLLM_NEW = "field/bench/vllm-bench-serve-deepseek-v32-8xH20-tp8.txt"
VLLM_OLD = "field/bench/vllm-benchmark_serving-readme-sample.txt"

# TensorRT-LLM's benchmark_serving, as printed in NVIDIA/TensorRT-LLM
# docs/source/commands/trtllm-serve/run-benchmark-with-trtllm-serve.md
# @01c4ece911eb569e72cf4177f83238a0520641c2 (1.0 line): extra "User throughput"
# and "Request AR" lines, an End-to-end Latency section.
TRTLLM_DOC_SAMPLE = """\
============ Serving Benchmark Result ============
Successful requests:                     1
Benchmark duration (s):                  1.64
Total input tokens:                      1024
Total generated tokens:                  1024
Request throughput (req/s):              0.61
Output token throughput (tok/s):         622.56
Total Token throughput (tok/s):          1245.12
User throughput (tok/s):                 623.08
Mean Request AR:                         0.9980
Median Request AR:                       0.9980
---------------Time to First Token----------------
Mean TTFT (ms):                          12.83
Median TTFT (ms):                        12.83
P99 TTFT (ms):                           12.83
-----Time per Output Token (excl. 1st token)------
Mean TPOT (ms):                          1.59
Median TPOT (ms):                        1.59
P99 TPOT (ms):                           1.59
---------------Inter-token Latency----------------
Mean ITL (ms):                           1.59
Median ITL (ms):                         1.59
P99 ITL (ms):                            1.77
----------------End-to-end Latency----------------
Mean E2EL (ms):                          1643.44
Median E2EL (ms):                        1643.44
P99 E2EL (ms):                           1643.44
==================================================
"""


def _cluster(engine, version=None, api_key="none"):
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.engine.name = engine
    cfg.engine.version = version
    cfg.engine.api_key = api_key
    from llmfab.engines import get_profile
    if get_profile(engine, version).cuda_requires.startswith("13."):  # CUDA 13 images: driver 580 or newer
        cfg.nvidia.driver_version, cfg.nvidia.cuda_version = "580.65.06", "13.0.0"
    return cfg


def _run(metrics_source, when, engine="vllm", version="v0.8.5", cluster="h20-2x8", concurrency=32):
    report = benchmark.parse(metrics_source)
    setup = {"engine": engine, "version": version, "image": f"{engine}:{version}", "cluster": cluster,
             "layout": {"tp": 8, "pp": 2}, "workload": {"concurrency": concurrency, "input_len": 1024,
                                                        "output_len": 1024, "num_prompts": 4 * concurrency}}
    return benchmark.run_record(report, timestamp=when, setup=setup, command=["vllm", "bench", "serve"])


def test_sglang_recent_report_gives_every_figure_exactly():
    m = benchmark.parse(load_fixture(SGLANG)).metrics
    assert m["completed"] == 500 and m["input_tokens"] == 253168 and m["output_tokens"] == 131674
    assert (m["request_throughput"], m["input_tok_s"], m["output_tok_s"], m["total_tok_s"]) == \
        (4.42, 2236.90, 1163.42, 3400.32)
    assert (m["ttft_mean_ms"], m["ttft_median_ms"], m["ttft_p99_ms"]) == (47792.35, 47176.86, 102048.78)
    assert (m["tpot_mean_ms"], m["tpot_median_ms"], m["tpot_p99_ms"]) == (49.13, 49.81, 65.31)
    assert (m["itl_mean_ms"], m["itl_median_ms"], m["itl_p95_ms"], m["itl_p99_ms"], m["itl_max_ms"]) == \
        (48.31, 35.71, 116.53, 158.38, 1811.18)
    assert (m["e2el_mean_ms"], m["e2el_median_ms"], m["e2el_p90_ms"], m["e2el_p99_ms"]) == \
        (60465.83, 60908.48, 103027.63, 111428.53)


def test_sglang_report_keeps_its_non_numeric_lines_as_printed_and_derives_nothing():
    report = benchmark.parse(load_fixture(SGLANG))
    assert report.raw["Backend"] == "sglang"
    assert report.raw["Max request concurrency"] == "not set"
    assert report.raw["Traffic request rate"] == "inf"
    assert report.derived == ()


def test_vllm_bench_serve_report_with_trailing_spaces_gives_exact_figures_and_a_derived_input_rate():
    report = benchmark.parse(load_fixture(VLLM_NEW))
    m = report.metrics
    assert (m["completed"], m["failed"], m["duration_s"]) == (100, 0, 129.34)
    assert (m["request_throughput"], m["output_tok_s"], m["total_tok_s"], m["peak_output_tok_s"]) == \
        (0.77, 791.73, 2375.18, 1300.00)
    assert (m["ttft_mean_ms"], m["ttft_median_ms"], m["ttft_p99_ms"]) == (21147.20, 21197.97, 41133.00)
    assert (m["tpot_mean_ms"], m["tpot_median_ms"], m["tpot_p99_ms"]) == (99.71, 99.25, 124.28)
    assert (m["itl_mean_ms"], m["itl_median_ms"], m["itl_p99_ms"]) == (99.71, 76.89, 2032.37)
    # vLLM prints no input rate: total input tokens / duration, marked as derived.
    assert m["input_tok_s"] == 1583.42 and report.derived == ("input_tok_s",)
    assert report.raw["Successful requests"] == "100"


def test_vllm_benchmark_serving_older_layout_gives_exact_figures():
    m = benchmark.parse(load_fixture(VLLM_OLD)).metrics
    assert (m["completed"], m["duration_s"], m["input_tokens"], m["output_tokens"]) == (10, 5.78, 1369, 2212)
    assert (m["request_throughput"], m["output_tok_s"], m["total_tok_s"], m["input_tok_s"]) == \
        (1.73, 382.89, 619.85, 236.85)
    assert (m["ttft_mean_ms"], m["ttft_median_ms"], m["ttft_p99_ms"]) == (71.54, 73.88, 79.49)
    assert (m["tpot_mean_ms"], m["tpot_median_ms"], m["tpot_p99_ms"]) == (7.91, 7.96, 8.03)
    assert (m["itl_mean_ms"], m["itl_median_ms"], m["itl_p99_ms"]) == (7.74, 7.70, 8.39)
    assert "e2el_mean_ms" not in m


def test_trtllm_report_with_extra_lines_gives_its_figures_and_keeps_the_rest_as_printed():
    report = benchmark.parse(TRTLLM_DOC_SAMPLE)
    m = report.metrics
    assert (m["request_throughput"], m["output_tok_s"], m["ttft_p99_ms"], m["itl_p99_ms"]) == \
        (0.61, 622.56, 12.83, 1.77)
    assert (m["e2el_mean_ms"], m["e2el_median_ms"], m["e2el_p99_ms"]) == (1643.44, 1643.44, 1643.44)
    assert report.raw["User throughput (tok/s)"] == "623.08"


def test_the_report_is_found_among_the_benchmarks_other_output():
    noise = "Namespace(model='x', seed=0)\nStarting initial single prompt test run...\nrequests: 100%|###|\n"
    m = benchmark.parse(noise + load_fixture(VLLM_OLD) + "\nsaved to result.json\n").metrics
    assert m["request_throughput"] == 1.73


def test_output_without_a_result_block_is_an_error_that_says_so():
    with pytest.raises(benchmark.BenchmarkError, match="no 'Serving Benchmark Result' block"):
        benchmark.parse("Traceback (most recent call last):\nConnectionRefusedError\n")


def test_a_saved_run_loads_back_equal_from_engine_version_cluster_timestamp(tmp_path):
    run = _run(load_fixture(SGLANG), "2026-07-03T10:15:00Z", engine="sglang", version="v0.5.23")
    path = benchmark.save(run, tmp_path)
    assert path == tmp_path / "sglang" / "v0.5.23" / "h20-2x8" / "20260703T101500Z.json"
    assert benchmark.load(path) == run
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_two_runs_saved_in_the_same_second_are_both_kept(tmp_path):
    run = _run(load_fixture(VLLM_OLD), "2026-07-03T10:15:00Z")
    first, second = benchmark.save(run, tmp_path), benchmark.save(run, tmp_path)
    assert first != second and first.exists() and second.exists()


def test_a_file_that_is_not_a_run_is_refused_on_load_and_skipped_when_comparing(tmp_path):
    stray = tmp_path / "vllm" / "v0.8.5" / "h20-2x8" / "notes.json"
    stray.parent.mkdir(parents=True)
    stray.write_text('{"hello": 1}')
    with pytest.raises(benchmark.BenchmarkError, match="not an llmfab benchmark run"):
        benchmark.load(stray)
    runs, unreadable = benchmark.find_runs(tmp_path)
    assert runs == [] and len(unreadable) == 1


def test_comparing_two_saved_runs_shows_both_oldest_first_with_their_figures(tmp_path):
    benchmark.save(_run(load_fixture(SGLANG), "2026-07-03T12:00:00Z", engine="sglang", version="v0.4.4",
                        concurrency=64), tmp_path)
    benchmark.save(_run(load_fixture(VLLM_NEW), "2026-07-03T09:00:00Z"), tmp_path)
    runs, unreadable = benchmark.find_runs(tmp_path, cluster="h20-2x8")
    assert unreadable == [] and [r["engine"] for r in runs] == ["vllm", "sglang"]
    headers, rows = benchmark.comparison(runs)
    assert headers == ["run (UTC)", "2026-07-03 09:00\nvllm v0.8.5", "2026-07-03 12:00\nsglang v0.4.4"]
    table = {row[0]: row[1:] for row in rows}
    assert table["TP x PP"] == ["8x2", "8x2"]
    assert table["concurrency"] == ["32", "64"] and table["prompts"] == ["128", "256"]
    assert table["input/output tokens"] == ["1024/1024", "1024/1024"]
    assert table["request throughput (req/s)"] == ["0.77", "4.42"]
    assert table["input tokens/s"] == ["1583", "2237"] and table["output tokens/s"] == ["791.7", "1163"]
    assert [table[f"TTFT {s} (ms)"] for s in ("mean", "median", "p99")] == \
        [["21147", "47792"], ["21198", "47177"], ["41133", "102049"]]
    assert [table[f"TPOT {s} (ms)"] for s in ("mean", "median", "p99")] == \
        [["99.7", "49.1"], ["99.2", "49.8"], ["124.3", "65.3"]]
    assert table["ITL mean (ms)"] == ["99.7", "48.3"]


def test_saved_runs_are_filtered_by_cluster_engine_and_version(tmp_path):
    benchmark.save(_run(load_fixture(VLLM_OLD), "2026-07-01T00:00:00Z"), tmp_path)
    benchmark.save(_run(load_fixture(VLLM_OLD), "2026-07-02T00:00:00Z", version="v0.33.0"), tmp_path)
    benchmark.save(_run(load_fixture(SGLANG), "2026-07-03T00:00:00Z", engine="sglang"), tmp_path)
    benchmark.save(_run(load_fixture(SGLANG), "2026-07-04T00:00:00Z", cluster="other"), tmp_path)
    assert len(benchmark.find_runs(tmp_path, cluster="h20-2x8")[0]) == 3
    assert len(benchmark.find_runs(tmp_path, cluster="h20-2x8", engine="vllm")[0]) == 2
    assert len(benchmark.find_runs(tmp_path, engine="vllm", version="0.33.0")[0]) == 1


def test_one_runs_summary_marks_the_derived_input_rate():
    rows = dict(benchmark.summary(_run(load_fixture(VLLM_NEW), "2026-07-03T09:00:00Z")))
    assert rows["input tokens/s [derived]"] == "1583"
    assert rows["TTFT median (ms)"] == "21198" and rows["TPOT p99 (ms)"] == "124.3"


def test_the_plot_of_saved_runs_is_a_non_empty_png(tmp_path):
    pytest.importorskip("matplotlib")
    runs = [_run(load_fixture(VLLM_NEW), "2026-07-03T09:00:00Z"),
            _run(load_fixture(SGLANG), "2026-07-03T12:00:00Z", engine="sglang", version="v0.4.4"),
            _run(load_fixture(VLLM_OLD), "2026-07-03T15:00:00Z", version="v0.33.0")]
    path = benchmark.plot(runs, tmp_path / "plots" / "compare.png", title="llmfab bench: test")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert sorted(p.name for p in path.parent.iterdir()) == ["compare.png"]


def test_without_matplotlib_the_plot_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(benchmark.PlotUnavailable, match="pip install"):
        benchmark.plot([_run(load_fixture(VLLM_OLD), "2026-07-03T09:00:00Z")], tmp_path / "x.png")


PROFILES = [(e, v) for e in list_engines() for v in list_versions(e)]


@pytest.mark.parametrize("engine,version", PROFILES)
def test_the_bench_phase_renders_for_each_engine_version_clean_under_shellcheck_and_bash_n(
        engine, version, tmp_path):
    cfg = _cluster(engine, version, api_key="none" if engine == "trtllm" else "generate")
    script = tmp_path / "bench.sh"
    script.write_text(render_phase(Run(cfg), cfg.head, "bench"))
    subprocess.run(["bash", "-n", str(script)], check=True)
    subprocess.run(["shellcheck", "-S", "warning", str(script)], check=True)
    assert "LLMFAB_STEPS=(bench)" in script.read_text()
    worker = next(n for n in cfg.nodes if n.name != cfg.head.name)
    assert "LLMFAB_STEPS=()" in render_phase(Run(cfg), worker, "bench")


def test_every_engine_profile_names_a_known_benchmark():
    from llmfab.engines import PROFILES as ENGINE_PROFILES
    for versions in ENGINE_PROFILES.values():
        for profile in versions.values():
            assert profile.bench and profile.bench.args in bench_step.ARGUMENTS, profile.version


@pytest.mark.parametrize("engine,version,program,must", [
    ("vllm", "v0.8.5", ["vllm", "bench", "serve"], ["--served-model-name", "DeepSeek-R1", "--ignore-eos"]),
    ("vllm", "v0.33.0", ["vllm", "bench", "serve"], ["--served-model-name", "DeepSeek-R1", "--ignore-eos"]),
    ("sglang", "v0.4.4", ["python3", "-m", "sglang.bench_serving"],
     ["--dataset-path", bench_step.PROMPTS_IN_CONTAINER, "--random-range-ratio", "1.0"]),
    ("sglang", "v0.5.23", ["python3", "-m", "sglang.benchmark.serving"], ["random-ids", "--random-range-ratio"]),
    ("trtllm", "1.0.0", ["python3", "-m", "tensorrt_llm.serve.scripts.benchmark_serving"],
     ["--random-ids", "--ignore-eos", "/v1/completions"]),
])
def test_each_engine_version_runs_its_own_benchmark_with_the_workload(engine, version, program, must):
    work = bench_step.Workload(concurrency=8, input_len=2048, output_len=256, prompts=100, seed=7)
    argv = bench_step.command(deployment(_cluster(engine, version)), work)
    assert argv[:len(program)] == program
    for flag, value in (("--max-concurrency", "8"), ("--random-input-len", "2048"), ("--random-output-len", "256"),
                        ("--num-prompts", "100"), ("--seed", "7"), ("--host", "10.10.0.11"), ("--port", "40000"),
                        ("--model", "/mnt/share/deepseek-ai/DeepSeek-R1")):
        assert argv[argv.index(flag) + 1] == value
    assert all(word in argv for word in must)


def test_a_workload_that_makes_no_sense_is_refused():
    with pytest.raises(bench_step.BenchUnsupported, match="concurrency must be at least 1"):
        bench_step.command(deployment(_cluster("vllm")), bench_step.Workload(concurrency=0))


def test_the_api_key_reaches_the_container_by_name_never_by_value():
    script = render_phase(Run(_cluster("vllm", api_key="s3cr3t-key-value")), _cluster("vllm").head, "bench")
    assert "s3cr3t-key-value" not in script
    assert "pass_key=(-e OPENAI_API_KEY)" in script and "key=/etc/llmfab/api_key" in script
    assert "key=''" in render_phase(Run(_cluster("vllm")), _cluster("vllm").head, "bench")


def _stubs(tmp_path, labels):
    """A PATH where docker runs the benchmark as the vLLM fixture and curl always answers."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    (bin_ / "curl").write_text("#!/usr/bin/env bash\nexit 0\n")
    (bin_ / "docker").write_text(f"""#!/usr/bin/env bash
case $1 in
  inspect) echo '{labels}' ;;
  cp) cp "$2" {tmp_path}/copied.json ;;
  exec) shift; printf '%s\\n' "$*" >{tmp_path}/exec.args; cat {tmp_path}/report.txt ;;
esac
""")
    for tool in ("curl", "docker"):
        (bin_ / tool).chmod(0o755)
    (tmp_path / "report.txt").write_text(load_fixture(VLLM_NEW))
    return {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}"}


def _records(output):
    return [line.split("\t")[1:] for line in output.splitlines() if line.startswith("@@llmfab\t")]


def test_the_step_runs_the_benchmark_in_the_engine_container_and_sends_its_report_back(tmp_path):
    cfg = _cluster("vllm")
    script = tmp_path / "bench.sh"
    script.write_text(render_phase(Run(cfg), cfg.head, "bench"))
    env = _stubs(tmp_path, "vllm v0.8.5 true")
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    records = _records(done.stdout)
    log = next(r for r in records if r[0] == "log")
    assert log[2] == "bench-output"
    assert benchmark.parse(base64.b64decode(log[3]).decode()).metrics["request_throughput"] == 0.77
    assert ["result", "bench", "ok"] == next(r for r in records if r[0] == "result")[:3]
    assert (tmp_path / "exec.args").read_text().startswith("llmfab-engine timeout 1800 vllm bench serve --host")


def test_the_step_refuses_to_bench_another_engine_than_the_one_running(tmp_path):
    cfg = _cluster("sglang", "v0.4.4")
    script = tmp_path / "bench.sh"
    script.write_text(render_phase(Run(cfg), cfg.head, "bench"))
    done = subprocess.run(["bash", str(script)], env=_stubs(tmp_path, "vllm v0.8.5 true"),
                          capture_output=True, text=True, timeout=60)
    result = next(r for r in _records(done.stdout) if r[0] == "result")
    assert result[2] == "failed" and "not a running sglang v0.4.4" in result[3]
    assert not (tmp_path / "exec.args").exists()


def test_sglang_044_gets_its_synthetic_prompts_copied_into_the_container(tmp_path):
    cfg = _cluster("sglang", "v0.4.4")
    run = Run(cfg, RunOptions(workload=bench_step.Workload(concurrency=4, prompts=10, seed=3)))
    script = tmp_path / "bench.sh"
    script.write_text(render_phase(run, cfg.head, "bench"))
    done = subprocess.run(["bash", str(script)], env=_stubs(tmp_path, "sglang v0.4.4 true"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    prompts = json.loads((tmp_path / "copied.json").read_text())
    assert len(prompts) == 10 and len({p["conversations"][0]["value"] for p in prompts}) == 10
    assert all(len(p["conversations"]) == 2 for p in prompts)


def test_a_dry_run_runs_no_benchmark(tmp_path):
    cfg = _cluster("vllm")
    script = tmp_path / "bench.sh"
    script.write_text(render_phase(Run(cfg), cfg.head, "bench"))
    done = subprocess.run(["bash", str(script), "--dry-run"], env=_stubs(tmp_path, "vllm v0.8.5 true"),
                          capture_output=True, text=True, timeout=60)
    assert "would run in llmfab-engine: vllm bench serve" in done.stdout
    assert not (tmp_path / "exec.args").exists()


def test_the_bench_phase_has_one_step_that_only_the_head_runs():
    assert PHASES["bench"] == ["bench"] and STEPS["bench"].where == HEAD
