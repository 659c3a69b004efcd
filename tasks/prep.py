"""`fab prep`: make every node match the runbook's system preparation."""

from llmfab.confirm import assumed
from llmfab.run import RunOptions
from llmfab.session import open_session, reported_errors

from .options import DIFF, DRY_RUN, SSH, VERBOSE, YES, task


@task(help={
    **SSH,
    "dry-run": DRY_RUN,
    "diff": DIFF,
    "verbose": VERBOSE,
    "yes": YES,
    "upgrade-driver": "replace an installed NVIDIA driver of another version (never done silently)",
})
def prep(c, config=None, dry_run=False, diff=False, verbose=False, yes=False, parallel=0,
         accept_new_host_keys=False, ask_sudo_pass=False, upgrade_driver=False):
    """Prepare nodes: system tuning, NVIDIA driver + fabric manager, Docker + toolkit (all hosts in parallel).

    Every step probes first and changes only what differs, so a second run
    reports changed=0. Hosts come from -H (node names or addresses from the
    config) or, without -H, all nodes of the config. Before changing anything
    it shows what would change on each host and asks (--yes skips the question).
    Each run is logged per host under build/logs/ and on the node under /var/log/llmfab/.

    Examples:
      fab prep --config mycluster.yaml --dry-run --diff
      fab -H n1,n2 prep --config mycluster.yaml
      fab prep --config mycluster.yaml --yes        # scripts and CI
    """
    with reported_errors():
        session = open_session(
            c, config, dry_run=dry_run, parallel=int(parallel) if parallel else None,
            accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass, verbose=verbose, diff=diff,
            options=RunOptions(upgrade_driver=upgrade_driver),
        )
        results = session.run_phase("prep", yes=assumed(yes))
        session.finish(results, "prep recap" + (" (dry run)" if dry_run else ""))
