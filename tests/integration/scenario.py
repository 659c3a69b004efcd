"""Shared set-up for llmfab's integration tests: test-host configs and fab runs.

The test hosts have no route to NVIDIA's or Docker's servers: the CUDA
installer is a stand-in placed in each host and named by a file:// URL, and
the `curl` stub answers only for the vendors' signing keys.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INSTALLER_DIR = "/srv/llmfab-test"
DRIVER = "550.54.14"
CUDA = "12.4.0"
INSTALLER = f"cuda_{CUDA}_{DRIVER}_linux.run"

# A stand-in for NVIDIA's .run installer: with --silent --driver --toolkit it
# leaves what the real one leaves behind for llmfab's probes to find.
FAKE_INSTALLER = """#!/bin/sh
# Stand-in for NVIDIA's CUDA .run installer (llmfab tests); POSIX sh, like the real makeself archive.
printf 'cuda-installer\\t%s\\n' "$*" >>/var/log/llmfab-stubs/calls.log
case " $* " in *" --silent "*) ;; *) echo "interactive mode is not simulated" >&2; exit 2 ;; esac
case " $* " in *" --driver "*)
  mkdir -p /var/lib/llmfab-stubs/nvidia
  echo "@DRIVER@" >/var/lib/llmfab-stubs/nvidia/driver_version ;;
esac
case " $* " in *" --toolkit "*)
  mkdir -p /usr/local/cuda-@CUDA_SHORT@/bin
  printf '#!/bin/sh\\necho "Cuda compilation tools, release @CUDA_SHORT@"\\n' >/usr/local/cuda-@CUDA_SHORT@/bin/nvcc
  chmod +x /usr/local/cuda-@CUDA_SHORT@/bin/nvcc ;;
esac
echo "Driver:   Installed"
"""


def fake_installer(driver: str = DRIVER, cuda: str = CUDA) -> str:
    short = ".".join(cuda.split(".")[:2])
    return FAKE_INSTALLER.replace("@DRIVER@", driver).replace("@CUDA_SHORT@", short)


def place_installer(host, driver: str = DRIVER, cuda: str = CUDA) -> None:
    name = f"cuda_{cuda}_{driver}_linux.run"
    host.exec(f"mkdir -p {INSTALLER_DIR} && cat > {INSTALLER_DIR}/{name} && chmod +x {INSTALLER_DIR}/{name}",
              input=fake_installer(driver, cuda))


def test_overrides(**extra) -> dict:
    """Config for test hosts: the CUDA installer comes from the host's own disk."""
    # nvitop builds a virtualenv and pip-installs from an index: not offline-testable here.
    base = {"nvidia": {"installer_url": f"file://{INSTALLER_DIR}/{INSTALLER}", "nvitop": False},
            # The kit carries the headers of the kernels named here: the test hosts run this machine's.
            "system": {"kernels": [platform.release()]}}
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return base


def prepared_config(fleet, path: Path, **extra) -> Path:
    for host in fleet.hosts:
        place_installer(host)
    return fleet.write_config(path, **test_overrides(**extra))


@dataclass
class FabRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def fab(*args: str, env: dict | None = None, timeout: int = 300, stdin: str | None = None) -> FabRun:
    """Run the real `fab` CLI from the repository root, as a user would in a script.

    Scripts do not answer prompts: LLMFAB_ASSUME_YES=1 stands for --yes unless
    ENV overrides it (tests of the confirmation set it to 0 and give STDIN).
    """
    full_env = {**os.environ, "COLUMNS": "200", "LLMFAB_ASSUME_YES": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "fabric", *args], cwd=REPO, capture_output=True, text=True,
        env=full_env, timeout=timeout, input=stdin if stdin is not None else "",
    )
    return FabRun(proc.returncode, proc.stdout, proc.stderr)


def summary(run: FabRun) -> str:
    """The recap's last line, e.g. '2 host(s): ok=10 changed=0 failed=0'."""
    lines = [ln for ln in run.stdout.splitlines() if "host(s):" in ln]
    return lines[-1] if lines else ""


def copy_into(host, src: Path, dest: str) -> None:
    """Copy a local directory into a test host (links followed), as `scp -r` would."""
    import base64
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", dereference=True) as tar:
        tar.add(src, arcname=".")
    payload = base64.b64encode(buf.getvalue()).decode()
    done = host.exec(f"mkdir -p {dest} && base64 -d | tar -xz -C {dest}", input=payload, timeout=120)
    assert done.returncode == 0, done.stderr


def records(output: str) -> dict[str, str]:
    """step -> status from run.sh's summary lines ('changed  nofile-limit  create ...')."""
    out = {}
    for line in output.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] in ("ok", "changed", "failed", "skipped"):
            out[parts[1]] = parts[0]
    return out
