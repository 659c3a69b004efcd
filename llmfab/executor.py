"""Make `fab -H n1,n2 TASK` call TASK once for all hosts, so the task fans out in parallel.

Stock Fabric expands `-H` into one call per host and runs those calls one after
another. llmfab's tasks take the whole host list instead (through
``c.config.llmfab.hosts``) and run the hosts concurrently themselves. Selected in
``fabric.yaml`` via Invoke's ``tasks.executor_class`` setting.

Fabric's core flags (-i, -S, -t, -T, --prompt-for-sudo-password) reach the
tasks as ``c.config.llmfab.ssh``; the ones llmfab cannot honour (-R, -e, ...)
stop the run before any task starts (see llmfab.coreflags).
"""

from __future__ import annotations

from fabric.executor import Executor
from invoke.exceptions import Exit

from .coreflags import translate
from .errors import UsageError
from .exits import ExitStatus


class FleetExecutor(Executor):
    def expand_calls(self, calls, apply_hosts=True):
        # `fab -H h -- cmd` (an ad-hoc command) keeps Fabric's own behaviour.
        if self.core.remainder:
            return super().expand_calls(calls, apply_hosts)
        core = self.core[0]
        try:
            ssh = translate(core, self.config)
        except UsageError as e:
            raise Exit(f"error: {e}", code=int(ExitStatus.CONFIG_INVALID))
        hosts = core.args.hosts.value or ""
        self.config.llmfab = {"hosts": [h.strip() for h in hosts.split(",") if h.strip()], "ssh": ssh}
        return super().expand_calls(calls, apply_hosts=False)
