"""One poll scheduler per Session: every job's status polls, inside the overall budget.

A heap orders jobs by when they are due. The scheduler takes a slot of the overall budget before
it starts a poll, so however many jobs are in flight the limiter holds one waiter of ours, polls
go out strictly in due order (no job starves), and submits queue fairly beside them.

It also learns, per model, how long this session's jobs took (from three of them, never one):
the plan (`_plan.next_delay`) then spaces each job's polls by how much longer the model's jobs of
its age still ran, sparse while few of them end, dense where most do.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from ._api import Memo
from ._backoff import Backoff
from ._config import PollPolicy, Retries
from ._http import Transport
from ._limiter_api import Window
from ._plan import MIN_SAMPLES, Durations, JobPlan, earliest_end, estimate, next_delay
from ._tasks import TaskSet
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
from .models import StatusUpdate, Submission

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["PollScheduler"]

# Errors that polling again cannot fix: the awaiters get them at once.
_PERMANENT = (AuthenticationError, PermissionDeniedError, NotFoundError, EndpointNotFoundError)
#: parked poll workers kept beyond this many end (as many as polls in flight are kept at most)
_MAX_IDLE = 64


class Fetch(Protocol):
    """One status call of a run: the update and whether its status spelling is known."""

    def __call__(
        self,
        run_id: str,
        *,
        overall_held: bool = ...,
        attempts: int | None = ...,
        memo: Memo[tuple[StatusUpdate, bool]] | None = ...,
    ) -> Awaitable[tuple[StatusUpdate, bool]]: ...


class _Track(JobPlan):
    """The scheduler's record of one job: its plan, and where it stands in the heap."""

    __slots__ = ("due", "memo", "scheduled")

    def __init__(self, now: float, born: float | None, eta: float | None, first: float) -> None:
        super().__init__(now, born, eta, first)
        #: in the heap (or being polled)
        self.scheduled = False
        #: the loop time it is due in the heap (older heap entries are stale)
        self.due = 0.0
        #: the job's last status body and its update (from its first poll on)
        self.memo: Memo[tuple[StatusUpdate, bool]] | None = None


