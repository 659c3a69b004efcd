"""`fab webui` on a test host: the docker stub runs a small stand-in for Open WebUI's server.

The stand-in answers / and /health, refuses to start without WEBUI_SECRET_KEY
(as Open WebUI does with WEBUI_AUTH on), keeps "users" in its data directory
and records a hash of the secret it was given. It runs as the image's own
command (docker/image_cmd in the docker stub's state), so llmfab starts the
container exactly as it starts the real image: without a command.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import pytest
import yaml

from llmfab import config as config_mod
from llmfab.script import render_phase
from llmfab.run import Run
from llmfab.steps import webui as webui_steps
from tests.harness.standin import docker_state

from .scenario import REPO, fab, summary

IMAGE = "ghcr.io/open-webui/open-webui:v0.12.4"
ENGINE_IMAGE = "vllm/vllm-openai:v0.8.5"
PORT = 18080  # not Open WebUI's 8080: the network namespace is the machine's
DATA = "/var/lib/llmfab/open-webui"
SERVER = "/opt/fake-open-webui/server.py"

FAKE_OPEN_WEBUI = r'''
"""A stand-in for Open WebUI's server (llmfab tests): what llmfab relies on, no more."""
import hashlib, json, os, pathlib, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

secret = os.environ.get("WEBUI_SECRET_KEY", "")
if os.environ.get("WEBUI_AUTH", "True") == "True" and not secret:
    sys.exit("ValueError: Required environment variable not found (WEBUI_SECRET_KEY)")
db = pathlib.Path("/app/backend/data/webui.json")
state = json.loads(db.read_text()) if db.exists() else {"users": [], "starts": 0}
state["starts"] += 1
state["secret_sha256"] = hashlib.sha256(secret.encode()).hexdigest()
db.write_text(json.dumps(state))


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/", "/health"):
            self.reply(200, {"status": True})
        else:
            self.reply(404, {"detail": "Not Found"})

    def do_POST(self):
        if self.path != "/api/v1/auths/signup":
            return self.reply(404, {"detail": "Not Found"})
        user = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state["users"].append(user["email"])
        db.write_text(json.dumps(state))
        self.reply(200, {"role": "admin" if len(state["users"]) == 1 else "pending"})

    def log_message(self, *args):
        pass


