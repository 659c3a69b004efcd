"""Engine phases: deploy (in the right order, waiting until ready), smoke, status, logs, stop.

Every node runs the same phase script shape; what a step does depends on the
node's rank, rendered in. Cross-node ordering needs no orchestrator: a vLLM
worker waits for the head's Ray port before it joins, and the head waits for
every node in `ray status` before it starts `vllm serve`. So `fab deploy` runs
all nodes at once, and bundle users may start the nodes' `run.sh deploy` in
any order.
"""

from __future__ import annotations

import json
import re

from ..config import Node
from ..deployment import API_KEY_FILE, CONTAINER, Deployment
from .. import mpikeys
from .. import engines
from ..engines import trtllm
from ..run import Run
from . import HEAD, WORKERS, step

SERVE_MARKER = "/var/lib/llmfab/serve-started"
JOIN_TIMEOUT = 900

# The runbook's smoke request, unchanged but for max_tokens: a smoke test only
# needs to see tokens arrive and the stream end.
SMOKE_MESSAGES = [
    {"role": "user", "content": "Hello! How are you?"},
    {"role": "assistant", "content": "Hi! I am quite well, how can I help you today?"},
    {"role": "user", "content": "思考一下长沙有什么好玩的?"},
]


def archive(image: str) -> str:
    """The file name an image is saved under in a bundle's artifacts (and on the node)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", image) + ".tar.gz"


@step("engine-image", title="make the engine image present")
def image(run: Run, node: Node) -> dict:
    ref = run.deployment.profile.image_ref
    return {"image": ref, "archive": archive(ref)}


@step("engine-api-key", title="keep the endpoint API key (head)", where=HEAD,
      enabled=lambda run: run.config.engine.api_key != "none")
def api_key(run: Run, node: Node) -> dict:
    key = run.config.engine.api_key
    return {"path": API_KEY_FILE, "generate": key == "generate", "value": "" if key == "generate" else key}


@step("engine-files", title="write the engine's files")
def files(run: Run, node: Node) -> dict:
    d = run.deployment
    return {"files": engines.plugin(d.engine).files(d.profile, d.launch, d.node_info(node))}


@step("engine-ssh", title="install the per-cluster mpirun SSH keys (TensorRT-LLM)",
      enabled=lambda run: run.deployment.engine == "trtllm")
def ssh(run: Run, node: Node) -> dict:
    """TensorRT-LLM: the per-cluster mpirun keys this node holds (the client key on the head only)."""
    d = run.deployment
    keys = mpikeys.ensure(run.config.cluster.name)
    where = d.launch.ssh_dir
    files = [{"path": f"{where}/authorized_keys", "content": keys.client_public},
             {"path": f"{where}/{trtllm.HOST_KEY}", "content": keys.host_private}]
    if run.is_head(node):
        addresses = [n.address for n in d.launch.ordered()]
        files += [{"path": f"{where}/{trtllm.SSH_KEY}", "content": keys.client_private},
                  {"path": f"{where}/known_hosts",
                   "content": mpikeys.known_hosts(addresses, d.launch.sshd_port, keys.host_public)}]
    return {"dir": where, "files": files}


@step("engine-mpi-check", title="check the image has sshd and Open MPI (TensorRT-LLM)",
      enabled=lambda run: run.deployment.engine == "trtllm")
def mpi_check(run: Run, node: Node) -> dict:
    return {"image": run.deployment.profile.image_ref, "probe": trtllm.MPI_PROBE}


@step("engine-launch", title="start this node's engine container")
def launch(run: Run, node: Node) -> dict:
    config, d = run.config, run.deployment
    first = d.steps_for(node)[0]
    return {
        "container": CONTAINER,
        "fingerprint": d.fingerprint,
        "run": first.argv,
        "what": first.what,
        "head_port": first.waits_for[0][1] if first.waits_for else 0,
        "head_address": config.head.address,
        "timeout": min(JOIN_TIMEOUT, config.engine.ready_timeout),
        "log_dir": d.launch.log_dir,
    }


def _more_than_one_command(run: Run) -> bool:
    return len(run.deployment.steps_for(run.config.head)) > 1


@step("engine-cluster", title="wait for every node and GPU in Ray (head)", where=HEAD,
      enabled=lambda run: run.deployment.engine == "vllm" and _more_than_one_command(run))
def cluster(run: Run, node: Node) -> dict:
    config = run.config
    workers = [n for n in config.ranked_nodes() if n.name != config.head.name]
    return {
        "container": CONTAINER,
        "nodes": len(config.nodes),
        "gpus": len(config.nodes) * config.gpu.per_node,
        "timeout": min(JOIN_TIMEOUT, config.engine.ready_timeout),
        "names": [n.name for n in workers],
        "head_log": f"{run.deployment.launch.log_dir}/ray-rank0.log",
        "addresses": [n.address for n in workers],
    }


@step("engine-serve", title="start serving on the head", where=HEAD,
      enabled=lambda run: run.deployment.engine in ("vllm", "trtllm") and _more_than_one_command(run))
def serve(run: Run, node: Node) -> dict:
    config, d = run.config, run.deployment
    step = d.steps_for(node)[-1]
    # TensorRT-LLM: mpirun needs every worker's container sshd up first.
    workers = [n for n, _ in step.waits_for]
    return {"container": CONTAINER, "serve": step.argv, "what": step.what, "marker": SERVE_MARKER,
            "log": step.log or "/var/log/llmfab",
            "wait_names": [n.name for n in workers], "wait_addresses": [n.address for n in workers],
            "wait_port": d.launch.sshd_port, "timeout": min(JOIN_TIMEOUT, config.engine.ready_timeout)}


def key_file(run: Run) -> str:
    """Where the endpoint's API key is on the head ("" when the endpoint has none)."""
    return "" if run.config.engine.api_key == "none" else API_KEY_FILE


