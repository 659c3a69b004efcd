"""`fab webui`: Open WebUI on the head, for people to chat with the served model."""

from __future__ import annotations


from llmfab.session import open_session, reported_errors

from .options import DRY_RUN, SSH, task


@task(help={**SSH, "dry-run": DRY_RUN})
def webui(c, config=None, dry_run=False, parallel=0, accept_new_host_keys=False, ask_sudo_pass=False):
    """Run Open WebUI on the head, pointed at the served model, and print its address.

    The container (llmfab-webui, label llmfab.webui=true) talks to the engine
    at http://HEAD:engine.port/v1 with the endpoint's API key when one is set,
    asks everyone to sign in (the first account becomes the admin), and keeps
    its users and chats in webui.data_dir on the head. Its session secret is
    made once and kept in /etc/llmfab/webui.env (root only); neither secret is
    ever printed. Running it again with the same config changes nothing;
    `fab stop --webui` removes it and leaves the engine running.

    Examples:
      fab webui
      fab stop --webui
    """
    with reported_errors():
        session = open_session(c, config, dry_run=dry_run, parallel=parallel or None,
                               accept_new_host_keys=accept_new_host_keys, ask_sudo_pass=ask_sudo_pass)
        head = session.config.head
        session.nodes = session.fleet.nodes = [head]
        results = session.run_phase("webui")
        for (url, *_rest) in results[0].of_kind("webui-url"):
            session.reporter.out.print(f"Open WebUI: [bold]{url}[/bold] (the first account to sign up becomes the admin)")
        session.finish(results, "webui" + (" (dry run)" if dry_run else ""))

