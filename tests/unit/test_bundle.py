"""export-bundle writes, per node, run.sh plus the very scripts fab sends over SSH."""

import hashlib
import subprocess
from pathlib import Path

import pytest

from llmfab import bundle, config
from llmfab.script import render_phase
from llmfab.run import Run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    out = tmp_path_factory.mktemp("bundles")
    return cfg, out, bundle.export(cfg, out, tar=True)


def test_every_node_of_the_config_gets_a_bundle(exported):
    cfg, out, written = exported
    assert [b.node.name for b in written] == ["n1", "n2"]
    for b in written:
        for name in ("run.sh", "steps/prep.sh", "node.env", "SHA256SUMS"):
            assert (b.path / name).is_file()
        assert b.tarball and b.tarball.is_file()


def test_a_bundle_runs_the_same_text_as_the_ssh_path(exported):
    cfg, out, written = exported
    for b in written:
        for phase in ("prep", "check", "deploy", "smoke", "stop"):
            assert (b.path / "steps" / f"{phase}.sh").read_text() == render_phase(Run(cfg), b.node, phase)


def test_sha256sums_lists_every_file_with_its_hash(exported):
    cfg, out, written = exported
    b = written[0]
    lines = (b.path / "SHA256SUMS").read_text().splitlines()
    listed = {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in lines}
    assert {"run.sh", "steps/prep.sh", "steps/deploy.sh", "steps/check.sh", "node.env", "check/expect.json"} <= set(listed)
    assert set(listed) == {p.relative_to(b.path).as_posix() for p in b.path.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256((b.path / name).read_bytes()).hexdigest() == digest


def test_generated_bash_is_clean_under_shellcheck_and_bash_n(exported):
    cfg, out, written = exported
    scripts = [str(p) for b in written for p in [b.path / "run.sh", *(b.path / "steps").glob("*.sh")]]
    for s in scripts:
        subprocess.run(["bash", "-n", s], check=True)
    subprocess.run(["shellcheck", "-S", "warning", *scripts], check=True)


def test_run_sh_explains_itself(exported):
    cfg, out, written = exported
    help_ = subprocess.run(["bash", str(written[0].path / "run.sh"), "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and "prep" in help_.stdout and "--dry-run" in help_.stdout


def test_run_sh_stops_on_a_tampered_file_and_names_it(tmp_path):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    (b, _) = bundle.export(cfg, tmp_path)
    prep = b.path / "steps" / "prep.sh"
    prep.write_text(prep.read_text().replace("65535", "65536", 1))
    out = subprocess.run(["bash", str(b.path / "run.sh"), "prep", "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 3
    assert "steps/prep.sh: FAILED" in out.stderr


def test_run_sh_refuses_another_node(tmp_path):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    (b, _) = bundle.export(cfg, tmp_path)
    out = subprocess.run(["bash", str(b.path / "run.sh"), "prep", "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 4 and "this machine is not n1" in out.stderr


def test_sixteen_nodes_store_shared_artifacts_once(tmp_path):
    raw = {"nodes": [{"name": f"n{i}", "address": f"10.0.0.{i}"} for i in range(1, 17)],
           "engine": {"options": {"tensor_parallel_size": 8, "pipeline_parallel_size": 16}}}
    cfg = config.parse(raw)
    cache = tmp_path / "cache"
    (cache / "files").mkdir(parents=True)
    (cache / "files" / "big.run").write_bytes(b"x" * 1_000_000)
    written = bundle.export(cfg, tmp_path / "out", artifacts=cache)
    assert len(written) == 16
    assert [p for p in (tmp_path / "out").rglob("big.run") if not p.is_symlink() and "artifacts" == p.parent.parent.name]
    copies = [p for p in (tmp_path / "out").rglob("big.run") if p.resolve().parent.parent == (tmp_path / "out" / "artifacts").resolve()]
    assert len({p.resolve() for p in copies}) == 1
    assert all((b.path / "artifacts").is_symlink() for b in written)


def test_bundle_files_are_readable_by_their_owner_only(tmp_path):
    raw = {"nodes": [{"name": "n1", "address": "10.0.0.1"}, {"name": "n2", "address": "10.0.0.2"}],
           "engine": {"api_key": "sk-user-given-key"}}
    (b, _) = bundle.export(config.parse(raw), tmp_path)
    deploy = b.path / "steps" / "deploy.sh"
    assert "sk-user-given-key" in deploy.read_text()
    for path in [b.path, *b.path.rglob("*")]:
        assert path.stat().st_mode & 0o077 == 0, path


def test_trtllm_bundles_carry_the_same_cluster_keys_as_fab_deploy_root_only(tmp_path):
    from llmfab import mpikeys
    cfg = config.load(Path(__file__).resolve().parents[2] / "configs" / "h20-2x8.yaml")
    cfg.engine.name, cfg.engine.api_key = "trtllm", "none"
    written = bundle.export(cfg, tmp_path / "out")
    keys = mpikeys.ensure(cfg.cluster.name)
    head, worker = ((b.path / "steps" / "deploy.sh") for b in written)
    assert keys.client_private in head.read_text() and keys.client_private not in worker.read_text()
    assert keys.client_public in worker.read_text() and keys.host_private in worker.read_text()
    assert head.read_text() == render_phase(Run(cfg), cfg.nodes[0], "deploy")
    assert all(p.stat().st_mode & 0o077 == 0 for p in (head, worker))


def test_export_never_deletes_a_directory_it_did_not_create(tmp_path):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    (tmp_path / "n1").mkdir()
    (tmp_path / "n1" / "thesis.txt").write_text("years of work\n")
    with pytest.raises(bundle.BundleError, match="not written by export-bundle"):
        bundle.export(cfg, tmp_path)
    assert (tmp_path / "n1" / "thesis.txt").read_text() == "years of work\n"
    assert not (tmp_path / "n2").exists()


def test_export_replaces_its_own_earlier_export(tmp_path):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    first = bundle.export(cfg, tmp_path)
    again = bundle.export(cfg, tmp_path)
    assert (again[0].path / bundle.MARKER).is_file() and first[0].digest == again[0].digest


@pytest.mark.parametrize("name", ["/home/alice", "../../..", "a[/bold]b", "x\0y"])
def test_a_cluster_name_that_is_not_a_plain_name_is_refused(name):
    with pytest.raises(config.ConfigError, match="cluster.name"):
        config.parse({"cluster": {"name": name}, "nodes": [{"name": "n1", "address": "10.0.0.1"}]})


def test_tarballs_are_readable_by_their_owner_only(tmp_path):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    for b in bundle.export(cfg, tmp_path, tar=True):
        assert b.tarball.stat().st_mode & 0o777 == 0o600


def test_the_nodes_sums_pin_the_artifacts_list_and_one_digest_names_it_all(tmp_path):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    cache = tmp_path / "cache"
    (cache / "files").mkdir(parents=True)
    (cache / "files" / "x.run").write_bytes(b"installer")
    (b, _) = bundle.export(cfg, tmp_path / "out", artifacts=cache)
    artifacts_sums = hashlib.sha256((tmp_path / "out" / "artifacts" / "SHA256SUMS").read_bytes()).hexdigest()
    assert f"{artifacts_sums}  artifacts/SHA256SUMS\n" in (b.path / "SHA256SUMS").read_text()
    assert b.digest == hashlib.sha256((b.path / "SHA256SUMS").read_bytes()).hexdigest()


def test_run_sh_errors_do_not_print_their_exit_status(tmp_path):
    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    (b, _) = bundle.export(cfg, tmp_path)
    out = subprocess.run(["bash", str(b.path / "run.sh"), "prepp"], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr == "run.sh: unknown command prepp (see --help)\n"


def test_a_bundle_copied_without_its_shared_artifacts_refuses_instead_of_going_online(tmp_path):
    import shutil

    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    cache = tmp_path / "cache"
    (cache / "files").mkdir(parents=True)
    (cache / "files" / "x.run").write_bytes(b"x")
    (b, _) = bundle.export(cfg, tmp_path / "out", artifacts=cache)
    alone = tmp_path / "copied" / "n1"
    shutil.copytree(b.path, alone, symlinks=True)
    out = subprocess.run(["bash", str(alone / "run.sh"), "prep", "--dry-run"], capture_output=True, text=True)
    assert out.returncode == 3
    assert "artifacts/ is a link to ../artifacts, which is not here" in out.stderr and "--tar" in out.stderr


def test_the_bundles_preflight_names_run_sh_commands_in_its_fixes(tmp_path):
    import sys

    cfg = config.load(REPO / "configs" / "h20-2x8.yaml")
    (b, _) = bundle.export(cfg, tmp_path)
    out = subprocess.run([sys.executable, "-m", "llmfab.checks", str(b.path / "check" / "expect.json"), "n1"],
                         input="", capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(b.path / "check"), "COLUMNS": "200"})
    assert "run.sh prep" in out.stdout and "fab prep" not in out.stdout
