"""`fab model --distribute` along a chain: each node forwards the files it has while it still receives."""

from __future__ import annotations

import re

from .scenario import fab
from .test_model import MODEL, PORT, hosts_with_hub, model_config, sums

SHARD = "model-00002-of-00003.safetensors"


def test_distribute_forwards_the_model_along_a_chain_and_every_node_ends_with_the_heads_copy(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, count=4, publish_on=lambda f: f.hosts[:1])
    n1, n2, n3, n4 = fleet.hosts
    config = model_config(fleet, tmp_path)
    run = fab("model", "--distribute", "--port", PORT, "--config", str(config))
    assert run.returncode == 0, run.output
    assert "distributing along a chain n1 -> n2 -> n3 -> n4" in run.stdout, run.stdout
    assert sums(n2) == sums(n3) == sums(n4) == sums(n1)
    assert not any(h.calls("modelscope") for h in (n2, n3, n4))
    # Each worker pulled from the node before it, which served only it.
    assert re.search(r"pull [0-9.]+ KB from the head \(127\.0\.0\.11\)", run.stdout), run.stdout
    assert re.search(r"pull [0-9.]+ KB from n2 \(127\.0\.0\.12\)", run.stdout), run.stdout
    assert re.search(r"pull [0-9.]+ KB from n3 \(127\.0\.0\.13\)", run.stdout), run.stdout
    assert re.search(r"n2 +model-serve: ok \(serving /models/DeepSeek-R1 read-only to 127\.0\.0\.13 on", run.stdout)
    # Every node's service is gone, its password with it.
    for host in (n1, n2, n3):
        assert not host.exists("/run/llmfab/model-rsyncd")
        assert host.exec("pgrep -f 'rsync --daemon'").returncode == 1
    assert not n4.exists("/run/llmfab/model-rsyncd")

    star = fab("model", "--distribute", "--fanout", "0", "--port", PORT, "--config", str(config))
    assert star.returncode == 0, star.output
    assert "distributing along a star from n1" in star.stdout and "changed=0" in star.stdout, star.stdout


def test_a_node_that_fails_stops_the_chain_after_it_at_once_and_the_next_run_resumes(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, count=3, publish_on=lambda f: f.hosts[:1])
    n1, n2, n3 = fleet.hosts
    config = model_config(fleet, tmp_path)
    # n2 cannot write one shard: a non-empty directory stands at its name.
    n2.exec(f"mkdir -p {MODEL}/{SHARD}/blocker && touch {MODEL}/{SHARD}/blocker/x", check=True)
    run = fab("model", "--distribute", "--port", PORT, "--config", str(config), timeout=120)
    assert run.returncode != 0
    assert re.search(r"n2 +model-pull: failed .*model-00002-of-00003.safetensors is in the way", run.stdout), run.stdout
    assert re.search(r"n3 +model-pull: failed .*the source node stopped serving", run.stdout), run.stdout
    # The files n2 had whole stay; after the fix the next run completes the chain.
    n2.exec(f"rm -rf {MODEL}/{SHARD}", check=True)
    again = fab("model", "--distribute", "--port", PORT, "--config", str(config))
    assert again.returncode == 0, again.output
    assert sums(n3) == sums(n2) == sums(n1)
