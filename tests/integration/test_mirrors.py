"""Site mirrors never cost security updates or TLS checks (review M3, M8)."""

from __future__ import annotations

from llmfab import config as config_mod
from llmfab.run import Run
from llmfab.steps.mirrors import pip

from .scenario import fab, summary

LIST = "/etc/apt/sources.list.d/llmfab-mirror.list"


def test_debian_keeps_its_security_source_with_an_apt_mirror_and_a_second_run_changes_nothing(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    (n1,) = fleet.hosts
    n1.exec("cat > /etc/apt/sources.list.d/debian.sources", check=True, input=(
        "Types: deb\nURIs: http://archive.example.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://archive.example.org/debian-security\nSuites: bookworm-security\nComponents: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"))
    n1.exec("rm -f /etc/apt/sources.list")
    config = fleet.write_config(tmp_path / "c.yaml", mirrors={"apt": "https://mirror.example.org/debian"},
                                nvidia={"enabled": False}, docker={"enabled": False})
    run = fab("prep", "--config", str(config))
    assert run.returncode == 0, run.output
    listed = n1.read(LIST)
    assert ("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            "http://archive.example.org/debian-security bookworm-security main") in listed, listed
    assert "deb https://mirror.example.org/debian bookworm main" in listed
    again = fab("prep", "--config", str(config))
    assert "changed=0" in summary(again), again.stdout


def test_an_https_pip_mirror_keeps_tls_checks_and_only_an_http_one_is_trusted_by_name():
    def conf(url):
        cfg = config_mod.parse({"nodes": [{"name": "n1", "address": "10.0.0.1"}], "mirrors": {"pip": url}})
        return pip(Run(cfg), cfg.nodes[0])["content"]
    assert "trusted-host" not in conf("https://pypi.example.org/simple")
    assert "trusted-host = pypi.example.org" in conf("http://pypi.example.org/simple")
