"""Model distribution trusts only what llmfab made (review H1, H2, L1): each attack is refused."""

from __future__ import annotations

from .scenario import fab
from .test_model import MODEL, PORT, hosts_with_hub, model_config, sums


def test_a_manifest_naming_files_outside_the_model_directory_is_refused_and_nothing_is_removed(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, count=1)
    (n1,) = fleet.hosts
    config = model_config(fleet, tmp_path)
    n1.exec(f"mkdir -p {MODEL} && cp /etc/passwd /root/passwd.before && printf '%s\\n' '{{\"files\": [' "
            "'  {\"name\": \"../../etc/passwd\", \"size\": 1, \"sha256\": \"\"}' ']}' "
            f"> {MODEL}/llmfab-manifest.json && chown 65534 {MODEL}/llmfab-manifest.json", check=True)
    run = fab("model", "--config", str(config))
    assert run.returncode != 0
    assert "names files outside the model directory (../../etc/passwd): nothing was touched" in run.stdout, run.stdout
    assert n1.exec("cmp /etc/passwd /root/passwd.before").returncode == 0
    assert not n1.calls("modelscope")


def test_a_squatted_transfer_port_is_refused_and_the_worker_pulls_nothing(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, publish_on=lambda f: f.hosts[:1])
    n1, n2 = fleet.hosts
    config = model_config(fleet, tmp_path)
    assert fab("model", "--config", str(config), "-H", "n1").returncode == 0
    # A local user on the head binds the transfer port first.
    squatter = n1.exec(f"setsid setpriv --reuid=65534 --regid=65534 --clear-groups python3 -m http.server {PORT} "
                       "--bind 127.0.0.11 >/dev/null 2>&1 </dev/null & echo $!; sleep 1").stdout.strip()
    try:
        run = fab("model", "--distribute", "--port", PORT, "--config", str(config))
        assert run.returncode != 0
        assert f"127.0.0.11:{PORT} is already taken" in run.stdout and "python3" in run.stdout, run.stdout
        assert not n2.exists(MODEL) or not n2.exec(f"ls {MODEL}").stdout.strip()
    finally:
        n1.exec(f"kill {squatter} || true")


def test_the_worker_pulls_plain_files_owned_by_root_whatever_the_head_serves(fleet_factory, tmp_path):
    fleet = hosts_with_hub(fleet_factory, publish_on=lambda f: f.hosts[:1])
    n1, n2 = fleet.hosts
    config = model_config(fleet, tmp_path)
    assert fab("model", "--config", str(config), "-H", "n1").returncode == 0
    n1.exec(f"cp /bin/true {MODEL}/tokenizer.bin && chown 65534:65534 {MODEL}/tokenizer.bin && "
            f"chmod 4755 {MODEL}/tokenizer.bin && ln -s /etc/shadow {MODEL}/escape && rm {MODEL}/llmfab-manifest.json",
            check=True)
    # The head's manifest, rewritten to list the planted file (as a poisoned head would).
    assert fab("model", "--config", str(config), "-H", "n1").returncode == 0
    run = fab("model", "--distribute", "--port", PORT, "--config", str(config))
    assert run.returncode == 0, run.output
    mode = n2.exec(f"stat -c '%u %a' {MODEL}/tokenizer.bin").stdout.split()
    assert mode == ["0", "644"], mode
    assert not n2.exists(f"{MODEL}/escape")
