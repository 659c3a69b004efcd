"""The docker stub and the stand-in engine: containers as real process trees in test hosts."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from llmfab.engines import Launch, NodeInfo, default_options, get_profile, render_plan, sglang, trtllm
from tests.harness.payload import HARNESS_DIR, STUBS_DIR
from tests.harness.standin import docker_state
from tests.integration.mpi_image import add_trtllm_image

from .test_deploy import FAKE_SGLANG, install_fake_sglang

STANDIN_DIR = HARNESS_DIR / "standin"
REPO_ROOT = HARNESS_DIR.parents[1]
IMAGE = "vllm/vllm-openai:v0.8.5"
MODEL = "/models/DeepSeek-R1"
KEY = "s3cret-key"
CHAT = {"model": "DeepSeek-R1", "messages": [{"role": "user", "content": "hi"}]}


# --- helpers -----------------------------------------------------------------------


def sh(host, command: str) -> subprocess.CompletedProcess[str]:
    return host.exec(command, timeout=60)


def out(host, command: str) -> str:
    return sh(host, command).stdout


def state_of(host, name: str = "llmfab-engine") -> str:
    return out(host, f"docker inspect -f '{{{{.State.Status}}}}' {name}").strip()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1):
    """Return the first truthy value of ``predicate()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_for_text(host, path: str, text: str, timeout: float = 10) -> str:
    """Wait until file ``path`` in ``host`` contains ``text``; return the file."""
    return wait_for(lambda: text in (host.read(path) or "") and host.read(path), timeout,
                    f"{text!r} in {path} on {host.name}")


