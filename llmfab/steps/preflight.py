"""The `check` phase: one read-only step that runs every preflight probe on a node."""

from __future__ import annotations

from ..checks import Expect, probes
from ..config import ClusterConfig, Node
from ..engines import Launch
from . import Step, register
from .engine import deployment


def expect(config: ClusterConfig, node: Node) -> Expect:
    d = deployment(config)
    launch: Launch = d.launch
    ports = [config.engine.port]
    if d.engine == "vllm":
        ports.append(launch.ray_port)
    elif d.engine == "sglang":
        ports.append(launch.dist_port)
    else:
        ports.append(launch.sshd_port)
    return Expect(
        address=node.address, gpus=config.gpu.per_node, gpu_model=config.gpu.model, driver=config.nvidia.driver_version,
        hcas=tuple(config.network.nccl_ib_hca), gid_index=config.network.nccl_ib_gid_index,
        interface=config.network.interface, head_address=config.head.address,
        is_head=config.head.name == node.name, nofile=config.system.nofile, model_path=config.model.path,
        image=d.profile.image_ref, min_driver=getattr(d.profile, "min_driver", None), ports=tuple(ports),
    )


def probe(config: ClusterConfig, node: Node) -> dict:
    cmds = probes(expect(config, node))
    return {"names": list(cmds), "commands": list(cmds.values())}


register("check", Step("preflight-probe", "run the read-only preflight probes", "check/probe.sh.j2", probe))
