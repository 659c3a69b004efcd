"""No parser raises, whatever it is given: it says why it could not read the text."""
import pytest

from fixture_text import FIXTURES, load_fixture
from llmfab.facts import fabricmanager, gpu, ib, nccl, net
from llmfab.facts.failures import diagnose_log

PARSERS = [gpu.parse_query_gpu, gpu.parse_smi_table, gpu.parse_smi_q, ib.parse_ibstat, ib.parse_ibv_devinfo,
           ib.parse_ibstatus, ib.parse_show_gids, ib.parse_ibdev2netdev, fabricmanager.parse_is_active,
           fabricmanager.parse_fm_log, net.parse_ip_addr, net.parse_ip_link, nccl.parse_allreduce,
           nccl.parse_nccl_debug]
GARBAGE = [None, "", "\x00\xff\ufffd", b"\xff\xfe binary", "x" * 100000, ",,,,,\n" * 50, "CA '\nPort :\n",
           "GPU 0000:00:00.0\n    Fabric\n        State\n", "| 0 x On | 0000:00:00.0 |\n", 12345,
           "ALLREDUCE size_bytes=x time_us=y\nALLREDUCE_OK world=\nALLREDUCE_FAIL\n",
           "mlx5_0 1 x fe80:: 1.2.3.4 v2 eth0\n", "1: eth0: <UP\n", "1: lo    inet 999.1.1.1/99\n",
           # long lines that once made a regex backtrack for minutes
           "| 0 " + " " * 50000, "[c10d] " * 10000, "Failed to start " * 5000, "y" * 8000 + ": not found"]


@pytest.mark.parametrize("parse", PARSERS, ids=[p.__module__.rsplit(".", 1)[1] + "." + p.__name__ for p in PARSERS])
@pytest.mark.parametrize("text", GARBAGE, ids=range(len(GARBAGE)))
def test_a_parser_returns_a_result_on_garbage(parse, text):
    result = parse(text)
    assert hasattr(result, "reason")


@pytest.mark.parametrize("parse", PARSERS, ids=[p.__name__ for p in PARSERS])
def test_a_parser_given_another_tools_output_says_why_it_cannot_read_it(parse):
    text = load_fixture("field/bench/vllm-benchmark_serving-readme-sample.txt")
    result = parse(text)
    assert result.reason, result


def test_every_fixture_goes_through_every_parser_and_the_diagnoser():
    for path in sorted(FIXTURES.glob("*/**/*.txt")):
        text = load_fixture(path.relative_to(FIXTURES).as_posix())
        for parse in PARSERS:
            parse(text)
        diagnose_log(text)
