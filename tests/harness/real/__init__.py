"""Real programs in place of engine images: vLLM's CPU build and Open WebUI.

`.ci/setup` installs each in its own virtual environment under
``LLMFAB_REAL_PREFIX`` (default /opt/llmfab-test): ``vllm/`` and ``webui/``.
A test host sees them at the same path. Making an image "native" tells the
docker stub that the image's programs are these real ones: its containers get
the image's environment (PATH into the virtual environment) and no stand-in,
so ``docker run … vllm/vllm-openai:v0.32.0 bash -c 'exec vllm serve …'`` runs
the real ``vllm serve`` with llmfab's exact argv, on the test host::

    from tests.harness import real
    real.add_vllm_image(host)                  # vllm/vllm-openai:v0.32.0 -> real vLLM
    real.add_webui_image(host, config_ref)     # Open WebUI's image -> real Open WebUI
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from ..standin import docker_state

VLLM_VERSION = "v0.32.0"
VLLM_IMAGE = f"vllm/vllm-openai:{VLLM_VERSION}"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What vLLM's CPU platform needs on a 2-core test machine: a small KV cache
# (GiB; the default would take 4 per rank) and no pinning of OpenMP threads to
# cores that every rank and the test itself share.
VLLM_CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}

# Open WebUI's image (its Dockerfile): the backend lives in /app/backend, so
# DATA_DIR is /app/backend/data; the CMD is backend/start.sh, which ends in
# `uvicorn open_webui.main:app --host "$HOST" --port "$PORT" --forwarded-allow-ips '*'`
# with HOST and PORT from the environment (0.0.0.0 and 8080 when unset).
WEBUI_DATA = "/app/backend/data"
WEBUI_IMAGE_ENV = {
    "ENV": "prod", "PORT": "8080", "DATA_DIR": WEBUI_DATA,
    "SCARF_NO_ANALYTICS": "true", "DO_NOT_TRACK": "true", "ANONYMIZED_TELEMETRY": "false",
    "HF_HOME": f"{WEBUI_DATA}/cache/embedding/models",
    "SENTENCE_TRANSFORMERS_HOME": f"{WEBUI_DATA}/cache/embedding/models",
    "TIKTOKEN_CACHE_DIR": f"{WEBUI_DATA}/cache/tiktoken",
}
WEBUI_START = ('exec uvicorn open_webui.main:app --host "${HOST:-0.0.0.0}" --port "${PORT:-8080}" '
               "--forwarded-allow-ips '*' --workers \"${UVICORN_WORKERS:-1}\"")


def real_prefix() -> Path:
    """Where .ci/setup installs the real programs."""
    return Path(os.environ.get("LLMFAB_REAL_PREFIX", "/opt/llmfab-test"))


def vllm_python() -> Path:
    """The Python of the real vLLM's virtual environment."""
    return real_prefix() / "vllm" / "bin" / "python"


def missing() -> list[str]:
    """The real programs that are not installed, each with what to run."""
    wanted = {"vLLM (CPU build)": real_prefix() / "vllm" / "bin" / "vllm",
              "Open WebUI": real_prefix() / "webui" / "bin" / "uvicorn",
              "vllm-router": real_prefix() / "router" / "bin" / "vllm-router"}
    return [f"{name}: {path} is missing; run `bash .ci/setup` as root"
            for name, path in wanted.items() if not os.access(path, os.X_OK)]


def _native(host, ref: str, env: dict[str, str], cmd: list[str] | None = None) -> None:
    docker_state.add_image(host, ref, env=env)
    stored = docker_state.normalize_ref(ref)
    host.set_state(f"docker/native/{stored}", "")
    if cmd is not None:
        host.set_state(f"docker/image_cmd/{stored}", "".join(f"{word}\0" for word in cmd))


def add_vllm_image(host, ref: str = VLLM_IMAGE) -> None:
    """Make ``ref`` an image whose ``vllm`` is the real CPU build."""
    path = f"{real_prefix() / 'vllm' / 'bin'}:{DEFAULT_PATH}"
    _native(host, ref, {"PATH": path, **VLLM_CPU_ENV})


def add_webui_image(host, ref: str) -> None:
    """Make ``ref`` an image that runs the real Open WebUI the way its image does."""
    path = f"{real_prefix() / 'webui' / 'bin'}:{DEFAULT_PATH}"
    # The image serves its front end from /app/build; the package keeps it beside its code.
    [frontend] = (real_prefix() / "webui" / "lib").glob("python3*/site-packages/open_webui/frontend")
    env = {"PATH": path, **WEBUI_IMAGE_ENV, "FRONTEND_BUILD_DIR": str(frontend)}
    _native(host, ref, env, ["bash", "-c", WEBUI_START])


def build_model_command(dest: str) -> str:
    """Shell command that builds the tiny model into ``dest`` with the real vLLM's Python."""
    repo = Path(__file__).resolve().parents[3]
    return (f"cd {shlex.quote(str(repo))} && {shlex.quote(str(vllm_python()))} "
            f"-m tests.harness.tinymodel {shlex.quote(dest)}")


ROUTER_IMAGE = "llmfab/vllm-router:0.1.17"


def add_router_image(host, ref: str = ROUTER_IMAGE) -> None:
    """Make ``ref`` an image whose ``vllm-router`` is the real one .ci/setup installs."""
    path = f"{real_prefix() / 'router' / 'bin'}:{DEFAULT_PATH}"
    _native(host, ref, {"PATH": path})
