"""One poll scheduler per Session: every job's status polls, inside the overall budget.

A heap orders jobs by when they are due. The scheduler takes a slot of the overall budget before
it starts a poll, so however many jobs are in flight the limiter holds one waiter of ours, polls
go out strictly in due order (no job starves), and submits queue fairly beside them.

It also learns, per model, how long this session's finished jobs took; when to poll each job
next is the pure poll plan's call (`_poll_plan.next_delay`).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
from typing import TYPE_CHECKING

from ._poll_plan import Durations, earliest_end
from .exceptions import (
    APIConnectionError,
    AuthenticationError,
    EndpointNotFoundError,
    LimiterUnavailableError,
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
_PERMANENT = (AuthenticationError, PermissionDeniedError, NotFoundError, EndpointNotFoundError)


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
        self._durations: dict[str | None, Durations] = {}

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

    def born(self, job: Job) -> None:
        """``job`` was just submitted by this session: count it among its model's jobs."""
        if job._born is not None and self._session._poll.learn:
            durations = self._durations.get(job.model)
            if durations is None:
                durations = self._durations[job.model] = Durations()
            durations.born(job._born)

    def learned(self, job: Job) -> Durations | None:
        """What this session learned of ``job``'s model (None: learning is off)."""
        if not self._session._poll.learn:
            return None
        return self._durations.get(job.model)

    def estimate(self, job: Job, now: float) -> tuple[float, float] | None:
        """(percent complete, seconds remaining) of ``job``, estimated from the median duration
        of this session's ended jobs of its model; None when nothing is learned or its age is
        unknown. Capped at 99 % while running: the server has not said it is done."""
        born = job._born
        durations = self._durations.get(job.model)
        typical = None if born is None or durations is None else durations.typical()
        if born is None or typical is None or typical <= 0:
            return None
        elapsed = now - born
        return min(99.0, max(0.0, 100.0 * elapsed / typical)), max(0.0, typical - elapsed)

    def _learn(self, job: Job, now: float) -> None:
        """A poll found ``job`` ended: it did so between the previous poll and this one."""
        born = job._born
        durations = self._durations.get(job.model)
        if born is None or durations is None:
            return
        if durations.ended((job._seen_running + now) / 2 - born):
            self._replan(job.model, durations, now)

    def _replan(self, model: str | None, durations: Durations, now: float) -> None:
        """News of ``model`` (its first end, then learned): the jobs waiting so far may well be
        done. Bring forward every one that is old enough (O(jobs), twice per model)."""
        interval = self._session._poll.interval
        for at, _, job in list(self._heap):
            if job.model != model or at != job._due or at <= now + interval:
                continue
            hold = earliest_end(job._born, durations, now)
            if hold is not None and hold <= now:
                self._push(job, now + interval * self._session._random())

    def _push(self, job: Job, at: float) -> None:
        job._scheduled = True
        job._due = at
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
                # A timer that sets the event, not asyncio.timeout_at: that one cancels the wait
                # and raises, which cost more than the rest of the poll's bookkeeping together.
                wakeup.clear()
                timer = loop.call_at(due, wakeup.set)
                await wakeup.wait()
                timer.cancel()
                continue
            at, _, job = heapq.heappop(heap)
            if at != job._due:
                continue  # superseded by a later push (see _replan)
            if job.done() or job._demand <= 0:
                job._scheduled = False
                continue
            try:
                await overall.acquire(self._session._on_wait)
            except LimiterUnavailableError as exc:
                # Polling without the shared budget could overrun it: tell the waiters now,
                # not at their deadline. The run goes on; session.job(run_id) attaches afresh.
                job._scheduled = False
                job._fail(exc)
                self._session._jobs.pop(job.run_id, None)
                continue
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
        # Spacing counts from when the poll left, as the server sees it, not from the answer.
        sent = loop.time()
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
            if (
                isinstance(exc, APIConnectionError)
                and failures >= retries.connect_attempts
                and not session._ready().reached
            ):
                # Never reached at all (server down, wrong base URL): waiting cannot help.
                # A server that answered before and drops out for a while is waited for.
                job._scheduled = False
                job._fail(exc)
                return
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
        now = loop.time()
        if update.status.is_terminal:
            self._learn(job, now)
        else:
            job._seen_running = now
        if job.done() or job._demand <= 0:
            job._scheduled = False
            return
        self._push(job, max(sent + job._next_delay(now), now))

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
