"""The cluster description: one YAML file, validated before any host is contacted.

pydantic does the type checking; this module adds what a person needs from an
error: the file, the field (``nodes[1].address``) and the fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .config_errors import problem
from .errors import ConfigError, Problem, UsageError
from .serving_config import Serving

CONFIG_ENV = "LLMFAB_CONFIG"
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "h20-2x8.yaml"

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
IFACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
HCA_RE = re.compile(r"^[A-Za-z0-9_]+(:[0-9]+)?$")
SYSCTL_KEY_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$")
SYSCTL_VALUE_RE = re.compile(r"^[A-Za-z0-9 ._:-]{1,128}$")
UNIX_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# Kernel settings that protect against local users (links, ptrace, ASLR, kernel pointers).
PROTECTIVE_SYSCTLS = ("fs.protected_", "fs.suid_dumpable", "kernel.yama.", "kernel.randomize_va_space",
                      "kernel.kptr_restrict", "kernel.dmesg_restrict", "kernel.unprivileged_bpf_disabled")


class Section(BaseModel):
    """Every config section: unknown keys are errors, values are not coerced silently."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ClusterInfo(Section):
    name: str = Field("cluster", min_length=1, max_length=64)
    # Name of the head node; defaults to the node whose role is head, else the first node.
    head: Optional[str] = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        # It names directories (build/bundles/<name>) and container labels: a plain name only.
        if not NAME_RE.match(v):
            raise ValueError("a plain name: lowercase letters, digits and '-', starting with a letter or digit")
        return v


class SSHSettings(Section):
    user: str = "root"
    port: int = Field(22, ge=1, le=65535)
    identity_file: Optional[str] = None
    # The operator's OpenSSH config: HostName, User, Port, IdentityFile, ProxyJump
    # for each node's address; null reads none. Values set here win over it.
    config_file: Optional[str] = "~/.ssh/config"
    known_hosts: str = "~/.ssh/known_hosts"
    # Trust-on-first-use: accept and record keys of hosts not yet in known_hosts.
    accept_new_host_keys: bool = False
    connect_timeout: int = Field(10, ge=1, le=600)
    command_timeout: int = Field(3600, ge=10, le=86400)
    parallel: int = Field(32, ge=1, le=1024)

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not UNIX_USER_RE.match(v):
            raise ValueError("not a valid Unix user name (lowercase letters, digits, '-', '_')")
        return v


class Node(Section):
    name: str
    address: str
    role: Optional[Literal["head", "worker"]] = None
    user: Optional[str] = None
    port: Optional[int] = Field(None, ge=1, le=65535)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("node names are lowercase letters, digits and '-', starting with a letter or digit")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str) -> str:
        # The engines' launch commands (Ray, --dist-init-addr, NCCL/Gloo) need each
        # node's IPv4 on the cluster network; a name for SSH belongs in ~/.ssh/config.
        try:
            return str(ipaddress.IPv4Address(v))
        except ValueError:
            pass
        if HOSTNAME_RE.match(v):
            raise ValueError(f"{v!r} is a name: llmfab needs the node's IPv4 address on the cluster network")
        raise ValueError("not an IPv4 address")

    @field_validator("user")
    @classmethod
    def _user(cls, v: Optional[str]) -> Optional[str]:
        return SSHSettings._user(v) if v is not None else v


class Network(Section):
    # The interface the nodes reach each other on (GLOO/NCCL_SOCKET_IFNAME).
    interface: str = "bond0"
    nccl_ib_hca: list[str] = Field(default_factory=lambda: ["mlx5_0", "mlx5_1", "mlx5_4", "mlx5_5"])
    # RoCE fabrics need the GID index (often 3); InfiniBand leaves it unset.
    nccl_ib_gid_index: Optional[int] = Field(None, ge=0, le=255)

    @field_validator("interface")
    @classmethod
    def _iface(cls, v: str) -> str:
        if not IFACE_RE.match(v):
            raise ValueError("not a network interface name (at most 15 of letters, digits, '_.:-')")
        return v

    @field_validator("nccl_ib_hca")
    @classmethod
    def _hcas(cls, v: list[str]) -> list[str]:
        bad = [h for h in v if not HCA_RE.match(h)]
        if bad:
            raise ValueError(f"not HCA names: {', '.join(bad)} (expected names such as mlx5_0 or mlx5_0:1)")
        return v


