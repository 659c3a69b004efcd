"""Serving groups: how the nodes split, what each group's config is, and the router's command line."""

import pytest

from llmfab import config, routers, serving
from llmfab.deployment import build
from llmfab.errors import ConfigError

NODES = [{"name": f"n{i}", "address": f"10.0.0.{i}"} for i in range(1, 5)]
LAYOUT = {"name": "vllm", "options": {"tensor_parallel_size": 8, "pipeline_parallel_size": 2}}


def parse(serving_section, engine=LAYOUT):
    return config.parse({"nodes": NODES, "gpu": {"per_node": 8}, "engine": engine, "serving": serving_section},
                        "test.yaml")


def test_group_size_auto_takes_the_nodes_of_one_layout_from_the_engine_options():
    groups = serving.groups(parse({"group_size": "auto"}))
    assert [[n.name for n in g.nodes] for g in groups] == [["n1", "n2"], ["n3", "n4"]]
    assert [g.head.name for g in groups] == ["n1", "n3"]


def test_auto_without_a_layout_in_the_options_says_what_to_set():
    with pytest.raises(serving.ServingError, match="tensor_parallel_size, pipeline_parallel_size"):
        serving.groups(parse({"group_size": "auto"}, engine={"name": "vllm"}))


def test_listed_groups_name_their_heads_first():
    groups = serving.groups(parse({"groups": [["n2", "n1"], ["n4", "n3"]]}))
    assert [g.head.name for g in groups] == ["n2", "n4"]


@pytest.mark.parametrize("section, words", [
    ({"groups": [["n1", "n9"], ["n2", "n3"]]}, "not in nodes: n9"),
    ({"groups": [["n1", "n2"], ["n2", "n3"]]}, "more than one group: n2"),
    ({"groups": [["n1", "n2", "n3"], ["n4"]]}, "same number of nodes"),
    ({"group_size": 3}, "does not divide the 4 nodes"),
    ({"group_size": 2, "groups": [["n1"]]}, "not both"),
    ({"group_size": 2, "router": {"node": "n7"}}, "serving.router.node 'n7' is not a node"),
])
def test_groups_that_cannot_be_formed_are_refused_before_any_connection(section, words):
    with pytest.raises(ConfigError, match=words):
        parse(section)


def test_each_group_renders_as_a_cluster_of_its_own_with_the_shared_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMFAB_STATE", str(tmp_path))
    cfg = parse({"group_size": 2})
    second = serving.group_config(cfg, serving.groups(cfg)[1])
    assert second.head.name == "n3" and [n.name for n in second.nodes] == ["n3", "n4"]
    assert second.engine.bind == "10.0.0.3"
    d = build(second)
    assert [(n.name, n.rank) for n in d.launch.nodes] == [("n3", 0), ("n4", 1)]
    first = serving.group_config(cfg, serving.groups(cfg)[0])
    assert first.engine.api_key == second.engine.api_key != "generate"
    assert (tmp_path / "cluster" / "api_key").stat().st_mode & 0o777 == 0o600


def test_the_router_listens_on_the_engines_bind_address_and_knows_every_groups_head():
    cfg = parse({"group_size": 2, "router": {"port": 30001, "policy": "round_robin"}})
    heads = [serving.worker_url(cfg, g) for g in serving.groups(cfg)]
    argv = routers.argv(cfg, heads, cfg.engine.bind)
    assert argv[:6] == ["vllm-router", "--host", "0.0.0.0", "--port", "30001", "--worker-urls"]
    assert argv[6:8] == ["http://10.0.0.1:40000", "http://10.0.0.3:40000"]
    assert argv[argv.index("--prometheus-host") + 1] == "127.0.0.1"
    sglang = parse({"group_size": 2}, engine={"name": "sglang", "options": {"tp_size": 16}})
    assert routers.argv(sglang, heads, "0.0.0.0")[:2] == ["sglang-router", "launch"]


@pytest.mark.parametrize("engine", [LAYOUT, {"name": "sglang", "options": {"tp_size": 16}}])
def test_every_router_script_is_clean_under_shellcheck_and_bash_n(engine, tmp_path, monkeypatch):
    import subprocess

    from llmfab.run import Run, RunOptions
    from llmfab.script import render_phase

    monkeypatch.setenv("LLMFAB_STATE", str(tmp_path))
    cfg = parse({"group_size": 2}, engine=engine)
    run = Run(cfg, RunOptions(serving_group=2))
    paths = []
    for phase in ("router", "router-status", "router-stop", "router-drain", "router-admit"):
        path = tmp_path / f"{phase}.sh"
        path.write_text(render_phase(run, serving.router_node(cfg), phase))
        subprocess.run(["bash", "-n", str(path)], check=True)
        paths.append(str(path))
    subprocess.run(["shellcheck", "-S", "warning", *paths], check=True)


def test_each_nodes_bundle_deploys_its_group_and_the_routers_node_also_runs_the_router(tmp_path, monkeypatch):
    from llmfab import bundle

    monkeypatch.setenv("LLMFAB_STATE", str(tmp_path / "state"))
    cfg = parse({"group_size": 2})
    written = {b.node.name: b for b in bundle.export(cfg, tmp_path / "bundles")}
    assert "steps/router.sh" in written["n1"].files
    assert not any(f.startswith("steps/router") for n in ("n2", "n3", "n4") for f in written[n].files)
    # n4 is rank 1 of the second group, whose head is n3.
    n4 = (tmp_path / "bundles" / "n4" / "steps" / "deploy.sh").read_text()
    assert "10.0.0.3" in n4 and "10.0.0.1" not in n4
    router = (tmp_path / "bundles" / "n1" / "steps" / "router.sh").read_text()
    assert "llmfab/vllm-router:0.1.17" in router and "http://10.0.0.3:40000" in router
    run = (tmp_path / "bundles" / "n1" / "run.sh").read_text()
    assert "run_phase router" in run and "router-stop" in run
