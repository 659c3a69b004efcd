"""The `check` phase: one read-only step that runs every preflight probe on a node."""

from __future__ import annotations

from pathlib import Path

from ..checks import Expect, probes
from .. import engines
from ..config import Node
from ..engines import Launch
from ..engines.launch import fabric_env
from ..run import Run
from . import step
from .engine import archive
from .model import download_bytes
from .firewall import filtered_ports


def expect(run: Run, node: Node) -> Expect:
    """What NODE should look like for this run's deployment (the judges compare the probes with it)."""
    config, d = run.config, run.deployment
    launch: Launch = d.launch
    ports = [config.engine.port, engines.plugin(d.engine).rendezvous_port(launch)]
    return Expect(
        address=node.address, gpus=config.gpu.per_node, gpu_model=config.gpu.model, driver=config.nvidia.driver_version,
        hcas=tuple(config.network.nccl_ib_hca), gid_index=config.network.nccl_ib_gid_index,
        interface=config.network.interface, head_address=config.head.address,
        is_head=config.head.name == node.name, nofile=config.system.nofile, model_path=config.model.path,
        image=d.profile.image_ref, image_archive=archive(d.profile.image_ref), min_driver=d.profile.min_driver,
        ports=tuple(ports), image_cuda=d.profile.cuda_requires, model_bytes=download_bytes(config),
        fabricmanager=config.nvidia.fabricmanager,
        guarded=tuple((a, b) for a, b, _ in filtered_ports(run)), firewall=config.engine.firewall,
    )


@step("preflight-probe", title="run the read-only preflight probes", dir="check")
def probe(run: Run, node: Node) -> dict:
    cmds = probes(expect(run, node))
    return {"names": list(cmds), "commands": list(cmds.values())}


NCCL_PORT = 29511
ALLREDUCE = Path(__file__).resolve().parent.parent / "scripts" / "allreduce_check.py"


@step("nccl-allreduce", title="all-reduce across every GPU of every node", dir="check")
def nccl(run: Run, node: Node) -> dict:
    """The all-reduce with exactly the environment the engine's containers get."""
    config, d = run.config, run.deployment
    info = d.node_info(node)
    env = fabric_env(d.launch, info)
    return {
        "image": d.profile.image_ref,
        "timeout": config.engine.nccl_timeout,
        "env": [a for k, v in env.items() for a in ("-e", f"{k}={v}")] + ["-e", "NCCL_DEBUG=INFO"],
        "launch": [f"--nnodes={len(config.nodes)}", f"--node-rank={config.rank(node)}",
                   f"--nproc-per-node={config.gpu.per_node}", f"--master-addr={config.head.address}",
                   f"--master-port={NCCL_PORT}"],
        "sizes": ["--min-bytes", "1M", "--max-bytes", "1G"],
        "script_text": ALLREDUCE.read_text(),
    }