class GPU(Section):
    model: str = Field("H20", min_length=1)
    per_node: int = Field(8, ge=1, le=64)
    memory_gb: int = Field(96, ge=1, le=4096)


KERNEL_RE = re.compile(r"^[0-9]+\.[0-9]+[A-Za-z0-9.+~-]*$")


class System(Section):
    nofile: int = Field(204800, ge=1024, le=1 << 30)
    sysctl: dict[str, int | str] = Field(
        default_factory=lambda: {"net.core.somaxconn": 65535, "net.ipv4.tcp_max_syn_backlog": 65535}
    )
    hold_kernel: bool = True
    # The nodes' OS release and Python, for fetching offline artifacts that fit them.
    os_release: Literal["ubuntu-22.04", "ubuntu-24.04", "debian-12", "debian-13"] = "ubuntu-22.04"
    python_version: str = Field("3.10", pattern=r"^3\.[0-9]+$")
    # The nodes' running kernels (`uname -r`): the offline kit carries their headers.
    kernels: list[str] = Field(default_factory=list)

    @field_validator("kernels")
    @classmethod
    def _kernels(cls, v: list[str]) -> list[str]:
        bad = [k for k in v if not KERNEL_RE.match(k)]
        if bad:
            raise ValueError(f"not kernel releases: {', '.join(bad)} (expected `uname -r` output such as 5.15.0-119-generic)")
        return v

    @field_validator("sysctl")
    @classmethod
    def _sysctl(cls, v: dict[str, int | str]) -> dict[str, int | str]:
        for key, value in v.items():
            if not SYSCTL_KEY_RE.match(key):
                raise ValueError(f"{key!r} is not a sysctl key such as net.core.somaxconn")
            if key.startswith(PROTECTIVE_SYSCTLS):
                raise ValueError(f"{key} guards the node against local attacks: llmfab does not change it")
            if not SYSCTL_VALUE_RE.match(str(value)):
                raise ValueError(f"value of {key} must be a number or plain words, got {value!r}")
        return v


VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){1,3}$")
URL_RE = re.compile(r"^(https?|file)://[A-Za-z0-9._~:/?#@!$&'()*+,;=%-]+$")


# CUDA local installer -> the driver it bundles (NVIDIA's cuda_<cuda>_<driver>_linux.run names).
CUDA_INSTALLER_DRIVERS = {
    "11.8.0": "520.61.05",
    "12.0.0": "525.60.13", "12.0.1": "525.85.12",
    "12.1.0": "530.30.02", "12.1.1": "530.30.02",
    "12.2.0": "535.54.03", "12.2.1": "535.86.10", "12.2.2": "535.104.05",
    "12.3.0": "545.23.06", "12.3.1": "545.23.08", "12.3.2": "545.23.08",
    "12.4.0": "550.54.14", "12.4.1": "550.54.15",
    "12.5.0": "555.42.02", "12.5.1": "555.42.06",
    "12.6.0": "560.28.03", "12.6.1": "560.35.03", "12.6.2": "560.35.03", "12.6.3": "560.35.05",
    "12.8.0": "570.86.10", "12.8.1": "570.124.06",
    "13.0.0": "580.65.06",
}


def _version(v: str) -> str:
    if not VERSION_RE.match(v):
        raise ValueError("expected a dotted version such as 550.54.14")
    return v


def _url(v: Optional[str]) -> Optional[str]:
    if v is not None and not URL_RE.match(v):
        raise ValueError("expected an http(s):// or file:// URL")
    return v


