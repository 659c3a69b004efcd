"""Engine profiles: options are checked against each version's flags, argv renders safely."""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import replace

import pytest
import yaml

from llmfab.engines import (EngineConfigError, Launch, NodeInfo, check_parallelism,
                            default_options, get_profile, list_engines, list_versions,
                            readiness_urls, render_plan, validate_options)
from llmfab.engines import reasoning_options, sglang, trtllm, vllm

ALL = [(e, v) for e in list_engines() for v in list_versions(e)]
NODES = (NodeInfo("h20-a", "10.20.0.11", 0), NodeInfo("h20-b", "10.20.0.12", 1))
SECRET = "sk-llmfab-DO-NOT-LEAK-0123456789"
ENGINE_START = {"vllm": ["vllm", "serve"], "sglang": ["-m", "sglang.launch_server"],
                "trtllm": ["trtllm-serve"]}


def launch_for(profile, key_file=None, **changes):
    base = Launch(nodes=NODES, model_path="/mnt/share/deepseek-ai/DeepSeek-R1",
                  nccl_ib_hca=("mlx5_0", "mlx5_1", "mlx5_4", "mlx5_5"), nccl_ib_gid_index=3,
                  api_key_file=key_file, options=default_options(profile),
                  labels={"llmfab.cluster": "h20"})
    return replace(base, **changes)


def all_argvs(profile, launch):
    return [step.argv for step in render_plan(profile, launch)]


def payload_of(argv):
    assert argv.count("-c") == 1, argv
    return argv[argv.index("-c") + 1]


def engine_tokens(profile, argv):
    """Tokens of the engine command inside the -c payload, or [] when it has none."""
    tokens = shlex.split(payload_of(argv))
    start = ENGINE_START[profile.engine]
    for i in range(len(tokens)):
        if tokens[i:i + len(start)] == start:
            rest = tokens[i + len(start):]
            return [t for t in rest if not t.startswith(">>")]
    return []


@pytest.fixture(params=ALL, ids=[f"{e}-{v}" for e, v in ALL])
def profile(request):
    return get_profile(*request.param)


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "api_key"
    path.write_text(SECRET + "\n")
    path.chmod(0o600)
    return str(path)


class TestOptions:
    def test_each_profiles_default_options_validate(self, profile):
        assert validate_options(profile, default_options(profile)) == []

    def test_an_unknown_option_is_named_with_a_suggestion(self, profile):
        key = next(iter(default_options(profile)))
        errors = validate_options(profile, {key + "x": 1})
        assert len(errors) == 1 and repr(key + "x") in errors[0]
        assert "did you mean" in errors[0] and repr(key) in errors[0]

    @pytest.mark.parametrize("engine,key", [("vllm", "max_model_len"), ("sglang", "context_length"),
                                            ("trtllm", "max_seq_len")])
    def test_a_wrong_type_says_what_was_expected_and_got(self, engine, key):
        errors = validate_options(get_profile(engine), {key: "abc"})
        assert len(errors) == 1 and key in errors[0] and "expected int, got 'abc'" in errors[0]

    def test_a_boolean_given_as_a_number_is_refused(self):
        errors = validate_options(get_profile("vllm"), {"trust_remote_code": 1})
        assert errors and "expected bool" in errors[0]

    def test_the_string_None_is_refused_instead_of_rendered(self):
        errors = validate_options(get_profile("vllm", "v0.8.5"), {"quantization": "None"})
        assert errors and "quantization" in errors[0] and "null" in errors[0]

    def test_a_choice_outside_the_versions_choices_is_refused(self):
        errors = validate_options(get_profile("sglang", "v0.4.4"), {"kv_cache_dtype": "fp8"})
        assert errors and "fp8_e4m3" in errors[0]

    def test_options_the_deployment_sets_are_refused(self, profile):
        errors = validate_options(profile, {"port": 8000})
        assert errors and "set by llmfab" in errors[0]

    def test_a_flag_removed_in_a_newer_version_is_explained(self):
        errors = validate_options(get_profile("vllm", "v0.33.0"), {"disable_log_requests": True})
        assert errors and "enable_log_requests" in errors[0]

    def test_every_flag_records_where_it_came_from(self, profile):
        for flag in [*profile.flags.values(), *profile.config_keys.values()]:
            assert flag.source, flag.name
            if profile.engine in ("vllm", "sglang"):
                assert f"@{profile.version}:" in flag.source and "#L" in flag.source


