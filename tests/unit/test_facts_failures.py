"""diagnose_log names the likely cause of each field failure, and nothing in clean output."""
import pytest

from fixture_text import FIXTURES, load_fixture
from llmfab.facts.failures import RULES, diagnose_log

# fixture -> words the first diagnosis' cause must contain, and words its fix must contain
CASES = [
    ("field/failures/gloo-connectfullmesh-vllm-ray.txt", "GLOO_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME"),
    ("field/failures/nccl-net-ib-completion-error-h100-ib0.txt", "vendor err 81", "NCCL_IB_GID_INDEX"),
    ("field/failures/nccl-net-ib-completion-error-vendor-err-129.txt", "vendor err 129", "ibstat"),
    ("field/failures/sglang-dist-init-addr-c10d-socket-timeout-2node-h20.txt", "11.130.1.53:5000", "nc -zv"),
    ("field/ray/ray-client-unable-to-connect-gcs-ray-head.txt", "172.17.0.2:6379", "6379"),
    ("field/ray/ray-init-existing-cluster-gcs-timeout.txt", "172.23.15.13:20000", "ray start"),
    ("field/ray/ray-start-worker-gcs-connect-fail-empty-address.txt", "host part is empty", "HEAD_IP"),
    ("field/ray/ray-start-worker-unable-to-connect-gcs-node-py.txt", "127.0.0.1:6379", "HEAD_IP"),
    ("field/failures/ray-version-mismatch-python-patch-ray-start.txt", "Python 3.10.15", "same image"),
    ("field/failures/cuda-oom-deepseek-v3-load-sglang-8xH200.txt", "out of memory", "FP8"),
    ("field/failures/container-runtime-unsatisfied-cuda-12.8.txt", "CUDA 12.8", "driver"),
    ("field/fabricmanager/cuda-802-bandwidthTest-cudaErrorSystemNotReady.txt", "802", "nvidia-fabricmanager"),
    ("field/fabricmanager/cuda-802-gpu-burn-8xH100.txt", "fabric manager", "nvidia-fabricmanager"),
    ("field/fabricmanager/cuda-802-torch-userwarning-fm-missing.txt", "802", "nvidia-fabricmanager"),
    ("field/fabricmanager/journal-fm-driver-version-mismatch-530.txt", "530.30.02", "530.41.03"),
    ("field/failures/nccl-watchdog-timeout-sglang-2xH100-allgather.txt", "_ALLGATHER_BASE after 600000 ms",
     "allreduce_check.py"),
    ("field/gpu/nvidia-smi-fail-module-not-found.txt", "kernel module", "uname -r"),
    ("field/failures/nccl-socketpollconnect-no-route-to-host-sglang-2node.txt", "peer 10.0.0.4:56849 (No route to host)",
     "NCCL_SOCKET_IFNAME"),
    ("field/failures/nccl-socketpollconnect-no-route-retries-exhausted.txt", "(No route to host)", "allow all TCP"),
    ("field/failures/nccl-socketpollconnect-timed-out-syn-dropped.txt", "peer 172.16.30.229:39953 (Connection timed out)",
     "NCCL_SOCKET_IFNAME"),
    ("field/failures/nccl-socketstartconnect-connection-abort-sglang-h100.txt",
     "peer 10.0.0.82:38455 (Software caused connection abort)", "peer's own log"),
    ("field/failures/nccl-socketstartconnect-abort-ipv6-link-local-ib1.txt", "link-local", "NCCL_SOCKET_IFNAME"),
    ("field/failures/c10d-client-socket-timed-out-tuple-and-to-host-vllm.txt", "store at 172.17.0.9:50437", "nc -zv"),
    ("field/failures/c10d-client-socket-failed-connect-bracket-errno-110.txt", "store at 198.18.0.1:3254", "nc -zv"),
    ("field/failures/mpirun-ssh-permission-denied-orte-daemons.txt",
     "ssh into tensorflow-benchmarks-worker-1.tensorflow-benchmarks-worker was refused", "authorized_keys"),
    ("field/failures/c10d-errno-97-client-socket-hostname-sglang.txt", "sws-8h100grid-05.mpi-sws.org resolves to an IPv6",
     "IPv4 literal"),
]


