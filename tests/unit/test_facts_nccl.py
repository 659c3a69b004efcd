"""The all-reduce check: its parser on real H200 output, and the script without torch."""
import importlib.util
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from fixture_text import load_fixture
from llmfab.facts import nccl

SCRIPT = Path(__file__).resolve().parents[2] / "llmfab" / "scripts" / "allreduce_check.py"


def load_script():
    spec = importlib.util.spec_from_file_location("allreduce_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_two_h200_gpus_pass_with_busbw_rising_to_325_gbps_at_1_gib():
    r = nccl.parse_allreduce(load_fixture("h200/allreduce-nccl.txt"))
    assert r.ok and r.world == 2 and len(r.samples) == 11
    assert [s.size_bytes for s in r.samples] == [2 ** k for k in range(20, 31)]
    assert r.busbw_at(1 << 20) == 37.33 and r.busbw_at(1 << 30) == 325.23 and r.peak_busbw_GBps == 325.23
    assert r.samples[-1].time_us == 3301.5
    assert r.info_value("nccl") == "2.28.9" and r.info_value("torch") == "2.11.0+cu130"
    assert sorted(r.ranks) == [("0", "vm"), ("1", "vm")]


def test_busbw_equals_algbw_times_2_n_minus_1_over_n():
    for s in nccl.parse_allreduce(load_fixture("h200/allreduce-nccl.txt")).samples:
        assert s.busbw_GBps == pytest.approx(s.algbw_GBps * 2 * (2 - 1) / 2, abs=0.01)
        assert s.algbw_GBps == pytest.approx(s.size_bytes / (s.time_us * 1e-6) / 1e9, rel=0.01)


def test_two_nodes_over_tcp_sockets_pass_but_nccl_debug_shows_the_socket_fallback():
    text = load_fixture("h200/allreduce-2node-socket.txt")
    r = nccl.parse_allreduce(text)
    assert r.ok and r.info_value("nnodes") == "2" and r.peak_busbw_GBps == 3.65
    debug = nccl.parse_nccl_debug(text)
    assert debug.nnodes == 2 and debug.network == "Socket" and debug.transports == ("NET/Socket/0",)
    assert debug.socket_fallback and not debug.uses_ib_between_nodes and not debug.gdr_rdma


def test_nccl_debug_on_one_h200_host_shows_p2p_over_nvlink_and_no_ib():
    debug = nccl.parse_nccl_debug(load_fixture("h200/allreduce-nccl.txt"))
    assert debug.version == "2.28.9" and debug.transports == ("P2P/CUMEM",) and debug.nnodes == 1
    assert debug.ib_devices == () and debug.socket_ifaces == ("eth0:192.0.2.2",) and not debug.socket_fallback


def test_nccl_debug_reads_ib_devices_and_gdrdma_channels():
    text = ("n1:1:1 [0] NCCL INFO NCCL version 2.21.5+cuda12.4\n"
            "n1:1:1 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/RoCE [1]mlx5_1:1/RoCE [RO]; OOB eth0:10.0.0.1<0>\n"
            "n1:1:1 [0] NCCL INFO Using network IB\n"
            "n1:1:1 [0] NCCL INFO comm 0x1 rank 0 nRanks 16 nNodes 2 localRanks 8 localRank 0 MNNVL 0\n"
            "n1:1:1 [0] NCCL INFO Channel 00/0 : 8[0] -> 0[0] [receive] via NET/IB/0/GDRDMA\n")
    debug = nccl.parse_nccl_debug(text)
    assert debug.ib_devices == ("mlx5_0:1/RoCE", "mlx5_1:1/RoCE") and debug.network == "IB"
    assert debug.uses_ib_between_nodes and debug.gdr_rdma and not debug.socket_fallback


def test_gloo_smoke_test_output_parses_as_a_pass():
    r = nccl.parse_allreduce(load_fixture("h200/allreduce-gloo-cpu.txt"))
    assert r.ok and r.info_value("backend") == "gloo" and r.samples[0].size_bytes == 4096


def test_a_hung_init_is_a_failure_with_rank_phase_and_reason():
    r = nccl.parse_allreduce(load_fixture("h200/allreduce-init-timeout.txt"))
    assert not r.ok and not r.completed
    assert r.failures == (nccl.AllreduceFailure("0", "init", "timeout: no progress after 15s"),)


def test_a_fail_line_from_any_rank_spoils_an_otherwise_complete_run():
    text = load_fixture("h200/allreduce-nccl.txt") + "ALLREDUCE_FAIL rank=9 phase=size=1024 reason=wrong sum in 3 of 256 elements\n"
    r = nccl.parse_allreduce(text)
    assert r.completed and not r.ok and r.failures[0].reason == "wrong sum in 3 of 256 elements"


def test_text_without_allreduce_lines_is_unparseable_with_a_reason():
    r = nccl.parse_allreduce("torchrun: command not found\n")
    assert not r.ok and "no ALLREDUCE lines" in r.reason


def test_the_script_compiles(tmp_path):
    py_compile.compile(str(SCRIPT), cfile=str(tmp_path / "allreduce_check.pyc"), doraise=True)


def test_sizes_double_from_1_mib_to_1_gib_by_default():
    script = load_script()
    args = script.build_parser().parse_args([])
    sizes = script.message_sizes(args.min_bytes, args.max_bytes, args.factor)
    assert sizes[0] == 1 << 20 and sizes[-1] == 1 << 30 and len(sizes) == 11


@pytest.mark.parametrize("text, size", [("4096", 4096), ("64K", 65536), ("1MiB", 1 << 20), ("2g", 2 << 30)])
def test_sizes_are_read_in_binary_units(text, size):
    assert load_script().parse_size(text) == size


def test_the_last_size_is_the_maximum_even_off_the_factor_grid():
    assert load_script().message_sizes(1000, 5000, 2) == [1000, 2000, 4000, 5000]


def run_script(args, tmp_path, env_extra, fake_torch=None):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.update(env_extra)
    if fake_torch is not None:
        pkg = tmp_path / "fake" / "torch"
        pkg.mkdir(parents=True)
        for name, body in fake_torch.items():
            (pkg / name).write_text(body)
        env["PYTHONPATH"] = str(tmp_path / "fake")
    return subprocess.run([sys.executable, str(SCRIPT)] + args, capture_output=True, text=True, env=env, timeout=60)


def test_without_torchrun_the_script_says_so_and_exits_64(tmp_path):
    out = run_script([], tmp_path, {})
    assert out.returncode == 64 and out.stdout.startswith("ALLREDUCE_FAIL rank=? phase=args reason=RANK/WORLD_SIZE")


def test_a_missing_torch_is_one_fail_line_and_exit_1(tmp_path):
    out = run_script(["--backend", "gloo"], tmp_path, {"RANK": "0", "WORLD_SIZE": "1"},
                     {"__init__.py": "raise ImportError('no torch in this image')\n"})
    assert out.returncode == 1
    assert out.stdout.strip() == "ALLREDUCE_FAIL rank=0 phase=start reason=ImportError: no torch in this image"


def test_an_init_that_never_returns_is_ended_by_the_watchdog_with_exit_3(tmp_path):
    fake = {"__init__.py": "def device(kind, index=None):\n    return kind\n",
            "distributed.py": "import time\ndef init_process_group(**kw):\n    time.sleep(60)\n"}
    out = run_script(["--backend", "gloo", "--init-timeout", "1"], tmp_path, {"RANK": "3", "WORLD_SIZE": "4"}, fake)
    assert out.returncode == 3
    assert nccl.parse_allreduce(out.stdout).failures == (
        nccl.AllreduceFailure("3", "init", "timeout: no progress after 1s"),)
