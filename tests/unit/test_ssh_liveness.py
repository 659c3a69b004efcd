"""A node that stops answering is detected within a minute, not after ssh.command_timeout (review M5)."""

import socket

from llmfab import ssh


class SilentChannel:
    """A channel whose node never sends anything again (frozen, or its cable pulled)."""

    def __init__(self):
        self.sock, self.peer = socket.socketpair()

    def fileno(self):
        return self.sock.fileno()

    def recv_ready(self):
        return False

    recv_stderr_ready = exit_status_ready = recv_ready

    def get_transport(self):
        return "transport"


def test_a_silent_node_that_cannot_open_a_channel_is_reported_dead(monkeypatch):
    monkeypatch.setattr(ssh, "SILENCE_S", 0.2)
    probed = []
    monkeypatch.setattr(ssh, "alive", lambda transport: probed.append(transport) or False)
    done = ssh._pump(SilentChannel(), timeout=30, on_line=lambda line: None)
    assert done.dead and not done.timed_out and probed == ["transport"]


def test_a_silent_node_that_still_answers_is_waited_for(monkeypatch):
    monkeypatch.setattr(ssh, "SILENCE_S", 0.1)
    monkeypatch.setattr(ssh, "alive", lambda transport: True)
    done = ssh._pump(SilentChannel(), timeout=1, on_line=lambda line: None)
    assert done.timed_out and not done.dead


def test_the_remote_script_leads_its_own_process_group():
    assert "setsid -w bash" in ssh.remote_command(10, "sudo -n -- ", [])
