#!/usr/bin/env python3
"""Check that every GPU of every node can all-reduce, and how fast, before the engine starts.

Run it with the engine's image and environment (NCCL_* / GLOO_* variables), one
process per GPU, on every node at once::

    torchrun --nnodes=$NNODES --node-rank=$NODE_RANK --nproc-per-node=8 \\
        --master-addr=$MASTER_ADDR --master-port=$MASTER_PORT \\
        allreduce_check.py --min-bytes 1M --max-bytes 1G

(``python -m torch.distributed.run`` is the same launcher.) Global rank 0 prints
one machine-readable line per message size, then a verdict::

    ALLREDUCE_INFO world=16 nnodes=2 backend=nccl dtype=float32 torch=... cuda=... nccl=2.21.5
    ALLREDUCE size_bytes=1048576 time_us=52.1 algbw_GBps=20.13 busbw_GBps=37.74
    ...
    ALLREDUCE_OK world=16

Any rank that fails prints ``ALLREDUCE_FAIL rank=R phase=P reason=...`` and exits
non-zero instead of hanging: a watchdog thread ends the process when init (the
process group plus the first collective, which builds the NCCL communicator) or
one message size takes longer than its limit. busbw is algbw * 2(n-1)/n, as in
nccl-tests, so figures compare with ``all_reduce_perf``. Every size is checked
for the exact sum before it is timed.

Smoke test on CPU: ``torchrun --nproc-per-node=2 allreduce_check.py --backend gloo
--min-bytes 4K --max-bytes 64K``.

Only torch and the standard library are used, so the file can be copied into any
engine image. TODO: torchrun's own rendezvous waits before this script starts
(its join timeout, minutes); callers should wrap the launcher in ``timeout``.
"""
import argparse
import datetime
import enum
import os
import socket
import sys
import threading
import time


class ExitStatus(enum.IntEnum):
    """Exit codes: each says which way the check failed."""

    OK = 0
    ERROR = 1  # an exception: NCCL/Gloo error, CUDA error, bad environment
    WRONG_SUM = 2  # the all-reduce returned a wrong result
    TIMEOUT = 3  # init or one message size ran past its limit
    USAGE = 64  # bad arguments or not started by torchrun


_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
          "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30}


# parse_size turns "1M", "64KiB", "1G" or "4096" into bytes (binary units).
def parse_size(text):
    text = text.strip().upper()
    digits = text.rstrip("KMGIB")
    unit = text[len(digits):]
    if not digits.isdigit() or unit not in _UNITS:
        raise argparse.ArgumentTypeError("size %r: use a number with K, M or G" % text)
    return int(digits) * _UNITS[unit]


# message_sizes lists min..max, multiplying by factor, ending at max exactly.
def message_sizes(min_bytes, max_bytes, factor):
    sizes, size = [], min_bytes
    while size < max_bytes:
        sizes.append(size)
        size *= factor
    sizes.append(max_bytes)
    return sizes


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="nccl", choices=["nccl", "gloo"],
                   help="nccl on GPUs (default); gloo on CPU for a smoke test")
    p.add_argument("--min-bytes", type=parse_size, default="1M",
                   help="smallest message, e.g. 1M (default 1M)")
    p.add_argument("--max-bytes", type=parse_size, default="1G",
                   help="largest message, e.g. 1G (default 1G)")
    p.add_argument("--factor", type=int, default=2,
                   help="multiply the size by this between steps (default 2)")
    p.add_argument("--iters", type=int, default=20, help="timed all-reduces per size")
    p.add_argument("--warmup", type=int, default=5, help="untimed all-reduces per size")
    p.add_argument("--init-timeout", type=float, default=300.0,
                   help="seconds for the process group and the first collective")
    p.add_argument("--op-timeout", type=float, default=120.0,
                   help="seconds for one message size (check, warm-up and timed runs)")
    return p


class Watchdog:
    """End the process with ALLREDUCE_FAIL when the current phase outlives its limit.

    A hung NCCL call never returns to Python, so the check runs in its own
    thread and leaves through os._exit.
    """

    def __init__(self, rank):
        self.rank = rank
        self.phase, self.deadline, self.limit = "start", None, 0.0
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, name="allreduce-watchdog", daemon=True).start()

    def arm(self, phase, seconds):
        with self._lock:
            self.phase, self.limit = phase, seconds
            self.deadline = time.monotonic() + seconds

    def disarm(self):
        with self._lock:
            self.deadline = None

    def _watch(self):
        while True:
            time.sleep(0.2)
            with self._lock:
                expired = self.deadline is not None and time.monotonic() > self.deadline
                phase, limit = self.phase, self.limit
            if expired:
                fail(self.rank, phase, "timeout: no progress after %gs" % limit)
                os._exit(ExitStatus.TIMEOUT)


# fail prints the one failure line that the parser and a person both read.
def fail(rank, phase, reason):
    reason = " ".join(str(reason).split())[:500]
    print("ALLREDUCE_FAIL rank=%s phase=%s reason=%s" % (rank, phase, reason), flush=True)


