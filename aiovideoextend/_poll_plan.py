"""The poll plan: when to poll a job next, as a pure function of what is known about it.

No event loop, no I/O, no module-level random state: every input is an argument (the job's
`JobPlan`, its latest `StatusUpdate`, the `PollPolicy`, the `Durations` learned from the
session's finished jobs of its model, the loop time ``now`` and a source of uniform draws), so a
seeded source makes a run deterministic and a table of cases tests it.

Without a hint from the server the plan works from the durations learned from *finished* jobs of
the same model, and only once ``MIN_SAMPLES`` of them ended (one job is no sample):

- below a low quantile of those durations (shrunk for few samples) the job is very unlikely to be
  done: wait until it reaches that age;
- past it, space polls by the square root of the job's *mean residual life* (how much longer the
  jobs that reached this age took, on average) times the policy's ``interval``: sparse while most
  of the model's jobs still have long to go, dense where they are ending. For a job's expected
  detection lag at a given number of polls that spacing is the optimum (gap ~ 1/sqrt(hazard)).

Before that, only a model's oldest jobs (``SCOUTS``) poll, backing off from ``first``; the others
wait for their news: once a job of the model ended, those at least as old poll like scouts (the
scheduler brings them forward then, and again once the model is learned). A single end only
ever makes jobs poll sooner, never later. Without
learning (``learn=False``, or a job attached by id, of unknown age) every job backs off so.
"""

from __future__ import annotations

import bisect
import math
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
    "is_scout",
    "next_delay",
]

#: ended jobs of a model needed before its durations steer polling (one job is no sample)
MIN_SAMPLES: Final = 3
#: before a model is learned, only this many of its oldest jobs poll (backing off from ``first``)
SCOUTS: Final = 3
#: the share of jobs whose early end we accept to notice late (see `Durations.floor`)
QUANTILE: Final = 0.03
#: gap = SPREAD * sqrt(interval * mean residual life), within [min_interval, MAX_GAP * interval]
SPREAD: Final = 0.43
MIN_GAP: Final = 0.5
MAX_GAP: Final = 2.0


class Durations:
    """What a session saw of one model's jobs: when each was born, how long the ended took."""

    __slots__ = ("_sums", "births", "samples")

    def __init__(self) -> None:
        self.births: list[float] = []
        #: durations of the ended jobs, sorted
        self.samples: list[float] = []
        #: suffix sums of ``samples`` (``_sums[i] = sum(samples[i:])``), rebuilt when the
        #: number of samples changed (so inserting into ``samples`` directly is fine too)
        self._sums: list[float] = [0.0]

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
        samples = self.samples
        i = bisect.bisect_right(samples, age)
        if i == len(samples):
            return None
        sums = self._sums
        if len(sums) != len(samples) + 1:
            sums = self._sums = _suffix_sums(samples)
        return sums[i] / (len(samples) - i) - age

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
    elif durations is None or plan.born is None or not durations.learned:
        if (
            durations is not None
            and plan.born is not None
            and not _awake(plan.born, durations, now)
        ):
            # Older jobs of the model scout: this one waits for their news.
            delay = policy.max_interval
        else:
            # Nothing learned (yet): back off from ``first``.
            delay = plan.interval
            plan.interval = min(plan.interval * policy.backoff, policy.max_interval)
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


def _awake(born: float, durations: Durations, now: float) -> bool:
    """Whether a job of a model not learned yet polls: it is a scout, or some job of the model
    ended younger than it is now."""
    if durations.is_scout(born):
        return True
    samples = durations.samples
    return bool(samples) and samples[0] <= now - born


def _learned_delay(born: float, policy: PollPolicy, durations: Durations, now: float) -> float:
    age = now - born
    floor = durations.floor(now)
    if floor is not None and age < floor:
        return floor - age
    residual = durations.residual(age)
    if residual is None:
        # Older than every ended job: the tail, nothing to say but the interval.
        return policy.interval
    gap = SPREAD * math.sqrt(policy.interval * residual)
    return min(max(gap, MIN_GAP * policy.interval), MAX_GAP * policy.interval)
