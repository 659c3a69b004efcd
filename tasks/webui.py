"""`fab webui`: Open WebUI on the head, for people to chat with the served model."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text

from llmfab.records import WebuiAdmin, WebuiAdminLogin, WebuiUrl
from llmfab.session import Session, open_session, reported_errors

from .options import DRY_RUN, SSH, task


@task(help={**SSH, "dry-run": DRY_RUN,
            "show-admin": "only print the admin account's email and password (read from the head)"})
def webui(c, config=None, dry_run=False, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False,
          show_admin=False):
    """Run Open WebUI on the head, pointed at the served model, and print its address.

    The container (llmfab-webui, label llmfab.webui=true) talks to the engine
    at http://HEAD:engine.port/v1 with the endpoint's API key when one is set,
    and listens on the head's own address (webui.bind to change it). Nobody
    can sign up: Open WebUI creates one admin account (webui.admin_email) on
    its first start, with a password llmfab generates; the first run prints
    it once, `--show-admin` prints it again. The password and the session
    secret are made once and kept in /etc/llmfab/webui.env on the head (root
    only). Users and chats stay in webui.data_dir. Running it again with the
    same config changes nothing; `fab stop --webui` removes it and leaves the
    engine running.

    Examples:
      fab webui
      fab webui --show-admin
      fab stop --webui
    """
    with reported_errors():
        session = open_session(c, config, dry_run=dry_run, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        session = replace(session, nodes=session.head_only)
        if show_admin:
            _show_admin(session)
            return
        results = session.run_phase("webui")
        for w in results[0].records_of(WebuiUrl):
            session.reporter.out.print(f"Open WebUI: [bold]{w.url}[/bold]")
        created = results[0].records_of(WebuiAdmin) and not results[0].failed and not dry_run
        session.finish(results, "webui" + (" (dry run)" if dry_run else ""))
        if created:
            _show_admin(session, first=True)


def _show_admin(session: Session, first: bool = False) -> None:
    """Print the admin account, read from the head's root-only secret file."""
    results = session.phase("webui-admin")
    for login in results[0].records_of(WebuiAdminLogin):
        out = session.reporter.out
        out.print(Text(f"Open WebUI admin: {login.email}  password: {login.password}"))
        if first:
            out.print("  (shown once; `fab webui --show-admin` shows it again; kept in /etc/llmfab/webui.env "
                      "on the head, root only)")
    session.finish(results, "webui admin")
