"""Every parser on the real H200 captures, and the capture script uses the parsers' probes."""
from pathlib import Path

from fixture_text import load_fixture
from llmfab.facts import fabricmanager, gpu, ib, nccl

CAPTURE = Path(__file__).resolve().parents[2] / "llmfab" / "scripts" / "capture_h200.sh"


def test_the_capture_script_runs_the_exact_probe_strings_of_the_parsers():
    script = CAPTURE.read_text()
    for command in (gpu.QUERY_COMMAND, gpu.TABLE_COMMAND, gpu.QUERY_ALL_COMMAND, fabricmanager.IS_ACTIVE_COMMAND,
                    ib.IBSTAT_COMMAND, ib.IBV_DEVINFO_COMMAND, ib.IBSTATUS_COMMAND, ib.SHOW_GIDS_COMMAND):
        assert '"%s"' % command in script, command


def test_the_query_probe_on_h200_gives_two_gpus_of_143771_mib_and_driver_580():
    inv = gpu.parse_query_gpu(load_fixture("h200/query-gpu-csv.txt"))
    assert inv.ok and inv.count == 2 and inv.names == {"NVIDIA H200"}
    assert inv.min_memory_mib == 143771 and inv.driver_version == "580.159.04"
    assert inv.gpus[1].bus_id == "00000000:00:07.0" and inv.gpus[0].uuid.startswith("GPU-f16583f3")


def test_the_580_table_layout_parses_like_the_535_one():
    inv = gpu.parse_smi_table(load_fixture("h200/nvidia-smi.txt"))
    assert inv.ok and inv.count == 2 and (inv.driver_version, inv.cuda_version) == ("580.159.04", "13.0")
    assert [g.bus_id for g in inv.gpus] == ["00000000:00:06.0", "00000000:00:07.0"]
    assert inv.min_memory_mib == 143771


def test_the_table_and_the_query_agree_on_the_h200():
    table = gpu.parse_smi_table(load_fixture("h200/nvidia-smi.txt"))
    query = gpu.parse_query_gpu(load_fixture("h200/query-gpu-csv.txt"))
    assert [(g.index, g.name, g.memory_mib, g.bus_id) for g in table.gpus] == \
        [(g.index, g.name, g.memory_mib, g.bus_id) for g in query.gpus]


def test_full_query_on_h200_shows_a_registered_fabric_on_both_gpus():
    q = gpu.parse_smi_q(load_fixture("h200/nvidia-smi-q.txt"))
    assert (q.driver_version, q.cuda_version) == ("580.159.04", "13.0")
    assert [g.bus_id for g in q.gpus] == ["00000000:00:06.0", "00000000:00:07.0"]
    assert all(g.name == "NVIDIA H200" and g.memory_mib == 143771 for g in q.gpus)
    assert [(f.bus_id, f.verdict) for f in q.fabric] == [("00000000:00:06.0", "healthy"), ("00000000:00:07.0", "healthy")]
    assert q.fabric_healthy


def test_missing_rdma_tools_are_reported_as_not_installed():
    assert ib.parse_ibstat(load_fixture("h200/ibstat.txt")).reason == "ibstat is not installed (command not found)"
    assert ib.parse_ibv_devinfo(load_fixture("h200/ibv_devinfo.txt")).reason.startswith("ibv_devinfo is not installed")
    assert ib.parse_ibstatus(load_fixture("h200/ibstatus.txt")).reason.startswith("ibstatus is not installed")
    assert ib.parse_show_gids(load_fixture("h200/show_gids.txt")).reason.startswith("show_gids is not installed")
    assert [s.present for s in ib.hca_status(ib.parse_ibstat(load_fixture("h200/ibstat.txt")), ["mlx5_0"])] == [False]


def test_no_systemd_on_the_h200_machine_means_fabric_manager_state_unknown():
    state = fabricmanager.parse_is_active(load_fixture("h200/fabricmanager-is-active.txt"))
    assert state.state is None and not state.active and "systemctl is not installed" in state.reason


def test_the_torch_nccl_version_matches_what_nccl_and_the_check_report():
    torch_line = load_fixture("h200/torch-versions.txt").strip()
    assert torch_line == "2.11.0+cu130 13.0 (2, 28, 9)"
    text = load_fixture("h200/allreduce-nccl.txt")
    assert nccl.parse_nccl_debug(text).version == nccl.parse_allreduce(text).info_value("nccl") == "2.28.9"


def test_the_driver_in_proc_matches_nvidia_smi():
    assert "580.159.04" in load_fixture("h200/proc-driver-version.txt")
    assert fabricmanager.parse_version(load_fixture("h200/proc-driver-version.txt")) == "580.159.04"
