"""Serving benchmark results: parse the engines' own report, save runs, compare and plot them.

Pure but for the files it is asked to write. `fab bench` runs the engine's own
benchmark on the head (``llmfab/steps/bench.py``) and hands its stdout to
``parse``. vLLM (``vllm bench serve`` and the older
``benchmarks/benchmark_serving.py``), SGLang (``sglang.bench_serving``) and
TensorRT-LLM (its vLLM-derived ``benchmark_serving``) all print one "Serving
Benchmark Result" block of ``Label:   value`` lines. The labels differ a little
by engine and version (vLLM pads values with trailing spaces, SGLang 0.4.4
prints no TPOT, only SGLang prints the input token rate), so lines are matched
by what they say, never by position, and every line is also kept as printed.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

from .errors import LlmfabError

SCHEMA = 1
PLOT_HINT = ("matplotlib is not installed, so no plot was drawn: "
             "python3 -m pip install 'matplotlib>=3.7' (or: python3 -m pip install -e '.[plot]')")

_START = re.compile(r"^=+ ?Serving Benchmark Result ?=+\s*$")
_END = re.compile(r"^={10,}\s*$")
_LINE = re.compile(r"^\s*([^:]+?):\s+(\S.*?)\s*$")
_STAT = re.compile(r"^(mean|median|max|p(\d+(?:\.\d+)?)) (ttft|tpot|itl|e2el|e2e latency) \(ms\)$")
_SIMPLE = {
    "successful requests": "completed",
    "failed requests": "failed",
    "benchmark duration (s)": "duration_s",
    "total input tokens": "input_tokens",
    "total generated tokens": "output_tokens",
    "request throughput (req/s)": "request_throughput",
    "input token throughput (tok/s)": "input_tok_s",
    "output token throughput (tok/s)": "output_tok_s",
    "total token throughput (tok/s)": "total_tok_s",
    "peak output token throughput (tok/s)": "peak_output_tok_s",
}
_COUNTS = {"completed", "failed", "input_tokens", "output_tokens"}

# The figures of one run, in table order: (key, label).
HEADLINE = [
    ("request_throughput", "request throughput (req/s)"),
    ("input_tok_s", "input tokens/s"),
    ("output_tok_s", "output tokens/s"),
    ("total_tok_s", "total tokens/s"),
    ("ttft_mean_ms", "TTFT mean (ms)"), ("ttft_median_ms", "TTFT median (ms)"), ("ttft_p99_ms", "TTFT p99 (ms)"),
    ("tpot_mean_ms", "TPOT mean (ms)"), ("tpot_median_ms", "TPOT median (ms)"), ("tpot_p99_ms", "TPOT p99 (ms)"),
    ("itl_mean_ms", "ITL mean (ms)"), ("itl_median_ms", "ITL median (ms)"), ("itl_p99_ms", "ITL p99 (ms)"),
    ("e2el_mean_ms", "end-to-end mean (ms)"), ("e2el_p99_ms", "end-to-end p99 (ms)"),
    ("completed", "successful requests"), ("failed", "failed requests"), ("duration_s", "duration (s)"),
]


class BenchmarkError(LlmfabError):
    """A benchmark report or a saved run that cannot be read."""


class PlotUnavailable(BenchmarkError):
    """matplotlib is missing; the message says how to install it."""


@dataclass(frozen=True)
class Report:
    """One "Serving Benchmark Result" block: canonical figures, and every line as printed."""

    metrics: dict[str, float] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)
    # Figures computed here because this benchmark does not print them.
    derived: tuple[str, ...] = ()


def parse(text: str) -> Report:
    """Read the last "Serving Benchmark Result" block of a benchmark's output."""
    block = _last_block(text.splitlines())
    if block is None:
        raise BenchmarkError("no 'Serving Benchmark Result' block in the benchmark's output")
    metrics: dict[str, float] = {}
    raw: dict[str, str] = {}
    for line in block:
        m = _LINE.match(line)
        if not m:
            continue  # section rules such as "----Time to First Token----"
        label, value = m.group(1).strip(), m.group(2)
        raw[label] = value
        key = _key(label.lower())
        number = _number(value)
        if key and number is not None:
            metrics[key] = int(number) if key in _COUNTS else number
    if "request_throughput" not in metrics:
        raise BenchmarkError("the result block has no 'Request throughput (req/s)' line")
    derived = []
    if "input_tok_s" not in metrics and metrics.get("duration_s") and "input_tokens" in metrics:
        # vLLM and TensorRT-LLM print no input rate; SGLang computes it exactly so.
        metrics["input_tok_s"] = round(metrics["input_tokens"] / metrics["duration_s"], 2)
        derived.append("input_tok_s")
    return Report(metrics, raw, tuple(derived))


