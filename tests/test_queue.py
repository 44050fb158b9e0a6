"""Scale-out on a task queue (taskiq on Redis streams): ``aiovideoextend worker --queue`` and
``batch --queue`` as real processes, a real ``redis-server`` with AOF on (restarted once), a
real emulator in strict sliding-window mode that drops submit answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("taskiq_redis")

import redis.asyncio as aioredis

import aiovideoextend as ave
from aiovideoextend.batch import parse_manifest
from aiovideoextend.queue import QueueJournal, follow_step, submit_step
from aiovideoextend.testing import Fault

from .scaleout import MODEL, free_port, redis_executable, write_manifest
from .test_redis_limiter import redis_url  # noqa: F401  (a fixture)

KEY = "sk-nano-test-0001"


async def test_the_steps_submit_each_line_once_and_follow_in_slices(
    make_emulator,
    redis_url,  # noqa: F811
    tmp_path,
):
    """The engine-agnostic steps against a real Redis: a submit step run twice returns the
    recorded run; one whose earlier execution died after its intent (before or after the
    submit left) reconciles through recover; a follow step polls a bounded slice at a time."""
    scale = 600.0
    emu = await make_emulator(time_scale=scale)
    lines = parse_manifest(write_manifest(tmp_path / "jobs.jsonl", 3))
    keys = [line.request.key for line in lines if line.request is not None]
    async with (
        aioredis.Redis.from_url(redis_url) as client,
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=scale) as session,
    ):
        store = QueueJournal(client, f"steps-{uuid.uuid4().hex[:8]}", time_scale=scale)
        first = await submit_step(session, store.line(1, keys[0]), lines[0])
        assert isinstance(first, str)
        assert await submit_step(session, store.line(1, keys[0]), lines[0]) == first
        # Line 2's earlier execution recorded its intent, sent the submit and died.
        dead = store.line(2, keys[1])
        assert await dead.record_intent(dead.local_id, request_key=keys[1], model=MODEL, position=0)
        assert lines[1].request is not None
        sent = await session.submit(lines[1].request)
        assert await submit_step(session, store.line(2, keys[1]), lines[1]) == sent.run_id
        # Line 3's died after its intent, before sending: nothing was created, it is sent now.
        dead = store.line(3, keys[2])
        assert await dead.record_intent(dead.local_id, request_key=keys[2], model=MODEL, position=0)
        third = await submit_step(session, store.line(3, keys[2]), lines[2])
        assert isinstance(third, str)
        assert len(emu.ledger) == 3
        assert emu.duplicate_charges() == 0

        slices, outcome = 0, None
        while outcome is None:
            outcome = await follow_step(session, store.line(1, keys[0]), lines[0], budget=0.002)
            slices += 1
        assert (outcome.status, outcome.run_id, outcome.line) == ("completed", first, 1)
        assert slices > 1
        # A follow step run again after the end reports the same outcome, polling nothing.
        again = await follow_step(session, store.line(1, keys[0]), lines[0], budget=0.002)
        assert again is not None
        assert (again.status, again.run_id) == ("completed", first)
        assert len(emu.ledger) == 3


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


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    server = AofRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _env(emu: Any) -> dict[str, str]:
    return {
        **os.environ,
        "NANOGPT_BASE_URL": emu.base_url,
        "NANOGPT_API_KEY": emu.api_key,
        "PYTHONWARNINGS": "error",
    }


def _queue_args(url: str, prefix: str, scale: float) -> list[str]:
    # At 60x: a task unacknowledged for 6 s goes to another worker; follow slices of 1 s.
    return [
        *("--queue", url, "--redis-prefix", prefix, "--time-scale", str(scale)),
        *("--redeliver-after", "360", "--follow-slice", "60"),
    ]


async def _worker(emu: Any, url: str, prefix: str, scale: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiovideoextend", "worker", "--concurrency", "8"),
        *_queue_args(url, prefix, scale),
        env=_env(emu),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


@contextlib.asynccontextmanager
async def _processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs: list[asyncio.subprocess.Process] = []
    try:
        yield procs
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_three_workers_one_killed_one_stopped_and_redis_restarted(
    make_emulator, aof_redis, tmp_path
):
    """A batch on the queue while one worker is SIGKILLed, one stopped with SIGTERM (it
    finishes its running tasks and exits 0) and Redis restarts (AOF): every line exactly one
    result, 0 duplicate charges, every created run in a result, 0 x 429."""
    scale, lines = 60.0, 60
    # Jobs of 1-2 s at this scale, longer than a follow slice (1 s).
    emu = await make_emulator(
        time_scale=scale, limit_algorithm="sliding", users={KEY: 1e6}, run_seconds=(60.0, 120.0)
    )
    emu.faults.add(Fault("generate", "ambiguous", rate=0.02))
    manifest = write_manifest(tmp_path / "jobs.jsonl", lines)
    results = tmp_path / "results.jsonl"
    prefix = f"q-{uuid.uuid4().hex[:8]}"
    async with _processes() as procs:
        workers = [await _worker(emu, aof_redis.url, prefix, scale) for _ in range(3)]
        procs.extend(workers)
        batch = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "aiovideoextend", "batch", str(manifest), "--json"),
            *_queue_args(aof_redis.url, prefix, scale),
            *("--results", str(results)),
            env=_env(emu),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        procs.append(batch)
        assert batch.stdout is not None
        assert batch.stderr is not None
        errors = asyncio.ensure_future(batch.stderr.read())
        outcomes = 0
        events: list[str] = []
        async for raw in batch.stdout:
            record = json.loads(raw)
            if record.get("event") != "outcome":
                continue
            outcomes += 1
            if outcomes == 5:
                workers[0].send_signal(signal.SIGKILL)
                events.append("kill")
            elif outcomes == 15:
                workers[1].send_signal(signal.SIGTERM)
                events.append("term")
            elif outcomes == 25:
                await aof_redis.restart()
                events.append("redis restart")
                # two workers left (one stopping): one more joins, as an operator would
                procs.append(await _worker(emu, aof_redis.url, prefix, scale))
        code = await batch.wait()
        stderr = (await errors).decode()
        assert events == ["kill", "term", "redis restart"], stderr
        assert await workers[1].wait() == 0  # SIGTERM: graceful
        assert workers[0].returncode == -signal.SIGKILL

    records = [json.loads(line) for line in results.read_text().splitlines()]
    by_line: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_line.setdefault(record["line"], []).append(record)
    assert sorted(by_line) == list(range(1, lines + 1)), stderr
    assert all(len(rs) == 1 for rs in by_line.values())
    statuses = {r["status"] for r in records}
    assert statuses <= {"completed", "ambiguous"}, (statuses, stderr)
    assert code == (0 if statuses == {"completed"} else 1)
    assert emu.duplicate_charges() == 0
    assert sum(emu.stats.rate_limited.values()) == 0
    named = {r["run_id"] for r in records if r.get("run_id")}
    named |= {c["run_id"] for r in records for c in r.get("candidates") or ()}
    created = {entry.run_id for entry in emu.ledger}
    assert created <= named, created - named  # no orphaned run
    # Follow tasks poll bounded slices (1 s here, jobs run longer): they enqueued themselves
    # again rather than run past the redelivery timeout.
    tasks = await _task_names(aof_redis.url, prefix)
    assert tasks["aiovideoextend.follow"] > lines, tasks
    ambiguous = sum(r["status"] == "ambiguous" for r in records)
    print(f"\n{len(emu.ledger)} charged for {lines} lines, {ambiguous} ambiguous; tasks: {tasks}")


async def _task_names(url: str, prefix: str) -> dict[str, int]:
    """How many tasks of each kind went through the queue's stream."""
    counts: dict[str, int] = {}
    async with aioredis.Redis.from_url(url) as client:
        for _id, fields in await client.xrange(f"{prefix}:tasks"):
            name = json.loads(fields[b"data"])["task_name"]
            counts[name] = counts.get(name, 0) + 1
    return counts
