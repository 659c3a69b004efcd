"""Run one step's case on one test host, without the SSH layer.

A case (``tests/steps/<step-id>/<case>.yaml``) is data:

    about: what the case shows (one sentence)
    phase: prep                      # the phase the step belongs to (default prep)
    config: {system: {nofile: 4096}} # deep-merged into the test fleet's config
    state: {nvidia/driver_version: 535.161.03}   # stub state files (tests/harness)
    files: {/etc/x.conf: "text"}     # files that exist in the host before the run
    before: [apt-get install -y linux-image-amd64]   # commands run in the host first
    expect:
      status: changed                # ok | changed | skipped | failed
      message: substring of the step's message
      files: {/etc/x.conf: [substrings the file holds]}   # null: the file is absent
      modes: {/etc/x.conf: "0600"}   # permission bits
      calls: [[systemctl, restart, nvidia-fabricmanager]] # stub calls, in order
      again: ok                      # the second run's status (default ok)

Before the real run, a dry run must report the same status and leave the
expected files as they were. The runner renders the script the node would get for that one step (the same
text SSH and bundles carry), runs it as root inside the host through nsenter,
reads the records it prints, and then runs it again: a step that changed
something must find nothing left to do.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmfab import config as config_mod
from llmfab.results import StepResult, parse_record, step_result
from llmfab.run import Run
from llmfab.script import render_steps

CASES = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Case:
    step: str
    name: str
    about: str
    phase: str
    config: dict[str, Any]
    state: dict[str, str]
    files: dict[str, str]
    before: list[str]
    expect: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.step}/{self.name}"


def load_cases() -> list[Case]:
    """Every case file under tests/steps, sorted by step and name."""
    cases = []
    for path in sorted(CASES.glob("*/*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        cases.append(Case(
            step=path.parent.name, name=path.stem, about=data.get("about", ""),
            phase=data.get("phase", "prep"), config=data.get("config") or {},
            state={k: str(v) for k, v in (data.get("state") or {}).items()},
            files=data.get("files") or {}, before=data.get("before") or [], expect=data.get("expect") or {},
        ))  # fmt: skip
    return cases


@dataclass
class Outcome:
    result: StepResult
    stdout: str
    stderr: str
    records: list[tuple[str, list[str]]] = field(default_factory=list)


def script_for(case: Case, config_path: Path) -> str:
    """The one-step script the case's node runs."""
    config = config_mod.load(config_path)
    return render_steps(Run(config), config.nodes[0], case.phase, [case.step])


def run_script(host, script: str, *args: str) -> Outcome:
    """Run SCRIPT (with ARGS, e.g. --dry-run) as root in HOST, no SSH, and read its result record."""
    command = 'f=$(mktemp); cat >"$f"; bash "$f" "$@"; rc=$?; rm -f "$f"; exit $rc'
    done = host.exec(f"set -- {' '.join(args)}; {command}", input=script, timeout=120)
    records = [r for r in map(parse_record, done.stdout.splitlines()) if r]
    results = [step_result(fields) for kind, fields in records if kind == "result"]
    if len(results) != 1:
        raise AssertionError(f"expected one result record, got {len(results)}:\n{done.stdout}\n{done.stderr}")
    return Outcome(results[0], done.stdout, done.stderr, records)


def prepare(host, case: Case) -> None:
    """Put the case's stub state and pre-existing files into the host."""
    for rel, content in case.state.items():
        host.set_state(rel, content)
    for path, content in case.files.items():
        quoted = shlex.quote(path)
        host.exec(f"mkdir -p -- \"$(dirname -- {quoted})\" && cat >{quoted}", input=content, check=True)
    for command in case.before:
        host.exec(command, check=True)