def _exec_url(v: Optional[str]) -> Optional[str]:
    # What root runs must not travel in the clear, where anyone on the path could swap it.
    if v is not None and v.startswith("http://"):
        raise ValueError("root runs this file: use an https:// or file:// URL, not http://")
    return _url(v)


class Nvidia(Section):
    # false: leave the NVIDIA stack alone (nodes whose drivers someone else manages).
    enabled: bool = True
    driver_version: str = "550.54.14"
    cuda_version: str = "12.4.0"
    # Replacing a different installed driver is never silent (prep --upgrade-driver).
    upgrade_driver: bool = False
    # Default: NVIDIA's local installer for cuda_version + driver_version.
    installer_url: Optional[str] = None
    # Required to run a downloaded installer (llmfab could verify none to ship);
    # a file:// installer, or a bundle's (pinned by SHA256SUMS), may go without.
    installer_sha256: Optional[str] = Field(None, pattern=r"^[0-9a-f]{64}$")
    # false: the driver alone (NVIDIA's driver-only installer), no host CUDA toolkit:
    # containerised engines bring their own CUDA.
    cuda_toolkit: bool = True
    fabricmanager: bool = True
    peermem: bool = True
    nvitop: bool = True

    _v = field_validator("driver_version", "cuda_version")(classmethod(lambda cls, v: _version(v)))
    _u = field_validator("installer_url")(classmethod(lambda cls, v: _exec_url(v)))

    @model_validator(mode="after")
    def _published_pair(self) -> "Nvidia":
        # NVIDIA's CUDA local installer exists only for the driver it bundles.
        if self.enabled and self.cuda_toolkit and self.installer_url is None:
            bundled = CUDA_INSTALLER_DRIVERS.get(self.cuda_version)
            if bundled is not None and bundled != self.driver_version:
                raise ValueError(
                    f"NVIDIA publishes no cuda_{self.cuda_version}_{self.driver_version}_linux.run: CUDA "
                    f"{self.cuda_version}'s installer bundles driver {bundled}"
                )
            if bundled is None:
                raise ValueError(f"CUDA {self.cuda_version} is not in llmfab's table of NVIDIA installers "
                                 f"(known: {', '.join(CUDA_INSTALLER_DRIVERS)})")
        return self

    @property
    def driver_branch(self) -> str:
        return self.driver_version.split(".")[0]

    @property
    def cuda_short(self) -> str:
        return ".".join(self.cuda_version.split(".")[:2])

    @property
    def installer_name(self) -> str:
        if not self.cuda_toolkit:
            return f"NVIDIA-Linux-x86_64-{self.driver_version}.run"
        return f"cuda_{self.cuda_version}_{self.driver_version}_linux.run"

    @property
    def installer(self) -> str:
        if self.installer_url:
            return self.installer_url
        if not self.cuda_toolkit:
            return f"https://us.download.nvidia.com/tesla/{self.driver_version}/{self.installer_name}"
        return f"https://developer.download.nvidia.com/compute/cuda/{self.cuda_version}/local_installers/{self.installer_name}"


class Docker(Section):
    enabled: bool = True
    packages: list[str] = Field(
        default_factory=lambda: ["docker-ce", "docker-ce-cli", "containerd.io", "docker-buildx-plugin", "docker-compose-plugin"]
    )
    container_toolkit: bool = True

    @field_validator("packages")
    @classmethod
    def _packages(cls, v: list[str]) -> list[str]:
        bad = [p for p in v if not re.match(r"^[a-z0-9][a-z0-9.+-]+$", p)]
        if bad:
            raise ValueError(f"not Debian package names: {', '.join(bad)}")
        return v