class TestRenderedArgv:
    def test_every_argv_survives_shlex_round_trip_and_bash_parse(self, profile, key_file):
        launch = launch_for(profile, None if profile.engine == "trtllm" else key_file)
        for argv in all_argvs(profile, launch):
            assert all(isinstance(a, str) for a in argv)
            line = shlex.join(argv)
            assert shlex.split(line) == argv
            assert subprocess.run(["bash", "-n", "-c", line]).returncode == 0
            assert subprocess.run(["bash", "-n", "-c", payload_of(argv)]).returncode == 0

    def test_the_c_payload_is_one_argv_element_ending_the_command(self, profile):
        for argv in all_argvs(profile, launch_for(profile)):
            assert argv[-2] == "-c" and "exec " in argv[-1]

    def test_every_rendered_engine_flag_is_in_the_profiles_table(self, profile, key_file):
        launch = launch_for(profile, None if profile.engine == "trtllm" else key_file)
        names, seen = profile.flag_names(), 0
        for argv in all_argvs(profile, launch):
            tokens = engine_tokens(profile, argv)
            seen += bool(tokens)
            flags = {t for t in tokens if t.startswith("--")}
            assert flags <= names, flags - names
        assert seen >= 1

    def test_containers_use_host_network_gpus_ib_and_no_restart_or_port_map(self, profile):
        for argv in all_argvs(profile, launch_for(profile)):
            if argv[:2] != ["docker", "run"]:
                continue
            line = shlex.join(argv)
            assert "--network host --ipc host" in line and "--gpus all" in line
            assert "--device /dev/infiniband" in line and "--ulimit nofile=" in line
            assert "--restart" not in argv and "-p" not in argv and "--privileged" not in argv
            model = "/mnt/share/deepseek-ai/DeepSeek-R1"
            # trtllm-serve 1.0 names the model after its directory: it sees it as served_name.
            inside = "/llmfab/served/DeepSeek-R1" if profile.engine == "trtllm" else model
            assert f"{model}:{inside}:ro" in argv
            assert "NCCL_IB_HCA=mlx5_0,mlx5_1,mlx5_4,mlx5_5" in argv
            assert "NCCL_IB_GID_INDEX=3" in argv and "GLOO_SOCKET_IFNAME=bond0" in argv

    def test_false_and_none_options_are_omitted(self):
        p = get_profile("vllm", "v0.8.5")
        opts = {**default_options(p), "enforce_eager": False, "quantization": None}
        tokens = vllm.serve_command(p, launch_for(p, options=opts), NODES[0])
        assert "--enforce-eager" not in tokens and "--quantization" not in tokens


