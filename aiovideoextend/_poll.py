"""One poll scheduler per Session: every job's status polls, inside the overall budget.

A heap orders jobs by when they are due. The scheduler takes a slot of the overall budget before
it starts a poll, so however many jobs are in flight the limiter holds one waiter of ours, polls
go out strictly in due order (no job starves), and submits queue fairly beside them.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
from typing import TYPE_CHECKING

from .exceptions import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    VideoExtendError,
)
from .models import Event, EventKind

if TYPE_CHECKING:
    from ._job import Job
    from ._session import Session

__all__ = ["PollScheduler"]

log = logging.getLogger("aiovideoextend")

# Errors that polling again cannot fix: the awaiters get them at once.
_PERMANENT = (AuthenticationError, PermissionDeniedError, NotFoundError)


class PollScheduler:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._polls: set[asyncio.Task[None]] = set()
        #: consecutive transient failures per job, for backoff
        self._failures: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._heap) + len(self._polls)

    def ensure(self, job: Job) -> None:
        """Make sure ``job`` is polled (someone now waits for it)."""
        if job._scheduled or job.done():
            return
        loop = asyncio.get_running_loop()
        # The first poll of a fresh job waits for its hint; a job seen before is due now.
        delay = job._next_delay(loop.time()) if not job._polled else 0.0
        self._push(job, loop.time() + delay)

    def _push(self, job: Job, at: float) -> None:
        job._scheduled = True
        heap = self._heap
        wake = not heap or at < heap[0][0]
        heapq.heappush(heap, (at, next(self._seq), job))
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="aiovideoextend-poll-scheduler"
            )
        elif wake and self._wakeup is not None:
            self._wakeup.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self._heap
        wakeup = self._wakeup
        assert wakeup is not None  # noqa: S101  (set with the task)
        overall = self._session._limiter.overall
        while True:
            if not heap:
                await wakeup.wait()
                wakeup.clear()
                continue
            due = heap[0][0]
            if due > loop.time():
                wakeup.clear()
                try:
                    async with asyncio.timeout_at(due):
                        await wakeup.wait()
                except TimeoutError:
                    pass
                continue
            _, _, job = heapq.heappop(heap)
            if job.done() or job._demand <= 0:
                job._scheduled = False
                continue
            await overall.acquire(self._session._on_wait)
            # The slot is ours until the poll hands it to the transport; a poll task
            # cancelled before it ever ran must give it back (see _poll_done).
            held = [True]
            task = loop.create_task(self._poll(job, held))
            self._polls.add(task)
            task.add_done_callback(functools.partial(self._poll_done, held, job))

    def _poll_done(self, held: list[bool], job: Job, task: asyncio.Task[None]) -> None:
        self._polls.discard(task)
        if held[0]:
            self._session._limiter.overall.cancel()
            job._scheduled = False
            job._interrupt()

    async def _poll(self, job: Job, held: list[bool]) -> None:
        session = self._session
        loop = asyncio.get_running_loop()
        held[0] = False
        try:
            update, known = await session._fetch_status(job.run_id, overall_held=True, attempts=1)
        except _PERMANENT as exc:
            job._scheduled = False
            job._fail(exc)
            return
        except VideoExtendError as exc:
            # Transient (429, 5xx, timeouts, garbage bodies): back off and poll again.
            failures = self._failures[job.run_id] = self._failures.get(job.run_id, 0) + 1
            retries = session._retries
            delay = retries.delay(failures, session._random())
            if isinstance(exc, RateLimitError) and exc.retry_after is not None:
                delay = max(delay, exc.retry_after)
            session._emit(
                Event(EventKind.RETRYING, run_id=job.run_id, delay=delay, detail=str(exc))
            )
            log.debug("poll of %s failed (%s); retrying in %.3fs", job.run_id, exc, delay)
            self._push(job, loop.time() + delay)
            return
        except BaseException:
            job._scheduled = False
            job._interrupt()
            raise
        self._failures.pop(job.run_id, None)
        job._apply(update, known=known)
        if job.done() or job._demand <= 0:
            job._scheduled = False
            return
        self._push(job, loop.time() + job._next_delay(loop.time()))

    async def aclose(self) -> None:
        tasks = list(self._polls)
        if self._task is not None:
            tasks.append(self._task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        for _, _, job in self._heap:
            job._interrupt()
        self._heap.clear()
