"""The NVIDIA and Docker steps of prep, each probing first, against stubbed hardware."""

from __future__ import annotations

from .scenario import fab, prepared_config, summary


def systemctl_calls(host, verb: str, unit: str) -> int:
    return sum(1 for c in host.calls("systemctl") if c.args[:1] == (verb,) and unit in " ".join(c.args))


def test_a_different_driver_is_refused_without_the_upgrade_flag(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    config = prepared_config(fleet, tmp_path / "c.yaml")
    host.set_state("nvidia/driver_version", "535.161.03")
    refused = fab("prep", "--config", str(config))
    assert refused.returncode == 1
    assert "driver 535.161.03 is installed but 550.54.14 is configured" in refused.stdout
    assert "--upgrade-driver" in refused.stdout
    assert "Keep it: set nvidia.driver_version: 535.161.03 and nvidia.cuda_toolkit: false" in refused.stdout
    assert not [c for c in host.calls() if c.program == "cuda-installer"]
    # The driver's refusal stops the NVIDIA steps only: Docker and its toolkit still converge.
    assert "fabric-manager: skipped" in refused.stdout or "fabric-manager" not in refused.stdout
    assert host.exists("/etc/docker/daemon.json") and '"nvidia"' in host.read("/etc/docker/daemon.json")
    upgraded = fab("prep", "--upgrade-driver", "--config", str(config))
    assert upgraded.returncode == 0, upgraded.output
    assert host.read("/var/lib/llmfab-stubs/nvidia/driver_version").strip() == "550.54.14"


def test_the_fabric_manager_version_follows_the_driver(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    from .scenario import place_installer
    place_installer(host, driver="535.161.03", cuda="12.2.2")
    config = fleet.write_config(tmp_path / "c.yaml", nvidia={
        "driver_version": "535.161.03", "cuda_version": "12.2.2", "nvitop": False,
        "installer_url": "file:///srv/llmfab-test/cuda_12.2.2_535.161.03_linux.run"})
    run = fab("prep", "--config", str(config))
    assert run.returncode == 0, run.output
    version = host.exec("dpkg-query -W -f='${Version}' nvidia-fabricmanager-535").stdout
    assert version == "535.161.03-1"
    assert "nvidia-fabricmanager-535" in host.exec("apt-mark showhold").stdout
    assert host.exec("systemctl is-active nvidia-fabricmanager").stdout.strip() == "active"


def test_docker_is_restarted_only_when_its_runtime_config_changed(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    config = prepared_config(fleet, tmp_path / "c.yaml")
    host.exec("mkdir -p /etc/docker && printf '{\\n  \"log-driver\": \"json-file\"\\n}\\n' > /etc/docker/daemon.json")
    original = host.read("/etc/docker/daemon.json")
    assert fab("prep", "--config", str(config)).returncode == 0
    # nvidia-ctk rewrites daemon.json in place: llmfab kept the original first.
    assert host.exec("cat /var/backups/llmfab/etc/docker/daemon.json.*").stdout == original
    assert systemctl_calls(host, "restart", "docker") == 1
    assert '"nvidia"' in host.read("/etc/docker/daemon.json")
    again = fab("prep", "--config", str(config))
    assert "changed=0" in summary(again), again.stdout
    assert systemctl_calls(host, "restart", "docker") == 1


def test_a_loaded_nouveau_means_a_reported_reboot_not_a_pretended_install(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    config = prepared_config(fleet, tmp_path / "c.yaml")
    host.set_state("modules/loaded/nouveau", "")
    run = fab("prep", "--config", str(config))
    assert "REBOOT REQUIRED (nvidia-driver): nouveau is loaded" in run.stdout, run.stdout
    assert "blacklist nouveau" in host.read("/etc/modprobe.d/llmfab-blacklist-nouveau.conf")
    assert [c for c in host.calls("update-initramfs")]
    assert not [c for c in host.calls() if c.program == "cuda-installer"]
    assert "fabric-manager: skipped" in run.stdout


def test_an_unsupported_os_is_refused_before_any_change(fleet_factory, tmp_path):
    fleet = fleet_factory(1)
    host = fleet.hosts[0]
    config = prepared_config(fleet, tmp_path / "c.yaml")
    host.exec("printf 'ID=centos\\nVERSION_ID=\"7\"\\n' > /etc/os-release")
    run = fab("prep", "--config", str(config))
    assert run.returncode == 1
    assert "unsupported OS centos 7" in run.stdout
    assert not host.exists("/etc/llmfab/node.env")
    assert not host.exists("/etc/sysctl.d/90-llmfab-net.conf")
    assert not host.calls("apt-get")


def test_generated_prep_scripts_are_clean_under_shellcheck(tmp_path):
    import subprocess
    from llmfab import config as config_mod
    from llmfab.run import Run
    from llmfab.script import render_phase
    raw = {"nodes": [{"name": "n1", "address": "10.0.0.1"}], "miniconda": {"enabled": True, "installer_url": "https://conda.example/Miniconda3-py312_25.1.1-2-Linux-x86_64.sh",
                                                                            "channels": ["https://conda.example/anaconda/pkgs/main/"]},
           "mirrors": {"apt": "https://mirrors.example.org/ubuntu", "pip": "https://pypi.example.org/simple"}}
    cfg = config_mod.parse(raw)
    script = tmp_path / "prep.sh"
    script.write_text(render_phase(Run(cfg), cfg.nodes[0], "prep"))
    subprocess.run(["shellcheck", "-S", "warning", str(script)], check=True)