@step("engine-ready", title="wait until the endpoint serves the model (head)", where=HEAD)
def ready(run: Run, node: Node) -> dict:
    config, d = run.config, run.deployment
    urls = d.urls()
    logs = _logs(d, node)
    return {
        "container": CONTAINER, "health": urls["health"], "models": urls["models"],
        "info": urls["info"] if d.profile.readiness.wait_info else "", "served": config.model.served_name,
        "timeout": config.engine.ready_timeout, "key_file": key_file(run), "logs": logs,
    }


@step("engine-rank", title="check this rank stays up (workers)", where=WORKERS)
def rank(run: Run, node: Node) -> dict:
    return {"container": CONTAINER, "rank": run.config.rank(node)}


@step("smoke", title="stream a chat completion from the endpoint (head)", where=HEAD)
def smoke(run: Run, node: Node) -> dict:
    config, d = run.config, run.deployment
    url = d.urls()["health"].rsplit("/", 1)[0] + "/v1/chat/completions"
    request = {
        "model": config.model.served_name, "messages": SMOKE_MESSAGES, "top_p": 1, "n": 1,
        "max_tokens": 256, "stream": True, "frequency_penalty": 1.0, "stop": ["hello"],
    }
    return {"url": url, "key_file": key_file(run), "timeout": 600,
            "request": json.dumps(request, ensure_ascii=False, indent=2)}


def _logs(d: Deployment, node: Node) -> list[str]:
    """The log files NODE's engine commands write (their ``>>FILE`` redirections)."""
    return sorted({s.log for s in d.steps_for(node) if s.log})


@step("engine-status", title="report containers, health and GPUs")
def status(run: Run, node: Node) -> dict:
    from .firewall import TABLE  # firewall builds on this module

    d = run.deployment
    health = d.urls()["health"] if run.is_head(node) else ""
    return {"health": health, "container": CONTAINER, "logs": _logs(d, node), "table": TABLE}


@step("engine-logs", title="collect the engine's logs")
def logs(run: Run, node: Node) -> dict:
    return {"lines": 200, "container": CONTAINER, "log_dir": run.deployment.launch.log_dir}


@step("engine-stop", title="remove llmfab's engine containers")
def stop(run: Run, node: Node) -> dict:
    return {"label": "llmfab.engine"}

