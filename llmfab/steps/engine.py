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

from ..config import ClusterConfig, Node
from ..deployment import API_KEY_FILE, CONTAINER, Deployment, build
from .. import mpikeys
from .. import engines
from ..engines import trtllm
from . import Step, register

SERVE_MARKER = "/var/lib/llmfab/serve-started"
JOIN_TIMEOUT = 900

# The runbook's smoke request, unchanged but for max_tokens: a smoke test only
# needs to see tokens arrive and the stream end.
SMOKE_MESSAGES = [
    {"role": "user", "content": "Hello! How are you?"},
    {"role": "assistant", "content": "Hi! I am quite well, how can I help you today?"},
    {"role": "user", "content": "思考一下长沙有什么好玩的?"},
]


_CACHE: dict[int, tuple[ClusterConfig, str, Deployment]] = {}


def deployment(config: ClusterConfig) -> Deployment:
    """The config's deployment, rendered once per config (and engine choice)."""
    engine = config.engine.model_dump_json()
    hit = _CACHE.get(id(config))
    if hit is None or hit[0] is not config or hit[1] != engine:
        hit = (config, engine, build(config))
        _CACHE[id(config)] = hit
    return hit[2]


def _is_head(config: ClusterConfig, node: Node) -> bool:
    return config.head.name == node.name