def _last_block(lines: list[str]) -> Optional[list[str]]:
    starts = [i for i, line in enumerate(lines) if _START.match(line.strip())]
    if not starts:
        return None
    body = lines[starts[-1] + 1:]
    end = next((i for i, line in enumerate(body) if _END.match(line.strip())), len(body))
    return body[:end]


def _key(label: str) -> Optional[str]:
    if label in _SIMPLE:
        return _SIMPLE[label]
    m = _STAT.match(label)
    if not m:
        return None
    stat = m.group(1) if not m.group(2) else "p" + m.group(2).replace(".", "_")
    metric = "e2el" if m.group(3).startswith("e2e") else m.group(3)
    return f"{metric}_{stat}_ms"


def _number(value: str) -> Optional[float]:
    try:
        number = float(value.split()[0])
    except (ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


def utc_now() -> str:
    """The current time as saved in a run: ISO 8601, UTC, whole seconds."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def run_record(report: Report, *, timestamp: str, setup: dict[str, Any], command: list[str]) -> dict:
    """The saved form of one run: what ran (SETUP: engine, version, image, cluster,
    layout, workload...), the command, the figures and the report as printed."""
    return {"schema": SCHEMA, "timestamp": timestamp, **setup, "command": list(command),
            "metrics": dict(report.metrics), "derived": list(report.derived), "raw": dict(report.raw)}


def file_part(text: Any) -> str:
    """TEXT made safe as one path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._") or "_"


def run_path(root: Path, run: dict) -> Path:
    """ROOT/<engine>/<version>/<cluster>/<UTC timestamp>.json for RUN."""
    stamp = run["timestamp"].replace("-", "").replace(":", "")
    parts = (run["engine"], run["version"], run["cluster"])
    return root.joinpath(*map(file_part, parts)) / f"{file_part(stamp)}.json"


def save(run: dict, root: Path) -> Path:
    """Write RUN under ROOT atomically (temporary file beside it, then rename); never overwrite."""
    path = run_path(root, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while path.exists():
        n += 1
        path = path.with_name(f"{path.stem.split('~')[0]}~{n}.json")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(run, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: Path) -> dict:
    """Read one saved run; BenchmarkError when it is not one."""
    try:
        run = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BenchmarkError(f"{path}: cannot read a benchmark run ({e})") from None
    if not isinstance(run, dict) or run.get("schema") != SCHEMA or not isinstance(run.get("metrics"), dict):
        raise BenchmarkError(f"{path}: not an llmfab benchmark run (schema {SCHEMA})")
    return run


def find_runs(root: Path, cluster: Optional[str] = None, engine: Optional[str] = None,
              version: Optional[str] = None) -> tuple[list[dict], list[str]]:
    """Saved runs under ROOT, oldest first, filtered; and the files that could not be read."""
    runs, unreadable = [], []
    for path in sorted(Path(root).glob("*/*/*/*.json")):
        try:
            run = load(path)
        except BenchmarkError as e:
            unreadable.append(str(e))
            continue
        if (cluster and run.get("cluster") != cluster) or (engine and run.get("engine") != engine) \
                or (version and str(run.get("version", "")).lstrip("v") != version.lstrip("v")):
            continue
        runs.append({**run, "path": str(path)})
    runs.sort(key=lambda r: (r.get("timestamp", ""), r["path"]))
    return runs, unreadable


def fmt(value: Any) -> str:
    """A figure for a table: fewer decimals as it grows; a dash when absent."""
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def summary(run: dict) -> list[tuple[str, str]]:
    """(label, value) rows of one run's headline figures; derived ones are marked."""
    metrics, derived = run["metrics"], set(run.get("derived", ()))
    rows = []
    for key, label in HEADLINE:
        if key in metrics:
            rows.append((label + (" [derived]" if key in derived else ""), fmt(metrics[key])))
    return rows


# The rows of a comparison, one column per run: (label, how to read it from a run).
_COMPARE_ROWS = [
    ("TP x PP", lambda r: f"{r.get('layout', {}).get('tp', '?')}x{r.get('layout', {}).get('pp', '?')}"),
    ("concurrency", lambda r: fmt(r.get("workload", {}).get("concurrency"))),
    ("input/output tokens", lambda r: f"{fmt(r.get('workload', {}).get('input_len'))}/"
                                      f"{fmt(r.get('workload', {}).get('output_len'))}"),
    ("prompts", lambda r: fmt(r.get("workload", {}).get("num_prompts"))),
] + [(label, (lambda key: lambda r: fmt(r["metrics"].get(key)))(key)) for key, label in HEADLINE[:13]]


def comparison(runs: Iterable[dict]) -> tuple[list[str], list[list[str]]]:
    """A table of RUNS, one column each in the order given: (headers, rows)."""
    runs = list(runs)
    headers = ["run (UTC)"] + [f"{r.get('timestamp', '?').replace('T', ' ').rstrip('Z')[:16]}\n"
                               f"{r.get('engine', '?')} {r.get('version', '?')}" for r in runs]
    return headers, [[label, *(read(r) for r in runs)] for label, read in _COMPARE_ROWS]


def _label(run: dict) -> str:
    w = run.get("workload", {})
    when = run.get("timestamp", "?")[5:16].replace("T", " ")
    return f"{when}\n{run.get('engine', '?')} {run.get('version', '?')}\nc={w.get('concurrency', '?')} " \
           f"{w.get('input_len', '?')}/{w.get('output_len', '?')}"


def _series(runs: list[dict], key: str) -> list[float]:
    return [float(r["metrics"][key]) if r["metrics"].get(key) is not None else math.nan for r in runs]


def plot(runs: list[dict], path: Path, title: str = "llmfab bench") -> Path:
    """Draw throughput (bars) and TTFT / TPOT (lines) across RUNS into a PNG at PATH."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(PLOT_HINT) from None
    if not runs:
        raise BenchmarkError("no runs to plot")
    x = list(range(len(runs)))
    fig, (tput, ttft, tpot) = plt.subplots(3, 1, sharex=True, figsize=(max(8.0, 1.6 * len(runs) + 3), 11))
    width = 0.38
    tput.bar([i - width / 2 for i in x], _series(runs, "output_tok_s"), width, label="output tokens/s")
    tput.bar([i + width / 2 for i in x], _series(runs, "input_tok_s"), width, label="input tokens/s")
    tput.set_ylabel("tokens/s")
    tput.set_title("throughput")
    rate = tput.twinx()
    rate.plot(x, _series(runs, "request_throughput"), "o-", color="black", label="requests/s")
    rate.set_ylabel("requests/s")
    handles = tput.get_legend_handles_labels()[0] + rate.get_legend_handles_labels()[0]
    tput.legend(handles, [h.get_label() for h in handles], loc="upper left", fontsize="small")
    for ax, metric, name in ((ttft, "ttft", "time to first token"), (tpot, "tpot", "time per output token")):
        for stat, style in (("mean", "o-"), ("median", "s--"), ("p99", "^:")):
            ax.plot(x, _series(runs, f"{metric}_{stat}_ms"), style, label=stat)
        ax.set_ylabel("ms")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize="small")
    tpot.set_xticks(x)
    tpot.set_xticklabels([_label(r) for r in runs], fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path