class TestVllm:
    def test_v085_renders_no_quantization_and_no_None(self):
        p = get_profile("vllm", "v0.8.5")
        for argv in all_argvs(p, launch_for(p)):
            tokens = shlex.split(payload_of(argv))
            assert "--quantization" not in tokens and "None" not in tokens

    def test_v085_uses_ray_with_per_node_host_ip_and_serves_on_the_head(self):
        p = get_profile("vllm", "v0.8.5")
        head, worker, serve = all_argvs(p, launch_for(p))
        assert shlex.split(payload_of(head))[4:8] == [
            "ray", "start", "--block", "--head"]
        assert "--node-ip-address=10.20.0.11" in payload_of(head)
        assert "--address=10.20.0.11:6379" in payload_of(worker)
        assert "VLLM_HOST_IP=10.20.0.11" in head and "VLLM_HOST_IP=10.20.0.12" in worker
        assert serve[:4] == ["docker", "exec", "-d", "llmfab-engine"]
        assert "--disable-log-requests" in engine_tokens(p, serve)

    def test_v033_spans_nodes_without_ray_and_without_disable_log_requests(self):
        p = get_profile("vllm", "v0.33.0")
        head, worker = all_argvs(p, launch_for(p))
        h, w = engine_tokens(p, head), engine_tokens(p, worker)
        assert "--headless" in w and "--headless" not in h
        assert h[h.index("--master-addr") + 1] == "10.20.0.11"
        assert "ray" not in payload_of(head) and "--disable-log-requests" not in h

    def test_tp_times_pp_that_misses_the_gpu_count_is_refused(self):
        p = get_profile("vllm")
        bad = {**default_options(p), "pipeline_parallel_size": 1}
        assert check_parallelism(p, bad, 2, 8)
        with pytest.raises(EngineConfigError, match="16 GPUs"):
            render_plan(p, launch_for(p, options=bad))


class TestSglang:
    def test_dist_init_addr_is_head_ipv4_and_port_without_stray_brace(self):
        for version in list_versions("sglang"):
            p = get_profile("sglang", version)
            for node, argv in zip(NODES, all_argvs(p, launch_for(p))):
                tokens = engine_tokens(p, argv)
                addr = tokens[tokens.index("--dist-init-addr") + 1]
                assert re.fullmatch(r"10\.20\.0\.11:20001", addr)
                assert tokens[tokens.index("--node-rank") + 1] == str(node.rank)

    def test_tp_other_than_the_gpu_count_is_refused(self):
        p = get_profile("sglang")
        errors = check_parallelism(p, {"tp_size": 8}, 2, 8)
        assert errors and "tp_size: 16" in errors[0]

    def test_default_options_keep_context_length_not_max_total_tokens(self):
        assert "max_total_tokens" not in default_options(get_profile("sglang"))

    def test_info_path_follows_the_version(self):
        assert get_profile("sglang", "v0.4.4").info_path == "/get_server_info"
        assert get_profile("sglang", "v0.5.23").info_path == "/server_info"


