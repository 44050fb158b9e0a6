"""Jobs, balances, the ledger and request statistics.

A job's state is computed from its timestamps, so thousands of jobs cost no tasks; money moves
("settles") the first time anyone looks after a job turned terminal, via a heap of deadlines.
"""

from __future__ import annotations

import collections
import datetime as dt
import enum
import heapq
import json
import math
import string
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._catalog import MIDJOURNEY_MODEL
from ._lengths import draw as draw_lengths

if TYPE_CHECKING:
    import random

_BASE36: Final = string.digits + string.ascii_lowercase


def base36(number: int) -> str:
    """``number`` in lowercase base 36, as NanoGPT's run ids use it."""
    digits = []
    while True:
        number, digit = divmod(number, 36)
        digits.append(_BASE36[digit])
        if not number:
            return "".join(reversed(digits))


class JobStatus(enum.StrEnum):
    """A job's state; the wire spellings per envelope live in the routes."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the state is final."""
        return self in _TERMINAL


_TERMINAL: Final = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@attrs.define
class LedgerEntry:
    """One accepted submit and what it cost."""

    run_id: str
    key: str
    route: str
    model: str
    payload: dict[str, Any]
    precharge: float
    created_at: float
    final_cost: float | None = None
    refunded: bool = False
    delivered: bool = True


@attrs.define
class Job:
    """The emulator's record of one run; `status` is as of the last time anyone looked."""

    run_id: str
    key: str
    model: str
    created_at: float
    queue_end: float
    run_end: float
    outcome: JobStatus
    envelope: str
    precharge: float
    planned_cost: float
    nsfw: bool = False
    conversation_uuid: str | None = None
    parent_run_id: str | None = None
    index: int | None = None
    #: Length of the finished video, as its MP4 header will say.
    video_seconds: float = 5.0
    ledger: LedgerEntry | None = None
    settled: bool = False
    status: JobStatus = JobStatus.QUEUED

    def status_at(self, now: float) -> JobStatus:
        """The state at emulated time ``now``; a reached terminal state never changes."""
        if self.settled or now >= self.run_end:
            return self.outcome
        if now >= self.queue_end:
            return JobStatus.PROCESSING
        return JobStatus.QUEUED


@attrs.define
class Stats:
    """What the emulator saw; times are real loop seconds (``loop.time()``)."""

    requests: collections.Counter[str] = attrs.field(factory=collections.Counter)
    rate_limited: collections.Counter[str] = attrs.field(factory=collections.Counter)
    polls: collections.Counter[str] = attrs.field(factory=collections.Counter)
    faults: collections.Counter[str] = attrs.field(factory=collections.Counter)
    #: Every request that reached the limiter, admitted or not.
    arrivals: list[tuple[float, str]] = attrs.field(factory=list)
    #: The subset of `arrivals` the limiter let through.
    admitted: list[tuple[float, str]] = attrs.field(factory=list)
    completed_at: dict[str, float] = attrs.field(factory=dict)
    #: When each run's answered status polls arrived.
    poll_times: collections.defaultdict[str, list[float]] = attrs.field(
        factory=lambda: collections.defaultdict(list)
    )
    first_seen_terminal: dict[str, float] = attrs.field(factory=dict)


@attrs.define
class Clock:
    """Emulated seconds since start, from the running loop's clock."""

    time_scale: float
    start: float
    #: Wall-clock epoch seconds at start, for ISO timestamps and run ids.
    epoch: float
    #: Seconds the server's wall clock runs ahead of the client's (negative: behind).
    skew: float = 0.0

    def to_real(self, emulated: float) -> float:
        """The loop time at which emulated time ``emulated`` is reached."""
        return self.start + emulated / self.time_scale

    def iso(self, emulated: float, *, coarse: bool = False) -> str:
        """The ISO-8601 UTC wall-clock timestamp at which emulated time ``emulated`` happens.

        Real time, not emulated: a client compares these with its own clock (to date the run
        a lost submit created), and a compressed clock would run hours ahead of it. The
        server's ``skew`` is added; ``coarse`` truncates to whole seconds.
        """
        seconds = self.epoch + emulated / self.time_scale + self.skew
        if coarse:
            moment = dt.datetime.fromtimestamp(math.floor(seconds), dt.UTC)
            return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
        moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.define
class JobPlan:
    """Everything about a job's future, drawn from the seeded RNG when it is created."""

    queue_seconds: tuple[float, float]
    run_seconds: tuple[float, float]
    failure_rate: float
    nsfw_rate: float
    cancel_rate: float
    envelope: str
    #: the shape of job lengths (see `_lengths`)
    lengths: str = "uniform"


