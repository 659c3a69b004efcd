"""Open WebUI on the head: phases ``webui`` (run it) and ``stop-webui`` (remove it).

The container is labelled ``llmfab.webui=true`` and never ``llmfab.engine``, so
stopping or re-deploying the engine leaves it alone, and ``fab stop --webui``
removes it alone. Its data (users, chats) lives in ``webui.data_dir`` on the
head and outlives the container; its session secret lives, root-only, in
``/etc/llmfab/webui.env`` and is reused on every re-deploy.

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
from . import Step, register
from .engine import _archive

CONTAINER = "llmfab-webui"
LABEL = "llmfab.webui"
SECRET_FILE = "/etc/llmfab/webui.env"
DATA_IN_CONTAINER = "/app/backend/data"


def _is_head(config: ClusterConfig, node: Node) -> bool:
    return config.head.name == node.name


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


def environment(config: ClusterConfig) -> dict[str, str]:
    """Open WebUI's settings; none secret (the secrets go by name, see the module doc)."""
    w = config.webui
    return {
        "PORT": str(w.port),
        "HOST": w.bind,
        "OPENAI_API_BASE_URL": endpoint(config),
        "ENABLE_OPENAI_API": "True",
        "ENABLE_OLLAMA_API": "False",
        "DEFAULT_MODELS": config.model.served_name,
        "WEBUI_AUTH": "True",
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
    argv += ["-e", "WEBUI_SECRET_KEY"]
    if _key_file(config):
        argv += ["-e", "OPENAI_API_KEY"]
    return argv


def url(config: ClusterConfig) -> str:
    """Where people open Open WebUI."""
    w = config.webui
    host = config.head.address if _everywhere(w.bind) else w.bind
    return f"http://{host}:{w.port}/"


def image(config: ClusterConfig, node: Node) -> dict:
    ref = config.webui.image
    return {"image": ref, "archive": _archive(ref)}


def secret(config: ClusterConfig, node: Node) -> dict:
    return {"path": SECRET_FILE}


def container(config: ClusterConfig, node: Node) -> dict:
    argv = run_argv(config)
    static = hashlib.sha256(json.dumps([argv, config.webui.image]).encode()).hexdigest()[:16]
    return {"container": CONTAINER, "image": config.webui.image, "data_dir": config.webui.data_dir,
            "secret_file": SECRET_FILE, "key_file": _key_file(config), "fingerprint": static, "run": argv,
            "port": config.webui.port, "label": LABEL}


def ready(config: ClusterConfig, node: Node) -> dict:
    w = config.webui
    local = "127.0.0.1" if _everywhere(w.bind) else w.bind
    return {"container": CONTAINER, "health": f"http://{local}:{w.port}/health", "url": url(config),
            "timeout": w.ready_timeout}


def stop(config: ClusterConfig, node: Node) -> dict:
    return {"label": LABEL, "data_dir": config.webui.data_dir}


register(
    "webui",
    Step("webui-image", "make the Open WebUI image present (head)", "webui/image.sh.j2", image, only=_is_head),
    Step("webui-secret", "keep Open WebUI's session secret (head)", "webui/secret.sh.j2", secret, only=_is_head),
    Step("webui-container", "run Open WebUI against the endpoint (head)", "webui/container.sh.j2", container,
         only=_is_head),
    Step("webui-ready", "wait until Open WebUI answers (head)", "webui/ready.sh.j2", ready, only=_is_head),
)
# Every node: a head that moved in the config leaves no container behind.
register("stop-webui", Step("webui-stop", "remove the Open WebUI container", "webui/stop.sh.j2", stop))