class TestTrtllm:
    def test_mpirun_spans_both_nodes_and_passes_the_extra_options_file(self):
        p = get_profile("trtllm")
        steps = render_plan(p, launch_for(p))
        tokens = shlex.split(payload_of(steps[-1].argv))
        assert tokens[tokens.index("-H") + 1] == "10.20.0.11:8,10.20.0.12:8"
        assert tokens[tokens.index("-np") + 1] == "16"
        serve = engine_tokens(p, steps[-1].argv)
        assert serve[serve.index(trtllm.CONFIG_FLAG) + 1] == trtllm.config_path(launch_for(p))
        assert serve[serve.index("--tp_size") + 1] == "16" == serve[serve.index("--ep_size") + 1]

    def test_the_extra_options_yaml_has_attention_dp_fp8_kv_chunked_prefill_and_optional_mtp(self):
        p = get_profile("trtllm")
        doc = yaml.safe_load(trtllm.extra_options_yaml(p, launch_for(p)))
        assert doc == {"enable_attention_dp": True, "enable_chunked_prefill": True,
                       "kv_cache_config": {"dtype": "fp8", "free_gpu_memory_fraction": 0.85}}
        opts = {**default_options(p), "mtp_layers": 2}
        doc = yaml.safe_load(trtllm.extra_options_yaml(p, launch_for(p, options=opts)))
        assert doc["speculative_config"] == {"decoding_type": "MTP", "num_nextn_predict_layers": 2}

    def test_the_kv_cache_fraction_reaches_the_engine_through_the_yaml_not_a_flag_it_overrides(self):
        p = get_profile("trtllm")
        launch = launch_for(p, options={**default_options(p), "kv_cache_free_gpu_memory_fraction": 0.7})
        doc = yaml.safe_load(trtllm.extra_options_yaml(p, launch))
        assert doc["kv_cache_config"]["free_gpu_memory_fraction"] == 0.7
        assert "--kv_cache_free_gpu_memory_fraction" not in trtllm.serve_command(p, launch)

    def test_the_served_name_is_the_model_directory_trtllm_serve_reports(self):
        p = get_profile("trtllm")
        launch = launch_for(p, served_name="r1")
        assert trtllm.serve_command(p, launch)[1] == "/llmfab/served/r1"
        (head, *_rest) = render_plan(p, launch)
        assert f"{launch.model_path}:/llmfab/served/r1:ro" in head.argv
        with pytest.raises(EngineConfigError, match="plain name"):
            render_plan(p, launch_for(p, served_name="org/r1"))

    def test_mpirun_pins_the_container_host_key_and_uses_the_images_open_mpi_prefix(self):
        p = get_profile("trtllm")
        launch = launch_for(p)
        payload = payload_of(render_plan(p, launch)[-1].argv)
        assert "StrictHostKeyChecking=no" not in payload and "/dev/null" not in payload
        assert f"UserKnownHostsFile={launch.ssh_dir}/known_hosts" in payload
        assert 'exec "$prefix/bin/mpirun" --prefix "$prefix" ' in payload and "-x OPAL_PREFIX" in payload
        sshd = payload_of(render_plan(p, launch)[0].argv)
        assert f"-h {launch.ssh_dir}/{trtllm.HOST_KEY}" in sshd and "ssh-keygen" not in sshd

    def test_the_image_probe_exits_3_without_sshd_4_without_orted_and_names_both(self, tmp_path):
        import subprocess
        (tmp_path / "ompi" / "bin").mkdir(parents=True)
        orted = tmp_path / "ompi" / "bin" / "orted"
        orted.write_text("#!/bin/sh\n")
        orted.chmod(0o755)
        sshd_dir = tmp_path / "sbin"
        sshd_dir.mkdir()
        (sshd_dir / "sshd").write_text("#!/bin/sh\n")
        (sshd_dir / "sshd").chmod(0o755)

        def run(sshd, **env):
            probe = trtllm.MPI_PROBE.replace("/usr/sbin/sshd", str(sshd))
            return subprocess.run(["/bin/bash", "-c", probe], env={"PATH": "/usr/bin:/bin", **env},
                                  capture_output=True, text=True)
        ok = run(sshd_dir / "sshd", OPAL_PREFIX=str(tmp_path / "ompi"))
        assert ok.returncode == 0 and f"orted {orted}" in ok.stdout
        assert run(sshd_dir / "absent", OPAL_PREFIX=str(tmp_path / "ompi")).returncode == 3
        assert run(sshd_dir / "sshd").returncode == 4

    def test_an_api_key_file_is_refused_because_no_key_option_was_verified(self, key_file):
        p = get_profile("trtllm")
        with pytest.raises(EngineConfigError, match="proxy"):
            render_plan(p, launch_for(p, key_file))


class TestApiKey:
    @pytest.mark.parametrize("engine,version", [(e, v) for e, v in ALL if e != "trtllm"])
    def test_the_key_value_never_appears_in_any_argv(self, engine, version, key_file):
        p = get_profile(engine, version)
        for argv in all_argvs(p, launch_for(p, key_file)):
            assert not any(SECRET in a for a in argv)
            assert SECRET not in shlex.join(argv)

    def test_vllm_reads_the_key_into_its_env_var_not_its_argv(self, key_file):
        p = get_profile("vllm", "v0.8.5")
        serve = all_argvs(p, launch_for(p, key_file))[-1]
        assert 'export VLLM_API_KEY="$LLMFAB_API_KEY"' in payload_of(serve)
        assert "--api-key" not in engine_tokens(p, serve)

    def test_sglang_reads_the_key_inside_its_launcher_on_rank_0_only_never_in_argv(self, key_file):
        p = get_profile("sglang")
        head, worker = all_argvs(p, launch_for(p, key_file))
        assert payload_of(head).startswith("set -euo pipefail; exec python3 /etc/llmfab/engine/sglang-launch.py --model-path")
        assert "--api-key" not in payload_of(head) and "LLMFAB_API_KEY" not in payload_of(head)
        assert f"{key_file}:/run/llmfab/api_key:ro" in head
        assert "/etc/llmfab/engine/sglang-launch.py:/etc/llmfab/engine/sglang-launch.py:ro" in head
        assert "--api-key" not in payload_of(worker) and not any(key_file in a for a in worker)
        assert "-m sglang.launch_server" in payload_of(worker)