def http(url: str, body: dict | None = None, key: str | None = None, timeout: float = 10):
    """(status, text) of a GET, or of a POST of ``body``; status None when nothing listens."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError as error:
        return None, str(error)


def serving(url: str) -> bool:
    return http(url, timeout=2)[0] == 200


def sse_chunks(text: str) -> list:
    """The JSON chunks of a server-sent event stream, then the final "[DONE]"."""
    events = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    return [json.loads(e) for e in events[:-1]] + events[-1:]


def two_node_launch(fleet, engine: str, **kwargs) -> tuple:
    """Profile, Launch and llmfab's rendered plan for the fleet's two hosts, images present."""
    profile = get_profile(engine)
    n1, n2 = fleet.hosts
    launch = Launch(nodes=(NodeInfo("n1", n1.address, 0), NodeInfo("n2", n2.address, 1)),
                    model_path=MODEL, options=default_options(profile), port=40000, **kwargs)
    for host in fleet.hosts:
        if engine == "trtllm":
            add_trtllm_image(host, profile.image)
        else:
            docker_state.add_image(host, profile.image)
        docker_state.add_model(host, MODEL)
        docker_state.set_extra_env(host, STANDIN_START_DELAY="0")
    return profile, launch, render_plan(profile, launch)


def write_key(host, path: str = "/etc/llmfab/api_key") -> None:
    host.exec(f"install -d -m 0700 {os.path.dirname(path)} && printf '%s\\n' {KEY} > {path} "
              f"&& chmod 600 {path}", check=True)


def run_step(fleet, step) -> None:
    result = fleet.host(step.node).exec(shlex.join(step.argv))
    assert result.returncode == 0, f"{step.what}: {result.stderr}"


def start_ray_head(fleet, launch, head) -> None:
    """Run the head's step and wait until Ray has recorded the cluster's address.

    llmfab waits for the head before the worker; Ray's GCS port opens seconds
    before the head is ready for a worker or a driver.
    """
    n1 = fleet.host(head.node)
    run_step(fleet, head)
    try:
        wait_for(lambda: n1.exists("/tmp/ray/ray_current_cluster"), 40, "the Ray head")
    except AssertionError as error:
        log = n1.read(f"{launch.log_dir}/ray-rank0.log") or "(no log)"
        raise AssertionError(f"{error}; its log ends:\n{log[-2000:]}") from None


# --- the docker CLI ------------------------------------------------------------------


def test_run_ps_inspect_logs_and_rm_follow_one_container_through_its_life(fleet_factory):
    (n1,) = fleet_factory(1).hosts
    image_id = docker_state.add_image(n1, "busybox:1.36")
    run = sh(n1, "docker run -d --name web --network host --label llmfab.engine=vllm "
                 "-e GREETING=hi busybox:1.36 "
                 "bash -c 'echo $GREETING from $HOSTNAME; exec sleep 60'")
    assert run.returncode == 0, run.stderr
    container_id = run.stdout.strip()
    assert len(container_id) == 64 and int(container_id, 16) >= 0

    fields = "{{.ID}}\\t{{.Names}}\\t{{.Image}}\\t{{.State}}\\t{{.Label \"llmfab.engine\"}}"
    assert out(n1, f"docker ps --format '{fields}'") == (
        f"{container_id[:12]}\tweb\tbusybox:1.36\trunning\tvllm\n")
    fields = ("{{.State.Running}} {{.State.Status}} {{.State.ExitCode}} {{.Image}} "
              "{{index .Config.Labels \"llmfab.engine\"}} {{json .Config.Labels}}")
    assert out(n1, f"docker inspect -f '{fields}' web") == (
        f'true running 0 {image_id} vllm {{"llmfab.engine":"vllm"}}\n')
    [whole] = json.loads(out(n1, "docker inspect web"))
    assert whole["Config"]["Env"][-1] == "GREETING=hi" and whole["Name"] == "/web"
    assert wait_for(lambda: out(n1, "docker logs web"), 5, "the log") == "hi from n1\n"
    [container] = docker_state.containers(n1)
    assert container["args"][:4] == ["run", "-d", "--name", "web"]
    assert container["status"] == "running"

    assert sh(n1, "docker rm web").returncode == 1  # running: needs -f
    assert out(n1, "docker rm -f web") == "web\n"
    assert out(n1, "docker ps -aq") == ""
    assert "sleep 60" not in out(n1, "ps -eo args")
    assert ("rm", "-f", "web") in [call.args for call in n1.calls("docker")]


def test_run_refuses_an_image_that_is_not_present_without_pulling(fleet_factory):
    (n1,) = fleet_factory(1).hosts
    result = sh(n1, f"docker run -d --name engine {IMAGE} true")
    assert result.returncode == 125
    assert f"Unable to find image '{IMAGE}' locally" in result.stderr
    assert "network is unreachable" in result.stderr
    assert out(n1, "docker ps -aq") == ""
    absent = sh(n1, f"docker image inspect -f '{{{{.Id}}}}' {IMAGE}")
    assert absent.returncode == 1 and f"No such image: {IMAGE}" in absent.stderr

    n1.set_state(f"docker/images/{IMAGE}", "sha256:" + "ab" * 32)  # all add_image needs
    assert out(n1, f"docker image inspect -f '{{{{.Id}}}}' {IMAGE}") == f"sha256:{'ab' * 32}\n"


def test_run_refuses_a_name_already_in_use(fleet_factory):
    (n1,) = fleet_factory(1).hosts
    docker_state.add_image(n1, "busybox:1.36")
    first = out(n1, "docker run -d --name engine busybox:1.36 sleep 60").strip()
    again = sh(n1, "docker run -d --name engine busybox:1.36 sleep 60")
    assert again.returncode == 125
    assert f'The container name "/engine" is already in use by container "{first}"' in again.stderr
    assert len(docker_state.containers(n1)) == 1


def test_ps_filters_by_label_and_name(fleet_factory):
    (n1,) = fleet_factory(1).hosts
    docker_state.add_image(n1, "busybox:1.36")
    for rank in (0, 1):
        sh(n1, f"docker run -d --name rank{rank} --label llmfab.engine=sglang "
               f"--label llmfab.rank={rank} busybox:1.36 sleep 60")
    sh(n1, "docker run -d --name other busybox:1.36 sleep 60")

    def names(filters: str) -> list[str]:
        return sorted(out(n1, f"docker ps -a {filters} --format '{{{{.Names}}}}'").split())

    assert names("--filter label=llmfab.engine=sglang") == ["rank0", "rank1"]
    assert names("--filter label=llmfab.engine --filter label=llmfab.rank=1") == ["rank1"]
    assert names("--filter name=oth") == ["other"]
    assert names("--filter label=llmfab.engine=vllm") == []


def test_a_container_whose_process_ended_shows_exited_with_its_code(fleet_factory):
    (n1,) = fleet_factory(1).hosts
    docker_state.add_image(n1, "busybox:1.36")
    sh(n1, "docker run -d --name job busybox:1.36 bash -c 'sleep 0.3; exit 3'")
    assert state_of(n1, "job") == "running"
    wait_for(lambda: state_of(n1, "job") == "exited", 5, "the container to exit")
    assert out(n1, "docker inspect -f '{{.State.Running}} {{.State.ExitCode}}' job") == "false 3\n"
    assert out(n1, "docker ps -a --format '{{.Status}}'").startswith("Exited (3) ")
    assert out(n1, "docker ps -q") == ""
    missing = sh(n1, "docker run -d --name bad busybox:1.36 no-such-program")
    assert missing.returncode == 127 and "executable file not found in $PATH" in missing.stderr


def test_save_load_and_pull_move_images_only_as_docker_would_offline(fleet_factory):
    n1, n2 = fleet_factory(2).hosts
    ref = "lmsysorg/sglang:v0.4.4-cu125"
    image_id = docker_state.add_image(n1, ref)
    assert sh(n1, f"docker save -o /tmp/sglang.tar {ref}").returncode == 0
    n2.exec("cat > /tmp/sglang.tar", input=n1.read("/tmp/sglang.tar"), check=True)
    assert out(n2, "docker load -i /tmp/sglang.tar") == f"Loaded image: {ref}\n"
    assert out(n2, "docker images --format '{{.Repository}}:{{.Tag}}'") == f"{ref}\n"
    assert n2.read(f"/var/lib/llmfab-stubs/docker/images/{ref}").strip() == image_id

    offline = sh(n2, f"docker pull {IMAGE}")
    assert offline.returncode == 1 and "network is unreachable" in offline.stderr
    docker_state.add_to_registry(n2, IMAGE)
    assert sh(n2, f"docker pull {IMAGE}").returncode == 0
    assert sh(n2, f"docker image inspect {IMAGE}").returncode == 0


def test_the_docker_stub_and_standin_wrappers_are_clean_under_shellcheck():
    assert shutil.which("shellcheck"), "shellcheck is missing: apt-get install -y shellcheck"
    wrappers = sorted(str(p) for p in (STANDIN_DIR / "bin").iterdir())
    result = subprocess.run(
        ["shellcheck", "-x", "-P", "SCRIPTDIR", "-S", "warning", str(STUBS_DIR / "docker"),
         str(STANDIN_DIR / "shim.sh"), *wrappers],
        cwd=STUBS_DIR, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- the stand-in engine, on this machine ------------------------------------------------


def start_standin(tmp_path, mode: str, *args: str, **env: str) -> tuple[subprocess.Popen, str]:
    """Run the stand-in here on a free loopback port; return it and its base URL."""
    (tmp_path / "config.json").write_text(json.dumps(docker_state.DEEPSEEK_R1_CONFIG))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "STANDIN_GPUS": "8", "STANDIN_START_DELAY": "0",
           "STANDIN_HOST_ADDR": "127.0.0.1", "STANDIN_TOKEN_DELAY": "0", **env}
    argv = [sys.executable, "-m", "tests.harness.standin", mode, *args, "--host", "127.0.0.1",
            "--port", str(port)]
    process = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    return process, f"http://127.0.0.1:{port}"


def test_the_standin_enforces_the_api_key_where_each_engine_does(tmp_path):
    sglang, base = start_standin(tmp_path, "sglang", "--model-path", str(tmp_path),
                                 "--served-model-name", "DeepSeek-R1", "--tp", "8",
                                 "--api-key", KEY, STANDIN_IMAGE="lmsysorg/sglang:v0.5.23-cu130")
    try:
        wait_for(lambda: serving(f"{base}/health"), 15, "the stand-in to serve")
        assert http(f"{base}/v1/models")[0] == 401
        assert http(f"{base}/v1/models", key="wrong")[0] == 401
        status, text = http(f"{base}/v1/models", key=KEY)
        assert status == 200 and json.loads(text)["data"][0]["id"] == "DeepSeek-R1"
        status, text = http(f"{base}/server_info", key=KEY)
        assert status == 200 and json.loads(text)["version"] == "0.5.23"
        status, text = http(f"{base}/v1/chat/completions", CHAT, key=KEY)
        assert status == 200
        assert json.loads(text)["choices"][0]["message"]["content"].endswith("llmfab stand-in.")
    finally:
        sglang.terminate()
    assert "The server is fired up and ready to roll!" in sglang.communicate(timeout=10)[0]


def test_the_standin_dies_like_the_engine_without_gpus_or_when_told(tmp_path):
    vllm, _ = start_standin(tmp_path, "vllm", str(tmp_path), "--tensor-parallel-size", "16",
                            "--distributed-executor-backend", "mp")
    assert vllm.wait(timeout=15) == 1
    assert "please set tensor_parallel_size (16) to less than max local gpu count (8)" in (
        vllm.communicate()[0])
    trt, base = start_standin(tmp_path, "trtllm", str(tmp_path), STANDIN_FAIL_AFTER="1.5")
    wait_for(lambda: serving(f"{base}/health"), 15, "the stand-in to serve")
    assert trt.wait(timeout=15) == 1
    assert "STANDIN_FAIL_AFTER=1.5: simulated crash" in trt.communicate()[0]


# --- engines across two test hosts ---------------------------------------------------------


def test_vllm_serves_streaming_chat_once_ray_head_and_worker_hold_16_gpus(fleet_factory):
    fleet = fleet_factory(2)
    n1, n2 = fleet.hosts
    _, launch, (head, worker, serve) = two_node_launch(fleet, "vllm",
                                                       api_key_file="/etc/llmfab/api_key")
    write_key(n1)
    start_ray_head(fleet, launch, head)
    run_step(fleet, worker)
    run_step(fleet, serve)
    base = f"http://{n1.address}:{launch.port}"
    wait_for(lambda: serving(f"{base}/health"), 40, "vLLM's /health", 0.3)

    log = n1.read(f"{launch.log_dir}/vllm-serve.log")
    assert "the Ray cluster has 16 GPUs for a world size of 16" in log
    assert f"Uvicorn running on http://0.0.0.0:{launch.port}" in log
    assert KEY not in log and KEY not in json.dumps(docker_state.containers(n1))
    worker_log = wait_for_text(n2, f"{launch.log_dir}/ray-rank1.log", "Ray runtime started")
    assert f"Local node IP: {n2.address}" in worker_log
    assert http(f"{base}/v1/models")[0] == 401
    status, text = http(f"{base}/v1/models", key=KEY)
    assert status == 200 and json.loads(text)["data"][0]["id"] == "DeepSeek-R1"
    status, text = http(f"{base}/v1/chat/completions", {**CHAT, "stream": True}, key=KEY)
    chunks = sse_chunks(text)
    assert status == 200 and chunks[-1] == "[DONE]" and len(chunks) >= 22
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert content.startswith("<think>") and content.endswith("llmfab stand-in.")


def test_vllm_fails_like_vllm_when_the_ray_cluster_lacks_gpus(fleet_factory):
    fleet = fleet_factory(2)
    n1, _ = fleet.hosts
    # Not Ray's default port: Ray's GCS binds 0.0.0.0, so fleets of other test
    # runs on this machine would clash on 6379.
    _, launch, (head, _worker, serve) = two_node_launch(fleet, "vllm", ray_port=6380)
    docker_state.set_extra_env(n1, STANDIN_PG_TIMEOUT="1")
    start_ray_head(fleet, launch, head)
    run_step(fleet, serve)  # no worker: 8 of 16 GPUs
    log = wait_for_text(n1, f"{launch.log_dir}/vllm-serve.log", "ValueError", 30)
    assert "The number of required GPUs exceeds the total number of available GPUs" in log
    assert "Cannot provide a placement group of placement_group_specs=" in log
    assert "vllm serve" not in out(n1, "ps -eo args")
    assert state_of(n1) == "running"  # the head's container runs on: Ray is fine


def test_sglang_rank0_serves_only_with_rank1_joined_and_dies_with_it(fleet_factory):
    fleet = fleet_factory(2)
    n1, n2 = fleet.hosts
    _, launch, (rank0, rank1) = two_node_launch(fleet, "sglang",
                                                api_key_file="/etc/llmfab/api_key")
    write_key(n1)
    # Rank 0 starts through llmfab's key launcher (deploy's engine-files step writes it).
    n1.exec(f"mkdir -p {launch.config_dir} && cat > {sglang.launcher_path(launch)}",
            input=sglang.LAUNCHER_SOURCE.read_text(), check=True)
    for host in fleet.hosts:
        install_fake_sglang(host)
        docker_state.set_extra_env(host, STANDIN_START_DELAY="0", PYTHONPATH=FAKE_SGLANG)
    rank0_log = f"{launch.log_dir}/sglang-rank0.log"
    base = f"http://{n1.address}:{launch.port}"
    run_step(fleet, rank0)
    wait_for_text(n1, rank0_log, "Init torch distributed begin")
    time.sleep(1)
    assert http(f"{base}/health", timeout=2)[0] is None  # not listening without rank 1
    run_step(fleet, rank1)
    wait_for(lambda: serving(f"{base}/health"), 20, "SGLang's /health", 0.2)
    assert "The server is fired up and ready to roll!" in n1.read(rank0_log)
    assert http(f"{base}/get_server_info")[0] == 401
    status, text = http(f"{base}/get_server_info", key=KEY)
    assert status == 200 and json.loads(text)["nnodes"] == 2
    status, text = http(f"{base}/v1/chat/completions", {**CHAT, "stream": True}, key=KEY)
    assert status == 200 and sse_chunks(text)[-1] == "[DONE]"

    assert sh(n2, "docker rm -f llmfab-engine").returncode == 0
    wait_for(lambda: state_of(n1) == "exited", 10, "rank 0 to die with rank 1")
    assert out(n1, "docker inspect -f '{{.State.ExitCode}}' llmfab-engine") == "1\n"
    assert f"Connection closed by peer [{n2.address}]" in n1.read(rank0_log)
    assert http(f"{base}/health", timeout=2)[0] is None


def test_trtllm_mpirun_needs_every_sshd_and_ends_when_one_goes(fleet_factory):
    fleet = fleet_factory(2)
    n1, n2 = fleet.hosts
    profile, launch, (rank0, rank1, mpirun) = two_node_launch(fleet, "trtllm")
    for host in fleet.hosts:
        host.exec(f"mkdir -p {launch.config_dir} {launch.ssh_dir} && "
                  f"cat > {trtllm.config_path(launch)}",
                  input=trtllm.extra_options_yaml(profile, launch), check=True)
    serve_log = f"{launch.log_dir}/trtllm-serve.log"
    run_step(fleet, rank0)
    run_step(fleet, mpirun)  # rank 1's sshd is not up yet
    log = wait_for_text(n1, serve_log, "ORTE was unable to reliably start")
    assert f"ssh: connect to host {n2.address} port {launch.sshd_port}: Connection refused" in log

    run_step(fleet, rank1)
    wait_for_text(n2, f"{launch.log_dir}/sshd-rank1.log", "Server listening")
    run_step(fleet, mpirun)
    base = f"http://{n1.address}:{launch.port}"
    wait_for(lambda: serving(f"{base}/health"), 20, "trtllm-serve's /health", 0.2)
    status, text = http(f"{base}/v1/models")
    assert status == 200 and json.loads(text)["data"][0]["id"] == "DeepSeek-R1"

    assert sh(n2, "docker rm -f llmfab-engine").returncode == 0
    wait_for_text(n1, serve_log, "ORTE has lost communication with a remote daemon")
    assert http(f"{base}/health", timeout=2)[0] is None
    assert state_of(n1) == "running"  # its sshd still runs; the job is what died
