"""The local run log: what a node sent, readable, with no secret and no terminal control."""

from __future__ import annotations

from llmfab import runlog
from llmfab.fleet import READ_ONLY_PHASES


def test_the_webui_admin_password_never_reaches_the_local_run_log():
    line = "@@llmfab\twebui-admin-login\tadmin@llmfab.local\thunter2-generated"
    text = runlog.readable(line)
    assert "hunter2" not in text and "admin@llmfab.local" in text and "--show-admin" in text


def test_reading_the_webui_admin_leaves_no_log_on_the_node():
    assert "webui-admin" in READ_ONLY_PHASES


def test_terminal_control_in_plain_step_output_is_stripped_from_the_log():
    assert runlog.readable("ok \x1b]0;owned\x07done\x1b[2J") == "ok done"
