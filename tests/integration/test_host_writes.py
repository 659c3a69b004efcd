"""llmfab's writes on a node cannot be turned against root (review M4, M5 temp files)."""

from __future__ import annotations

import textwrap

from llmfab.results import b64
from llmfab.script import HEADER, LIBRARY


def run_step(host, body: str):
    """Run one ad-hoc step through llmfab's own driver on HOST; return the exec result."""
    script = HEADER.format(version="test", phase="test", node=host.name, cluster="t", lock=1) + LIBRARY + textwrap.dedent(body) + \
        "LLMFAB_STEPS=(t)\nllmfab_main \"$@\"\n"
    host.exec("cat > /root/step.sh", input=script, check=True)
    return host.exec("bash /root/step.sh")


def test_a_managed_file_in_a_directory_a_user_can_write_is_refused(two_hosts):
    host = two_hosts.hosts[0]
    host.exec("install -d -o deploy /home/deploy/conda && echo 'keep me' > /root/victim && "
              "for i in $(seq 0 20); do ln -s /root/victim "
              "/home/deploy/conda/.condarc.llmfab-backup.$(date -d \"+$i sec\" +%Y%m%d-%H%M%S); done && "
              "echo old > /home/deploy/conda/.condarc", check=True)
    run = run_step(host, """
        step_t() { printf 'channels: []\\n' | llmfab_file /home/deploy/conda/.condarc 0644; }
    """)
    assert "can be written by a user other than root" in run.stdout, run.stdout
    assert host.read("/root/victim") == "keep me\n"
    assert host.read("/home/deploy/conda/.condarc") == "old\n"


def test_a_backup_goes_under_var_backups_renamed_into_place_never_beside_the_file(two_hosts):
    host = two_hosts.hosts[0]
    host.exec("mkdir -p /etc/llmfab-t && echo old > /etc/llmfab-t/x.conf", check=True)
    run = run_step(host, """
        step_t() { printf 'new\\n' | llmfab_file /etc/llmfab-t/x.conf 0644; }
    """)
    assert "changed" in run.stdout, run.stdout
    assert host.read("/etc/llmfab-t/x.conf") == "new\n"
    assert "llmfab-backup" not in host.exec("ls -a /etc/llmfab-t/").stdout
    (backup,) = host.exec("ls /var/backups/llmfab/etc/llmfab-t/ | grep '^x.conf\\.'").stdout.split()
    assert host.read(f"/var/backups/llmfab/etc/llmfab-t/{backup}") == "old\n"
    # The name holds the run's pid, and the copy is renamed into place: a link
    # planted there would be replaced, never written through.
    assert backup.rsplit(".", 1)[1].isdigit()


def test_a_backup_directory_a_user_can_write_is_refused(two_hosts):
    host = two_hosts.hosts[0]
    host.exec("mkdir -p /etc/llmfab-u && echo old > /etc/llmfab-u/x.conf && "
              "mkdir -p /var/backups/llmfab && chown deploy /var/backups/llmfab", check=True)
    try:
        run = run_step(host, """
            step_t() { printf 'new\\n' | llmfab_file /etc/llmfab-u/x.conf 0644; }
        """)
        said = " ".join(b64(field) for line in run.stdout.splitlines() for field in line.split("\t")[4:])
        assert "can be written by a user other than root: no backup is kept there" in said, run.stdout
        assert host.read("/etc/llmfab-u/x.conf") == "old\n"
    finally:
        host.exec("chown root /var/backups/llmfab")


def test_two_runs_generating_a_key_at_once_use_separate_temporary_files(two_hosts):
    host = two_hosts.hosts[0]
    from llmfab.shell import render
    step = render("engine/engine-api-key.sh.j2", path="/etc/llmfab/api_key", generate=True, value="")
    body = step.replace("step_engine_api_key()", "step_t()")
    host.exec("cat > /root/key.sh", input=HEADER.format(version="t", phase="t", node="n", cluster="t", lock=0) + LIBRARY + body
              + "LLMFAB_STEPS=(t)\nllmfab_main \"$@\"\n", check=True)
    runs = host.exec("for i in 1 2 3 4; do (bash /root/key.sh >/root/out.$i 2>&1; echo $? >>/root/rcs) & done; wait; "
                     "cat /root/out.*; sort -u /root/rcs")
    assert runs.stdout.strip().endswith("0"), runs.stdout
    assert "cannot stat" not in runs.stdout
    assert len(host.read("/etc/llmfab/api_key").strip()) >= 32
    assert host.exec("ls /etc/llmfab | grep -c llmfab-tmp").stdout.strip() == "0"