class PollScheduler:
    """Polls the jobs somebody waits for. ``fetch(run_id, overall_held=, attempts=)`` is one
    status call; ``transport()`` the open transport (its limiter, whether the server answered);
    ``forget(run_id)`` drops a job the session can no longer follow."""

    def __init__(
        self,
        *,
        fetch: Fetch,
        transport: Callable[[], Transport],
        policy: PollPolicy,
        retries: Retries,
        time_scale: float,
        backoff: Backoff,
        rand: Callable[[], float],
        on_wait: Callable[[str, float], None],
        forget: Callable[[str], object],
    ) -> None:
        self._fetch = fetch
        self._transport = transport
        self._policy = policy
        self._connect_attempts = retries.connect_attempts
        self._time_scale = time_scale
        self._backoff = backoff
        self._rand = rand
        self._on_wait = on_wait
        self._forget = forget
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        #: what the scheduler's task waits on when nothing is due (set by a timer or a push)
        self._waiter: asyncio.Future[None] | None = None
        #: the overall budget, taken when the first poll starts (the session is open then)
        self._overall: Window | None = None
        #: the poll workers, and the futures of those parked (waiting for a poll to make)
        self._polls = TaskSet()
        self._idle: list[asyncio.Future[tuple[Job, _Track]]] = []
        #: polls under way
        self._busy = 0
        #: consecutive transient failures per job, for backoff
        self._failures: dict[str, int] = {}
        self._durations: dict[str | None, Durations] = {}

    def __len__(self) -> int:
        return len(self._heap) + self._busy

    def enroll(self, job: Job, submission: Submission | None) -> _Track:
        """A new job: its record. One we submitted counts among its model's jobs."""
        policy = self._policy
        now = asyncio.get_running_loop().time()
        # The age of a job we submitted is known; one attached by id may be of any age.
        eta = submission.eta if submission is not None else None
        track = _Track(
            now,
            now if submission is not None else None,
            None if eta is None else eta / self._time_scale,
            policy.first,
        )
        if track.born is not None and policy.learn:
            durations = self._durations.get(job.model)
            if durations is None:
                durations = self._durations[job.model] = Durations()
            bisect.insort(durations.births, track.born)
        return track

    def ensure(self, job: Job) -> None:
        """Make sure ``job`` is polled (someone now waits for it)."""
        track: _Track = job._track
        if track.scheduled or job.done():
            return
        now = asyncio.get_running_loop().time()
        # The first poll of a fresh job waits for its hint; a job seen before is due now.
        delay = self._next_delay(job, track, now) if job.last_update is None else 0.0
        self._push(job, track, now + delay)

    def _next_delay(self, job: Job, track: _Track, now: float) -> float:
        return next_delay(
            track,
            job.last_update,
            policy=self._policy,
            learned=self._durations.get(job.model),
            now=now,
            rand=self._rand,
            time_scale=self._time_scale,
        )

    def estimate(self, job: Job) -> tuple[float, float] | None:
        """(percent complete, seconds remaining) of ``job``, from its model's ended jobs."""
        born = job._track.born
        if born is None:
            return None  # attached by id: its age is unknown
        now = asyncio.get_running_loop().time()
        return estimate(born, self._durations.get(job.model), now)

    def _learn(self, job: Job, track: _Track, now: float) -> None:
        """A poll found ``job`` ended: it did so between the previous poll and this one."""
        born = track.born
        durations = self._durations.get(job.model)
        if born is None or durations is None:
            return
        bisect.insort(durations.samples, (track.seen_running + now) / 2 - born)
        if len(durations.samples) in {1, MIN_SAMPLES}:
            self._replan(job.model, now)

    def _replan(self, model: str | None, now: float) -> None:
        """The first job of ``model`` ended: the others, backing off blind so far, may well be
        done too. Bring forward every one that is old enough (O(jobs), once per model)."""
        interval = self._policy.interval
        learned = self._durations.get(model)
        for at, _, job in list(self._heap):
            track: _Track = job._track
            if job.model != model or at != track.due or at <= now + interval:
                continue
            hold = earliest_end(track.born, learned, now)
            if hold is not None and hold <= now:
                self._push(job, track, now + interval * self._rand())

    def _push(self, job: Job, track: _Track, at: float) -> None:
        track.scheduled = True
        track.due = at
        heap = self._heap
        wake = not heap or at < heap[0][0]
        heapq.heappush(heap, (at, next(self._seq), job))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="aiovideoextend-poll-scheduler"
            )
        elif wake:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        heap = self._heap
        overall = self._overall = self._transport().limiter.overall
        while True:
            if not heap:
                self._waiter = loop.create_future()
                await self._waiter
                continue
            due = heap[0][0]
            if due > loop.time():
                # A timer that ends the wait, not asyncio.timeout_at: that one cancels the wait
                # and raises, which cost more than the rest of the poll's bookkeeping together.
                self._waiter = loop.create_future()
                timer = loop.call_at(due, self._wake)
                await self._waiter
                timer.cancel()
                continue
            at, _, job = heapq.heappop(heap)
            track: _Track = job._track
            if at != track.due:
                continue  # superseded by a later push (see _replan)
            if job.done() or job._demand <= 0:
                track.scheduled = False
                continue
            try:
                await overall.acquire(self._on_wait)
            except LimiterUnavailableError as exc:
                # Polling without the shared budget could overrun it: tell the waiters now,
                # not at their deadline. The run goes on; session.job(run_id) attaches afresh.
                track.scheduled = False
                job._fail(exc)
                self._forget(job.run_id)
                continue
            # The slot is ours until the poll hands it to the transport. A parked worker
            # takes the poll (a task per poll costs more than the poll's own bookkeeping).
            idle = self._idle
            while idle:
                parked = idle.pop()
                if not parked.done():  # (a worker cancelled while parked left its future)
                    parked.set_result((job, track))
                    break
            else:
                self._polls.spawn(self._work(job, track))

    async def _work(self, job: Job, track: _Track) -> None:
        """A poll worker: polls ``job``, then parks until the dispatcher hands it another.
        Each poll comes with its slot of the overall budget taken."""
        loop = asyncio.get_running_loop()
        idle = self._idle
        while True:
            self._busy += 1
            try:
                await self._poll(job, track)
            finally:
                self._busy -= 1
            if len(idle) >= _MAX_IDLE:
                return
            parked: asyncio.Future[tuple[Job, _Track]] = loop.create_future()
            idle.append(parked)
            try:
                job, track = await parked
            except asyncio.CancelledError:
                if parked.done() and not parked.cancelled() and self._overall is not None:
                    # Handed a poll but cancelled before it ran: give its slot back.
                    job, track = parked.result()
                    self._overall.cancel()
                    track.scheduled = False
                    job._interrupt()
                raise

    async def _poll(self, job: Job, track: _Track) -> None:
        loop = asyncio.get_running_loop()
        # Spacing counts from when the poll left, as the server sees it, not from the answer.
        sent = loop.time()
        try:
            memo = track.memo
            if memo is None:
                memo = track.memo = Memo()
            update, known = await self._fetch(job.run_id, overall_held=True, attempts=1, memo=memo)
        except _PERMANENT as exc:
            track.scheduled = False
            job._fail(exc)
            return
        except VideoExtendError as exc:
            # Transient (429, 5xx, timeouts, garbage bodies): back off and poll again.
            failures = self._failures[job.run_id] = self._failures.get(job.run_id, 0) + 1
            if (
                isinstance(exc, APIConnectionError)
                and failures >= self._connect_attempts
                and not self._transport().reached
            ):
                # Never reached at all (server down, wrong base URL): waiting cannot help.
                # A server that answered before and drops out for a while is waited for.
                track.scheduled = False
                job._fail(exc)
                return
            retry_after = exc.retry_after if isinstance(exc, RateLimitError) else None
            delay = self._backoff.next(
                failures, str(exc), run_id=job.run_id, retry_after=retry_after
            )
            self._push(job, track, loop.time() + delay)
            return
        except BaseException:
            track.scheduled = False
            job._interrupt()
            raise
        self._failures.pop(job.run_id, None)
        job._apply(update, known=known)
        now = loop.time()
        if update.status.is_terminal:
            self._learn(job, track, now)
        else:
            track.seen_running = now
        if job.done() or job._demand <= 0:
            track.scheduled = False
            return
        self._push(job, track, max(sent + self._next_delay(job, track, now), now))

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._polls.track(task)
        await self._polls.drain()
        self._idle.clear()
        for _, _, job in self._heap:
            job._interrupt()
        self._heap.clear()
