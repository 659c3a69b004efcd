"""Start SGLang's launch_server with the API key from a file, never from argv.

SGLang (0.4 and 0.5) reads its key only from ``--api-key`` and logs its
server args, key included. This launcher is written to the head and run by
the container as ``python3 LAUNCHER ARGS...``: the key is read from the
mounted file and added to ``sys.argv`` inside this process, so no command
line (``ps``, ``/proc/PID/cmdline``, ``docker inspect``) holds it; and
everything the server and its children print goes through a child that
blanks the key before it reaches the log file.

It runs in the engine image's Python: the standard library only.
"""

import os
import runpy
import sys

KEY_FILE = "/run/llmfab/api_key"


def read_key(path: str) -> bytes:
    """The key file's first line; exit when it is missing or empty."""
    with open(path, "rb") as f:
        key = f.read().strip()
    if not key:
        sys.exit(f"llmfab launcher: {path} is empty")
    return key


def redact_output(key: bytes) -> None:
    """Route this process's stdout and stderr (and its children's) through a
    child that writes them on with every occurrence of KEY replaced by ***."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(write_end)
        with os.fdopen(read_end, "rb", buffering=0) as src:
            for line in iter(src.readline, b""):
                os.write(1, line.replace(key, b"***"))
        os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 1)
    os.dup2(write_end, 2)
    os.close(write_end)


def main() -> None:
    """Run ``sglang.launch_server`` with our arguments plus the key."""
    key = read_key(KEY_FILE)
    redact_output(key)
    sys.argv = ["sglang.launch_server", *sys.argv[1:], "--api-key", key.decode()]
    runpy.run_module("sglang.launch_server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
