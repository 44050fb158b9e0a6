"""Scale-out on a task queue (taskiq on Redis streams): ``aiovideoextend worker --queue`` and
``batch --queue`` as real processes, a real ``redis-server`` with AOF on (restarted once), a
real emulator in strict sliding-window mode that drops submit answers."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("taskiq_redis")

import redis.asyncio as aioredis

import aiovideoextend as ave
from aiovideoextend.batch import parse_manifest
from aiovideoextend.queue import QueueJournal, follow_step, submit_step
from aiovideoextend.queue._taskiq import HeartbeatBroker
from aiovideoextend.testing import Fault

from .queue_procs import AofRedis, Queue, kill, orphans, restart_redis, run_queue, terminate
from .scaleout import MODEL, write_manifest
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
    # Jobs of about a second: longer than a follow slice however busy the machine.
    emu = await make_emulator(
        time_scale=scale, queue_seconds=(1.0, 2.0), run_seconds=(600.0, 700.0)
    )
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
            outcome = await follow_step(session, store.line(1, keys[0]), lines[0], budget=0.05)
            slices += 1
        assert (outcome.status, outcome.run_id, outcome.line) == ("completed", first, 1)
        assert slices > 1
        # A follow step run again after the end reports the same outcome, polling nothing.
        again = await follow_step(session, store.line(1, keys[0]), lines[0], budget=0.002)
        assert again is not None
        assert (again.status, again.run_id) == ("completed", first)
        # So does a submit step (a rerun of the batch): the line is finished, nothing is sent.
        rerun = await submit_step(session, store.line(1, keys[0]), lines[0])
        assert not isinstance(rerun, str)
        assert (rerun.status, rerun.run_id, rerun.line) == ("completed", first, 1)
        assert len(emu.ledger) == 3


async def test_two_workers_midjourney_lost_answer_never_takes_the_others_run(
    make_emulator,
    redis_url,  # noqa: F811
    tmp_path,
):
    """Two workers (two sessions, one journal) submit Midjourney extends together, which carry
    no tag. One submit is reset: it created nothing, and the other worker's run was created
    during its flight. That worker's session cannot see the other's submit, so it must not
    match the loss itself: the journal, which sees both intents, settles it, and every line
    gets the run created for its own request."""
    emu = await make_emulator(midjourney_runs=1)
    parent = emu.midjourney_run_ids(emu.api_key)[0]
    path = tmp_path / "mj.jsonl"
    path.write_text("".join(f'{{"run_id": "{parent}", "index": {n}}}\n' for n in range(4)))
    lines = parse_manifest(path)
    options = {"base_url": emu.base_url, "time_scale": 600.0}
    async with (
        aioredis.Redis.from_url(redis_url) as client,
        ave.Session(emu.api_key, **options) as one,
        ave.Session(emu.api_key, **options) as two,
    ):
        store = QueueJournal(client, f"mj-{uuid.uuid4().hex[:8]}", time_scale=600.0)
        for round_ in range(2):
            emu.faults.add(Fault("extend", "reset", count=1))
            pair = lines[2 * round_ : 2 * round_ + 2]
            steps = [
                submit_step(worker, store.line(line.line, line.request.key), line)
                for worker, line in zip((one, two), pair, strict=True)
                if line.request is not None
            ]
            runs = await asyncio.gather(*steps)
            for line, run in zip(pair, runs, strict=True):
                assert isinstance(run, str), run
                made = emu.created_by(run)
                assert made is not None
                assert made["index"] == line.request.index  # type: ignore[union-attr]
    assert len({entry.run_id for entry in emu.ledger}) == 4
    assert emu.duplicate_charges() == 0


async def test_a_worker_keeps_its_tasks_while_it_beats_and_hands_them_on_when_it_stops(
    redis_url,  # noqa: F811
):
    """The heartbeat: a task held longer than the redelivery timeout stays with its live
    worker; once that worker stops beating (dies), another worker gets it."""
    name = f"hb-{uuid.uuid4().hex[:8]}"
    options = {"queue_name": name, "consumer_group_name": name, "xread_block": 50}
    # Taken again after 0.4 s idle; the holder beats every 0.1 s.
    holder = HeartbeatBroker(redis_url, beat=0.1, idle_timeout=400, **options)
    other = HeartbeatBroker(redis_url, beat=0.1, idle_timeout=400, **options)
    holder.is_worker_process = True
    await holder.startup()
    await other.startup()
    mine, theirs = holder.listen(), other.listen()
    try:
        async with aioredis.Redis.from_url(redis_url) as client:
            await client.xadd(name, {b"data": b"long task"})
            held = await anext(mine)
            assert held.data == b"long task"
            # Three times the redelivery timeout later, with new messages to make the other
            # worker look for idle ones: it gets only the new ones.
            for n in range(6):
                await asyncio.sleep(0.2)
                await client.xadd(name, {b"data": f"nudge {n}".encode()})
                got = await asyncio.wait_for(anext(theirs), 5)
                assert got.data.startswith(b"nudge"), got.data
                await got.ack()
            await holder.shutdown()  # stops beating, never acknowledges: as if it died
            taken = None
            for n in range(50):  # polls, each waiting 0.1 s at most
                await asyncio.sleep(0.1)
                await client.xadd(name, {b"data": f"late nudge {n}".encode()})
                got = await asyncio.wait_for(anext(theirs), 5)
                await got.ack()
                if got.data == b"long task":
                    taken = got
                    break
            assert taken is not None
    finally:
        await mine.aclose()
        await theirs.aclose()
        await other.shutdown()


@pytest.fixture
def aof_redis(tmp_path: Path) -> Iterator[AofRedis]:
    server = AofRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_three_workers_one_killed_one_stopped_and_redis_restarted(
    make_emulator, aof_redis, tmp_path
):
    """A batch on the queue while one worker is SIGKILLed, one stopped with SIGTERM (it
    finishes its running tasks and exits 0) and Redis restarts (AOF; one more worker joins
    then): every line exactly one result, 0 duplicate charges, every created run in a result,
    0 x 429, and follow tasks that polled in slices."""
    scale, lines = 60.0, 60
    # Jobs of 1-2 s at this scale, longer than a follow slice (1 s).
    emu = await make_emulator(
        time_scale=scale, limit_algorithm="sliding", users={KEY: 1e6}, run_seconds=(60.0, 120.0)
    )
    emu.faults.add(Fault("generate", "ambiguous", rate=0.02))

    async def restart_and_add(queue: Queue) -> None:
        await restart_redis(queue)
        await queue.start_worker()

    run = await run_queue(
        emu,
        aof_redis,
        tmp_path,
        lines,
        scale=scale,
        actions={
            5: ("kill", kill),
            15: ("term", terminate),
            25: ("redis restart", restart_and_add),
        },
    )
    assert run.events == ["kill", "term", "redis restart"], run.stderr
    assert run.worker_codes[0] == -signal.SIGKILL
    assert run.worker_codes[1] == 0  # SIGTERM: graceful
    by_line: dict[int, list[dict[str, Any]]] = {}
    for record in run.records:
        by_line.setdefault(record["line"], []).append(record)
    assert sorted(by_line) == list(range(1, lines + 1)), run.stderr
    assert all(len(rs) == 1 for rs in by_line.values())
    statuses = {r["status"] for r in run.records}
    assert statuses <= {"completed", "ambiguous"}, (statuses, run.stderr)
    assert run.code == (0 if statuses == {"completed"} else 1)
    assert emu.duplicate_charges() == 0
    assert sum(emu.stats.rate_limited.values()) == 0
    assert not orphans(emu, run.records)
    named = [r["run_id"] for r in run.records if r.get("run_id")]
    assert len(named) == len(set(named))  # no run handed to two lines
    # Follow tasks enqueued themselves again rather than poll past the redelivery timeout.
    assert run.tasks["aiovideoextend.follow"] > lines, run.tasks
    ambiguous = sum(r["status"] == "ambiguous" for r in run.records)
    print(f"\n{len(emu.ledger)} charged for {lines} lines, {ambiguous} ambiguous; {run.tasks}")


QUEUE_NOWHERE = ("--queue", "redis://127.0.0.1:1/0")


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--max-cost", "5"], "--max-cost"),
        (["--journal", "j"], "--journal"),
        (["--redis", "redis://127.0.0.1:1/0"], "--redis"),
        (["--follow-slice", "0"], "positive"),
    ],
)
def test_batch_queue_usage_errors(tmp_path, extra, named):
    """Options of a single process's batch are refused with --queue, before Redis is asked
    (the URL leads nowhere): exit 2, naming the option."""
    manifest = write_manifest(tmp_path / "m.jsonl", 1)
    done = subprocess.run(
        [*(sys.executable, "-m", "aiovideoextend", "batch", str(manifest)), *QUEUE_NOWHERE, *extra],
        env={**os.environ, "NANOGPT_API_KEY": KEY, "PYTHONWARNINGS": "error"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