print("Starting server with logs enabled...", flush=True)
ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
'''


def webui_host(fleet_factory, tmp_path, command: list[str] | None = None, **extra):
    """One test host (the head) with the Open WebUI image and the engine's API key, and its config."""
    fleet = fleet_factory(1)
    (n1,) = fleet.hosts
    docker_state.add_image(n1, IMAGE)
    docker_state.add_image(n1, ENGINE_IMAGE)
    n1.exec(f"mkdir -p {SERVER.rsplit('/', 1)[0]} && cat > {SERVER}", input=FAKE_OPEN_WEBUI, check=True)
    cmd = command or ["python3", SERVER]
    n1.set_state(f"docker/image_cmd/{docker_state.normalize_ref(IMAGE)}", "".join(f"{a}\0" for a in cmd))
    # What `fab deploy` leaves with engine.api_key: generate.
    n1.exec("mkdir -p /etc/llmfab && (umask 077 && printf engine-key-%s $RANDOM$RANDOM > /etc/llmfab/api_key)",
            check=True)
    config = fleet.write_config(tmp_path / "c.yaml", engine={"api_key": "generate"},
                                webui={"port": PORT, "ready_timeout": 60, **extra})
    return n1, config


def webui_container(host) -> dict:
    (found,) = [c for c in docker_state.containers(host) if c["name"] == webui_steps.CONTAINER]
    return found


def start_engine_standin(host) -> None:
    """A container labelled as llmfab's engine, as `fab deploy` leaves one."""
    done = host.exec(f"docker run -d --name llmfab-engine --network host --label llmfab.engine=vllm "
                     f"{ENGINE_IMAGE} sleep infinity")
    assert done.returncode == 0, done.stderr


def config_with(path, **overrides):
    """A copy of config PATH with these sections merged into it."""
    data = yaml.safe_load(path.read_text())
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value}
    out = path.with_name("changed.yaml")
    out.write_text(yaml.safe_dump(data))
    return out


def test_webui_keeps_its_secret_across_redeploys_and_never_shows_it(fleet_factory, tmp_path):
    n1, config = webui_host(fleet_factory, tmp_path)
    run = fab("webui", "--config", str(config))
    assert run.returncode == 0, run.output
    assert f"Open WebUI: http://127.0.0.11:{PORT}/" in run.stdout
    assert n1.exec(f"curl -fsS http://127.0.0.11:{PORT}/health").returncode == 0

    kept = dict(line.split("=", 1) for line in n1.read("/etc/llmfab/webui.env").splitlines())
    secret, password = kept["WEBUI_SECRET_KEY"], kept["WEBUI_ADMIN_PASSWORD"]
    key = n1.read("/etc/llmfab/api_key")
    assert len(secret) >= 32 and len(password) >= 32 and n1.stat_mode("/etc/llmfab/webui.env") == 0o600
    container = webui_container(n1)
    assert container["env"]["WEBUI_SECRET_KEY"] == secret and container["env"]["OPENAI_API_KEY"] == key
    # An admin made by llmfab, shown once to the person who ran it; nobody can sign up.
    assert container["env"]["WEBUI_ADMIN_PASSWORD"] == password
    assert container["env"]["WEBUI_ADMIN_EMAIL"] == "admin@llmfab.local"
    assert container["env"]["ENABLE_SIGNUP"] == "False"
    assert f"Open WebUI admin: admin@llmfab.local  password: {password}" in run.stdout
    assert container["env"]["OPENAI_API_BASE_URL"] == "http://127.0.0.11:40000/v1"
    assert container["env"]["WEBUI_AUTH"] == "True" and container["env"]["ENABLE_OLLAMA_API"] == "False"
    assert container["labels"]["llmfab.webui"] == "true" and "llmfab.engine" not in container["labels"]
    for text in (secret, key, password):
        assert all(text not in " ".join(call.args) for call in n1.calls("docker"))
    assert secret not in run.output and key not in run.output

    again = fab("webui", "--config", str(config))
    assert again.returncode == 0, again.output
    assert "changed=0" in summary(again), again.stdout
    assert password not in again.output
    assert webui_steps.environment(config_mod.load(config))["HOST"] == "127.0.0.11"
    shown = fab("webui", "--config", str(config), "--show-admin")
    assert shown.returncode == 0 and password in shown.stdout, shown.output
    assert webui_container(n1)["id"] == container["id"]

    # A user signs up; a changed endpoint replaces the container, never the secret or the data.
    n1.exec(f"curl -fsS -H 'Content-Type: application/json' -d '{{\"email\": \"ada@example.com\"}}' "
            f"http://127.0.0.11:{PORT}/api/v1/auths/signup", check=True)
    moved = config_with(config, engine={"api_key": "generate", "port": 40001})
    redeployed = fab("webui", "--config", str(moved))
    assert redeployed.returncode == 0, redeployed.output
    assert "replace the Open WebUI container" in redeployed.stdout
    replaced = webui_container(n1)
    assert replaced["id"] != container["id"]
    assert replaced["env"]["OPENAI_API_BASE_URL"] == "http://127.0.0.11:40001/v1"
    assert n1.read("/etc/llmfab/webui.env").splitlines() == [f"WEBUI_SECRET_KEY={secret}",
                                                             f"WEBUI_ADMIN_PASSWORD={password}"]
    state = json.loads(n1.read(f"{DATA}/webui.json"))
    assert state["users"] == ["ada@example.com"] and state["starts"] == 2
    assert state["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in redeployed.output


def test_stop_webui_removes_only_open_webui_and_stopping_the_engine_leaves_it(fleet_factory, tmp_path):
    n1, config = webui_host(fleet_factory, tmp_path)
    start_engine_standin(n1)
    assert fab("webui", "--config", str(config)).returncode == 0

    stopped = fab("stop", "--webui", "--config", str(config))
    assert stopped.returncode == 0, stopped.output
    names = {c["name"]: c["status"] for c in docker_state.containers(n1)}
    assert names == {"llmfab-engine": "running"}
    assert n1.exists(f"{DATA}/webui.json") and n1.exists("/etc/llmfab/webui.env")

    assert fab("webui", "--config", str(config)).returncode == 0
    engine_stopped = fab("stop", "--config", str(config))
    assert engine_stopped.returncode == 0, engine_stopped.output
    names = {c["name"]: c["status"] for c in docker_state.containers(n1)}
    assert names == {webui_steps.CONTAINER: "running"}


def test_a_webui_that_exits_at_start_fails_with_its_log(fleet_factory, tmp_path):
    n1, config = webui_host(fleet_factory, tmp_path, command=["sh", "-c", "echo 'database is locked' >&2; exit 3"])
    run = fab("webui", "--config", str(config))
    assert run.returncode == 1
    assert "the Open WebUI container exited" in run.stdout and "database is locked" in run.stdout


def test_every_webui_script_is_clean_under_shellcheck_and_bash_n(tmp_path):
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    paths = []
    for api_key in ("none", "generate"):
        cfg.engine.api_key = api_key
        for node in cfg.nodes:
            for phase in ("webui", "stop-webui"):
                path = tmp_path / f"{api_key}-{node.name}-{phase}.sh"
                path.write_text(render_phase(Run(cfg), node, phase))
                subprocess.run(["bash", "-n", str(path)], check=True)
                paths.append(str(path))
    subprocess.run(["shellcheck", "-S", "warning", *paths], check=True)


@pytest.mark.parametrize("bind, url", [(None, "http://10.10.0.11:8080/"), ("0.0.0.0", "http://10.10.0.11:8080/"),
                                       ("127.0.0.1", "http://127.0.0.1:8080/")])
def test_the_printed_address_follows_where_open_webui_listens(bind, url):
    cfg = config_mod.load(REPO / "configs" / "h20-2x8.yaml")
    cfg.webui.bind = bind
    assert webui_steps.url(cfg) == url