# nccl_version_text gives NCCL's version as "2.21.5" whatever torch returns.
def nccl_version_text(torch):
    try:
        v = torch.cuda.nccl.version()
    except Exception:  # no NCCL in this build
        return "none"
    if isinstance(v, tuple):
        return ".".join(str(x) for x in v)
    return "%d.%d.%d" % (v // 1000, v % 1000 // 100, v % 100) if v < 10000 else \
        "%d.%d.%d" % (v // 10000, v % 10000 // 100, v % 100)


# init_group joins the process group and runs one tiny all-reduce to build the communicator.
def init_group(torch, dist, args, dog, rank):
    dog.arm("init", args.init_timeout)
    if args.backend == "nccl":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    # torch's own timeout stays above ours, so the watchdog speaks first.
    limit = datetime.timedelta(seconds=max(args.init_timeout, args.op_timeout) + 60)
    dist.init_process_group(backend=args.backend, init_method="env://", timeout=limit)
    one = torch.ones(1, device=device)
    dist.all_reduce(one)
    if device.type == "cuda":
        torch.cuda.synchronize()
    dog.disarm()
    if int(one.item()) != dist.get_world_size():
        raise RuntimeError("first all-reduce gave %s, expected %d" % (one.item(), dist.get_world_size()))
    return device


# check_sum all-reduces a known pattern once and returns how many elements are wrong.
def check_sum(torch, dist, buf, rank, world):
    n = buf.numel()
    pattern = (torch.arange(n, device=buf.device, dtype=torch.int32) % 13).to(torch.float32)
    buf.copy_(pattern).add_(rank)
    dist.all_reduce(buf)
    pattern.mul_(world).add_(world * (world - 1) // 2)
    return int((buf != pattern).sum().item())


# _line_up waits for queued work here and for every rank (a barrier without NCCL's device guess).
def _line_up(torch, dist, device):
    dist.all_reduce(torch.zeros(1, device=device))
    if device.type == "cuda":
        torch.cuda.synchronize()


# time_size returns the slowest rank's mean seconds per all-reduce of buf.
def time_size(torch, dist, buf, args):
    sync = torch.cuda.synchronize if buf.is_cuda else (lambda: None)
    buf.zero_()
    for _ in range(args.warmup):
        dist.all_reduce(buf)
    _line_up(torch, dist, buf.device)
    start = time.perf_counter()
    for _ in range(args.iters):
        dist.all_reduce(buf)
    sync()
    elapsed = torch.tensor([(time.perf_counter() - start) / args.iters],
                           dtype=torch.float64, device=buf.device)
    dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)
    return float(elapsed.item())


# run_sizes checks and times every size; it returns an ExitStatus.
def run_sizes(torch, dist, args, dog, rank, world, device):
    for size in message_sizes(args.min_bytes, args.max_bytes, args.factor):
        dog.arm("size=%d" % size, args.op_timeout)
        buf = torch.empty(max(1, size // 4), dtype=torch.float32, device=device)
        wrong = check_sum(torch, dist, buf, rank, world)
        if wrong:
            fail(rank, "size=%d" % size, "wrong sum in %d of %d elements" % (wrong, buf.numel()))
            return ExitStatus.WRONG_SUM
        secs = time_size(torch, dist, buf, args)
        dog.disarm()
        nbytes = buf.numel() * 4
        algbw = nbytes / secs / 1e9
        busbw = algbw * 2 * (world - 1) / world
        if rank == 0:
            print("ALLREDUCE size_bytes=%d time_us=%.1f algbw_GBps=%.2f busbw_GBps=%.2f"
                  % (nbytes, secs * 1e6, algbw, busbw), flush=True)
        del buf
    return ExitStatus.OK


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.min_bytes > args.max_bytes or args.factor < 2 or args.iters < 1:
        print("ALLREDUCE_FAIL rank=? phase=args reason=need min<=max, factor>=2, iters>=1", flush=True)
        return ExitStatus.USAGE
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        print("ALLREDUCE_FAIL rank=? phase=args reason=RANK/WORLD_SIZE unset: start with torchrun", flush=True)
        return ExitStatus.USAGE
    rank = int(os.environ["RANK"])
    dog = Watchdog(rank)
    try:
        import torch
        import torch.distributed as dist
        device = init_group(torch, dist, args, dog, rank)
        world = dist.get_world_size()
        print("ALLREDUCE_RANK rank=%d local_rank=%s host=%s device=%s" % (
            rank, os.environ.get("LOCAL_RANK", "?"), socket.gethostname(),
            torch.cuda.get_device_name(device).replace(" ", "_") if device.type == "cuda" else "cpu"),
            flush=True)
        if rank == 0:
            print("ALLREDUCE_INFO world=%d nnodes=%s backend=%s dtype=float32 torch=%s cuda=%s nccl=%s" % (
                world, os.environ.get("GROUP_WORLD_SIZE", "?"), args.backend, torch.__version__,
                torch.version.cuda, nccl_version_text(torch)), flush=True)
        status = run_sizes(torch, dist, args, dog, rank, world, device)
        if status == ExitStatus.OK and rank == 0:
            print("ALLREDUCE_OK world=%d" % world, flush=True)
        dist.destroy_process_group()
        return status
    except Exception as exc:  # report every failure on one line, then exit non-zero
        fail(rank, dog.phase, "%s: %s" % (type(exc).__name__, exc))
        return ExitStatus.ERROR


if __name__ == "__main__":
    sys.exit(int(main()))
