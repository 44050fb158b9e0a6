"""The enqueuing side: put a manifest on the queue, watch its results come in."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import redis.asyncio as aioredis

from aiovideoextend.batch import FINISHED_STATUSES, BatchOutcome, ManifestLine

from ._store import QueueJournal
from ._taskiq import DOWN, NUDGE, SUBMIT, QueueConfig, make_broker, outcome_from_dict

__all__ = ["batch_id_of", "run_queued"]


def batch_id_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()[:32]


async def run_queued(
    config: QueueConfig,
    manifest: Path,
    lines: list[ManifestLine],
    *,
    batch_id: str,
    poll: float = 0.05,
) -> AsyncIterator[BatchOutcome]:
    """Enqueue every line that has no result and no task yet (a rerun resumes), then yield
    one outcome per line as the workers store them (those stored earlier first)."""
    content = await asyncio.to_thread(manifest.read_bytes)
    client = aioredis.Redis.from_url(config.url)
    broker = make_broker(config)
    try:
        await broker.startup()  # declares the consumer group before the first task
        journal = QueueJournal(client, batch_id, prefix=config.prefix, time_scale=config.time_scale)
        await journal.put_manifest(content, manifest.suffix or ".jsonl")
        submit, nudge = broker.find_task(SUBMIT), broker.find_task(NUDGE)
        assert submit is not None  # noqa: S101
        assert nudge is not None  # noqa: S101
        stored = await journal.results()
        for line in lines:
            result = stored.get(line.line)
            marker = journal.key(f"enqueued:{line.line}")
            if result is not None:
                if result.get("status") in FINISHED_STATUSES:
                    continue
                # Not submitted, or followed until the tries ran out: a rerun tries again (its
                # journal entry decides what is left to do), as a local batch's rerun does.
                await journal.drop_result(line.line)
                await client.delete(marker)
            # Once per line, however often the batch is started: a line's task is the queue's
            # (a task enqueued twice by two starts at once would cost nothing: the journal).
            if not await client.exists(marker):
                await submit.kiq(batch_id, line.line)
                await client.set(marker, 1)
        seen: set[int] = set()
        wanted = {line.line for line in lines}
        loop = asyncio.get_running_loop()
        # taskiq's stream broker reclaims a dead worker's tasks only after it fetched a new
        # one: a no-op task now and then, so that the last ones are not stranded.
        every = config.scaled(config.redeliver_after) / 4
        nudged = loop.time()
        while True:
            try:
                results = await journal.results()
            except DOWN:  # Redis restarting
                await asyncio.sleep(poll)
                continue
            for number in sorted(results.keys() - seen):
                if number in wanted:
                    seen.add(number)
                    yield outcome_from_dict(results[number])
            if wanted <= seen:
                return
            if loop.time() - nudged >= every:
                nudged = loop.time()
                with contextlib.suppress(*DOWN):
                    await nudge.kiq()
            await asyncio.sleep(poll)
    finally:
        await broker.shutdown()
        await client.aclose()
