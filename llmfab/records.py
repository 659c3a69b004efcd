"""Every kind of record a step sends back, declared once with its fields.

A template sends one with ``llmfab_emit KIND FIELD…`` (lib/llmfab.sh); the
runner keeps it on the host's result, and a task reads it typed:
``result.records_of(Smoke)``. tests/unit/test_records.py checks that every
``llmfab_emit`` in the templates and the library names a kind declared here,
with as many fields. A record's ``arrived`` is when the runner read it (the
check compares node clocks with it).
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

KINDS: dict[str, type["Record"]] = {}

R = TypeVar("R", bound="Record")


@dataclass(frozen=True)
class Record:
    kind: ClassVar[str] = ""
    arrived: float = field(default=0.0, kw_only=True)

    @classmethod
    def fields(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name != "arrived"]

    @classmethod
    def parse(cls: type[R], values: list[str]) -> R:
        """The record from its fields as sent (extra trailing values ignored, missing ones empty)."""
        names = cls.fields()
        given = (list(values) + [""] * len(names))[:len(names)]
        return cls(*given)


def record(kind: str):
    """Declare the dataclass as record KIND."""
    def declare(cls: type[R]) -> type[R]:
        cls.kind = kind
        KINDS[kind] = cls
        return cls
    return declare


@record("fact")
@dataclass(frozen=True)
class Fact(Record):
    """One preflight probe's exit status and output (check/preflight-probe)."""
    name: str
    rc: str
    output_b64: str

    @property
    def output(self) -> str:
        return base64.b64decode(self.output_b64).decode(errors="replace")


@record("smoke")
@dataclass(frozen=True)
class Smoke(Record):
    """The smoke request's first-token time, chunks and rate, each as name=value."""
    ttft_s: str
    chunks: str
    tokens_per_s: str


@record("container")
@dataclass(frozen=True)
class Container(Record):
    """One llmfab container on a node: name|image|state|engine|rank."""
    line: str

    def parts(self) -> tuple[str, str, str, str, str]:
        name, image, state, engine, rank = (self.line.split("|") + [""] * 5)[:5]
        return name, image, state, engine, rank


@record("health")
@dataclass(frozen=True)
class Health(Record):
    url: str
    state: str


@record("firewall")
@dataclass(frozen=True)
class Firewall(Record):
    state: str
    ports: str


@record("gpus")
@dataclass(frozen=True)
class Gpus(Record):
    gpus: str


@record("log")
@dataclass(frozen=True)
class Log(Record):
    name: str
    text_b64: str


@record("diff")
@dataclass(frozen=True)
class Diff(Record):
    path: str
    text_b64: str


@record("progress")
@dataclass(frozen=True)
class Progress(Record):
    message: str


@record("manifest")
@dataclass(frozen=True)
class Manifest(Record):
    """sha256 of the head's model manifest (model-serve)."""
    sha256: str


@record("model-file")
@dataclass(frozen=True)
class ModelFile(Record):
    name: str
    size: str


@record("webui-url")
@dataclass(frozen=True)
class WebuiUrl(Record):
    url: str


@record("webui-admin")
@dataclass(frozen=True)
class WebuiAdmin(Record):
    """The admin account was just created."""
    state: str


@record("webui-admin-login")
@dataclass(frozen=True)
class WebuiAdminLogin(Record):
    email: str
    password: str


@record("ping")
@dataclass(frozen=True)
class Ping(Record):
    """fab ping's answer from one host (made by the runner, not by a template)."""
    hostname: str
    user: str
    how: str
    seconds: str


@record("router")
@dataclass(frozen=True)
class Router(Record):
    """The router container's state on its node (running, exited, absent) and its base URL (router-status)."""
    state: str
    base: str


@record("router-worker")
@dataclass(frozen=True)
class RouterWorker(Record):
    """One worker (a serving group's head) as the router sees it: its URL and "true"/"false" for healthy."""
    url: str
    healthy: str