class Miniconda(Section):
    enabled: bool = False
    prefix: str = "/opt/miniconda3"
    # A versioned Miniconda installer (https:// or file://), with the sha256 you verified:
    # llmfab ships no default, because "latest" cannot be pinned.
    installer_url: Optional[str] = None
    installer_sha256: Optional[str] = Field(None, pattern=r"^[0-9a-f]{64}$")
    # Channel URLs for one managed .condarc (the runbook's site mirrors); empty:
    # the installer's own channels.
    channels: list[str] = Field(default_factory=list)
    shell: Literal["bash", "zsh"] = "bash"

    _u = field_validator("installer_url")(classmethod(lambda cls, v: _exec_url(v)))

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        return [_url(url) for url in v]

    @model_validator(mode="after")
    def _installer_named(self) -> "Miniconda":
        if self.enabled and self.installer_url is None:
            raise ValueError("installer_url: required when miniconda is enabled: name a versioned "
                             "Miniconda installer and set installer_sha256 to the sha256 you verified")
        return self

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.match(r"^/[A-Za-z0-9._/-]+$", v):
            raise ValueError("must be an absolute path of letters, digits and ._-/")
        return v.rstrip("/")


class Mirrors(Section):
    # A Debian/Ubuntu archive mirror, e.g. https://mirror.example/ubuntu
    apt: Optional[str] = None
    # A Python package index (simple API), e.g. https://pypi.mirror.example/simple
    pip: Optional[str] = None

    _u = field_validator("apt", "pip")(classmethod(lambda cls, v: _url(v)))


class Model(Section):
    id: str = Field("deepseek-ai/DeepSeek-R1", min_length=1)
    path: str = "/mnt/share/deepseek-ai/DeepSeek-R1"
    served_name: str = Field("DeepSeek-R1", min_length=1, max_length=128)
    dtype: Literal["fp8", "bf16"] = "fp8"
    source: Literal["modelscope", "huggingface"] = "modelscope"
    # fab model: a branch, tag or commit, so that every node gets the same files.
    revision: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
    # Download size in GB for the free-disk check (default: llmfab/models/<model>.yaml).
    size_gb: Optional[float] = Field(None, gt=0)
    # Record and check the sha256 of every file (slow: reads all the weights on every node).
    checksums: bool = False
    # Offline bundles: copy the weights from the bundle's artifacts/models/<dir>/ (else verify only).
    in_bundle: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        # The runbook's relative `mnt/share/...` resolved against the container's cwd.
        if not v.startswith("/"):
            raise ValueError("must be an absolute path (the runbook's relative 'mnt/share/...' is a known defect)")
        if "\n" in v or "\0" in v:
            raise ValueError("must not contain newlines or NUL bytes")
        return v.rstrip("/") or "/"


class Engine(Section):
    name: str = "vllm"
    version: Optional[str] = None
    port: int = Field(40000, ge=1, le=65535)
    # The ranks' rendezvous (vLLM --master-port, SGLang --dist-init-addr port).
    dist_port: int = Field(20001, ge=1, le=65535)
    bind: str = "0.0.0.0"
    # generate (default) | none | the key itself. Stored mode 0600 on the head,
    # never logged. With none, the firewall lets only the cluster's nodes in.
    api_key: str = "generate"
    # Host firewall rules (nftables) that let only the cluster's nodes reach the
    # engine's unauthenticated internal ports; false: you filter them yourself.
    firewall: bool = True
    ready_timeout: int = Field(3600, ge=30, le=86400)
    # The cross-node all-reduce of `fab check --nccl` gives up after this long.
    nccl_timeout: int = Field(300, ge=10, le=3600)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _engine_name(cls, v: Any) -> Any:
        # The names come from the one engine registry (llmfab/engines ENGINES).
        from .engines import ENGINES

        if v not in ENGINES:
            names = [repr(n) for n in ENGINES]
            raise PydanticCustomError("literal_error", "Input should be {expected}",
                                      {"expected": ", ".join(names[:-1]) + " or " + names[-1]})
        return v

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, v: str) -> str:
        # A key reaches curl's header file and SGLang's argument parser.
        if not v or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in v) or v.startswith("-"):
            raise ValueError("must be generate, none, or a key of printable characters without spaces, "
                             "not starting with '-'")
        return v

    @field_validator("bind")
    @classmethod
    def _engine_bind(cls, v: str) -> str:
        try:
            return str(ipaddress.IPv4Address(v))
        except ValueError:
            raise ValueError("must be an IPv4 address to listen on, e.g. 0.0.0.0 or the head's address") from None


