"""A deployment: the config's cluster seen through one engine profile.

Everything that can be wrong with a deployment (an unknown engine option, TP x
PP that does not match the GPUs, a hostname where an IPv4 literal is needed) is
found here, before any container starts. The fingerprint names the whole
cluster's rendered launch: a running container with the same fingerprint is
the deployment already in place, so re-deploying changes nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Optional

from . import cuda, engines
from .config import ClusterConfig, Node
from .engines import EngineConfigError, EngineProfile, Launch, NodeInfo
from .errors import Refused
from .models import UnknownModelError, load_model

API_KEY_FILE = "/etc/llmfab/api_key"
CONTAINER = "llmfab-engine"


class DeploymentError(Refused):
    """The deployment cannot be rendered as configured (refused before anything runs)."""


@dataclass(frozen=True)
class Deployment:
    config: ClusterConfig
    profile: EngineProfile
    options: dict
    launch: Launch
    fingerprint: str

    @property
    def engine(self) -> str:
        return self.profile.engine

    def node_info(self, node: Node) -> NodeInfo:
        return next(n for n in self.launch.nodes if n.name == node.name)

    def steps_for(self, node: Node) -> list[engines.Step]:
        """The launch commands NODE runs itself, in order."""
        return [s for s in engines.render_plan(self.profile, self.launch) if s.node == node.name]

    def urls(self) -> dict[str, str]:
        return engines.readiness_urls(self.profile, self.launch)


def build(config: ClusterConfig, engine: Optional[str] = None, version: Optional[str] = None) -> Deployment:
    """Validate and render the deployment of CONFIG's model with ENGINE (default: the config's)."""
    name = engine or config.engine.name
    same_engine = name == config.engine.name
    try:
        profile = engines.get_profile(name, version or (config.engine.version if same_engine else None))
    except (KeyError, ValueError) as e:
        raise DeploymentError(str(e).strip("'\"")) from None
    _driver_runs_image(config, profile)
    given = config.engine.options if same_engine else {}
    wanted = {**engines.default_options(profile), **layout_defaults(profile, config, given),
              **engines.reasoning_options(profile, _model_name(config)), **given}
    errors = engines.validate_options(profile, wanted)
    if errors:
        raise DeploymentError(f"engine.options for {profile.engine} {profile.version}: " + "; ".join(errors))
    options = engines.coerce_options(profile, wanted)
    errors = engines.check_parallelism(profile, options, len(config.nodes), config.gpu.per_node)
    if errors:
        keys = [k for k in profile.layout["parallel"] if k in profile.option_keys()]
        raise DeploymentError("; ".join(errors) + f". Set {' / '.join(f'engine.options.{k}' for k in keys)} in "
                              f"{config.source or 'the config'}, or leave them out: llmfab then uses every GPU "
                              f"({layout_words(profile, config)})")
    launch = _launch(config, profile, options)
    errors = engines.check_launch(launch)
    if errors:
        raise DeploymentError("; ".join(errors))
    try:
        fingerprint = _fingerprint(profile, launch)
    except EngineConfigError as e:  # what only rendering finds (trtllm + a key)
        raise DeploymentError("; ".join(e.errors)) from None
    launch = replace(launch, labels={**launch.labels, "llmfab.fingerprint": fingerprint})
    return Deployment(config, profile, options, launch, fingerprint)


def _model_name(config: ClusterConfig) -> str:
    """The model's name in llmfab/models/ ("deepseek-r1"), or "" when it has no description."""
    try:
        return load_model(config.model.id).name
    except UnknownModelError:
        return ""


def _driver_runs_image(config: ClusterConfig, profile: EngineProfile) -> None:
    """Refuse a profile whose image the configured driver cannot run (CUDA compatibility, llmfab/cuda.py)."""
    driver = config.nvidia.driver_version
    if cuda.runs(driver, profile.cuda_requires):
        return
    others = [v for v, p in engines.PROFILES[profile.engine].items() if cuda.runs(driver, p.cuda_requires)]
    raise DeploymentError(
        f"engine.version: {profile.engine} {profile.version} ({profile.image}) is built for CUDA "
        f"{profile.cuda_requires}, which needs driver branch {cuda.min_driver_branch(profile.cuda_requires)} or newer; "
        f"nvidia.driver_version is {driver} (CUDA {cuda.driver_cuda(driver)}). Fix: set nvidia.driver_version "
        f"and nvidia.cuda_version to a {cuda.min_driver_branch(profile.cuda_requires)}+ release"
        + (f", or engine.version to {' or '.join(others)}" if others else "") + f" (rule: {cuda.SOURCE})")


def layout_defaults(profile: EngineProfile, config: ClusterConfig, given: dict) -> dict:
    """A layout over every GPU of this cluster, unless the config sets one.

    vLLM: TP across a node's GPUs (NVLink), PP across nodes. SGLang and
    TensorRT-LLM: one TP group over all GPUs (TensorRT-LLM: experts likewise).
    """
    if any(k in given for k in profile.layout["parallel"]):
        return {}
    layout = engines.plugin(profile.engine).default_layout(len(config.nodes), config.gpu.per_node)
    defaults = engines.default_options(profile)
    return {k: v for k, v in layout.items() if k in defaults}


def layout_words(profile: EngineProfile, config: ClusterConfig) -> str:
    """The default layout of this cluster, in words."""
    layout = layout_defaults(profile, config, {})
    return ", ".join(f"{k}: {v}" for k, v in layout.items())


def _launch(config: ClusterConfig, profile: EngineProfile, options: dict) -> Launch:
    nodes = tuple(NodeInfo(n.name, n.address, config.rank(n)) for n in config.ranked_nodes())
    api_key = None if config.engine.api_key == "none" else API_KEY_FILE
    try:
        return Launch(
            nodes=nodes,
            model_path=config.model.path,
            gpus_per_node=config.gpu.per_node,
            served_name=config.model.served_name,
            port=config.engine.port,
            dist_port=config.engine.dist_port,
            bind_host=config.engine.bind,
            interface=config.network.interface,
            nccl_ib_hca=tuple(config.network.nccl_ib_hca),
            nccl_ib_gid_index=config.network.nccl_ib_gid_index,
            api_key_file=api_key,
            options=options,
            container_name=CONTAINER,
            labels={"llmfab.cluster": config.cluster.name},
        )
    except EngineConfigError as e:
        raise DeploymentError("; ".join(e.errors)) from None


def _fingerprint(profile: EngineProfile, launch: Launch) -> str:
    plan = [(s.node, s.argv) for s in engines.render_plan(profile, launch)]
    blob = json.dumps({"image": profile.image_ref, "plan": plan}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
