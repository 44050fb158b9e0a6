"""The poll plan: when to poll a job next, as a pure function of what is known about it.

No event loop, no I/O, no module-level random state: every input is an argument (the job's
`JobPlan`, its latest `StatusUpdate`, the `PollPolicy`, the `Durations` learned from the
session's finished jobs of its model, the loop time ``now`` and a source of uniform draws), so a
seeded source makes a run deterministic and a table of cases tests it.

Without a hint from the server the plan works from the durations learned from *finished* jobs of
the same model, and only once ``MIN_SAMPLES`` of them ended (one job is no sample):

- below a low quantile of those durations (shrunk for few samples) the job is very unlikely to be
  done: wait until it reaches that age;
- past it, space polls in proportion to the job's *mean residual life* (how much longer the
  model's jobs that reached this age took, on average): sparse while most of them still have long
  to go, dense where they end. (For the mean detection lag the optimum would be its square root,
  gap ~ 1/sqrt(hazard); for the median lag, which only half the jobs decide, more contrast buys
  more: spend the lag budget where the jobs end.) The scale is set per model so that
  the median detection lag over its ended jobs would be ``LAG_SHARE`` intervals (the documented
  5-s loop's is 2.5 s): the lag budget is spent where it saves the most polls. Gaps stay within
  [``MIN_GAP``, ``MAX_GAP``] intervals; past the oldest ended job, every interval.

Before that, only a model's oldest jobs (``SCOUTS``) poll, backing off from ``first``; the others
wait for news. Once a job of the model ended, those at least as old may be done too and poll
every interval (the scheduler brings them forward then, and again once the model is learned): a
single end only ever makes jobs poll sooner, never later. Without learning (``learn=False``, or a
job attached by id, of unknown age) every job backs off from ``first``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ._config import PollPolicy
    from .models import StatusUpdate

__all__ = [
    "MIN_SAMPLES",
    "SCOUTS",
    "Durations",
    "JobPlan",
    "earliest_end",
    "estimate",
    "is_scout",
    "next_delay",
]

#: ended jobs of a model needed before its durations steer polling (one job is no sample)
MIN_SAMPLES: Final = 3
#: before a model is learned, only this many of its oldest jobs poll (backing off from ``first``)
SCOUTS: Final = 3
#: the share of jobs whose early end we accept to notice late (see `Durations.floor`)
QUANTILE: Final = 0.03
#: the median detection lag aimed at, in intervals (the documented 5-s loop's is 2.5 s)
LAG_SHARE: Final = 0.5
#: gaps go as the mean residual life to this power (1: a fixed share of the time still to go;
#: 0.5 would be the optimum for the mean lag, the median lag gains from more contrast)
CONTRAST: Final = 1.0
#: the gaps between polls of a learned model's job stay within [MIN_GAP, MAX_GAP] intervals
MIN_GAP: Final = 0.33
MAX_GAP: Final = 3.0


class Durations:
    """What a session saw of one model's jobs: when each was born, how long the ended took."""

    __slots__ = ("_norm", "_scale", "_snap", "_sums", "births", "samples")

    def __init__(self) -> None:
        self.births: list[float] = []
        #: durations of the ended jobs, sorted
        self.samples: list[float] = []
        #: a copy of ``samples`` with its suffix sums (``_sums[i] = sum(_snap[i:])``) and the mean
        #: residual life at its median, rebuilt once ``samples`` grew by an eighth (so inserting
        #: into ``samples`` directly is fine too, and a session's rebuilds cost O(jobs))
        self._snap: list[float] = []
        self._sums: list[float] = [0.0]
        self._norm: float | None = None
        #: gaps are ``_scale * spacing(age)`` intervals (see `_calibrate`)
        self._scale = 1.0

    def born(self, at: float) -> None:
        bisect.insort(self.births, at)

    def ended(self, duration: float) -> bool:
        """Take one ended job's duration; True when it is news for the jobs waiting: the
        model's first end (they may be done too), or the one that makes the model learned."""
        bisect.insort(self.samples, duration)
        return len(self.samples) in {1, MIN_SAMPLES}

    @property
    def learned(self) -> bool:
        return len(self.samples) >= MIN_SAMPLES

    def is_scout(self, born: float) -> bool:
        """Whether a job born at ``born`` is among the model's ``SCOUTS`` oldest."""
        births = self.births
        return not births or born <= births[min(SCOUTS, len(births)) - 1]

    def wake_age(self, now: float) -> float | None:
        """The age from which a job of the model is worth polling (None: no job ended yet).

        Learned, the `floor`; before that, the shortest duration seen: one end says nothing
        about the ages to skip, but it does say that jobs that old may be done.
        """
        if self.learned:
            return self.floor(now)
        return self.samples[0] if self.samples else None

    def floor(self, now: float) -> float | None:
        """An age few jobs of the model finish under (None: not learned yet).

        The ``QUANTILE`` of the durations seen, shrunk by 1/(m + 1) where m jobs have reached
        that age by now: the smallest of m draws overshoots the true minimum by about that share
        of the spread (taking the quantile itself as the spread).
        """
        if not self.learned:
            return None
        samples = self.samples
        q = samples[int(QUANTILE * len(samples))]
        m = bisect.bisect_right(self.births, now - q)
        return q * m / (m + 1)

    def residual(self, age: float) -> float | None:
        """Mean further time the ended jobs older than ``age`` took (None: none was)."""
        snap = self._snapshot()
        i = bisect.bisect_right(snap, age)
        if i == len(snap):
            return None
        return self._sums[i] / (len(snap) - i) - age

    def spacing(self, age: float) -> float | None:
        """The gap between polls at ``age``, in units of the gap at the median duration: (mean
        residual life at ``age`` / mean residual life at the median duration) ** ``CONTRAST``.
        None past the oldest ended job, or when the durations do not spread."""
        residual = self.residual(age)
        norm = self._norm
        if residual is None or norm is None:
            return None
        ratio: float = (residual / norm) ** CONTRAST
        return ratio

    def _snapshot(self) -> list[float]:
        samples, snap = self.samples, self._snap
        if len(samples) >= len(snap) + max(1, len(snap) // 8):
            snap = self._snap = list(samples)
            self._sums = _suffix_sums(snap)
            self._norm = None
            norm = self.residual(snap[len(snap) // 2])
            self._norm = norm if norm is not None and norm > 0 else None
            self._scale = self._calibrate(snap)
        return snap

    def gap(self, age: float) -> float | None:
        """The gap between polls at ``age``, in intervals, clamped to [MIN_GAP, MAX_GAP] (None:
        past the oldest ended job, or the durations do not spread)."""
        spacing = self.spacing(age)
        if spacing is None:
            return None
        return min(max(self._scale * spacing, MIN_GAP), MAX_GAP)

    def _calibrate(self, snap: list[float]) -> float:
        """The scale of the gaps at which the median detection lag over the durations seen
        (each end found uniformly within the gap around it) is ``LAG_SHARE`` intervals: the lag
        budget is spent where it buys the most polls. Up to 256 of the durations, by bisection."""
        spacings = [self.spacing(d) for d in snap[:: max(1, len(snap) // 256)]]

        def found_in_time(scale: float) -> float:
            share = 0.0
            for spacing in spacings:
                gap = 1.0 if spacing is None else min(max(scale * spacing, MIN_GAP), MAX_GAP)
                share += min(1.0, LAG_SHARE / gap)
            return share / len(spacings)

        low, high = MIN_GAP / 8, 8 * MAX_GAP
        for _ in range(24):
            middle = (low + high) / 2
            if found_in_time(middle) >= 0.5:
                low = middle
            else:
                high = middle
        return low

    def typical(self) -> float | None:
        """The median duration of the ended jobs (None: none ended yet)."""
        samples = self.samples
        return samples[len(samples) // 2] if samples else None


def _suffix_sums(samples: list[float]) -> list[float]:
    sums = [0.0] * (len(samples) + 1)
    for i in range(len(samples) - 1, -1, -1):
        sums[i] = sums[i + 1] + samples[i]
    return sums


class JobPlan:
    """What planning knows of one job besides its status."""

    __slots__ = ("born", "expected_end", "interval", "sample", "seen_running")

    def __init__(self, now: float, born: float | None, eta: float | None, first: float) -> None:
        #: loop time of the submit (None: attached by id, of any age)
        self.born = born
        #: loop time the submit's eta (in loop seconds) points at (None: no eta)
        self.expected_end = now + eta if eta is not None and eta > 0 else None
        #: the next blind wait, backing off from the policy's ``first``
        self.interval = first
        #: (loop time, percent) of the first progress seen, for a rate
        self.sample: tuple[float, float] | None = None
        #: loop time of the last poll that found the job still running
        self.seen_running = now


def is_scout(born: float | None, learned: Durations | None) -> bool:
    """Whether a job born at ``born`` is among its model's ``SCOUTS`` oldest (or of unknown age,
    or learning is off): before the model is learned, only those poll on their own."""
    return born is None or learned is None or learned.is_scout(born)


def earliest_end(born: float | None, learned: Durations | None, now: float) -> float | None:
    """Loop time from which a job born at ``born`` is worth polling (None: nothing known; see
    `Durations.wake_age`)."""
    if born is None or learned is None:
        return None
    age = learned.wake_age(now)
    return None if age is None else born + age


def next_delay(
    plan: JobPlan,
    update: StatusUpdate | None,
    *,
    policy: PollPolicy,
    learned: Durations | None,
    now: float,
    rand: Callable[[], float],
    time_scale: float = 1.0,
) -> float:
    """Seconds until the next poll of the job ``plan`` describes (updates ``plan`` in place:
    the blind back-off's interval, the progress sample).

    ``policy`` is already scaled to loop seconds; ``time_scale`` converts the server's seconds
    (a status's ``eta``) to loop seconds. ``learned`` is None when learning is off. ``rand``
    returns uniform draws in [0, 1).
    """
    durations = learned
    hint = _hint(plan, update, now, time_scale)
    if hint is not None:
        if hint <= policy.max_interval:
            # Due within reach: aim just past it, not up to 10 % early (a wasted poll).
            delay = max(hint, policy.min_interval)
            delay += policy.jitter * policy.min_interval * rand()
            return min(delay, policy.max_interval)
        delay = policy.max_interval
    elif durations is None or plan.born is None:
        # Nothing to learn from: back off from ``first``.
        delay = plan.interval
        plan.interval = min(plan.interval * policy.backoff, policy.max_interval)
    elif not durations.learned:
        delay = _learning_delay(plan, policy, durations, now)
    else:
        delay = _learned_delay(plan.born, policy, durations, now)
    delay = min(max(delay, policy.min_interval), policy.max_interval)
    if policy.jitter:
        delay *= 1 + policy.jitter * (2 * rand() - 1)
    return delay


def _hint(
    plan: JobPlan, update: StatusUpdate | None, now: float, time_scale: float
) -> float | None:
    """Seconds until the server says the job should be done (None: it says nothing)."""
    if update is not None and update.eta is not None and update.eta >= 0:
        return update.eta / time_scale
    if update is not None and update.progress is not None and 0 < update.progress < 100:
        sample = plan.sample
        if sample is None or update.progress < sample[1]:
            plan.sample = (now, update.progress)
        elif update.progress > sample[1]:
            rate = (update.progress - sample[1]) / (now - sample[0])
            return (100 - update.progress) / rate
    if plan.expected_end is not None and now < plan.expected_end:
        # The submit's eta still stands while status bodies carry no estimate of their own.
        return plan.expected_end - now
    return None


def _learning_delay(plan: JobPlan, policy: PollPolicy, durations: Durations, now: float) -> float:
    """Before the model is learned: a job as old as one of the model that ended may be done, so
    it polls every interval; otherwise the oldest (scouts) back off from ``first``, and the
    others wait for news."""
    born = plan.born
    assert born is not None  # noqa: S101  (checked by the caller)
    samples = durations.samples
    if samples and samples[0] <= now - born:
        return policy.interval
    if durations.is_scout(born):
        delay = plan.interval
        plan.interval = min(plan.interval * policy.backoff, policy.max_interval)
        return delay
    return policy.max_interval


def _learned_delay(born: float, policy: PollPolicy, durations: Durations, now: float) -> float:
    age = now - born
    floor = durations.floor(now)
    if floor is not None and age < floor:
        return floor - age
    gap = durations.gap(age)
    # Older than every ended job (the tail), or all took as long: every interval.
    return policy.interval * (1.0 if gap is None else gap)


def estimate(
    born: float | None, learned: Durations | None, now: float
) -> tuple[float, float] | None:
    """(percent complete, seconds remaining) of a job born at ``born``, from the median duration
    of the ended jobs of its model; None when nothing is learned or its age is unknown. Capped
    at 99 % while running: the server has not said it is done."""
    typical = None if born is None or learned is None else learned.typical()
    if born is None or typical is None or typical <= 0:
        return None
    elapsed = now - born
    return min(99.0, max(0.0, 100.0 * elapsed / typical)), max(0.0, typical - elapsed)
