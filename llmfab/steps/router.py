"""Router phases: the router in front of the serving groups (llmfab/serving.py, llmfab/routers.py).

- ``router`` (the router's node): the image, the container, then wait until
  it sees every group's head healthy.
- ``router-status``, ``router-stop``: what it sees; remove it.
- ``router-drain`` / ``router-admit`` (a rolling re-deploy, the group in
  ``run.options.serving_group``): take one group's head out of the router and
  wait for its requests to end; put it back.

Which node runs them is the task's choice (the router's node).
"""

from __future__ import annotations

import re
import shlex

from .. import routers, serving
from ..config import ClusterConfig, Node
from ..run import Run
from . import LIBRARIES, step

LOG = "/var/log/llmfab/engine/router.log"

LIBRARIES["router"] = ("router/lib.sh.j2", {})


def _base(config: ClusterConfig) -> str:
    return f"http://{serving.router_node(config).address}:{config.serving.router.port}"


def _workers(config: ClusterConfig) -> list[str]:
    return [serving.worker_url(config, g) for g in serving.groups(config)]


def _target(run: Run) -> tuple[str, str]:
    """The chosen group's endpoint, and its vLLM /metrics URL ("" for other engines)."""
    config = run.config
    group = serving.pick(config, run.options.serving_group)
    metrics = f"http://{group.head.address}:{config.engine.port}/metrics" if config.engine.name == "vllm" else ""
    return serving.worker_url(config, group), metrics


def launch_argv(config: ClusterConfig) -> tuple[list[str], str]:
    """The router's `docker run` argv and its fingerprint."""
    ref = routers.image(config)
    command = routers.argv(config, _workers(config), config.engine.bind)
    fingerprint = routers.fingerprint(ref, command)
    run = ["docker", "run", "-d", "--name", routers.CONTAINER, "--network", "host",
           "--ulimit", "nofile=1048576:1048576", "--label", f"llmfab.router={config.engine.name}",
           "--label", f"llmfab.cluster={config.cluster.name}", "--label", f"llmfab.fingerprint={fingerprint}",
           "-v", "/var/log/llmfab/engine:/var/log/llmfab/engine", ref,
           "bash", "-c", "exec " + shlex.join(command) + f" >>{LOG} 2>&1"]
    return run, fingerprint


@step("router-image", title="make the router image present",
      changes="the router image (`serving.router.image`), pulled or loaded from the bundle", undo="`docker rmi`")
def image(run: Run, node: Node) -> dict:
    ref = routers.image(run.config)
    return {"image": ref, "archive": re.sub(r"[^A-Za-z0-9._-]+", "_", ref) + ".tar.gz"}


@step("router-launch", title="start the router in front of the groups",
      changes="container `llmfab-router` (label `llmfab.router`)", undo="`fab stop`")
def launch(run: Run, node: Node) -> dict:
    argv, fingerprint = launch_argv(run.config)
    p = routers.profile(run.config)
    return {"container": routers.CONTAINER, "fingerprint": fingerprint, "run": argv,
            "what": f"{p.package} {p.version} in front of {len(_workers(run.config))} group(s)"}


@step("router-ready", title="wait until the router sees every group healthy", needs=("router",))
def ready(run: Run, node: Node) -> dict:
    # fab deploy starts the router once every group serves; a bundle's may start
    # first, and then waits as long as a head may take to load its weights.
    return {"container": routers.CONTAINER, "base": _base(run.config), "workers": _workers(run.config),
            "timeout": run.config.engine.ready_timeout, "log": LOG}


@step("router-status", title="report the router and what it sees", needs=("router",))
def status(run: Run, node: Node) -> dict:
    return {"container": routers.CONTAINER, "base": _base(run.config)}


@step("router-stop", title="remove llmfab's router container")
def stop(run: Run, node: Node) -> dict:
    return {}


@step("router-drain", title="take a group out of the router and let it finish", needs=("router",))
def drain(run: Run, node: Node) -> dict:
    worker, metrics = _target(run)
    return {"base": _base(run.config), "worker": worker, "api": routers.profile(run.config).api,
            "metrics": metrics, "timeout": run.config.serving.drain_timeout}


@step("router-admit", title="put a group back into the router", needs=("router",))
def admit(run: Run, node: Node) -> dict:
    worker, _ = _target(run)
    return {"base": _base(run.config), "worker": worker, "api": routers.profile(run.config).api, "timeout": 120,
            "container": routers.CONTAINER}
