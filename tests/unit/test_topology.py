"""Who pulls from whom in `fab model --distribute`."""

import pytest

from llmfab.topology import Topology

NODES = ("n1", "n2", "n3", "n4", "n5")


def test_a_chain_has_each_worker_pull_from_the_node_before_it():
    chain = Topology(NODES, 1)
    assert [chain.source(n) for n in NODES] == [None, "n1", "n2", "n3", "n4"]
    assert chain.receivers("n3") == ["n4"] and chain.receivers("n5") == []
    assert chain.describe() == "chain n1 -> n2 -> n3 -> n4 -> n5"


def test_a_star_has_every_worker_pull_from_the_head():
    star = Topology(NODES, 0)
    assert {star.source(n) for n in NODES[1:]} == {"n1"}
    assert star.receivers("n1") == list(NODES[1:]) and star.describe() == "star from n1"


def test_a_tree_of_fan_out_two_halves_the_depth():
    tree = Topology(NODES, 2)
    assert [tree.source(n) for n in NODES] == [None, "n1", "n1", "n2", "n2"]
    assert tree.describe() == "tree (fan-out 2) from n1"


def test_a_negative_fan_out_is_refused():
    with pytest.raises(ValueError, match="fan-out"):
        Topology(NODES, -1)
