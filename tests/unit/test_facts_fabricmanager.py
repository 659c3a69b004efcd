"""Fabric manager: service state, version mismatch with both versions, CUDA 802."""
import pytest

from fixture_text import load_fixture
from llmfab.facts import fabricmanager as fm


def test_the_probes_name_the_nvidia_fabricmanager_unit():
    assert fm.IS_ACTIVE_COMMAND == "systemctl is-active nvidia-fabricmanager"
    assert "nvidia-fabricmanager" in fm.STATUS_COMMAND and "nvidia-fabricmanager" in fm.JOURNAL_COMMAND


@pytest.mark.parametrize("text, state, active", [
    ("active\n", "active", True), ("inactive\n", "inactive", False), ("failed", "failed", False)])
def test_is_active_reads_the_one_word_answer(text, state, active):
    s = fm.parse_is_active(text)
    assert (s.state, s.active, s.reason) == (state, active, "")


def test_is_active_without_systemd_cannot_tell_and_says_why():
    s = fm.parse_is_active("System has not been booted with systemd as init system (PID 1). Can't operate.\n"
                           "Failed to connect to bus: Host is down\n")
    assert s.state is None and not s.active and "no systemd" in s.reason


@pytest.mark.parametrize("relpath, fm_version, driver", [
    ("field/fabricmanager/journal-fm-driver-version-mismatch-530.txt", "530.30.02", "530.41.03"),
    ("field/fabricmanager/systemctl-status-fm-driver-version-mismatch.txt", "550.127.05", "550.120"),
])
def test_a_version_mismatch_gives_both_versions_and_a_fix_naming_the_driver_version(relpath, fm_version, driver):
    log = fm.parse_fm_log(load_fixture(relpath))
    assert (log.fm_version, log.driver_version) == (fm_version, driver) and log.version_mismatch
    first = log.diagnoses[0]
    assert fm_version in first.cause and driver in first.fix and "apt-mark hold" in first.fix


def test_a_status_that_is_active_running_has_no_diagnosis():
    log = fm.parse_fm_log(load_fixture("field/fabricmanager/systemctl-status-active-nvlsm-with-journal.txt"))
    assert log.active is True and log.diagnoses == () and not log.version_mismatch


def test_a_failed_restart_after_an_earlier_good_start_is_still_a_failure():
    log = fm.parse_fm_log(load_fixture("field/fabricmanager/journal-fm-start-ok-then-restart-fails-h20.txt"))
    assert log.started and [d.cause for d in log.diagnoses] == ["the fabric manager service failed to start"]


@pytest.mark.parametrize("relpath", [
    "field/fabricmanager/cuda-802-bandwidthTest-cudaErrorSystemNotReady.txt",
    "field/fabricmanager/cuda-802-gpu-burn-8xH100.txt",
    "field/fabricmanager/cuda-802-torch-userwarning-fm-missing.txt",
])
def test_cuda_error_802_is_diagnosed_as_the_fabric_manager(relpath):
    (d,) = fm.diagnose_fabricmanager(load_fixture(relpath))
    assert "802" in d.cause and "fabric manager" in d.cause and "nvidia-fabricmanager" in d.fix


@pytest.mark.parametrize("fm_version, driver, same", [
    ("550.54.14", "550.54.14", True), ("550.54.14-1", "550.54.14", True),
    ("550.127.05", "550.120", False), (None, "550.120", False), ("", "", False)])
def test_versions_match_only_when_equal_apart_from_a_package_revision(fm_version, driver, same):
    assert fm.fm_matches_driver(fm_version, driver) is same


def test_the_version_probe_output_yields_the_driver_style_version():
    assert fm.parse_version("Fabric Manager version is : 550.54.15\n") == "550.54.15"
    assert fm.parse_version("no version here") is None
