"""What an air-gapped kit must hold, read from the very scripts the nodes run.

The steps say what they take from a bundle: ``llmfab_apt_install GROUP PKG...``
(a .deb group, from ``debs/GROUP/``), ``llmfab_apt_repo NAME KEY LINE`` (the
vendor repository those packages come from online) and ``llmfab_image IMAGE
ARCHIVE`` (an image, from ``images/ARCHIVE``). This module renders every
bundle phase for every node and reads those calls, so the kit cannot drift
from the steps: a step that installs a new group is fetched, checked and
exported without a second list to keep in step.

Words are expanded the way bash would for the values a kit can know: the
function's literal assignments (``local pkg=... version=...``), the target
release (``$OS_ID``, ``$OS_CODENAME``, ``$OS_REPO``) and ``$(uname -r)``, one
word per kernel in ``system.kernels``. A word that needs anything else is
reported as unresolved, never guessed.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from .config import ClusterConfig

ARCHIVES = Path(__file__).resolve().parent.parent / "configs" / "archives.yaml"
FUNCTION_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(\) \{$")
CALLS = ("llmfab_apt_install", "llmfab_apt_repo", "llmfab_image")
ASSIGN_RE = re.compile(r"^(?:local\s+)?([A-Za-z_][A-Za-z0-9_]*=.*)$")
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class Unresolved(Exception):
    """A word depends on something only the node knows."""


@dataclass(frozen=True)
class Release:
    """A target release of the nodes and the archives its packages come from."""

    name: str  # ubuntu-22.04
    codename: str
    keyring: str
    keyring_package: str
    sources: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]  # (uri, suites, components)
    # Where keyring_package comes from when this machine lacks the keyring (a
    # release whose own keyring it has: Debian 12 carries none of Ubuntu's keys).
    keyring_from: str = ""

    @property
    def os_id(self) -> str:
        return self.name.split("-", 1)[0]

    @property
    def os_version(self) -> str:
        return self.name.split("-", 1)[1]

    def variables(self) -> dict[str, str]:
        """What llmfab_os sets on a node of this release."""
        return {"OS_ID": self.os_id, "OS_VERSION": self.os_version, "OS_CODENAME": self.codename,
                "OS_REPO": self.os_id + self.os_version.replace(".", "")}


def release(name: str, archives: Path | None = None) -> Release:
    """The release NAME as configs/archives.yaml describes it."""
    archives = archives or ARCHIVES
    data = yaml.safe_load(archives.read_text())
    if name not in data:
        raise KeyError(f"{archives} describes no release {name!r} (it has {', '.join(data)})")
    r = data[name]
    sources = tuple((s["uri"], tuple(s["suites"]), tuple(s["components"])) for s in r["sources"])
    return Release(name, r["codename"], r["keyring"], r.get("keyring_package", ""), sources, r.get("keyring_from", ""))


@dataclass(frozen=True)
class Repo:
    name: str
    key_url: str
    line: str  # a sources.list line with @KEYRING@ for its keyring


@dataclass
class DebGroup:
    name: str
    packages: list[str] = field(default_factory=list)
    repos: list[Repo] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)


@dataclass
class ImageNeed:
    ref: str
    archive: str
    steps: list[str] = field(default_factory=list)


@dataclass
class Needs:
    debs: dict[str, DebGroup] = field(default_factory=dict)
    images: dict[str, ImageNeed] = field(default_factory=dict)


def needs(config: ClusterConfig, target: Release | None = None) -> Needs:
    """The .deb groups and images every node's bundle phases take from a kit."""
    from .bundle import phase_scripts

    target = target or release(config.system.os_release)
    found = Needs()
    for node in config.ranked_nodes():
        for script in phase_scripts(config, node).values():
            scan(script, target, config.system.kernels, found)
    return found


