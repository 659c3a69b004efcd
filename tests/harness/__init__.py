"""Integration-test harness: test hosts that are real sshd servers with fake hardware.

See testhosts.py for the API and ``python -m tests.harness --help`` for the CLI.
"""

from .calls import Call
from .testhosts import (
    HarnessUnavailable,
    HostDown,
    HostStartError,
    TestFleet,
    TestHost,
    require_host_support,
)

__all__ = [
    "Call",
    "HarnessUnavailable",
    "HostDown",
    "HostStartError",
    "TestFleet",
    "TestHost",
    "require_host_support",
]
