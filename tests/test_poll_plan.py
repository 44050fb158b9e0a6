"""The poll plan as a pure function: tables of (state, update, learned durations, now) -> delay."""

from __future__ import annotations

import random

import pytest

from aiovideoextend import JobStatus, PollPolicy, StatusUpdate
from aiovideoextend._plan import (
    LAG_SHARE,
    MAX_GAP,
    MIN_GAP,
    MIN_SAMPLES,
    SCOUTS,
    Durations,
    JobPlan,
    earliest_end,
    is_scout,
    next_delay,
)
from aiovideoextend.testing._lengths import FAST_FACTOR, JOB_LENGTHS, draw

POLICY = PollPolicy(jitter=0)


def job_plan(born: float | None, interval: float, expected_end: float | None) -> JobPlan:
    """A job's plan as of loop time 0: born at ``born``, its blind wait ``interval``."""
    return JobPlan(
        0.0, born, expected_end, interval
    )  # first 5, min 1, max 60, backoff 1.3, interval 4.5


def zero() -> float:
    return 0.0


def running(**fields: float) -> StatusUpdate:
    return StatusUpdate(run_id="r", status=JobStatus.PROCESSING, **fields)


def learned(*durations: float, births: tuple[float, ...] = ()) -> Durations:
    """Durations of a model whose jobs were born at ``births`` (by default long ago, one per
    ended job)."""
    d = Durations()
    for at in births or (-1000.0,) * len(durations):
        d.born(at)
    for duration in durations:
        d.ended(duration)
    return d


# Ten jobs born at 0 ended after 100..145 s (every 5 s).
TEN = tuple(100.0 + 5 * i for i in range(10))


@pytest.mark.parametrize(
    ("job", "update", "durations", "now", "expected"),
    [
        # A hint within reach: poll just past it (never under min_interval).
        (job_plan(0.0, 5.0, None), running(eta=12.0), None, 3.0, 12.0),
        (job_plan(0.0, 5.0, None), running(eta=0.2), None, 3.0, 1.0),
        # A hint beyond max_interval: come back at max_interval.
        (job_plan(0.0, 5.0, None), running(eta=600.0), None, 3.0, 60.0),
        # The submit's eta stands while the status bodies say nothing.
        (job_plan(0.0, 5.0, 50.0), running(), learned(*TEN), 20.0, 30.0),
        # No learning (learn=False) or a job of unknown age: back off from `first`.
        (job_plan(0.0, 5.0, None), running(), None, 3.0, 5.0),
        (job_plan(None, 6.5, None), running(), learned(*TEN), 30.0, 6.5),
        # Nothing learned yet: the oldest jobs scout (back off), a younger one waits for news.
        (job_plan(0.0, 5.0, None), None, learned(births=(0.0, 1.0, 2.0, 3.0)), 0.0, 5.0),
        (job_plan(3.0, 5.0, None), None, learned(births=(0.0, 1.0, 2.0, 3.0)), 3.0, 60.0),
        # Fewer than MIN_SAMPLES ended jobs skip nothing: one early end is not a sample. It only
        # makes the jobs at least as old as it was poll every interval (they may be done).
        (job_plan(1.0, 5.0, None), running(), learned(40.0, births=(0, 1, 2, 9)), 30.0, 5.0),
        (job_plan(1.0, 5.0, None), running(), learned(40.0, births=(0, 1, 2, 9)), 50.0, 4.5),
        (job_plan(9.0, 5.0, None), running(), learned(40.0, births=(0, 1, 2, 9)), 45.0, 60.0),
        (job_plan(9.0, 5.0, None), running(), learned(40.0, births=(0, 1, 2, 9)), 50.0, 4.5),
        # Learned: a young job waits until the floor (the low quantile, shrunk 10/11) ...
        (job_plan(0.0, 5.0, None), running(), learned(*TEN), 50.0, 100.0 * 10 / 11 - 50.0),
        (job_plan(0.0, 5.0, None), running(), learned(*TEN), 10.0, 60.0),  # max_interval
        # (only the jobs that reached that age count: here none, so no floor yet; the sparse
        # spacing is capped at MAX_GAP intervals)
        (
            job_plan(0.0, 5.0, None),
            running(),
            learned(*TEN, births=(0.0,) * 10),
            10.0,
            MAX_GAP * 4.5,
        ),
        # ... densely where they end (never under MIN_GAP intervals) ...
        (job_plan(0.0, 5.0, None), running(), learned(*TEN), 144.0, MIN_GAP * 4.5),
        # ... and every interval past the oldest seen, or when all jobs took as long.
        (job_plan(0.0, 5.0, None), running(), learned(*TEN), 200.0, 4.5),
        (job_plan(0.0, 5.0, None), running(), learned(40.0, 40.0, 40.0), 41.0, 4.5),
    ],
)
def test_next_delay(
    job: JobPlan,
    update: StatusUpdate | None,
    durations: Durations | None,
    now: float,
    expected: float,
) -> None:
    """The delay for each kind of knowledge, jitter off."""
    assert next_delay(
        job, update, policy=POLICY, learned=durations, now=now, rand=zero
    ) == pytest.approx(expected)