class TestLaunchChecks:
    def test_a_hostname_or_relative_model_path_is_refused(self):
        p = get_profile("sglang")
        bad = launch_for(p, nodes=(NodeInfo("a", "head.local", 0), NODES[1]),
                         model_path="mnt/share/DeepSeek-R1")
        with pytest.raises(EngineConfigError) as err:
            render_plan(p, bad)
        text = str(err.value)
        assert "IPv4" in text and "absolute path" in text

    def test_profiles_default_to_the_runbook_pins(self):
        assert get_profile("vllm").image == "vllm/vllm-openai:v0.8.5"
        assert get_profile("sglang").image == "lmsysorg/sglang:v0.4.4-cu125"
        assert get_profile("vllm", "0.8.5") is get_profile("vllm", "v0.8.5")
        assert get_profile("tensorrt-llm").image.startswith("nvcr.io/nvidia/tensorrt-llm/release:")
        with pytest.raises(KeyError):
            get_profile("vllm", "0.0.1")

    def test_readiness_urls_point_at_the_head(self, profile):
        urls = readiness_urls(profile, launch_for(profile))
        assert urls["health"] == "http://10.20.0.11:40000/health"
        assert urls["models"].endswith("/v1/models")

    def test_sglang_module_level_check_matches_the_dispatcher(self):
        assert sglang.check_parallelism({"tp_size": 16}, 2, 8) == []


class TestModelDefaults:
    @pytest.mark.parametrize("engine,version,expected", [
        ("vllm", "v0.8.5", ["--enable-reasoning", "--reasoning-parser", "deepseek_r1"]),
        ("vllm", "v0.33.0", ["--reasoning-parser", "deepseek_r1"]),
        ("sglang", "v0.4.4", ["--reasoning-parser", "deepseek-r1"]),
        ("sglang", "v0.5.23", ["--reasoning-parser", "deepseek-r1"]),
        ("trtllm", "1.0.0", ["--reasoning_parser", "deepseek-r1"]),
    ])
    def test_deepseek_r1_gets_the_reasoning_parser_of_each_pinned_version(self, engine, version, expected):
        from pathlib import Path
        from llmfab import config as config_mod
        from llmfab.deployment import build
        cfg = config_mod.load(Path(__file__).resolve().parents[2] / "configs" / "h20-2x8.yaml")
        cfg.engine.name, cfg.engine.version, cfg.engine.api_key = engine, version, "none"
        cfg.nvidia.driver_version = "580.65.06"
        d = build(cfg)
        line = " ".join(a for s in d.steps_for(cfg.head) for a in s.argv)
        assert " ".join(expected) in line
        cfg.model.id = "meta-llama/Llama-3.1-70B-Instruct"
        assert reasoning_options(d.profile, "llama-3.1-70b") == {}

    def test_sglang_keeps_its_own_static_memory_fraction_unless_configured(self):
        from llmfab.engines import sglang
        p = get_profile("sglang")
        assert "mem_fraction_static" not in default_options(p)
        assert "--mem-fraction-static" not in " ".join(a for argv in all_argvs(p, launch_for(p)) for a in argv)
        assert sglang.default_mem_fraction(16) == 0.79 and sglang.default_mem_fraction(1) == 0.88
        configured = launch_for(p, options={**default_options(p), "mem_fraction_static": 0.85})
        assert "--mem-fraction-static" in " ".join(a for argv in all_argvs(p, configured) for a in argv)
