"""aiovideoextend.typing used the way a user would: own backends and hooks, type-checked by
``mypy --strict``, never run.

Nothing here is called. pytest collects only ``test_*.py``, so this file is not a test.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from redis.asyncio import Redis

import aiovideoextend as ave
from aiovideoextend.batch import BatchUpdate, JournalEntry, run_batch
from aiovideoextend.queue import QueueJournal
from aiovideoextend.redis_limiter import RedisRateLimiter
from aiovideoextend.typing import (
    BatchUpdateHook,
    EventHook,
    ExtendRequest,
    JournalStore,
    Limiter,
    WaitHook,
    Window,
)


class UnlimitedWindow:
    """A budget that never waits (say, a server of one's own without limits)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.window = 0.0

    async def acquire(self, on_wait: WaitHook | None = None) -> None:
        if on_wait is not None:
            on_wait(self.name, 0.0)

    def release(self, end: float | None = None) -> None:
        pass

    def cancel(self) -> None:
        pass

    def pause(self, seconds: float) -> None:
        pass

    def delay(self) -> float:
        return 0.0


class Unlimited:
    def __init__(self) -> None:
        self.overall = UnlimitedWindow("overall")

    def budget(self, name: str) -> UnlimitedWindow:
        return UnlimitedWindow(name)


class HalfAWindow:
    """Not a Window: it cannot give a slot back."""

    name = "x"
    window = 1.0

    async def acquire(self, on_wait: WaitHook | None = None) -> None:
        pass


class MemoryJournal:
    """A single-writer journal in a dict (lost with the process: for tests)."""

    poll_interval = 1.0
    concurrent = False

    def __init__(self) -> None:
        self.rows: dict[str, JournalEntry] = {}

    async def entries(self, entry_ids: Collection[str] | None = None) -> dict[str, JournalEntry]:
        wanted = self.rows.keys() if entry_ids is None else entry_ids
        return {i: self.rows[i] for i in wanted if i in self.rows}

    async def known_runs(self, model: str) -> dict[str, int]:
        return {}

    async def complete_snapshot_seq(self, model: str) -> int | None:
        return None

    async def record_intent(
        self, entry_id: str, *, request_key: str, model: str, position: int
    ) -> bool:
        seq = len(self.rows) + 1
        self.rows[entry_id] = JournalEntry(
            entry_id, request_key, model, position, "intent", seq, 0.0
        )
        return True

    async def record_submitted(
        self, entry_id: str, run_id: str, precharge: float | None, *, answered: bool = True
    ) -> None:
        pass

    async def record_finished(self, entry_id: str, outcome: dict[str, Any]) -> None:
        pass

    async def forget_intent(self, entry_id: str) -> None:
        self.rows.pop(entry_id, None)

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        pass


def on_event(event: ave.Event) -> None:
    print(event.kind, event.run_id)


def on_update(update: BatchUpdate) -> None:
    print(update.index, update.state)


def on_wait(budget: str, seconds: float) -> None:
    print(f"{budget}: {seconds:.1f}s")


async def main(redis_url: str) -> None:
    limiter: Limiter = Unlimited()
    window: Window = limiter.budget("generate")
    not_a_window: Window = HalfAWindow()  # type: ignore[assignment]
    waited: WaitHook = on_wait
    await window.acquire(on_wait=waited)
    window.release()
    hook: EventHook = on_event
    updates: BatchUpdateHook = on_update
    store: JournalStore = MemoryJournal()
    queued: JournalStore = QueueJournal(Redis.from_url(redis_url), "batch-1").line(1, "key")
    in_redis: Limiter = RedisRateLimiter(redis_url)
    in_process: Limiter = ave.RateLimiter(ave.Limits())
    requests: list[ExtendRequest] = [
        ave.MidjourneyExtend("vid_1"),
        ave.SourceExtend("veo3-1-extend", "go on", video_url="https://e.com/a.mp4"),
    ]
    async with ave.Session("sk-test", limiter=limiter, on_event=hook) as session:
        job = await session.submit(requests[0])
        print(job.run_id, not_a_window, queued, in_redis, in_process)
        async for outcome in run_batch(session, requests, journal=store, on_update=updates):
            print(outcome.status)
