"""RDMA parsers: ports of each HCA, NCCL_IB_HCA checks, RoCE GID index, HCA -> netdev."""
import pytest

from fixture_text import load_fixture
from llmfab.facts import ib


def test_ibstat_on_h20_ndr400_shows_active_infiniband_ports():
    dev = ib.parse_ibstat(load_fixture("field/ib/ibstat-h20-ib-ndr400-active.txt"))
    assert dev.hcas == ["mlx5_0", "mlx5_1"]
    assert all(p.active and p.physical_state == "LinkUp" and p.rate_gbps == 400 and p.link_layer == "InfiniBand"
               for p in dev.ports)
    assert dict(dev.ca_types)["mlx5_0"] == "MT4129"


def test_ibstat_of_disabled_roce_ports_reports_them_down():
    dev = ib.parse_ibstat(load_fixture("field/ib/ibstat-h20-cx6lx-both-down-disabled.txt"))
    assert [(p.hca, p.state, p.physical_state, p.link_layer) for p in dev.ports] == [
        ("mlx5_0", "Down", "Disabled", "Ethernet"), ("mlx5_1", "Down", "Disabled", "Ethernet")]
    assert [s.ok for s in ib.hca_status(dev)] == [False, False]


def test_hca_status_says_present_active_and_link_layer_per_required_hca():
    dev = ib.parse_ibstat(load_fixture("field/ib/ibstat-roce-cx7-200g-active-plus-cx6dx-down.txt"))
    status = {s.name: s for s in ib.hca_status(dev, ["mlx5_0", "mlx5_1", "mlx5_10", "mlx5_4"])}
    assert status["mlx5_0"].ok and status["mlx5_0"].link_layer == "Ethernet"
    assert status["mlx5_10"].present and not status["mlx5_10"].active and "Down/Disabled" in status["mlx5_10"].detail
    assert not status["mlx5_4"].present and "not found" in status["mlx5_4"].detail


def test_ibstatus_reads_numeric_states_and_rates():
    dev = ib.parse_ibstatus(load_fixture("field/ib/ibstatus-h20-roce-bf3.txt"))
    assert [(p.hca, p.rate_gbps) for p in dev.ports] == [("mlx5_0", 200), ("mlx5_1", 400), ("mlx5_2", 400)]
    assert all(p.active and p.link_layer == "Ethernet" and p.physical_state == "LinkUp" for p in dev.ports)


def test_ibv_devinfo_reads_bonded_roce_ports_and_keeps_a_cut_off_hca_present():
    dev = ib.parse_ibv_devinfo(load_fixture("field/ib/ibv_devinfo-h20-roce-bond.txt"))
    assert dev.hcas == ["mlx5_bond_0", "mlx5_bond_1"]
    bond0, bond1 = ib.hca_status(dev, ["mlx5_bond_0", "mlx5_bond_1"])
    assert bond0.ok and bond0.link_layer == "Ethernet"
    assert bond1.present and not bond1.active and "no port listed" in bond1.detail


def test_ibv_devinfo_starting_mid_listing_skips_the_orphan_port():
    dev = ib.parse_ibv_devinfo(load_fixture("field/ib/ibv_devinfo-infiniband-active-with-lids.txt"))
    assert [(p.hca, p.state, p.link_layer) for p in dev.ports] == [("mlx5_3", "Active", "InfiniBand")]


def test_a_port_suffix_in_the_required_list_selects_that_port():
    dev = ib.parse_ibstat(load_fixture("field/ib/ibstat-h20-ib-ndr400-active.txt"))
    ok, missing = ib.hca_status(dev, ["mlx5_0:1", "mlx5_0:2"])
    assert ok.ok and not missing.present


@pytest.mark.parametrize("value, names", [
    ("mlx5_0,mlx5_1", ["mlx5_0", "mlx5_1", "mlx5_10"]),  # NCCL matches a prefix: mlx5_1 takes mlx5_10 too
    ("=mlx5_0,mlx5_1", ["mlx5_0", "mlx5_1"]),
    ("=mlx5_1:1,mlx5_9", ["mlx5_1:1", "mlx5_9"]),  # exact; a missing one is kept to be reported
    ("^mlx5_1", ["mlx5_0"]),
    ("^=mlx5_1", ["mlx5_0", "mlx5_10"]),
])
def test_nccl_ib_hca_values_expand_like_nccl_does(value, names):
    assert ib.nccl_ib_hca_names(value, ["mlx5_0", "mlx5_1", "mlx5_10"]) == names


def test_show_gids_on_h20_roce_finds_gid_index_3_for_every_hca():
    table = ib.parse_show_gids(load_fixture("field/ib/show_gids-h20-roce-8nic-sglang.txt"))
    assert len(table.gids) == 12
    assert [ib.roce_v2_gid_index(table, h) for h in ("mlx5_0", "mlx5_1", "mlx5_2")] == [3, 3, 3]
    assert ib.common_roce_v2_gid_index(table) == 3
    assert table.gids[3].ipv4 == "10.63.65.208" and table.gids[3].netdev == "xgbe0"


def test_show_gids_with_extra_link_local_gids_and_a_trailer_finds_index_5():
    table = ib.parse_show_gids(load_fixture("field/ib/show_gids-cx6-single-device-with-trailer.txt"))
    assert len(table.gids) == 6 and table.gids[0].ipv4 is None
    assert ib.roce_v2_gid_index(table, "mlx5_0") == 5 and ib.roce_v2_gid_index(table, "mlx5_9") is None


def test_gid_indexes_that_differ_between_hcas_have_no_common_value():
    table = ib.GidTable(gids=(ib.Gid("mlx5_0", 1, 3, "::ffff:a00:1", "10.0.0.1", "v2"),
                              ib.Gid("mlx5_1", 1, 5, "::ffff:a00:2", "10.0.0.2", "v2")))
    assert ib.common_roce_v2_gid_index(table) is None


def test_ibdev2netdev_ignores_poster_comments_and_reads_up_and_down():
    links = ib.parse_ibdev2netdev(load_fixture("field/ib/ibdev2netdev-h100-ib-plus-cx6-eth-annotated.txt"))
    assert len(links.links) == 12
    assert links.netdev_of("mlx5_7") == "enp157s0f0np0" and [l.up for l in links.links].count(True) == 2


def test_ibdev2netdev_of_sriov_vfs_parses_every_line():
    links = ib.parse_ibdev2netdev(load_fixture("field/ib/ibdev2netdev-sriov-vfs-mixed-up-down.txt"))
    assert len(links.links) == 16 and links.netdev_of("mlx5_20") == "ibp141s0v0"
