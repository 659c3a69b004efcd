"""nvidia-smi parsers: inventory, failures with a fix, and the fabric state."""
import pytest

from fixture_text import load_fixture
from llmfab.facts import gpu


def test_the_probe_asks_for_the_fields_a_preflight_needs_without_units():
    assert gpu.QUERY_COMMAND == ("nvidia-smi --query-gpu=index,name,memory.total,driver_version,pci.bus_id,uuid"
                                 " --format=csv,noheader,nounits")
    assert gpu.QUERY.command == gpu.QUERY_COMMAND and gpu.QUERY.process is not None


def test_the_full_h100_table_gives_eight_gpus_driver_and_cuda():
    inv = gpu.parse_smi_table(load_fixture("field/gpu/nvidia-smi-8xH100-driver535-full-table.txt"))
    assert inv.ok and inv.count == 8
    assert inv.names == {"NVIDIA H100 80GB HBM3"} and inv.min_memory_mib == 81559
    assert (inv.driver_version, inv.cuda_version) == ("535.161.08", "12.2")
    assert [g.index for g in inv.gpus] == list(range(8)) and inv.gpus[7].bus_id == "00000000:B7:00.0"


def test_the_h20_table_with_an_elision_gives_the_gpus_it_shows():
    inv = gpu.parse_smi_table(load_fixture("field/gpu/nvidia-smi-8xH20-driver535.txt"))
    assert [g.index for g in inv.gpus] == [0, 1, 7]
    assert inv.names == {"NVIDIA H20"} and inv.min_memory_mib == 97871 and inv.driver_version == "535.161.03"


def test_an_h800_excerpt_cut_after_two_gpus_parses():
    inv = gpu.parse_smi_table(load_fixture("field/gpu/nvidia-smi-H800-driver535.txt"))
    assert inv.count == 2 and inv.names == {"NVIDIA H800"} and inv.cuda_version == "12.2"


def test_a_query_with_a_header_and_na_memory_reads_the_name_and_leaves_memory_unknown():
    inv = gpu.parse_query_gpu(load_fixture("field/gpu/query-gpu-csv-gb10-memory-na.txt"))
    assert inv.ok and inv.count == 1
    assert inv.gpus[0].name == "NVIDIA GB10" and inv.gpus[0].memory_mib is None and inv.min_memory_mib is None


def test_query_rows_in_our_field_order_parse_without_a_header():
    text = "0, NVIDIA H20, 97871, 550.54.14, 00000000:04:00.0, GPU-aaa\n1, NVIDIA H20, [N/A], 550.54.14, 00000000:23:00.0, [N/A]\n"
    inv = gpu.parse_query_gpu(text)
    assert inv.count == 2 and inv.driver_version == "550.54.14"
    assert inv.gpus[1].memory_mib is None and inv.gpus[1].uuid is None and inv.min_memory_mib == 97871


@pytest.mark.parametrize("relpath, words", [
    ("field/gpu/nvidia-smi-fail-couldnt-communicate-after-kernel-upgrade.txt", "not loaded"),
    ("field/gpu/nvidia-smi-fail-module-not-found.txt", "no NVIDIA kernel module"),
    ("field/gpu/nvidia-smi-fail-version-mismatch-ci-550.txt", "NVML 550.144"),
])
def test_each_nvidia_smi_failure_names_its_cause_and_a_one_sentence_fix(relpath, words):
    text = load_fixture(relpath)
    for parse in (gpu.parse_smi_table, gpu.parse_query_gpu, gpu.parse_smi_q):
        result = parse(text)
        assert result.failure is not None and words in result.failure.cause
        assert result.reason.startswith("nvidia-smi failed")
        assert result.failure.fix.count(". ") == 0 and result.failure.fix.endswith(".")
        assert result.failure.evidence_line in text


def test_a_missing_nvidia_smi_is_a_failure_not_an_empty_inventory():
    inv = gpu.parse_query_gpu("bash: line 1: nvidia-smi: command not found\n")
    assert not inv.ok and "missing" in inv.failure.cause


def test_fabric_completed_with_an_error_status_is_unhealthy():
    q = gpu.parse_smi_q(load_fixture("field/gpu/nvidia-smi-q-fabric-completed-insufficient-resources.txt"))
    (state,) = q.fabric
    assert (state.state, state.status) == ("Completed", "Insufficient Resources")
    assert state.verdict == "unhealthy" and not q.fabric_healthy and q.unhealthy_fabric == (state,)


@pytest.mark.parametrize("state, status, verdict", [
    ("Completed", "Success", "healthy"), ("In Progress", "N/A", "pending"),
    ("Not Started", "N/A", "pending"), ("N/A", "N/A", "not-applicable"), ("Odd", None, "unknown")])
def test_fabric_verdicts_follow_state_and_status(state, status, verdict):
    assert gpu.FabricState("x", state, status).verdict == verdict


def test_topology_and_benchmark_text_is_not_mistaken_for_a_gpu_table():
    assert gpu.parse_smi_table(load_fixture("field/gpu/topo-m-8xH20-2nic-cx6lx.txt")).reason
