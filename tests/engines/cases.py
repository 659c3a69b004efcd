"""Golden argv cases as data: ``tests/engines/<engine>-<version>/<case>.yaml``.

A case names the launch (``options``: ``default`` for the profile's own
default options, or a mapping; ``merge``: options added on top, e.g. the
reasoning parser; ``api_key_file``) and holds what every node runs: each
launch step's node, what, argv and wait, and the files the engine needs
written on each node (TensorRT-LLM's extra-options YAML, SGLang's key-reading
launcher), with the log each step writes and what it waits for.

To add a case, write its inputs without ``expect`` and run
``python -m tests.engines.cases tests/engines/<profile>/<case>.yaml``: it
fills in ``expect`` from the current rendering, for you to read and commit.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import yaml

from llmfab.engines import Launch, NodeInfo, default_options, get_profile, plugin, render_plan

ROOT = Path(__file__).resolve().parent
NODES = (NodeInfo("h20-a", "10.20.0.11", 0), NodeInfo("h20-b", "10.20.0.12", 1))


def case_files() -> list[Path]:
    """Every case file, by profile then case name."""
    return sorted(ROOT.glob("*/*.yaml"))


def profile_of(path: Path):
    """The profile a case file's directory names (``vllm-v0.8.5``)."""
    engine, version = path.parent.name.split("-", 1)
    return get_profile(engine, version)


def launch_of(profile, case: dict) -> Launch:
    """The Launch a case describes (2 x 8 H20 as in the runbook, unless it says otherwise)."""
    options = default_options(profile) if case.get("options", "default") == "default" else case["options"]
    return Launch(nodes=NODES, model_path="/mnt/share/deepseek-ai/DeepSeek-R1",
                  nccl_ib_hca=("mlx5_0", "mlx5_1", "mlx5_4", "mlx5_5"), nccl_ib_gid_index=3,
                  api_key_file=case.get("api_key_file"), options={**options, **case.get("merge", {})},
                  labels={"llmfab.cluster": "h20"})


def _shown(content: str) -> str:
    """A file's content as the case keeps it: whole when short, else its digest (a copied source file)."""
    if len(content) < 1000:
        return content
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def render(path: Path, case: dict) -> dict:
    """What the case's profile renders for its launch: steps and files."""
    profile = profile_of(path)
    launch = launch_of(profile, case)
    steps = [{"node": s.node, "what": s.what, "argv": list(s.argv), "wait": s.wait, "log": s.log,
              "waits_for": [f"{n.name}:{port}" for n, port in s.waits_for]}
             for s in render_plan(profile, launch)]
    files = {n.name: {f["path"]: _shown(f["content"]) for f in plugin(profile.engine).files(profile, launch, n)}
             for n in launch.ordered()}
    return {"steps": steps, "files": files}


def fill(path: Path) -> None:
    """Write the current rendering into a case file's ``expect``."""
    case = yaml.safe_load(path.read_text()) or {}
    case["expect"] = render(path, case)
    path.write_text(yaml.safe_dump(case, sort_keys=False, width=1000, allow_unicode=True))


if __name__ == "__main__":
    for name in sys.argv[1:]:
        fill(Path(name))
