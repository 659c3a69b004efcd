"""Log lines in each engine's own format; everything goes to stdout, flushed."""

from __future__ import annotations

import os
import sys
import time


def say(line: str) -> None:
    """Print one line and flush: the container log is a file, read while we run."""
    print(line, file=sys.stdout, flush=True)


def stamp() -> str:
    """SGLang's prefix: ``[2025-03-08 12:29:29]``."""
    return time.strftime("[%Y-%m-%d %H:%M:%S]")


def vllm(level: str, where: str, message: str) -> None:
    """vLLM's format: ``INFO 07-25 04:17:41 [api_server.py:219] message``."""
    say(f"{level} {time.strftime('%m-%d %H:%M:%S')} [{where}] {message}")


def sglang(message: str, rank: int | None = None) -> None:
    """SGLang's format, with the tensor-parallel rank when one speaks: ``[... TP0] message``."""
    prefix = stamp() if rank is None else stamp()[:-1] + f" TP{rank}]"
    say(f"{prefix} {message}")


def die(message: str, status: int = 1) -> None:
    """Print the last words and leave at once, threads and all."""
    say(message)
    sys.stdout.flush()
    os._exit(status)
