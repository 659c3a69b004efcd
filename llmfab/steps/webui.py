"""Open WebUI on the head: phases ``webui`` (run it) and ``stop-webui`` (remove it).

The container is labelled ``llmfab.webui=true`` and never ``llmfab.engine``, so
stopping or re-deploying the engine leaves it alone, and ``fab stop --webui``
removes it alone. Its data (users, chats) lives in ``webui.data_dir`` on the
head and outlives the container; its session secret and the password of the
admin account llmfab has it create live, root-only, in
``/etc/llmfab/webui.env``, made once and reused on every re-deploy. Nobody can
sign up: the first visitor does not become the admin.

Secrets never appear in an argument list: the step reads them into exported
shell variables and passes ``-e NAME`` (no value), which docker fills in from
its own environment. The container's fingerprint label hashes the rendered
command with the secrets, so changing either replaces the container, and an
unchanged configuration changes nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json

from ..config import ClusterConfig, Node
from ..deployment import API_KEY_FILE
from ..run import Run
from . import HEAD, step
from .engine import archive

CONTAINER = "llmfab-webui"
LABEL = "llmfab.webui"
SECRET_FILE = "/etc/llmfab/webui.env"
ADMIN_NAME = "llmfab admin"
DATA_IN_CONTAINER = "/app/backend/data"


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _everywhere(address: str) -> bool:
    return ipaddress.ip_address(address).is_unspecified


def endpoint(config: ClusterConfig) -> str:
    """The engine's OpenAI-compatible base URL as seen from the head (--network host)."""
    host = "127.0.0.1" if _loopback(config.engine.bind) else config.head.address
    return f"http://{host}:{config.engine.port}/v1"


def bind(config: ClusterConfig) -> str:
    """Where Open WebUI listens: webui.bind, else the head's own address."""
    return config.webui.bind or config.head.address


def environment(config: ClusterConfig) -> dict[str, str]:
    """Open WebUI's settings; none secret (the secrets go by name, see the module doc)."""
    w = config.webui
    return {
        "PORT": str(w.port),
        "HOST": bind(config),
        "OPENAI_API_BASE_URL": endpoint(config),
        "ENABLE_OPENAI_API": "True",
        "ENABLE_OLLAMA_API": "False",
        "DEFAULT_MODELS": config.model.served_name,
        "WEBUI_AUTH": "True",
        # No first-signup-becomes-admin: Open WebUI creates this admin on its
        # first start (with the generated password) and nobody can sign up.
        "WEBUI_ADMIN_EMAIL": w.admin_email,
        "WEBUI_ADMIN_NAME": ADMIN_NAME,
        "ENABLE_SIGNUP": "False",
        # llmfab owns the connection settings: the environment wins over what
        # an earlier start stored in the database (users and chats stay).
        "ENABLE_PERSISTENT_CONFIG": "False",
        "OFFLINE_MODE": "True",
        "HF_HUB_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "False",
        **_tool_calling(config),
    }


def _tool_calling(config: ClusterConfig) -> dict[str, str]:
    """Open WebUI's function calling, matched to what the engine was started with.

    Open WebUI (0.12) sends its built-in tools with ``tool_choice: auto`` on
    every chat, and vLLM refuses such a request unless it runs with
    --enable-auto-tool-choice and a --tool-call-parser for the model (found
    with the real vLLM and the real Open WebUI). Unless the engine options
    turn tool calling on, Open WebUI uses its prompt-based ("legacy") function
    calling, which sends no tools field, so plain chat works with any engine.
    """
    options = config.engine.options
    if options.get("enable_auto_tool_choice") or options.get("tool_call_parser"):
        return {}
    return {"DEFAULT_MODEL_PARAMS": json.dumps({"function_calling": "legacy"})}


def _key_file(config: ClusterConfig) -> str:
    return "" if config.engine.api_key == "none" else API_KEY_FILE


def run_argv(config: ClusterConfig) -> list[str]:
    """`docker run` up to the image, without the fingerprint label (added on the node)."""
    argv = ["docker", "run", "-d", "--name", CONTAINER, "--network", "host", "--restart", "unless-stopped",
            "--label", f"{LABEL}=true", "--label", f"llmfab.cluster={config.cluster.name}",
            "-v", f"{config.webui.data_dir}:{DATA_IN_CONTAINER}"]
    for key, value in environment(config).items():
        argv += ["-e", f"{key}={value}"]
    argv += ["-e", "WEBUI_SECRET_KEY", "-e", "WEBUI_ADMIN_PASSWORD"]
    if _key_file(config):
        argv += ["-e", "OPENAI_API_KEY"]
    return argv


def url(config: ClusterConfig) -> str:
    """Where people open Open WebUI."""
    host = bind(config)
    host = config.head.address if _everywhere(host) else host
    return f"http://{host}:{config.webui.port}/"


@step("webui-image", title="make the Open WebUI image present (head)", where=HEAD)
def image(run: Run, node: Node) -> dict:
    ref = run.config.webui.image
    return {"image": ref, "archive": archive(ref)}


@step("webui-secret", title="keep Open WebUI's session secret (head)", where=HEAD)
def secret(run: Run, node: Node) -> dict:
    return {"path": SECRET_FILE}


@step("webui-container", title="run Open WebUI against the endpoint (head)", where=HEAD)
def container(run: Run, node: Node) -> dict:
    config = run.config
    argv = run_argv(config)
    static = hashlib.sha256(json.dumps([argv, config.webui.image]).encode()).hexdigest()[:16]
    return {"container": CONTAINER, "image": config.webui.image, "data_dir": config.webui.data_dir,
            "secret_file": SECRET_FILE, "key_file": _key_file(config), "fingerprint": static, "run": argv,
            "port": config.webui.port, "label": LABEL}


@step("webui-ready", title="wait until Open WebUI answers (head)", where=HEAD)
def ready(run: Run, node: Node) -> dict:
    config = run.config
    w = config.webui
    local = "127.0.0.1" if _everywhere(bind(config)) else bind(config)
    return {"container": CONTAINER, "health": f"http://{local}:{w.port}/health", "url": url(config),
            "timeout": w.ready_timeout, "email": w.admin_email, "secret_file": SECRET_FILE}


# The admin's password, read back on the head for the person at `fab webui`.
@step("webui-admin", title="show Open WebUI's admin account (head)", where=HEAD)
def admin(run: Run, node: Node) -> dict:
    return {"secret_file": SECRET_FILE, "email": run.config.webui.admin_email}


# Every node: a head that moved in the config leaves no container behind.
@step("webui-stop", title="remove the Open WebUI container")
def stop(run: Run, node: Node) -> dict:
    return {"label": LABEL, "data_dir": run.config.webui.data_dir}