@attrs.define
class State:
    """Balances, jobs and the ledger of one emulator."""

    balances: dict[str, float]
    plan: JobPlan
    rng: random.Random
    jobs: dict[str, Job] = attrs.field(factory=dict, init=False)
    by_key: dict[str, list[Job]] = attrs.field(init=False)
    ledger: list[LedgerEntry] = attrs.field(factory=list, init=False)
    stats: Stats = attrs.field(factory=Stats, init=False)
    video_lengths: dict[str, float] = attrs.field(factory=dict, init=False)
    _deadlines: list[tuple[float, str]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        self.by_key = {key: [] for key in self.balances}

    def _new_run_id(self, clock: Clock, now: float) -> str:
        stamp = base36(int((clock.epoch + now) * 1000))
        while True:
            run_id = "vid_" + stamp + "".join(self.rng.choices(_BASE36, k=9))
            if run_id not in self.jobs:
                return run_id

    def create(
        self,
        clock: Clock,
        now: float,
        *,
        key: str,
        route: str,
        model: str,
        payload: dict[str, Any],
        precharge: float,
        conversation_uuid: str | None = None,
        parent_run_id: str | None = None,
        index: int | None = None,
        video_seconds: float = 5.0,
    ) -> Job:
        """Accept a submit: draw its future, charge the precharge and write the ledger."""
        plan = self.plan
        run_id = self._new_run_id(clock, now)
        queued, running = draw_lengths(
            plan.lengths, model, plan.queue_seconds, plan.run_seconds, self.rng
        )
        queue_end = now + queued
        run_end = queue_end + running
        draw = self.rng.random()
        nsfw = plan.failure_rate <= draw < plan.failure_rate + plan.nsfw_rate
        if draw < plan.failure_rate + plan.nsfw_rate:
            outcome = JobStatus.FAILED
        elif draw < plan.failure_rate + plan.nsfw_rate + plan.cancel_rate:
            outcome = JobStatus.CANCELLED
        else:
            outcome = JobStatus.COMPLETED
        planned_cost = round(precharge * self.rng.uniform(0.6, 1.0), 4)
        envelope = plan.envelope
        if envelope == "mixed":
            envelope = self.rng.choice(("nested", "flat"))
        entry = LedgerEntry(
            run_id=run_id,
            key=key,
            route=route,
            model=model,
            payload=payload,
            precharge=precharge,
            created_at=now,
        )
        job = Job(
            run_id=run_id,
            key=key,
            model=model,
            created_at=now,
            queue_end=queue_end,
            run_end=run_end,
            outcome=outcome,
            envelope=envelope,
            precharge=precharge,
            planned_cost=planned_cost,
            nsfw=nsfw,
            conversation_uuid=conversation_uuid,
            parent_run_id=parent_run_id,
            index=index,
            video_seconds=video_seconds,
            ledger=entry,
        )
        self.balances[key] = round(self.balances[key] - precharge, 6)
        self.ledger.append(entry)
        self._add(job)
        return job

    def seed_midjourney(self, clock: Clock, now: float, key: str) -> Job:
        """A completed ``midjourney-video`` run owned by ``key``, outside the ledger.

        It was created an hour (of real time) before ``now``, like a run made in an earlier
        session: a client reconciling a lost submit must never take it for a new run.
        """
        now -= 3600 * clock.time_scale
        job = Job(
            run_id=self._new_run_id(clock, now),
            key=key,
            model=MIDJOURNEY_MODEL,
            created_at=now,
            queue_end=now,
            run_end=now,
            outcome=JobStatus.COMPLETED,
            envelope=self.plan.envelope if self.plan.envelope != "mixed" else "nested",
            precharge=0.0,
            planned_cost=0.0,
        )
        self._add(job)
        return job

    def _add(self, job: Job) -> None:
        self.jobs[job.run_id] = job
        self.by_key[job.key].append(job)
        heapq.heappush(self._deadlines, (job.run_end, job.run_id))

    def settle_due(self, clock: Clock, now: float) -> None:
        """Move the money of every job that turned terminal by ``now``."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, run_id = heapq.heappop(deadlines)
            job = self.jobs[run_id]
            if not job.settled:
                self._settle(clock, job)

    def _settle(self, clock: Clock, job: Job) -> None:
        job.settled = True
        job.status = job.outcome
        self.stats.completed_at[job.run_id] = clock.to_real(job.run_end)
        entry = job.ledger
        if entry is None:
            return
        if job.outcome is JobStatus.COMPLETED:
            refund = job.precharge - job.planned_cost
            entry.final_cost = job.planned_cost
        else:
            # Failed and cancelled jobs are refunded in full (REFERENCE §5).
            refund = job.precharge
            entry.refunded = True
        self.balances[job.key] = round(self.balances[job.key] + refund, 6)

    def refresh(self, job: Job, now: float) -> JobStatus:
        """Update and return ``job.status`` as of ``now`` (call `settle_due` first)."""
        job.status = job.status_at(now)
        return job.status

    def cancel(self, clock: Clock, job: Job, now: float) -> bool:
        """Force ``job`` to cancelled unless it is already terminal; refunds the precharge."""
        if job.status_at(now).terminal:
            return False
        job.outcome = JobStatus.CANCELLED
        job.nsfw = False
        job.run_end = now
        job.queue_end = min(job.queue_end, now)
        self._settle(clock, job)
        return True

    def duplicate_charges(self) -> int:
        """Accepted submits beyond the first with the same key, route and body, still charged."""
        charged: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for entry in self.ledger:
            if not entry.refunded:
                body = json.dumps(entry.payload, sort_keys=True, separators=(",", ":"))
                charged[entry.key, entry.route, body] += 1
        return sum(count - 1 for count in charged.values() if count > 1)
