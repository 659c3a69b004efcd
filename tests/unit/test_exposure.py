"""A default deploy exposes nothing unauthenticated beyond the cluster's nodes (review C1)."""

import pytest

from llmfab import checks, config
from llmfab.deployment import DeploymentError, build
from llmfab.run import Run
from llmfab.steps.firewall import filtered_ports, ruleset
from llmfab.steps.preflight import expect

TWO_NODES = {"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}]}


def parse(**engine):
    return config.parse({**TWO_NODES, "engine": engine})


def head_argv(cfg):
    d = build(cfg)
    return d.steps_for(cfg.head)[0].argv


class TestDefaults:
    def test_the_default_endpoint_is_keyed_and_the_internal_ports_firewalled(self):
        cfg = parse()
        assert cfg.engine.api_key == "generate" and cfg.engine.firewall is True

    def test_ray_pins_every_listener_so_that_the_firewall_can_name_it(self):
        payload = head_argv(parse())[-1]
        for flag in ("--port=6379", "--node-manager-port=6380",
                     "--object-manager-port=6381", "--dashboard-agent-grpc-port=6382",
                     "--dashboard-agent-listen-port=6383", "--metrics-export-port=6384",
                     "--runtime-env-agent-port=6385", "--min-worker-port=10002", "--max-worker-port=15000",
                     "--include-dashboard=false"):
            assert flag in payload

    def test_the_rules_let_in_only_the_nodes_and_this_host(self):
        rules = ruleset(Run(parse()))
        assert "elements = { 10.0.0.1, 10.0.0.2, 127.0.0.1 }" in rules
        assert "tcp dport { 6379, 6380-6391, 10001, 10002-19999 } drop" in rules
        assert "40000" not in rules

    def test_an_endpoint_without_a_key_is_filtered_like_the_internal_ports(self):
        assert (40000, 40000, "the API without a key") in filtered_ports(Run(parse(api_key="none")))

    @pytest.mark.parametrize("engine, ports", [("sglang", "20001-20100"), ("trtllm", "2233")])
    def test_every_engine_filters_its_own_unauthenticated_store(self, engine, ports):
        rules = ruleset(Run(parse(name=engine, api_key="none")))
        assert f"tcp dport {{ {ports}, 40000 }} drop" in rules

    def test_trtllm_refuses_the_default_key_and_says_how_to_serve_it(self):
        with pytest.raises(DeploymentError, match="set engine.api_key: none"):
            build(parse(name="trtllm"))

    @pytest.mark.parametrize("key", ["", "two words", "line\nbreak", "-rf"])
    def test_a_key_that_would_break_a_header_or_an_argument_parser_is_refused(self, key):
        with pytest.raises(config.ConfigError, match="api_key"):
            parse(api_key=key)


def judged(listening: str, firewall: tuple[int, str] = (1, "Error: No such file or directory")):
    e = expect(Run(parse()), parse().nodes[0])
    out = {"listening": (0, listening), "firewall": firewall}
    report = checks.NodeReport("n1")
    checks._exposure(report, e, out)
    (c,) = report.checks
    return c


class TestTheCheck:
    def test_ray_answering_on_every_address_without_llmfab_rules_fails(self):
        c = judged("LISTEN 0 128 0.0.0.0:6379 0.0.0.0:*\nLISTEN 0 128 *:10001 *:*\n")
        assert c.status == "fail" and "6379, 10001" in c.evidence and "fab deploy" in c.fix

    def test_the_same_ports_behind_llmfabs_rules_pass(self):
        rules = ruleset(Run(parse())).split("delete table inet llmfab\n")[1]
        c = judged("LISTEN 0 128 0.0.0.0:6379 0.0.0.0:*\n", (0, rules))
        assert c.status == "pass" and "only the cluster" in c.evidence

    def test_listeners_on_loopback_or_other_ports_are_not_exposure(self):
        c = judged("LISTEN 0 128 127.0.0.1:6379 0.0.0.0:*\nLISTEN 0 128 0.0.0.0:22 0.0.0.0:*\n")
        assert c.status == "pass"


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_no_engine_runs_the_model_directorys_own_code_by_default(engine):
    cfg = parse(name=engine, api_key="none")
    argvs = [a for step in build(cfg).steps_for(cfg.head) for a in step.argv]
    assert not any("trust-remote-code" in a or "trust_remote_code" in a for a in argvs)


def test_remote_code_stays_possible_when_the_config_asks_for_it():
    cfg = parse(options={"trust_remote_code": True})
    argvs = [a for step in build(cfg).steps_for(cfg.head) for a in step.argv]
    assert any("--trust-remote-code" in a for a in argvs)


class TestDownloads:
    """What root runs is pinned (review M2)."""

    @pytest.mark.parametrize("section", ["nvidia", "miniconda"])
    def test_an_http_installer_url_is_refused(self, section):
        with pytest.raises(config.ConfigError, match="not http://"):
            config.parse({**TWO_NODES, section: {"installer_url": "http://example.org/x.run"}})

    def test_a_downloaded_installer_without_a_pinned_sha256_is_never_run(self, tmp_path):
        import subprocess

        from llmfab.script import LIBRARY
        # Were the refusal broken, these stand-ins stop the run before it touches this machine.
        guard = "mkdir() { exit 98; }; curl() { exit 99; }; mv() { exit 97; }\n"
        script = LIBRARY + guard + 'LLMFAB_STEP_DIR=$1; llmfab_fetch https://example.org/cuda.run "" cuda.run 1\n'
        done = subprocess.run(["bash", "-c", script, "_", str(tmp_path)], capture_output=True, text=True)
        assert done.returncode == 1
        assert "refusing to run cuda.run downloaded without a pinned sha256" in (tmp_path / "reason").read_text()
