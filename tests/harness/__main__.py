"""Start test hosts by hand: ``python -m tests.harness up N`` / ``down``.

    python -m tests.harness up 2 [--workdir DIR] [--port 2222] [--kernel-meta]
        start N hosts, print the llmfab config and how to use it, and stay in
        the foreground until Ctrl-C (or SIGTERM), which stops them cleanly.
    python -m tests.harness down --workdir DIR
        end hosts left running in DIR (say, by a killed `up`) and remove DIR.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from . import cleanup
from .testhosts import HarnessUnavailable, HostStartError, TestFleet, default_runtime_base

DEFAULT_WORKDIR = Path("/tmp/llmfab-testhosts")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse the command line of the up and down commands."""
    parser = argparse.ArgumentParser(prog="python -m tests.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start N test hosts and wait for Ctrl-C")
    up.add_argument("count", type=int, help="how many hosts to start, e.g. 2")
    up.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                    help=f"where keys, config and host files go (default {DEFAULT_WORKDIR})")
    up.add_argument("--first-octet", type=int, default=11,
                    help="last octet of the first host's address: 11 gives 127.0.0.11")
    up.add_argument("--port", type=int, default=2222, help="sshd port of every host")
    up.add_argument("--prefix", default="n", help="host names are PREFIX1, PREFIX2, ...")
    up.add_argument("--kernel-meta", action="store_true",
                    help="install the fake linux-image/headers-amd64 packages in every host")
    down = commands.add_parser("down", help="end leftover hosts and remove their work dir")
    down.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                      help=f"the work dir given to `up` (default {DEFAULT_WORKDIR})")
    return parser.parse_args(argv)


def up(args: argparse.Namespace) -> int:
    """Start the fleet, tell the user how to reach it, and wait for a signal to stop."""
    fleet = TestFleet(args.count, workdir=args.workdir, first_octet=args.first_octet,
                      port=args.port, prefix=args.prefix, kernel_meta=args.kernel_meta)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    fleet.start()
    try:
        config = fleet.write_config()
        first = fleet.hosts[0]
        print(f"{len(fleet.hosts)} test hosts up: "
              + ", ".join(f"{h.name}={h.address}:{h.port}" for h in fleet.hosts))
        print(f"config: {config}")
        print(f"try:    fab prep --config {config} --dry-run")
        print(f"ssh:    ssh -F /dev/null -i {fleet.client_key_path} "
              f"-o UserKnownHostsFile={fleet.known_hosts_path} -p {first.port} root@{first.address}")
        print("Ctrl-C stops them.", flush=True)
        stop.wait()
    finally:
        fleet.stop()
        print("test hosts stopped", flush=True)
    return 0


def down(args: argparse.Namespace) -> int:
    """End the hosts of a work dir and remove the fleet's directories."""
    workdir = args.workdir.absolute()
    ended = cleanup.end_fleet(workdir, default_runtime_base(workdir))
    if workdir.exists():
        print(f"ended {ended} host processes; {workdir} is no fleet work dir, left as is")
    else:
        print(f"ended {ended} host processes; {workdir} is gone")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; report harness errors without a traceback."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return up(args) if args.command == "up" else down(args)
    except (HarnessUnavailable, HostStartError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
