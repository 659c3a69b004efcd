"""Test-side helpers for the docker stub's state in a test host (stdlib only).

    from tests.harness.standin import docker_state
    docker_state.add_image(n1, "vllm/vllm-openai:v0.8.5")   # also enable()s engines
    docker_state.add_model(n1, "/models/DeepSeek-R1")
    docker_state.set_extra_env(n1, STANDIN_START_DELAY="0")
    ... run llmfab ...
    [c] = docker_state.containers(n1)                        # c["status"] == "running"

An image ref is stored as a path under docker/images/: '/' are directories,
':' and '@' stay in the file name, Docker Hub's docker.io/ and
docker.io/library/ prefixes are dropped and ":latest" added when no tag or
digest is given. ``host.set_state("docker/images/vllm/vllm-openai:v0.8.5",
"sha256:...")`` is the same as ``add_image`` without ``enable``.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

STANDIN_DIR = Path(__file__).resolve().parent
_REF = re.compile(r"^[a-z0-9]([a-z0-9._/:@-]*[A-Za-z0-9_.-])?$")

# A config.json shaped like DeepSeek-R1's, enough for the stand-in's checks.
DEEPSEEK_R1_CONFIG = {"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
                      "max_position_embeddings": 163840, "num_hidden_layers": 61,
                      "torch_dtype": "bfloat16",
                      "quantization_config": {"quant_method": "fp8", "fmt": "e4m3"}}


def normalize_ref(ref: str) -> str:
    """The stored form of an image reference, as the docker stub computes it."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix):]
            break
    if not _REF.match(ref) or "//" in ref or ".." in ref:
        raise ValueError(f"invalid reference format: {ref!r}")
    last = ref.rsplit("/", 1)[-1]
    return ref if (":" in last or "@" in last) else f"{ref}:latest"


def image_id(ref: str) -> str:
    """A stable fake image ID for a reference."""
    return "sha256:" + hashlib.sha256(normalize_ref(ref).encode()).hexdigest()


def enable(host: Any, python: str | None = None) -> None:
    """Let the host's containers run engines: where the stand-in is, which Python has Ray.

    Both are this checkout's and this interpreter, seen through the host's
    overlay of the machine's root. Paths the host cannot see (a checkout or a
    virtualenv on another mount) are left unset: the stub then falls back to
    /usr/lib/llmfab-stubs/standin and the host's python3.
    """
    python = python or sys.executable
    if host.exists(str(STANDIN_DIR / "__main__.py")):
        host.set_state("docker/standin/dir", str(STANDIN_DIR))
    if host.exists(python):
        host.set_state("docker/standin/python", python)


def add_image(host: Any, ref: str, image: str | None = None,
              env: dict[str, str] | None = None) -> str:
    """Make ``ref`` present in the host (and enable engines); return its image ID."""
    stored = normalize_ref(ref)
    ident = image or image_id(ref)
    host.set_state(f"docker/images/{stored}", ident)
    if env is not None:
        host.set_state(f"docker/image_env/{stored}", "".join(f"{k}={v}\n" for k, v in env.items()))
    enable(host)
    return ident


def add_to_registry(host: Any, ref: str) -> None:
    """Let ``docker pull ref`` succeed in this host (tests are offline otherwise)."""
    host.set_state(f"docker/registry/{normalize_ref(ref)}", image_id(ref))


def add_model(host: Any, path: str, config: dict[str, Any] | None = None) -> None:
    """Create a model directory with a config.json in the host (the engines read it)."""
    host.exec(f"mkdir -p '{path}'", check=True)
    text = json.dumps(config or DEEPSEEK_R1_CONFIG)
    host.exec(f"cat > '{path}/config.json'", input=text, check=True)


def set_extra_env(host: Any, **env: str) -> None:
    """Environment added to every container process the host starts from now on."""
    host.set_state("docker/extra_env", "".join(f"{k}={v}\n" for k, v in env.items()) or None)


def _kv(text: str | None) -> dict[str, str]:
    pairs = (line.partition("=") for line in (text or "").splitlines() if line)
    return {key: value for key, _, value in pairs}


def _alive(host: Any, pid: str, ident: str, mntns: str) -> bool:
    """As the stub's ``marked``: alive, and in the container's mount namespace or marked."""
    stat = host.read(f"/proc/{pid}/stat") if pid else None
    if not stat or stat.rpartition(")")[2].split()[0] == "Z":
        return False
    if mntns and host.exec(f"readlink /proc/{pid}/ns/mnt").stdout.strip() == mntns:
        return True
    environ = host.read(f"/proc/{pid}/environ") or ""
    return f"LLMFAB_CONTAINER={ident}" in environ.split("\0")


def containers(host: Any) -> list[dict[str, Any]]:
    """Every container of the host, read from the stub's files (no `docker` call is logged).

    Each is a dict: name, id, image, image_id, labels, env (dicts), args (the
    ``docker run`` argv after ``docker``), cmd, mounts, status (created,
    running or exited), exit_code (None while running), pid, log.
    """
    root = "/var/lib/llmfab-stubs/docker/containers"
    listing = host.exec(f"ls -1 {root} 2>/dev/null").stdout.split()
    found = []
    for name in listing:
        base = f"{root}/{name}"
        read = lambda file, base=base: host.read(f"{base}/{file}") or ""  # noqa: E731
        ident = read("id").strip()
        pid = read("pid").strip()
        started, code = host.exists(f"{base}/started"), read("exit_code").strip()
        if not started:
            status = "created"
        elif not code and _alive(host, pid, ident, read("mntns").strip()):
            status = "running"
        else:
            status = "exited"
        if status == "running":
            exit_code = None
        else:
            exit_code = int(code or (0 if status == "created" else 255))
        found.append({
            "name": name, "id": ident, "image": read("image").strip(),
            "image_id": read("image_id").strip(), "labels": _kv(read("labels")),
            "env": _kv(read("env")), "args": read("args").split("\0")[:-1],
            "cmd": read("cmd").split("\0")[:-1], "mounts": read("mounts").split(),
            "status": status, "exit_code": exit_code, "pid": int(pid) if pid else None,
            "log": read("log"),
        })
    return found
