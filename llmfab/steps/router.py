"""Router phases: the router in front of the serving groups (llmfab/serving.py, llmfab/routers.py).

- ``router`` (the router's node): the image, the container, then wait until
  it sees every group's head healthy.
- ``router-status``, ``router-stop``: what it sees; remove it.
- ``router-drain`` / ``router-admit`` (a rolling re-deploy): take one group's
  head out of the router and wait for its requests to end; put it back.
"""

from __future__ import annotations

import re

from .. import routers, serving
from ..config import ClusterConfig, Node
from . import Step, register

LOG = "/var/log/llmfab/engine/router.log"
# The group a drain or admit step is about, per config (set by the task).
_TARGET: dict[int, tuple[ClusterConfig, str, str]] = {}


def target(config: ClusterConfig, group: serving.Group) -> None:
    """Point this run's router-drain / router-admit steps at GROUP's head."""
    metrics = f"http://{group.head.address}:{config.engine.port}/metrics" if config.engine.name == "vllm" else ""
    _TARGET[id(config)] = (config, serving.worker_url(config, group), metrics)


def _target(config: ClusterConfig) -> tuple[str, str]:
    hit = _TARGET.get(id(config))
    if hit is None or hit[0] is not config:
        raise KeyError("no group chosen for the router step (serving.groups)")
    return hit[1], hit[2]


def _base(config: ClusterConfig) -> str:
    return f"http://{serving.router_node(config).address}:{config.serving.router.port}"


def _workers(config: ClusterConfig) -> list[str]:
    return [serving.worker_url(config, g) for g in serving.groups(config)]


def _bind(config: ClusterConfig) -> str:
    return config.engine.bind


def _run(config: ClusterConfig) -> tuple[list[str], str]:
    ref = routers.image(config)
    command = routers.argv(config, _workers(config), _bind(config))
    fingerprint = routers.fingerprint(ref, command)
    run = ["docker", "run", "-d", "--name", routers.CONTAINER, "--network", "host",
           "--ulimit", "nofile=1048576:1048576", "--label", f"llmfab.router={config.engine.name}",
           "--label", f"llmfab.cluster={config.cluster.name}", "--label", f"llmfab.fingerprint={fingerprint}",
           "-v", "/var/log/llmfab/engine:/var/log/llmfab/engine", ref,
           "bash", "-c", "exec " + " ".join(_quote(a) for a in command) + f" >>{LOG} 2>&1"]
    return run, fingerprint


def _quote(word: str) -> str:
    return word if re.fullmatch(r"[A-Za-z0-9_./:=@,+-]+", word) else "'" + word.replace("'", "'\\''") + "'"


def image(config: ClusterConfig, node: Node) -> dict:
    ref = routers.image(config)
    return {"image": ref, "archive": re.sub(r"[^A-Za-z0-9._-]+", "_", ref) + ".tar.gz"}


def launch(config: ClusterConfig, node: Node) -> dict:
    run, fingerprint = _run(config)
    p = routers.profile(config)
    return {"container": routers.CONTAINER, "fingerprint": fingerprint, "run": run,
            "what": f"{p.package} {p.version} in front of {len(_workers(config))} group(s)"}


def ready(config: ClusterConfig, node: Node) -> dict:
    # fab deploy starts the router once every group serves; a bundle's may start
    # first, and then waits as long as a head may take to load its weights.
    return {"container": routers.CONTAINER, "base": _base(config), "workers": _workers(config),
            "timeout": config.engine.ready_timeout, "log": LOG}


def status(config: ClusterConfig, node: Node) -> dict:
    return {"container": routers.CONTAINER, "base": _base(config)}


def drain(config: ClusterConfig, node: Node) -> dict:
    worker, metrics = _target(config)
    return {"base": _base(config), "worker": worker, "api": routers.profile(config).api, "metrics": metrics,
            "timeout": config.serving.drain_timeout}


def admit(config: ClusterConfig, node: Node) -> dict:
    worker, _ = _target(config)
    return {"base": _base(config), "worker": worker, "api": routers.profile(config).api, "timeout": 120,
            "container": routers.CONTAINER}


register("router",
         Step("router-image", "make the router image present", "router/image.sh.j2", image),
         Step("router-launch", "start the router in front of the groups", "router/launch.sh.j2", launch),
         Step("router-ready", "wait until the router sees every group healthy", "router/ready.sh.j2", ready))
register("router-status", Step("router-status", "report the router and what it sees", "router/status.sh.j2", status))
register("router-stop", Step("router-stop", "remove llmfab's router container", "router/stop.sh.j2"))
register("router-drain", Step("router-drain", "take a group out of the router and let it finish",
                              "router/drain.sh.j2", drain))
register("router-admit", Step("router-admit", "put a group back into the router", "router/admit.sh.j2", admit))
