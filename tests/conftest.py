"""Shared pytest fixtures: test fleets of real sshd hosts (see tests/harness)."""

from __future__ import annotations

import os
from typing import Callable, Iterator

import pytest

from tests.harness import HarnessUnavailable, TestFleet, require_host_support

FIRST_OCTET = 11
# Two test sessions on one machine would both want 127.0.0.11:2222; give one
# another port with LLMFAB_TESTHOST_PORT=2322 (CI runs one session: default).
PORT = int(os.environ.get("LLMFAB_TESTHOST_PORT", "2222"))
_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True, scope="session")
def llmfab_state(tmp_path_factory) -> Iterator[None]:
    """Per-cluster secrets llmfab makes (TensorRT-LLM's mpirun keys) go to a temporary dir, never ~."""
    old = os.environ.get("LLMFAB_STATE")
    os.environ["LLMFAB_STATE"] = str(tmp_path_factory.mktemp("llmfab-state"))
    yield
    if old is None:
        os.environ.pop("LLMFAB_STATE", None)
    else:
        os.environ["LLMFAB_STATE"] = old


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Remember whether a test failed, so its fleet's files are kept to look at."""
    outcome = yield
    if outcome.get_result().failed:
        item.stash[_FAILED] = True


@pytest.fixture
def fleet_factory(tmp_path, request) -> Iterator[Callable[..., TestFleet]]:
    """Return ``start(count, **kwargs)``, which starts a TestFleet under tmp_path.

    Fleets of one test get consecutive addresses (127.0.0.11.., then the next
    free ones) unless ``first_octet`` is given. Every fleet stops at teardown,
    even when the test failed; a failed test keeps its fleets' work dirs
    (keys, config, a log per host) in tmp_path.
    """
    try:
        require_host_support()
    except HarnessUnavailable as error:
        # CI runs as root with everything installed: a skip would hide a broken CI.
        pytest.fail(f"cannot run test hosts: {error}", pytrace=False)
    fleets: list[TestFleet] = []

    def start(count: int = 2, **kwargs) -> TestFleet:
        kwargs.setdefault("workdir", tmp_path / f"fleet{len(fleets)}")
        kwargs.setdefault("first_octet", FIRST_OCTET + sum(len(f.hosts) for f in fleets))
        kwargs.setdefault("port", PORT)
        fleet = TestFleet(count, **kwargs)
        fleets.append(fleet)
        fleet.start()
        return fleet

    yield start
    failed = request.node.stash.get(_FAILED, False)
    errors = []
    for fleet in reversed(fleets):
        try:
            fleet.stop(remove=not failed)
        except Exception as error:  # stop the other fleets all the same
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture
def two_hosts(fleet_factory) -> TestFleet:
    """A started fleet of two hosts, n1 (127.0.0.11) and n2 (127.0.0.12)."""
    return fleet_factory(2)