def test_back_off_grows_to_max_interval() -> None:
    """Blind polling backs off by `backoff` from `first`, up to `max_interval`."""
    plan = job_plan(None, POLICY.first, None)
    delays = [
        next_delay(plan, None, policy=POLICY, learned=None, now=0.0, rand=zero) for _ in range(14)
    ]
    assert delays[:3] == pytest.approx([5.0, 6.5, 8.45])
    assert delays == sorted(delays)
    assert delays[-1] == POLICY.max_interval


@pytest.mark.parametrize(
    ("samples", "now", "progress", "expected"),
    [
        # 20 % -> 40 % in 10 s: 60 % to go at 2 %/s.
        ([(0.0, 20.0)], 10.0, 40.0, 30.0),
        # The first sight of a progress only records it: no hint yet (blind back-off).
        ([], 10.0, 40.0, 5.0),
        # A progress going back restarts the sample.
        ([(0.0, 50.0)], 10.0, 40.0, 5.0),
    ],
)
def test_progress_rate_hint(
    samples: list[tuple[float, float]], now: float, progress: float, expected: float
) -> None:
    plan = job_plan(None, 5.0, None)
    plan.sample = samples[0] if samples else None
    update = running(progress=progress)
    delay = next_delay(plan, update, policy=POLICY, learned=None, now=now, rand=zero)
    assert delay == pytest.approx(expected)


@pytest.mark.parametrize("draw_value", [0.0, 0.25, 0.999])
def test_jitter_stays_within_its_share(draw_value: float) -> None:
    """Jitter spreads a delay by at most its fraction either way."""
    policy = PollPolicy(jitter=0.1)
    plan = job_plan(None, 10.0, None)
    delay = next_delay(plan, None, policy=policy, learned=None, now=0.0, rand=lambda: draw_value)
    assert 9.0 <= delay <= 11.0
    assert delay == pytest.approx(10.0 * (1 + 0.1 * (2 * draw_value - 1)))


def test_a_seeded_source_makes_the_plan_deterministic() -> None:
    """The same seed, the same delays; no module-level random state is read."""

    def run(seed: int) -> list[float]:
        rng = random.Random(seed)
        durations = learned(*TEN)
        plan = job_plan(0.0, 5.0, None)
        now, delays = 0.0, []
        while now < 200:
            delay = next_delay(
                plan, running(), policy=PollPolicy(), learned=durations, now=now, rand=rng.random
            )
            delays.append(delay)
            now += delay
        return delays

    random.seed(1)
    first = run(7)
    random.seed(2)
    assert run(7) == first
    assert run(8) != first


@pytest.mark.parametrize(
    ("durations", "births", "now", "expected"),
    [
        # Nothing ended: nothing known.
        ((), (), 10.0, None),
        # Not learned: no floor, but the jobs as old as the shortest seen are worth a poll.
        ((50.0, 40.0), (0.0,) * MIN_SAMPLES, 100.0, 40.0),
        # Learned from ten: the 3 % quantile (the shortest), shrunk by m/(m+1) where m jobs
        # reached that age.
        (TEN, (0.0,) * 10, 150.0, 100.0 * 10 / 11),
        # Two more, born late, have not reached it yet: they do not count.
        (TEN, (0.0,) * 10 + (120.0, 130.0), 150.0, 100.0 * 10 / 11),
    ],
)
def test_floor_and_earliest_end(
    durations: tuple[float, ...], births: tuple[float, ...], now: float, expected: float | None
) -> None:
    d = learned(*durations, births=births)
    assert d.wake_age(now) == (None if expected is None else pytest.approx(expected))
    if d.learned:
        assert d.floor(now) == pytest.approx(expected)
    else:
        assert d.floor(now) is None
    end = earliest_end(5.0, d, now)
    assert end == (None if expected is None else pytest.approx(5.0 + expected))
    assert earliest_end(None, d, now) is None
    assert earliest_end(5.0, None, now) is None


