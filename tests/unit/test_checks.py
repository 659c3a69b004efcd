"""checks.judge_node reads real probe outputs right: disk, NVLink fabric, fabric manager, RoCE GIDs, image CUDA."""
import json
import subprocess

import pytest

from fixture_text import load_fixture
from llmfab import checks, config
from llmfab.facts import ib

GB = 10 ** 9
EXPECT = checks.Expect(
    address="10.10.0.11", gpus=2, gpu_model="H200", driver="580.159.04", hcas=("mlx5_0", "mlx5_1"), gid_index=3,
    interface="bond0", head_address="10.10.0.11", is_head=True, nofile=204800,
    model_path="/mnt/share/deepseek-ai/DeepSeek-R1", image="vllm/vllm-openai:v0.8.5", image_archive="x.tar.gz",
    min_driver="550.54.14", ports=(40000,), image_cuda="12.4", model_bytes=705 * GB, fabricmanager=True)
SHARDS = [f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]


def outputs(**probes):
    return {name: (0, text) for name, text in probes.items()}


def judged(name, expect=EXPECT, **probes):
    report = checks.judge_node("n1", expect, outputs(**probes))
    (check,) = [c for c in report.checks if c.name == name]
    return check


def index(total=None):
    doc = {"weight_map": {f"w{i}": s for i, s in enumerate(SHARDS)}}
    if total:
        doc["metadata"] = {"total_size": total}
    return json.dumps(doc)


