"""Poll planning: when to poll a job next, from what is known of it and of its model.

Plain values in, a delay out: the job's :class:`JobPlan` (which this updates: the blind backoff's
interval, the progress sample), its latest status, the policy, the durations learned from the
session's ended jobs of its model, the loop time and a random source.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from ._config import PollPolicy
from .models import StatusUpdate

__all__ = ["SCOUTS", "Durations", "JobPlan", "earliest_end", "estimate", "is_scout", "next_delay"]

#: before any job of a model ended, only this many of its oldest jobs are polled closely
SCOUTS = 3


class JobPlan:
    """What planning knows of one job besides its status."""

    __slots__ = ("born", "expected_end", "interval", "sample", "seen_running")

    def __init__(self, now: float, born: float | None, eta: float | None, first: float) -> None:
        #: loop time of the submit (None: attached by id, of any age)
        self.born = born
        #: loop time the submit's eta points at (None: no eta)
        self.expected_end = now + eta if eta is not None and eta > 0 else None
        #: the next blind wait, backing off from the policy's ``first``
        self.interval = first
        #: (loop time, percent) of the first progress seen, for a rate
        self.sample: tuple[float, float] | None = None
        #: loop time of the last poll that found the job still running
        self.seen_running = now


class Durations:
    """What this session saw of one model's jobs: when each was born, how long the ended took."""

    __slots__ = ("births", "samples")

    #: the share of jobs whose early end we accept to notice late: below this quantile of the
    #: durations seen, a poll would almost never find the job done
    QUANTILE = 0.03

    def __init__(self) -> None:
        self.births: list[float] = []
        self.samples: list[float] = []

    def floor(self, now: float) -> float | None:
        """A duration few jobs of the model finish under (None: no job ended yet).

        The low quantile ``q`` of the durations seen, shrunk by 1/(m + 1) where m jobs have
        reached that age by now: the smallest of m draws overshoots the true minimum by about
        that share of the spread (taking ``q`` itself as the spread). Counting the jobs still
        running, not only the ended ones, is what makes one early end among many informative.
        """
        samples = self.samples
        if not samples:
            return None
        q = samples[int(self.QUANTILE * len(samples))]
        m = bisect.bisect_right(self.births, now - q)
        return q * m / (m + 1)

    def typical(self) -> float | None:
        """The median duration of the ended jobs (None: none ended yet)."""
        samples = self.samples
        return samples[len(samples) // 2] if samples else None


def is_scout(born: float | None, learned: Durations | None) -> bool:
    """Whether a job born at ``born`` is among the oldest jobs of its model, polled closely while
    nothing is learned yet: younger jobs are unlikely to end before them, so they wait for news."""
    if born is None or learned is None:
        return True
    births = learned.births
    return born <= births[min(SCOUTS, len(births)) - 1]


def earliest_end(born: float | None, learned: Durations | None, now: float) -> float | None:
    """Loop time before which a job born at ``born`` is unlikely to be done (None: not known)."""
    if born is None or learned is None:
        return None
    floor = learned.floor(now)
    return None if floor is None else born + floor


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
    """Seconds until the next poll of a job.

    A hint from the server places the poll where the job should be done; without one, the
    durations learned from this session's finished jobs of the same model say how long to
    skip; failing both, back off from ``first``. Clamped to [min_interval, max_interval].
    ``learned`` is None when the policy does not learn.
    """
    hint: float | None = None
    if update is not None and update.eta is not None and update.eta >= 0:
        hint = update.eta / time_scale
    elif update is not None and update.progress is not None and 0 < update.progress < 100:
        sample = plan.sample
        if sample is None or update.progress < sample[1]:
            plan.sample = (now, update.progress)
        elif update.progress > sample[1]:
            rate = (update.progress - sample[1]) / (now - sample[0])
            hint = (100 - update.progress) / rate
    expected_end = plan.expected_end
    if hint is None and expected_end is not None and now < expected_end:
        # The submit's eta still stands while status bodies carry no estimate of their own.
        hint = expected_end - now
    if hint is not None:
        if hint <= policy.max_interval:
            # Due within reach: aim just past it, not up to 10 % early (a wasted poll).
            delay = max(hint, policy.min_interval)
            delay += policy.jitter * policy.min_interval * rand()
            return min(delay, policy.max_interval)
        delay = policy.max_interval
    else:
        hold = earliest_end(plan.born, learned, now)
        if hold is None and not is_scout(plan.born, learned):
            # Nothing learned about this model yet, and older jobs are polled closely: when
            # the first of them ends, the scheduler brings this one forward if it is due.
            delay = policy.max_interval
        elif hold is None:
            delay = plan.interval
            plan.interval = min(plan.interval * policy.backoff, policy.max_interval)
        else:
            delay = max(hold - now, policy.interval)
    delay = min(max(delay, policy.min_interval), policy.max_interval)
    if policy.jitter:
        delay *= 1 + policy.jitter * (2 * rand() - 1)
    return delay