def _archive(image: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", image) + ".tar.gz"


def image(config: ClusterConfig, node: Node) -> dict:
    ref = deployment(config).profile.image_ref
    return {"image": ref, "archive": _archive(ref)}


def api_key(config: ClusterConfig, node: Node) -> dict:
    key = config.engine.api_key
    return {"path": API_KEY_FILE, "generate": key == "generate", "value": "" if key == "generate" else key}


def files(config: ClusterConfig, node: Node) -> dict:
    d = deployment(config)
    return {"files": engines.plugin(d.engine).files(d.profile, d.launch, d.node_info(node))}


def ssh(config: ClusterConfig, node: Node) -> dict:
    """TensorRT-LLM: the per-cluster mpirun keys this node holds (the client key on the head only)."""
    d = deployment(config)
    keys = mpikeys.ensure(config.cluster.name)
    where = d.launch.ssh_dir
    files = [{"path": f"{where}/authorized_keys", "content": keys.client_public},
             {"path": f"{where}/{trtllm.HOST_KEY}", "content": keys.host_private}]
    if _is_head(config, node):
        addresses = [n.address for n in d.launch.ordered()]
        files += [{"path": f"{where}/{trtllm.SSH_KEY}", "content": keys.client_private},
                  {"path": f"{where}/known_hosts",
                   "content": mpikeys.known_hosts(addresses, d.launch.sshd_port, keys.host_public)}]
    return {"dir": where, "files": files}


def mpi_check(config: ClusterConfig, node: Node) -> dict:
    return {"image": deployment(config).profile.image_ref, "probe": trtllm.MPI_PROBE}


def launch(config: ClusterConfig, node: Node) -> dict:
    d = deployment(config)
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


def cluster(config: ClusterConfig, node: Node) -> dict:
    workers = [n for n in config.ranked_nodes() if n.name != config.head.name]
    return {
        "container": CONTAINER,
        "nodes": len(config.nodes),
        "gpus": len(config.nodes) * config.gpu.per_node,
        "timeout": min(JOIN_TIMEOUT, config.engine.ready_timeout),
        "names": [n.name for n in workers],
        "head_log": f"{deployment(config).launch.log_dir}/ray-rank0.log",
        "addresses": [n.address for n in workers],
    }


def serve(config: ClusterConfig, node: Node) -> dict:
    d = deployment(config)
    step = d.steps_for(node)[-1]
    # TensorRT-LLM: mpirun needs every worker's container sshd up first.
    workers = [n for n, _ in step.waits_for]
    return {"container": CONTAINER, "serve": step.argv, "what": step.what, "marker": SERVE_MARKER,
            "log": step.log or "/var/log/llmfab",
            "wait_names": [n.name for n in workers], "wait_addresses": [n.address for n in workers],
            "wait_port": d.launch.sshd_port, "timeout": min(JOIN_TIMEOUT, config.engine.ready_timeout)}


def _key_file(config: ClusterConfig) -> str:
    return "" if config.engine.api_key == "none" else API_KEY_FILE


def ready(config: ClusterConfig, node: Node) -> dict:
    d = deployment(config)
    urls = d.urls()
    logs = _logs(d, node)
    return {
        "container": CONTAINER, "health": urls["health"], "models": urls["models"],
        "info": urls["info"] if d.profile.readiness.wait_info else "", "served": config.model.served_name,
        "timeout": config.engine.ready_timeout, "key_file": _key_file(config), "logs": logs,
    }


def rank(config: ClusterConfig, node: Node) -> dict:
    return {"container": CONTAINER, "rank": config.rank(node)}


def smoke(config: ClusterConfig, node: Node) -> dict:
    d = deployment(config)
    url = d.urls()["health"].rsplit("/", 1)[0] + "/v1/chat/completions"
    request = {
        "model": config.model.served_name, "messages": SMOKE_MESSAGES, "top_p": 1, "n": 1,
        "max_tokens": 256, "stream": True, "frequency_penalty": 1.0, "stop": ["hello"],
    }
    return {"url": url, "key_file": _key_file(config), "timeout": 600,
            "request": json.dumps(request, ensure_ascii=False, indent=2)}


def _logs(d: Deployment, node: Node) -> list[str]:
    """The log files NODE's engine commands write (their ``>>FILE`` redirections)."""
    return sorted({s.log for s in d.steps_for(node) if s.log})


def status(config: ClusterConfig, node: Node) -> dict:
    from .firewall import TABLE  # firewall builds on this module

    d = deployment(config)
    health = d.urls()["health"] if _is_head(config, node) else ""
    return {"health": health, "container": CONTAINER, "logs": _logs(d, node), "table": TABLE}


def _needs_serve(config: ClusterConfig) -> bool:
    return deployment(config).engine in ("vllm", "trtllm")


register(
    "deploy",
    Step("engine-image", "make the engine image present", "engine/image.sh.j2", image),
    Step("engine-api-key", "keep the endpoint API key (head)", "engine/api_key.sh.j2", api_key,
         enabled=lambda c: c.engine.api_key != "none", only=lambda c, n: _is_head(c, n)),
    Step("engine-ssh", "install the per-cluster mpirun SSH keys (TensorRT-LLM)", "engine/ssh.sh.j2", ssh,
         enabled=lambda c: deployment(c).engine == "trtllm"),
    Step("engine-mpi-check", "check the image has sshd and Open MPI (TensorRT-LLM)", "engine/mpi_check.sh.j2",
         mpi_check, enabled=lambda c: deployment(c).engine == "trtllm"),
    Step("engine-files", "write the engine's files", "engine/files.sh.j2", files),
    Step("engine-launch", "start this node's engine container", "engine/launch.sh.j2", launch),
    Step("engine-cluster", "wait for every node and GPU in Ray (head)", "engine/cluster.sh.j2", cluster,
         enabled=lambda c: deployment(c).engine == "vllm" and len(deployment(c).steps_for(c.head)) > 1,
         only=lambda c, n: _is_head(c, n)),
    Step("engine-serve", "start serving on the head", "engine/serve.sh.j2", serve,
         enabled=lambda c: _needs_serve(c) and len(deployment(c).steps_for(c.head)) > 1,
         only=lambda c, n: _is_head(c, n)),
    Step("engine-ready", "wait until the endpoint serves the model (head)", "engine/ready.sh.j2", ready,
         only=lambda c, n: _is_head(c, n)),
    Step("engine-rank", "check this rank stays up (workers)", "engine/rank.sh.j2", rank,
         only=lambda c, n: not _is_head(c, n)),
)
register("smoke", Step("smoke", "stream a chat completion from the endpoint (head)", "engine/smoke.sh.j2", smoke,
                       only=lambda c, n: _is_head(c, n)))
register("status", Step("engine-status", "report containers, health and GPUs", "engine/status.sh.j2", status))
register("logs", Step("engine-logs", "collect the engine's logs", "engine/logs.sh.j2",
                      lambda c, n: {"lines": 200, "container": CONTAINER, "log_dir": deployment(c).launch.log_dir}))
register("stop", Step("engine-stop", "remove llmfab's engine containers", "engine/stop.sh.j2",
                      lambda c, n: {"label": "llmfab.engine"}))
