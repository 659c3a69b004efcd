"""The config is validated before any host is contacted, with errors that name the field and the fix."""

import textwrap
from pathlib import Path

import pytest

from llmfab import config
from llmfab.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
TWO_NODES = {"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}]}


def problems(raw):
    with pytest.raises(ConfigError) as e:
        config.parse(raw, "test.yaml")
    return e.value


class TestTheShippedConfig:
    def test_the_h20_config_describes_two_nodes_of_eight_h20(self):
        c = config.load(REPO / "configs" / "h20-2x8.yaml")
        assert [n.name for n in c.nodes] == ["n1", "n2"]
        assert c.head.name == "n1"
        assert c.gpu.per_node == 8 and c.gpu.memory_gb == 96
        assert c.network.interface == "bond0"
        assert c.network.nccl_ib_hca == ["mlx5_0", "mlx5_1", "mlx5_4", "mlx5_5"]
        assert c.model.path.startswith("/")

    def test_the_environment_variable_selects_the_config(self, tmp_path, monkeypatch):
        path = tmp_path / "c.yaml"
        path.write_text("cluster: {name: from-env}\nnodes: [{name: a, address: 10.1.1.1}]\n")
        monkeypatch.setenv(config.CONFIG_ENV, str(path))
        assert config.load().cluster.name == "from-env"


class TestInvalidConfigs:
    def test_an_unknown_key_is_named_with_a_spelling_hint(self):
        err = problems({"nodes": [{"name": "n1", "adress": "10.0.0.1"}]})
        text = err.render()
        assert "test.yaml" in text
        assert "nodes[0].adress: unknown key" in text
        assert "did you mean `address`" in text

    def test_a_node_without_an_address_is_refused_with_the_fix(self):
        text = problems({"nodes": [{"name": "n1"}]}).render()
        assert "nodes[0].address: required field is missing" in text
        assert "fix: give each node an `address:`" in text

    def test_duplicate_node_names_are_refused(self):
        raw = {"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n1", "address": "10.0.0.2"}]}
        assert "duplicate node names: n1" in problems(raw).render()

    def test_a_head_that_is_not_a_node_is_refused(self):
        text = problems({**TWO_NODES, "cluster": {"head": "n9"}}).render()
        assert "cluster.head 'n9' is not a node" in text
        assert "fix: set `cluster.head:`" in text

    def test_a_value_of_the_wrong_type_is_refused_not_coerced(self):
        text = problems({**TWO_NODES, "system": {"nofile": "lots"}}).render()
        assert "system.nofile" in text and "integer" in text

    def test_a_relative_model_path_is_refused_as_the_runbook_defect_it_is(self):
        text = problems({**TWO_NODES, "model": {"path": "mnt/share/x"}}).render()
        assert "model.path" in text and "absolute" in text

    def test_a_shell_command_is_not_accepted_as_an_address(self):
        text = problems({"nodes": [{"name": "n1", "address": "$(reboot)"}]}).render()
        assert "nodes[0].address: not an IPv4 address" in text

    def test_a_dns_name_as_address_is_refused_in_the_schema_with_the_ssh_config_way(self):
        text = problems({"nodes": [{"name": "n1", "address": "gpu-node-2.example"}]}).render()
        assert "nodes[0].address: 'gpu-node-2.example' is a name" in text and "HostName" in text

    def test_an_interface_name_with_shell_syntax_is_refused(self):
        text = problems({**TWO_NODES, "network": {"interface": "a; rm -rf /"}}).render()
        assert "network.interface" in text

    def test_broken_yaml_names_the_file(self, tmp_path):
        path = tmp_path / "bad.yaml"
        path.write_text("nodes: [\n")
        with pytest.raises(ConfigError) as e:
            config.load(path)
        assert str(path) in e.value.render() and "not valid YAML" in e.value.render()

    def test_a_missing_file_says_how_to_choose_another(self, tmp_path):
        with pytest.raises(ConfigError) as e:
            config.load(tmp_path / "nope.yaml")
        assert "--config" in e.value.render()

    def test_every_problem_is_reported_at_once(self):
        err = problems({"nodes": [{"name": "N 1"}], "bogus": 1})
        fields = [p.field for p in err.problems]
        assert "nodes[0].name" in fields and "nodes[0].address" in fields and "bogus" in fields


class TestRoles:
    def test_the_first_node_is_head_unless_said_otherwise(self):
        c = config.parse(TWO_NODES)
        assert c.head.name == "n1" and c.rank(c.node("n2")) == 1

    def test_a_node_with_role_head_becomes_rank_zero(self):
        raw = {"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2", "role": "head"}]}
        c = config.parse(raw)
        assert c.head.name == "n2"
        assert [n.name for n in c.ranked_nodes()] == ["n2", "n1"]

    def test_two_heads_are_refused(self):
        raw = {"nodes": [{"name": "a", "address": "10.0.0.1", "role": "head"}, {"name": "b", "address": "10.0.0.2", "role": "head"}]}
        assert "more than one node has role head" in problems(raw).render()
