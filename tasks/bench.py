"""`fab bench`: the engine's own serving benchmark against the deployed endpoint; saved, compared, plotted."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from llmfab import benchmark
from llmfab.deployment import Deployment
from llmfab.errors import HostsFailed, Refused
from llmfab.output import console
from llmfab.config import load
from llmfab.session import Session, open_session, reported_errors
from llmfab.steps import bench as bench_step

from .engine import ENGINE, VERSION
from .options import ACCEPT_NEW, ASK_SUDO, CONFIG, session_engine, task
from .planning import LAYOUT

RESULTS = "bench/results"
DEFAULTS = bench_step.Workload()


@task(help={
    "config": CONFIG, "accept-new-host-keys": ACCEPT_NEW, "ask-sudo-pass": ASK_SUDO,
    "engine": ENGINE + "; with --compare: only this engine's runs",
    "version": VERSION + "; with --compare: only this version's runs",
    "concurrency": f"requests in flight at once, the benchmark's --max-concurrency (default {DEFAULTS.concurrency})",
    "input-len": f"prompt tokens of every request, random prompts (default {DEFAULTS.input_len})",
    "output-len": f"generated tokens of every request, end-of-sequence ignored (default {DEFAULTS.output_len})",
    "prompts": "requests in all (default: 4 x concurrency)",
    "seed": "seed of the random prompts (default: a new one per run, so no earlier run's prefix cache helps)",
    "timeout": f"seconds the benchmark may run on the head (default {DEFAULTS.timeout})",
    "results": f"directory of saved runs (default {RESULTS}; a run goes to ENGINE/VERSION/CLUSTER/TIMESTAMP.json)",
    "compare": "contact no host: show the saved runs of this cluster as a table and plot them",
    "last": "with --compare: the newest N runs (default 10)",
    "plot": "with --compare: where to write the PNG (default RESULTS/compare-CLUSTER.png)",
})
def bench(c, config=None, engine=None, version=None, concurrency=DEFAULTS.concurrency,
          input_len=DEFAULTS.input_len, output_len=DEFAULTS.output_len, prompts=0, seed=0,
          timeout=DEFAULTS.timeout, results=RESULTS, compare=False, last=10, plot=None,
          accept_new_host_keys=False, ask_sudo_pass=False):
    """Benchmark the deployed endpoint with the engine's own serving benchmark; save, compare, plot runs.

    Runs vLLM's `vllm bench serve`, SGLang's bench_serving or TensorRT-LLM's
    benchmark_serving inside the engine container on the head (nothing to
    install), with fixed input/output lengths and the API key passed by name
    (OPENAI_API_KEY), never printed. Prints request and token throughput,
    TTFT, TPOT and ITL, and saves them as JSON with the engine, version,
    image, TP/PP and workload. --compare reads the saved runs only.

    Examples:
      fab bench --concurrency 64 --input-len 2048 --output-len 512
      fab bench --engine sglang --prompts 512
      fab bench --compare --last 6
    """
    with reported_errors():
        if compare:
            _compare(load(config).cluster.name, Path(results), engine, version, int(last), plot)
            return
        session = open_session(c, config, quiet=True, accept_new_host_keys=accept_new_host_keys,
                               ask_sudo_pass=ask_sudo_pass)
        session = session_engine(session, engine, version)
        work = bench_step.Workload(int(concurrency), int(input_len), int(output_len), int(prompts),
                                   int(seed) or int(time.time()) % 2**31, int(timeout))
        session = session.with_run(session.run.with_options(workload=work))
        _run(session, _deployment(session, work), work, Path(results))


def _deployment(session: Session, work: bench_step.Workload) -> Deployment:
    """The deployment to benchmark, Refused when the workload cannot run on it."""
    d = session.run.deployment
    bench_step.command(d, work)
    context = d.options.get(LAYOUT[d.engine]["context"])
    if context and work.input_len + work.output_len > int(context):
        raise Refused(f"input {work.input_len} + output {work.output_len} tokens exceed the "
                      f"engine's context of {context} tokens; shorten them")
    return d


def _run(session: Session, d: Deployment, work: bench_step.Workload, root: Path) -> None:
    out, cfg = session.reporter.out, session.config
    started = benchmark.utc_now()
    argv = bench_step.command(d, work)
    out.print(f"benchmarking [bold]{d.engine} {d.profile.version}[/bold] on {cfg.head.name} "
              f"({cfg.head.address}): {work.num_prompts} prompts, concurrency {work.concurrency}, "
              f"{work.input_len} in / {work.output_len} out tokens")
    out.print(Text("  " + shlex.join(argv), style="dim"))
    results = session.phase("bench", on=session.head_only)
    head = results[0]
    text = head.logs().get("bench-output", "")
    if not head.failed:
        try:
            report = benchmark.parse(text)
        except benchmark.BenchmarkError as e:
            for line in text.splitlines()[-30:]:
                out.print(Text("  " + line))
            raise HostsFailed(str(e)) from None
        run = benchmark.run_record(report, timestamp=started, setup=_setup(session, d, work), command=argv)
        path = benchmark.save(run, root)
        _print_run(out, run, path)
    session.finish(results, "bench")


def _setup(session: Session, d: Deployment, work: bench_step.Workload) -> dict:
    """What the run measured: the values a comparison needs besides the figures."""
    cfg, keys = session.config, LAYOUT[d.engine]
    tp, pp = int(d.options.get(keys["tp"]) or 1), int(d.options.get(keys["pp"]) or 1)
    # vLLM's expert parallelism spans TP x DP; SGLang and TensorRT-LLM name their size.
    ep = d.options.get("ep_size") or (tp * int(d.options.get("data_parallel_size") or 1)
                                      if d.options.get("enable_expert_parallel") else None)
    return {
        "engine": d.engine, "version": d.profile.version, "image": d.profile.image_ref,
        "cluster": cfg.cluster.name, "head": {"name": cfg.head.name, "address": cfg.head.address},
        "model": {"id": cfg.model.id, "path": cfg.model.path, "served_name": cfg.model.served_name},
        "fingerprint": d.fingerprint,
        "layout": {"nodes": len(cfg.nodes), "gpus_per_node": cfg.gpu.per_node,
                   "tp": tp, "pp": pp, "ep": ep},
        "options": dict(d.options), "workload": work.as_dict(), "api_key": cfg.engine.api_key != "none",
    }


def _print_run(out, run: dict, path: Path) -> None:
    table = Table(title=escape(f"{run['engine']} {run['version']} on {run['cluster']} ({run['timestamp']})"),
                  title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for label, value in benchmark.summary(run):
        table.add_row(Text(label), value)
    out.print(table)
    if run["derived"]:
        out.print(Text("[derived]: not printed by this benchmark; total input tokens / duration", style="dim"))
    out.print(Text(f"saved {path}; compare runs with: fab bench --compare"))


def _compare(cluster: str, root: Path, engine, version, last: int, plot) -> None:
    out = console()
    runs, unreadable = benchmark.find_runs(root, cluster=cluster, engine=engine, version=version)
    for problem in unreadable:
        out.print(Text(f"skipped {problem}", style="yellow"))
    if not runs:
        out.print(Text(f"no saved runs of cluster {cluster} under {root}: run fab bench first"))
        return
    runs = runs[-max(1, last):]
    headers, rows = benchmark.comparison(runs)
    table = Table(title=escape(f"benchmark runs of {cluster} ({len(runs)}, oldest first)"), title_justify="left")
    for i, header in enumerate(headers):
        table.add_column(Text(header), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*map(Text, row))
    out.print(table)
    target = Path(plot) if plot else root / f"compare-{benchmark.file_part(cluster)}.png"
    try:
        written = benchmark.plot(runs, target, title=f"llmfab bench: {cluster}")
    except benchmark.PlotUnavailable as e:
        out.print(Text(str(e), style="yellow"))
        return
    out.print(Text(f"plot written to {written}"))
