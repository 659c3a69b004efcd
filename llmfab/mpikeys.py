"""The SSH keys mpirun needs between TensorRT-LLM containers: made once per cluster, root-only.

mpirun on the head starts Open MPI's daemons on the other nodes over SSH, into
each node's container sshd. Two key pairs, generated with ``ssh-keygen`` on the
machine that renders the scripts (``fab deploy`` or ``fab export-bundle``) and
kept there, mode 0600 in a 0700 directory, so that SSH and bundle deployments
of one cluster use the same keys:

- the client key: its private half only on the head, its public half in every
  node's ``authorized_keys``;
- the containers' sshd host key: on every node, and pinned in the head's
  ``known_hosts`` for every node's address and port, so that mpirun's ssh
  verifies it (``StrictHostKeyChecking=yes``) instead of trusting any key.

All nodes of a cluster share the host key: they are one trust domain (root on
each runs the same engine). The private keys travel inside the rendered deploy
script (on ssh's stdin, or in a root-only bundle), never in argv or logs.

``LLMFAB_STATE`` names the directory (default ``~/.local/state/llmfab``).
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import LlmfabError

STATE_ENV = "LLMFAB_STATE"


@dataclass(frozen=True)
class MpiKeys:
    client_private: str
    client_public: str
    host_private: str
    host_public: str


def state_dir() -> Path:
    """Where llmfab keeps per-cluster secrets on this machine."""
    return Path(os.environ.get(STATE_ENV) or Path.home() / ".local" / "state" / "llmfab").expanduser()


def ensure(cluster: str) -> MpiKeys:
    """The cluster's keys, generated on first use (ed25519, no passphrase: mpirun runs unattended)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", cluster)
    where = state_dir() / safe / "mpi-ssh"
    where.mkdir(parents=True, exist_ok=True)
    for directory in (where.parent, where):
        directory.chmod(0o700)
    client = _pair(where / "id_ed25519", f"llmfab-mpi@{safe}")
    host = _pair(where / "ssh_host_ed25519_key", f"llmfab-container-sshd@{safe}")
    return MpiKeys(*client, *host)


def _pair(path: Path, comment: str) -> tuple[str, str]:
    """(private, public) key text at PATH, made with ssh-keygen when missing."""
    if not path.exists() or not path.with_suffix(".pub").exists():
        path.unlink(missing_ok=True)
        old = os.umask(0o077)
        try:
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                           check=True, capture_output=True)
        except FileNotFoundError:
            raise LlmfabError("ssh-keygen is not installed on this machine: install the OpenSSH client "
                              "(TensorRT-LLM's mpirun needs a key pair per cluster)") from None
        except subprocess.CalledProcessError as e:
            raise LlmfabError(f"ssh-keygen failed for {path}: {e.stderr.decode(errors='replace').strip()}") from None
        finally:
            os.umask(old)
    path.chmod(0o600)
    return path.read_text(), path.with_suffix(".pub").read_text()


def known_hosts(addresses: list[str], port: int, host_public: str) -> str:
    """One known_hosts line pinning the containers' host key for every node's address and port."""
    key = " ".join(host_public.split()[:2])
    return ",".join(f"[{a}]:{port}" for a in addresses) + f" {key}\n"
