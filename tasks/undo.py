"""`fab undo`: remove what prep added to the nodes."""

from llmfab.confirm import assumed
from llmfab.session import open_session, reported_errors

from .options import DRY_RUN, SSH, VERBOSE, YES, task


@task(help={**SSH, "dry-run": DRY_RUN, "verbose": VERBOSE, "yes": YES})
def undo(c, config=None, dry_run=False, verbose=False, yes=False, parallel=0, accept_new_host_keys=False,
         ask_sudo_pass=False):
    """Undo prep: remove its files, restore the originals it changed, drop its repos and holds.

    Files prep created (drop-ins under /etc/sysctl.d, /etc/security/limits.d,
    /etc/modules-load.d, /etc/modprobe.d, node.env, mirror lists) are removed;
    files it changed in place (apt sources, /etc/docker/daemon.json) get back the
    oldest backup under /var/backups/llmfab/. Installed packages and the driver
    stay; the recap names the commands that remove them. Live sysctl values and
    loaded modules last until the next reboot. Asks first, like prep.

    Examples:
      fab undo --config mycluster.yaml --dry-run
      fab -H n2 undo --config mycluster.yaml
    """
    with reported_errors():
        session = open_session(c, config, dry_run=dry_run, parallel=int(parallel) if parallel else None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass, verbose=verbose)
        results = session.run_phase("undo", yes=assumed(yes))
    session.finish(results, "undo recap" + (" (dry run)" if dry_run else ""))
