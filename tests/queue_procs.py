"""Processes for the task-queue tests and benchmark: a restartable redis-server with AOF on,
``aiovideoextend worker --queue`` processes and one ``batch --queue``, with things done to
them (SIGKILL, SIGTERM, a Redis restart) at given outcome counts."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import redis.asyncio as aioredis

from aiovideoextend.testing import Emulator

from .scaleout import free_port, redis_executable, write_manifest


class AofRedis:
    """A redis-server with AOF on (fsync always) on a fixed port, that can be restarted."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        args = [redis_executable(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        args += ["--dir", str(self.dir)]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if "Ready to accept connections" in line:
                return
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None

    async def restart(self) -> None:
        await asyncio.to_thread(self.stop)
        await asyncio.to_thread(self.start)


@attrs.define
class QueueRun:
    """What a run left: the batch's exit code, its results file's records, what was done."""

    code: int
    records: list[dict[str, Any]]
    events: list[str]
    stderr: str
    worker_codes: list[int | None]
    tasks: dict[str, int]


#: an action at an outcome count: (count, name) -> done to the run
Action = Callable[["Queue"], Awaitable[None]]


@attrs.define
class Queue:
    """The processes of one run (an action may start more workers)."""

    emu: Emulator
    redis: AofRedis
    prefix: str
    scale: float
    concurrency: int
    worker_options: tuple[str, ...] = ()
    workers: list[asyncio.subprocess.Process] = attrs.field(factory=list)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NANOGPT_BASE_URL": self.emu.base_url,
            "NANOGPT_API_KEY": self.emu.api_key,
            "PYTHONWARNINGS": "error",
        }

    def args(self) -> list[str]:
        # At 60x: a dead worker's tasks go to another one after 1.5 s; follow slices of 1 s.
        return [
            *("--queue", self.redis.url, "--redis-prefix", self.prefix),
            *("--time-scale", str(self.scale)),
            *("--redeliver-after", "90", "--follow-slice", "60"),
        ]

    async def start_worker(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "aiovideoextend", "worker"),
            *("--concurrency", str(self.concurrency), *self.args(), *self.worker_options),
            env=self.env(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self.workers.append(proc)


async def kill(queue: Queue, n: int = 0) -> None:
    queue.workers[n].send_signal(signal.SIGKILL)


async def terminate(queue: Queue, n: int = 1) -> None:
    queue.workers[n].send_signal(signal.SIGTERM)


async def restart_redis(queue: Queue) -> None:
    await queue.redis.restart()


async def run_queue(
    emu: Emulator,
    redis: AofRedis,
    workdir: Path,
    lines: int,
    *,
    scale: float,
    workers: int = 3,
    concurrency: int = 8,
    worker_options: tuple[str, ...] = (),
    actions: dict[int, tuple[str, Action]] | None = None,
) -> QueueRun:
    """``workers`` worker processes and one ``batch --queue`` over ``lines`` lines; at the
    n-th outcome, ``actions[n]`` is done (kill a worker, restart Redis...)."""
    manifest = write_manifest(workdir / "jobs.jsonl", lines)
    results = workdir / "results.jsonl"
    queue = Queue(emu, redis, f"q-{uuid.uuid4().hex[:8]}", scale, concurrency, worker_options)
    events: list[str] = []
    batch = None
    try:
        for _ in range(workers):
            await queue.start_worker()
        batch = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "aiovideoextend", "batch", str(manifest), "--json"),
            *(*queue.args(), "--results", str(results)),
            env=queue.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert batch.stdout is not None
        assert batch.stderr is not None
        errors = asyncio.ensure_future(batch.stderr.read())
        outcomes = 0
        async for raw in batch.stdout:
            if json.loads(raw).get("event") != "outcome":
                continue
            outcomes += 1
            if actions and outcomes in actions:
                name, action = actions[outcomes]
                await action(queue)
                events.append(name)
        code = await batch.wait()
        stderr = (await errors).decode()
        for proc in queue.workers:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        worker_codes = [await proc.wait() for proc in queue.workers]
        tasks: dict[str, int] = {}
        async with aioredis.Redis.from_url(redis.url) as client:
            for _id, fields in await client.xrange(f"{queue.prefix}:tasks"):
                name = json.loads(fields[b"data"])["task_name"]
                tasks[name] = tasks.get(name, 0) + 1
    finally:
        for proc in [*queue.workers, *([batch] if batch is not None else [])]:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    records = [json.loads(line) for line in results.read_text().splitlines()]
    return QueueRun(code, records, events, stderr, worker_codes, tasks)


def orphans(emu: Emulator, records: list[dict[str, Any]]) -> set[str]:
    """Runs the server created that no result names (as its run or a candidate)."""
    named = {r["run_id"] for r in records if r.get("run_id")}
    named |= {c["run_id"] for r in records for c in r.get("candidates") or ()}
    return {entry.run_id for entry in emu.ledger} - named
