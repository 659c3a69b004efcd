"""A stand-in LLM engine for test hosts: vLLM, SGLang and TensorRT-LLM look-alikes.

Inside a test host the docker stub (tests/harness/stubs/docker) runs each
container's command for real, with this package's ``bin/`` first in PATH:
``vllm serve``, ``python3 -m sglang.launch_server``, ``mpirun ...
trtllm-serve`` and ``/usr/sbin/sshd`` land here, ``ray`` is the real Ray.
The stand-in parses the engine's own flags, checks what the real engine
would need to start (the model's config.json, enough GPUs in the Ray
cluster, every rank at the rendezvous, every MPI host reachable), then serves
the engine's HTTP API (health, models, server info, streaming chat) with
canned answers, printing the ready lines the real servers print.

Run by hand: ``python3 -m tests.harness.standin vllm serve-args...`` from the
repository root, or ``python3 -m standin MODE ...`` with tests/harness on
sys.path (what bin/ does). Stdlib only, except the optional Ray check.

Knobs (environment, set per host by tests through docker/extra_env):

STANDIN_START_DELAY   seconds between the checks and serving (default 1)
STANDIN_FAIL_AFTER    exit 1 this many seconds after start
STANDIN_DIST_TIMEOUT  rendezvous timeout of multi-node ranks (default 600)
STANDIN_PG_TIMEOUT    how long vLLM waits for Ray GPUs (default 30; vLLM: 1800)
STANDIN_TOKEN_DELAY   seconds between streamed chunks (default 0.02)
"""

MODES = ("vllm", "sglang", "trtllm", "mpirun", "sshd", "version")
