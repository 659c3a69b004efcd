"""Make `fab -H n1,n2 TASK` call TASK once for all hosts, so the task fans out in parallel.

Stock Fabric expands `-H` into one call per host and runs those calls one after
another. llmfab's tasks take the whole host list instead (through
``c.config.llmfab.hosts``) and run the hosts concurrently themselves. Selected in
``fabric.yaml`` via Invoke's ``tasks.executor_class`` setting.
"""

from __future__ import annotations

from fabric.executor import Executor


class FleetExecutor(Executor):
    def expand_calls(self, calls, apply_hosts=True):
        # `fab -H h -- cmd` (an ad-hoc command) keeps Fabric's own behaviour.
        if self.core.remainder:
            return super().expand_calls(calls, apply_hosts)
        hosts = self.core[0].args.hosts.value or ""
        self.config.llmfab = {"hosts": [h.strip() for h in hosts.split(",") if h.strip()]}
        return super().expand_calls(calls, apply_hosts=False)