@pytest.mark.parametrize("relpath, cause_words, fix_words", CASES, ids=[c[0].rsplit("/", 1)[1] for c in CASES])
def test_each_field_failure_is_named_with_its_evidence_and_a_fix(relpath, cause_words, fix_words):
    text = load_fixture(relpath)
    found = diagnose_log(text)
    assert found, "no diagnosis"
    first = found[0]
    assert cause_words in first.cause and fix_words in first.fix
    assert first.evidence_line and first.evidence_line in text


@pytest.mark.parametrize("relpath", sorted(
    p.relative_to(FIXTURES).as_posix() for pattern in ("field/engine-ready/*.txt", "field/bench/*.txt",
                                                       "field/ib/*.txt", "h200/*.txt")
    for p in FIXTURES.glob(pattern)) + ["field/ray/ray-status-2node-idle-2gpu.txt",
                                       "field/fabricmanager/systemctl-status-active-nvlsm-with-journal.txt"])
def test_healthy_output_gets_no_diagnosis(relpath):
    assert diagnose_log(load_fixture(relpath)) == []


def test_causes_come_in_the_order_they_first_appear():
    text = ("Error 802: system not yet initialized\n"
            "[rank0]: RuntimeError: Gloo connectFullMesh failed with [pair.cc:144] no error\n")
    assert [("802" in d.cause, "Gloo" in d.cause) for d in diagnose_log(text)] == [(True, False), (False, True)]


def test_a_status_with_mismatch_and_failed_unit_gives_the_mismatch_first():
    found = diagnose_log(load_fixture("field/fabricmanager/systemctl-status-fm-driver-version-mismatch.txt"))
    assert "550.127.05" in found[0].cause and found[1].cause == "the fabric manager service failed to start"


def test_every_fix_is_one_sentence():
    for rule in RULES:
        assert rule.fix.endswith(".") and ". " not in rule.fix.replace("e.g. ", ""), rule.name


def test_bytes_and_none_are_accepted():
    assert diagnose_log(None) == [] and diagnose_log(b"\xffGloo connectFullMesh failed")[0].cause.startswith("Gloo")


@pytest.mark.parametrize("relpath", ["field/fabricmanager/journal-fm-nv-warn-nothing-to-do-a40-nvlink-bridge.txt",
                                     "field/fabricmanager/journal-fm-nv-warn-nothing-to-do-2x4090.txt"])
def test_nv_warn_nothing_to_do_is_named_as_no_nvswitch_not_as_a_version_mismatch(relpath):
    found = diagnose_log(load_fixture(relpath))
    (named,) = [d for d in found if "no NVSwitch" in d.cause]
    assert "nvidia.fabricmanager: false" in named.fix and "NV_WARN_NOTHING_TO_DO" in named.evidence_line
    assert not any("does not match" in d.cause for d in found)


def test_every_c10d_address_form_names_the_store():
    lines = {
        "remote=[h]:p": "[c10d] waitForInput: socket SocketImpl(fd=1, addr=[::ffff:10.0.0.2]:5, remote=[::ffff:10.0.0.1]:20001) timed out",
        "to host h:p": "[c10d] TCP client failed to connect/validate to host 10.0.0.1:20001 - timed out (try=1)",
        "(h, p)": "[c10d] The client socket has timed out after 600000ms while trying to connect to (10.0.0.1, 20001).",
        "[h]:p": "[c10d] The client socket has failed to connect to [n1.example]:20001 (errno: 110 - Connection timed out).",
    }
    for form, line in lines.items():
        (d,) = diagnose_log(line)
        assert ("10.0.0.1:20001" in d.cause or "n1.example:20001" in d.cause), form


def test_the_no_route_line_without_an_address_says_so_instead_of_question_marks():
    (d,) = diagnose_log(load_fixture("field/failures/nccl-socketpollconnect-no-route-retries-exhausted.txt"))
    assert "?" not in d.cause and "address not on this line" in d.cause
