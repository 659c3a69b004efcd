"""One run of a task: the validated config, the run's options, and what follows from them.

A task builds one ``Run`` from its arguments and hands it to every phase; each
step's context function reads ``(run, node)`` and nothing else. Nothing in a
Run changes after it is built (httpie's Environment, Fabric's "a subset is a
new group"): a task that needs other options builds another Run with
``dataclasses.replace``. Tests build one directly, ``Run(config)``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Optional

from .config import ClusterConfig, Node

if TYPE_CHECKING:  # the steps import this module
    from .deployment import Deployment
    from .ssh import SSHOptions
    from .steps.bench import Workload
    from .steps.model import Distribution


@dataclass(frozen=True)
class RunOptions:
    """What a task's arguments add to the config for one run."""

    dry_run: bool = False
    # fab prep --upgrade-driver: replace an installed NVIDIA driver of another version.
    upgrade_driver: bool = False
    # fab bench: what the benchmark sends (None: the defaults, as a bundle gets).
    workload: Optional["Workload"] = None
    # fab model --distribute: the head's transfer service (None: one is chosen per run).
    distribution: Optional["Distribution"] = None
    # Seconds one host's phase may take (0: ssh.command_timeout).
    command_timeout: int = 0
    # fab deploy --rolling: the serving group (1, 2, ...) a router-drain / router-admit step is about.
    serving_group: int = 0


@dataclass(frozen=True)
class Run:
    """Everything a phase needs, built once by the task and never changed."""

    config: ClusterConfig
    options: RunOptions = field(default_factory=RunOptions)
    # How hosts are reached (None where nothing is contacted: bundles, plans).
    ssh: Optional["SSHOptions"] = None

    @cached_property
    def deployment(self) -> "Deployment":
        """The config's deployment, validated and rendered once for this run (DeploymentError if it cannot be)."""
        from .deployment import build

        return build(self.config)

    @cached_property
    def distribution(self) -> "Distribution":
        """The model transfer of this run: the task's, else a fresh port and password shared by serve and pull."""
        from .steps.model import DISTRIBUTE_PORT, Distribution

        return self.options.distribution or Distribution(DISTRIBUTE_PORT, secrets.token_hex(24))

    @property
    def workload(self) -> "Workload":
        from .steps.bench import Workload

        return self.options.workload or Workload()

    @property
    def command_timeout(self) -> int:
        return self.options.command_timeout or self.config.ssh.command_timeout

    def is_head(self, node: Node) -> bool:
        return node.name == self.config.head.name

    def with_options(self, **changes) -> "Run":
        """Another run of the same config with some options changed (its deployment is not built again)."""
        other = replace(self, options=replace(self.options, **changes))
        if "deployment" in self.__dict__:
            other.__dict__["deployment"] = self.__dict__["deployment"]
        return other
