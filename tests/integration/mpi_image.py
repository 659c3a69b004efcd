"""The TensorRT-LLM image's Open MPI, as the stub docker needs it: OPAL_PREFIX and its bin/.

The release image keeps Open MPI under OPAL_PREFIX (a Docker ENV); llmfab's
mpirun runs ``$OPAL_PREFIX/bin/mpirun`` and checks for ``bin/orted`` there.
In a test host the prefix holds an ``orted`` that does nothing and an
``mpirun`` that hands over to the stand-in's (first on every container's PATH).
"""

from __future__ import annotations

from tests.harness.standin import docker_state

PREFIX = "/opt/llmfab-test-ompi"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def add_trtllm_image(host, ref: str, orted: bool = True) -> None:
    """Make REF present with the release image's Open MPI layout (without orted when asked).

    An image without sshd cannot be shown here: the test hosts' /usr/sbin/sshd
    is every container's (the stub shadows it with the stand-in's listener).
    """
    files = {"mpirun": 'exec mpirun "$@"'} | ({"orted": "exit 0"} if orted else {})
    host.exec(f"mkdir -p {PREFIX}/bin", check=True)
    for name, body in files.items():
        host.exec(f"cat > {PREFIX}/bin/{name} && chmod 755 {PREFIX}/bin/{name}",
                  input=f"#!/bin/sh\n{body}\n", check=True)
    if not orted:
        host.exec(f"rm -f {PREFIX}/bin/orted", check=True)
    docker_state.add_image(host, ref, env={"PATH": IMAGE_PATH, "OPAL_PREFIX": PREFIX})