def scan(script: str, target: Release, kernels: list[str], found: Needs) -> Needs:
    """Add the kit calls of one rendered script to FOUND."""
    for function, lines in _functions(script):
        # Only steps call these (the library defines them); most steps call none.
        if not function.startswith("step_") or not any(m in line for line in lines for m in CALLS):
            continue
        local: dict[str, str] = {}
        repos: list[Repo] = []  # the step's repositories so far: its later groups come from them
        for line in lines:
            text = line.strip()
            assign = ASSIGN_RE.match(text)
            if assign:
                local.update(_assignments(assign.group(1)))
            for call in CALLS:
                at = _call_at(text, call)
                if at is not None:
                    expand = functools.partial(_expand, env={**target.variables(), **local}, kernels=kernels)
                    _record(call, _words(text[at + len(call):]), expand, _step_id(function), repos, found)
    return found


def _record(call: str, words: list[str], expand: Callable[[str], list[str]], step: str, repos: list[Repo], found: Needs) -> None:
    """Add what one call needs from a kit: an image, a repository, a group's packages."""
    try:
        if call == "llmfab_image":
            ref, archive = (expand(w)[0] for w in words[:2])
            _add(found.images.setdefault(ref, ImageNeed(ref, archive)).steps, step)
            return
        if call == "llmfab_apt_repo":
            repos.append(Repo(*(expand(w)[0] for w in words[:3])))
            return
    except Unresolved:
        return  # an image or repository named only on the node: nothing a kit can hold
    group = found.debs.setdefault(words[0], DebGroup(words[0]))
    _add(group.steps, step)
    for repo in repos:
        if repo not in group.repos:
            group.repos.append(repo)
    for word in words[1:]:
        try:
            for package in expand(word):
                _add(group.packages, package)
        except Unresolved as e:
            _add(group.unresolved, str(e))


def _functions(script: str):
    """(name, body lines) of every bash function, continuation lines joined."""
    name, body = None, []
    for line in script.replace("\\\n", " ").splitlines():
        if name is None:
            m = FUNCTION_RE.match(line)
            if m:
                name, body = m.group(1), []
        elif line == "}":
            yield name, body
            name = None
        else:
            body.append(line)


def _call_at(text: str, call: str) -> int | None:
    """Where CALL starts as a command in TEXT (at the start, or after ||, &&, ;)."""
    m = re.search(rf"(?:^|(?:\|\||&&|;)\s*){call}\s", text)
    return None if m is None else m.end() - len(call) - 1


def _words(text: str) -> list[str]:
    """Shell words up to the end of the command (||, &&, ;, |, #)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    words = []
    for word in lexer:
        if word and set(word) <= set(";&|"):
            break
        words.append(word)
    return words


def _assignments(text: str) -> dict[str, str]:
    """Literal NAME=VALUE words of an assignment line (values with $ are skipped,
    except $(uname -r), which the kernels resolve)."""
    out = {}
    try:
        words = _words(text)
    except ValueError:
        return out
    for word in words:
        name, sep, value = word.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and "$" not in value.replace("$(uname -r)", ""):
            out[name] = value
    return out


def _expand(word: str, env: dict[str, str], kernels: list[str]) -> list[str]:
    """WORD with variables expanded (one result per kernel when it names $(uname -r))."""
    def one(text: str) -> str:
        def sub(m: re.Match) -> str:
            var = m.group(1) or m.group(2)
            if var not in env:
                raise Unresolved(f"{word}: ${var} is known only on the node")
            return env[var]
        return VAR_RE.sub(sub, text)

    expanded = one(word)
    if "$(uname -r)" not in expanded:
        if "$(" in expanded:
            raise Unresolved(f"{word}: a command substitution only the node can run")
        return [expanded]
    if not kernels:
        raise Unresolved(f"{expanded}: the nodes' kernels are not known: set system.kernels to their `uname -r`")
    return [expanded.replace("$(uname -r)", k) for k in kernels]


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _step_id(function: str) -> str:
    return function.removeprefix("step_").replace("_", "-")