def test_gaps_shrink_where_jobs_end() -> None:
    """Past the floor, a learned model's gaps shrink as its jobs' mean residual life does."""
    d = learned(*TEN)
    gaps = [
        next_delay(
            job_plan(0.0, 5.0, None), running(), policy=POLICY, learned=d, now=age, rand=zero
        )
        for age in range(91, 144, 6)
    ]
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[0] > POLICY.interval > gaps[-1]


@pytest.mark.parametrize(
    "durations",
    [
        [60.0 + i for i in range(200)],  # uniform
        [100.0 + (i % 10) for i in range(200)],  # narrow
        [50.0 + i * i / 100 for i in range(200)],  # long tail
    ],
)
def test_calibrated_median_lag(durations: list[float]) -> None:
    """The gaps are scaled so that, each end found uniformly within the gap around it, half of
    the ended jobs would be found within LAG_SHARE intervals."""
    d = learned(*durations)
    share = [min(1.0, LAG_SHARE / (d.gap(t) or 1.0)) for t in durations]
    assert sum(share) / len(share) == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("age", "expected"),
    [(0.0, 122.5), (99.0, 23.5), (100.0, 25.0), (140.0, 5.0), (145.0, None), (1e6, None)],
)
def test_mean_residual_life(age: float, expected: float | None) -> None:
    """How much longer the ended jobs older than ``age`` took, on average."""
    d = learned(*TEN)
    assert d.residual(age) == (None if expected is None else pytest.approx(expected))


def test_ended_says_when_there_is_news() -> None:
    """The first end and the one that makes the model learned are news for the waiting jobs."""
    d = Durations()
    flags = [d.ended(float(i)) for i in range(MIN_SAMPLES + 2)]
    assert flags == [i in {0, MIN_SAMPLES - 1} for i in range(MIN_SAMPLES + 2)]
    assert d.typical() == d.samples[len(d.samples) // 2]


def test_scouts_are_the_oldest() -> None:
    d = learned(births=tuple(float(i) for i in range(SCOUTS + 3)))
    assert [d.is_scout(float(i)) for i in range(SCOUTS + 3)] == [i < SCOUTS for i in range(6)]
    assert Durations().is_scout(0.0)
    # Of unknown age, or with learning off: polls on its own.
    assert is_scout(None, d)
    assert is_scout(float(SCOUTS + 2), None)
    assert not is_scout(float(SCOUTS + 2), d)


# -- the emulator's job-length distributions -----------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model", "low", "high"),
    [
        ("uniform", "m", 65.0, 300.0),
        ("narrow", "m", 0.9 * 182.5, 1.1 * 182.5),
        ("bimodal", "veo3-1-fast-extend", 65.0 * FAST_FACTOR, 300.0 * FAST_FACTOR),
        ("bimodal", "veo3-1-extend", 65.0, 300.0),
        ("lognormal", "m", 5.0, 60.0 + 1500.0),
    ],
)
def test_job_lengths_stay_in_their_ranges(kind: str, model: str, low: float, high: float) -> None:
    """Each distribution's total job length (queue + run) stays within its shape's bounds."""
    rng = random.Random(1)
    totals = [sum(draw(kind, model, (5.0, 60.0), (60.0, 240.0), rng)) for _ in range(2000)]
    assert low <= min(totals)
    assert max(totals) <= high


def test_lognormal_has_the_run_range_midpoint_as_median() -> None:
    rng = random.Random(2)
    runs = sorted(draw("lognormal", "m", (0.0, 0.0), (60.0, 240.0), rng)[1] for _ in range(4001))
    assert 140.0 <= runs[2000] <= 160.0
    # A tail both ways, beyond the uniform range.
    assert runs[0] < 60.0
    assert runs[-1] > 240.0


def test_uniform_draws_as_before() -> None:
    """The default shape draws queue then run uniformly: seeds reproduce earlier emulators."""
    a, b = random.Random(3), random.Random(3)
    assert draw("uniform", "m", (5.0, 60.0), (60.0, 240.0), a) == (
        b.uniform(5.0, 60.0),
        b.uniform(60.0, 240.0),
    )
    assert set(JOB_LENGTHS) == {"uniform", "narrow", "lognormal", "bimodal"}
