"""SGLang's key reaches the server through llmfab's launcher: never argv, never its output (review M1)."""

import subprocess
import sys
import textwrap
from pathlib import Path

from llmfab.engines import sglang

KEY = "sk-launcher-secret-0123456789"

FAKE_SERVER = textwrap.dedent("""
    import os, sys
    print("server_args=ServerArgs(argv=%r)" % sys.argv[1:], flush=True)
    print("cmdline: " + open("/proc/self/cmdline").read().replace("\\0", " "), flush=True)
    os.system("echo child sees " + sys.argv[-1] + " >&2")
""")


def run_launcher(tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "sglang").mkdir()
    (tmp_path / "sglang" / "__init__.py").write_text("")
    (tmp_path / "sglang" / "launch_server.py").write_text(FAKE_SERVER)
    key_file = tmp_path / "api_key"
    key_file.write_text(KEY + "\n")
    code = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
            "ns = runpy.run_path(sys.argv.pop(1), run_name='launcher'); "
            "ns['KEY_FILE'] = sys.argv.pop(1); ns['main'].__globals__['KEY_FILE'] = ns['KEY_FILE']; ns['main']()")
    return subprocess.run([sys.executable, "-c", code, str(tmp_path), str(sglang.LAUNCHER_SOURCE), str(key_file),
                           "--model-path", "/m"], capture_output=True, text=True, timeout=30)


def test_the_server_gets_the_key_and_nothing_it_or_its_children_print_shows_it(tmp_path):
    done = run_launcher(tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    assert "'--model-path', '/m', '--api-key', '***'" in out
    assert "child sees ***" in out
    assert KEY not in out


def test_the_key_is_not_on_the_servers_command_line(tmp_path):
    out = run_launcher(tmp_path).stdout
    (cmdline,) = [line for line in out.splitlines() if line.startswith("cmdline: ")]
    assert "--model-path /m" in cmdline and "***" not in cmdline and "api-key" not in cmdline
