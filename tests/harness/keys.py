"""SSH keys of a test fleet: the client key and one host key per host.

Keys are made in-process with ``cryptography`` (a paramiko dependency), so a
fleet of 16 hosts needs no ``ssh-keygen`` process at all.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def write_keypair(private_path: Path, comment: str) -> str:
    """Write a new ed25519 key pair in OpenSSH format; return the public line.

    The private key is created with mode 0600: ssh refuses looser keys.
    """
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    public_line = f"{public} {comment}"
    private_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private)
    Path(f"{private_path}.pub").write_text(public_line + "\n")
    return public_line


def known_hosts_line(address: str, port: int, public_line: str) -> str:
    """Return the known_hosts line for a host key, as OpenSSH and paramiko read it.

    A host on a port other than 22 is written ``[address]:port``.
    """
    key_type, key_data = public_line.split()[:2]
    host = address if port == 22 else f"[{address}]:{port}"
    return f"{host} {key_type} {key_data}"