class WebUI(Section):
    """Open WebUI on the head (fab webui), pointed at the engine's endpoint."""

    image: str = Field("ghcr.io/open-webui/open-webui:v0.12.4", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
    port: int = Field(8080, ge=1, le=65535)
    # Where Open WebUI listens: the head's own address unless set (0.0.0.0 is
    # every interface of the head, the management network included).
    bind: Optional[str] = None
    # The admin account llmfab creates on the first start (its password is
    # generated and kept root-only in /etc/llmfab/webui.env); nobody can sign up.
    admin_email: str = Field("admin@llmfab.local", pattern=r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
    # Users, chats and settings live here on the head; re-deploying keeps them.
    data_dir: str = "/var/lib/llmfab/open-webui"
    ready_timeout: int = Field(600, ge=10, le=3600)

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, v: str) -> str:
        if not re.match(r"^/[A-Za-z0-9._/-]+$", v):
            raise ValueError("must be an absolute path of letters, digits and ._-/")
        return v.rstrip("/")

    @field_validator("bind")
    @classmethod
    def _bind(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return None
        try:
            return str(ipaddress.ip_address(v))
        except ValueError:
            raise ValueError("must be an IP address to listen on, e.g. the head's address, 0.0.0.0 "
                             "or 127.0.0.1 (or leave it out: the head's address)") from None


class ClusterConfig(Section):
    cluster: ClusterInfo = Field(default_factory=ClusterInfo)
    ssh: SSHSettings = Field(default_factory=SSHSettings)
    nodes: list[Node] = Field(min_length=1)
    network: Network = Field(default_factory=Network)
    gpu: GPU = Field(default_factory=GPU)
    system: System = Field(default_factory=System)
    nvidia: Nvidia = Field(default_factory=Nvidia)
    docker: Docker = Field(default_factory=Docker)
    miniconda: Miniconda = Field(default_factory=Miniconda)
    mirrors: Mirrors = Field(default_factory=Mirrors)
    model: Model = Field(default_factory=Model)
    engine: Engine = Field(default_factory=Engine)
    webui: WebUI = Field(default_factory=WebUI)
    serving: Serving = Field(default_factory=Serving)

    # Filled in by load(); not part of the YAML.
    source: Optional[str] = Field(None, exclude=True)
    chosen_by: Optional[str] = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        # `mirrors:` with only commented keys under it is YAML null: it means "defaults".
        if isinstance(raw, dict):
            inner = sorted(k for k in ("source", "chosen_by") if k in raw)
            if inner:
                raise ValueError(f"unknown top-level key(s): {', '.join(inner)} (llmfab fills these in itself)")
            return {k: ({} if v is None and k != "nodes" else v) for k, v in raw.items()}
        return raw

    @model_validator(mode="after")
    def _cluster_shape(self) -> "ClusterConfig":
        names = [n.name for n in self.nodes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate node names: {', '.join(dupes)}")
        addresses = [n.address for n in self.nodes]
        dupes = sorted({a for a in addresses if addresses.count(a) > 1})
        if dupes:
            raise ValueError(f"duplicate node addresses: {', '.join(dupes)}")
        heads = [n.name for n in self.nodes if n.role == "head"]
        if len(heads) > 1:
            raise ValueError(f"more than one node has role head: {', '.join(heads)}")
        if self.cluster.head is not None:
            if self.cluster.head not in names:
                raise ValueError(f"cluster.head {self.cluster.head!r} is not a node (nodes: {', '.join(names)})")
            if heads and heads[0] != self.cluster.head:
                raise ValueError(f"cluster.head is {self.cluster.head!r} but node {heads[0]!r} has role head")
        problems = self.serving.problems(names)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def head(self) -> Node:
        wanted = self.cluster.head or next((n.name for n in self.nodes if n.role == "head"), None)
        return self.node(wanted) if wanted else self.nodes[0]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def rank(self, node: Node) -> int:
        """Head is rank 0; workers follow in config order."""
        others = [n for n in self.nodes if n.name != self.head.name]
        return 0 if node.name == self.head.name else 1 + others.index(node)

    def ranked_nodes(self) -> list[Node]:
        return sorted(self.nodes, key=self.rank)

    def role(self, node: Node) -> str:
        return "head" if node.name == self.head.name else "worker"

    def with_engine(self, name: Optional[str] = None, version: Optional[str] = None) -> "ClusterConfig":
        """This config with another engine (or engine version), validated again like the file itself.

        The override goes back through ``parse``: every other engine field
        (nccl_timeout, ports, api_key, ...) is kept, a bad value is the usual
        ConfigError, and this config is left as it is. engine.options belong
        to their own engine, so another engine starts without them.
        """
        raw = self.model_dump()
        engine = raw["engine"]
        if name and name != engine["name"]:
            engine.update(name=name, version=version, options={})
        elif version:
            engine["version"] = version
        else:
            return self
        config = parse(raw, self.source or "<config>")
        config.chosen_by = self.chosen_by
        return config


# A config file in the working directory counts as named: `cd mycluster && fab prep`.
LOCAL_CONFIGS = ("llmfab.yaml", "llmfab.yml")
NO_CONFIG_FIX = (
    "name the cluster: `fab TASK --config PATH` (after the task name), or set "
    f"{CONFIG_ENV}=PATH, or put llmfab.yaml in the working directory. "
    "Start from the example: cp configs/h20-2x8.yaml llmfab.yaml, then edit `nodes:`"
)


def resolve(path: str | os.PathLike | None = None, *, example_ok: bool = True) -> tuple[Path, str]:
    """The config file to use and how it was chosen: --config, $LLMFAB_CONFIG, ./llmfab.yaml, the example.

    Tasks that touch hosts pass ``example_ok=False``: they never fall back to the
    built-in example cluster, whose addresses are somebody else's machines.
    """
    if path:
        return Path(path).expanduser(), "--config"
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser(), f"${CONFIG_ENV}"
    for name in LOCAL_CONFIGS:
        if Path(name).is_file():
            return Path(name), "working directory"
    if example_ok:
        return DEFAULT_CONFIG, "built-in example"
    raise UsageError(f"this task connects to hosts, and no config names them (llmfab never falls back to the "
                     f"example cluster's addresses for that).\n  fix: {NO_CONFIG_FIX}")


def load(path: str | os.PathLike | None = None, *, example_ok: bool = True) -> ClusterConfig:
    """Load and validate a config; the path comes from ``resolve``."""
    chosen, how = resolve(path, example_ok=example_ok)
    try:
        raw = yaml.safe_load(chosen.read_text())
    except FileNotFoundError:
        raise ConfigError(str(chosen), [Problem("", f"file not found (named by {how})",
                                                f"check the path, or pass --config PATH or set {CONFIG_ENV}")])
    except IsADirectoryError:
        raise ConfigError(str(chosen), [Problem("", "is a directory", "name the YAML file itself")])
    except yaml.YAMLError as e:
        raise ConfigError(str(chosen), [Problem("", f"not valid YAML: {e}", "fix the YAML syntax at the line shown")])
    config = parse(raw, str(chosen))
    config.chosen_by = how
    return config


def parse(raw: Any, source: str = "<config>") -> ClusterConfig:
    """Validate an already-parsed mapping (the YAML document)."""
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("", "the top level must be a mapping", "start from configs/h20-2x8.yaml")])
    try:
        config = ClusterConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(source, [problem(err, raw, ClusterConfig) for err in e.errors()]) from None
    config.source = source
    return config