class TestFreeDisk:
    def test_69_gb_free_fails_for_deepseek_r1_not_yet_downloaded(self):
        check = judged("free disk", disk=str(69 * GB // 1024))
        assert check.status == "fail"
        assert "69.0 GB free" in check.evidence and "705.0 GB still to download" in check.evidence

    def test_the_index_total_size_minus_the_shards_on_disk_is_what_must_fit(self):
        files = f"{SHARDS[0]}\t{200 * GB}\n"
        check = judged("free disk", disk=str(101 * GB // 1024), model_index=index(300 * GB), model_files=files)
        assert check.status == "pass" and "100.0 GB still to download (index total_size 300.0 GB" in check.evidence

    def test_a_complete_model_needs_no_free_space(self):
        files = "".join(f"{s}\t{GB}\n" for s in SHARDS)
        check = judged("free disk", disk="1", model_index=index(), model_files=files)
        assert check.status == "pass" and "every shard present" in check.evidence

    def test_an_unknown_model_size_warns_and_says_how_to_set_it(self):
        from dataclasses import replace
        check = judged("free disk", expect=replace(EXPECT, model_bytes=0), disk=str(GB))
        assert check.status == "warn" and "model.size_gb" in check.fix


class TestNvlinkFabric:
    def test_the_h200_capture_registered_on_the_fabric_passes(self):
        check = judged("NVLink fabric", smi_q=load_fixture("h200/nvidia-smi-q.txt"))
        assert check.status == "pass" and "2/2 GPUs Completed/Success" in check.evidence

    def test_completed_with_insufficient_resources_fails_with_the_status_shown(self):
        check = judged("NVLink fabric", smi_q=load_fixture("field/gpu/nvidia-smi-q-fabric-completed-insufficient-resources.txt"))
        assert check.status == "fail" and "Completed/Insufficient Resources" in check.evidence
        assert "802" in check.fix

    def test_a_gpu_still_in_progress_fails(self):
        text = load_fixture("h200/nvidia-smi-q.txt").replace("Completed", "In Progress", 1)
        check = judged("NVLink fabric", smi_q=text)
        assert check.status == "fail" and "1/2" in check.evidence and "In Progress" in check.evidence

    def test_a_missing_nvidia_smi_is_a_warning_not_a_crash(self):
        check = judged("NVLink fabric", smi_q="bash: line 1: nvidia-smi: command not found\n")
        assert check.status == "warn"


NOTHING_TO_DO = load_fixture("field/fabricmanager/journal-fm-nv-warn-nothing-to-do-a40-nvlink-bridge.txt")


class TestFabricManager:
    def test_nothing_to_do_on_a_node_without_nvswitch_passes_and_says_to_turn_it_off(self):
        check = judged("fabric manager", fm_active="failed\n", fm_log=NOTHING_TO_DO,
                       smi_q=load_fixture("field/gpu/nvidia-smi-8xH20-driver535.txt"))
        assert check.status == "pass" and "NV_WARN_NOTHING_TO_DO" in check.evidence
        assert "nvidia.fabricmanager: false" in check.evidence

    def test_nothing_to_do_while_gpus_wait_for_the_fabric_fails(self):
        waiting = load_fixture("h200/nvidia-smi-q.txt").replace("Completed", "In Progress")
        check = judged("fabric manager", fm_active="failed\n", fm_log=NOTHING_TO_DO, smi_q=waiting)
        assert check.status == "fail" and "NVLSM" in check.fix

    def test_fabricmanager_false_in_the_config_is_honoured(self):
        from dataclasses import replace
        check = judged("fabric manager", expect=replace(EXPECT, fabricmanager=False), fm_active="inactive\n")
        assert check.status == "pass" and "nvidia.fabricmanager: false" in check.evidence

    def test_an_inactive_fabric_manager_still_fails_when_it_is_wanted(self):
        check = judged("fabric manager", fm_active="inactive\n", fm_log="")
        assert check.status == "fail" and "802" in check.fix


IBSTAT_ROCE = load_fixture("field/ib/ibstat-roce-cx7-200g-active-plus-cx6dx-down.txt")
GIDS = load_fixture("field/ib/show_gids-h20-roce-8nic-sglang.txt")


class TestRoceGidIndex:
    def test_the_configured_index_matching_show_gids_passes(self):
        check = judged("GID index mlx5_0", ibstat=IBSTAT_ROCE, gids=GIDS)
        assert check.status == "pass" and "RoCE v2 IPv4 GID is 3" in check.evidence

    def test_another_configured_index_fails_with_the_right_one(self):
        from dataclasses import replace
        check = judged("GID index mlx5_1", expect=replace(EXPECT, gid_index=1), ibstat=IBSTAT_ROCE, gids=GIDS)
        assert check.status == "fail" and check.fix.startswith("set network.nccl_ib_gid_index: 3")

    def test_an_unset_index_warns_with_the_value_to_set(self):
        from dataclasses import replace
        check = judged("GID index mlx5_0", expect=replace(EXPECT, gid_index=None), ibstat=IBSTAT_ROCE, gids=GIDS)
        assert check.status == "warn" and check.fix == "set network.nccl_ib_gid_index: 3"

    def test_sysfs_is_read_like_show_gids_when_show_gids_is_missing(self, tmp_path):
        port = tmp_path / "mlx5_0" / "ports" / "1"
        for sub in ("gids", "gid_attrs/types", "gid_attrs/ndevs"):
            (port / sub).mkdir(parents=True)
        rows = {0: ("fe80:0000:0000:0000:e29d:73ff:fe25:effc", "IB/RoCE v1"),
                4: ("0000:0000:0000:0000:0000:ffff:0a3f:41d0", "IB/RoCE v1"),
                5: ("0000:0000:0000:0000:0000:ffff:0a3f:41d0", "RoCE v2"),
                6: (ib.ZERO_GID, "")}
        for i, (gid, kind) in rows.items():
            (port / "gids" / str(i)).write_text(gid + "\n")
            (port / "gid_attrs/types" / str(i)).write_text(kind + "\n")
            (port / "gid_attrs/ndevs" / str(i)).write_text("xgbe0\n")
        command = ib.gids_command(["mlx5_0"]).replace("/sys/class/infiniband", str(tmp_path))
        command = command.replace("command -v show_gids", "false")
        text = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True).stdout
        table = ib.parse_show_gids(text)
        assert ib.roce_v2_gid_index(table, "mlx5_0") == 5
        assert [g.ipv4 for g in table.gids if g.index == 5] == ["10.63.65.208"]


class TestImageCuda:
    @pytest.mark.parametrize("driver, cuda, status", [
        ("550.54.14", "12.4", "pass"),     # the runbook's pair
        ("550.54.14", "12.5", "warn"),     # sglang v0.4.4-cu125: minor-version compatibility runs it
        ("550.54.14", "12.9", "warn"),     # trtllm 1.0.0
        ("550.54.14", "13.0", "fail"),     # CUDA 13 needs driver >= 580
        ("580.159.04", "13.0", "pass"),    # the H200 capture
        ("520.61.05", "12.0", "fail"),     # below CUDA 12's floor (525)
    ])
    def test_the_driver_runs_the_image_by_nvidias_rule(self, driver, cuda, status):
        from dataclasses import replace
        csv = load_fixture("h200/query-gpu-csv.txt").replace("580.159.04", driver)
        check = judged("image CUDA", expect=replace(EXPECT, image_cuda=cuda, driver=driver), gpu=csv)
        assert check.status == status, check


def test_every_new_check_is_in_the_readme_preflight_table():
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in ("NVLink fabric", "GID index", "free disk", "image CUDA", "fabric manager"):
        assert f"| {name}" in readme, name


def test_the_preflight_expects_the_port_an_engine_really_rendezvous_at():
    from llmfab.run import Run
    from llmfab.steps.preflight import expect

    def cluster(**extra):
        return config.parse({"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}],
                             **extra})

    ray = cluster()
    assert expect(Run(ray), ray.nodes[0]).ports == (40000, 6379)
    # vLLM's own multi-node launch (v0.32.0) starts no Ray: its store listens at dist_port
    # (a Ray of anyone else's on 6379 failed `run.sh all` on a shared machine).
    own = cluster(engine={"version": "0.32.0"}, nvidia={"driver_version": "580.65.06", "cuda_version": "13.0.0"})
    assert expect(Run(own), own.nodes[0]).ports == (40000, 20001)


def test_check_names_the_running_kernel_and_warns_when_the_kit_lacks_its_headers():
    from llmfab.run import Run
    from llmfab.steps.preflight import expect

    cfg = config.parse({"nodes": [{"name": "n1", "address": "10.0.0.1"}], "system": {"kernels": ["5.15.0-119-generic"]}})
    e = expect(Run(cfg), cfg.nodes[0])
    for running, status in (("5.15.0-119-generic", checks.PASS), ("5.15.0-124-generic", checks.WARN)):
        report = checks.NodeReport("n1")
        checks._kernel(report, e, {"kernel": (0, running + "\n")})
        (found,) = report.checks
        assert (found.name, found.status) == ("kernel", status)
    assert "add 5.15.0-124-generic to system.kernels" in found.fix
