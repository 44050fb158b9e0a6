"""The one backoff formula and the session's waits drawn from it (pure, no server)."""

from __future__ import annotations

import pytest

import aiovideoextend as ave
from aiovideoextend._backoff import Backoff, exponential


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.5, 1.0),  # no jitter at the middle of the draw
        (2, 0.5, 2.0),
        (3, 0.5, 4.0),
        (6, 0.5, 30.0),  # 32 capped at 30
        (0, 0.5, 1.0),  # attempt 0 counts as the first
        (10**6, 0.5, 30.0),  # a huge attempt cannot overflow
        (1, 0.0, 0.8),  # jitter 0.2 spreads to [0.8, 1.2)
        (3, 0.0, 3.2),
        (6, 0.0, 24.0),
    ],
)
def test_exponential_doubles_from_base_up_to_cap(
    attempt: int, rand: float, expected: float
) -> None:
    """base 1 doubles per attempt, capped at 30, spread by +-20 % around the raw value."""
    got = exponential(attempt, base=1.0, cap=30.0, jitter=0.2, rand=rand)
    assert got == pytest.approx(expected)


def test_retries_delay_is_the_same_formula() -> None:
    """Retries.delay answers what the shared formula does for its fields."""
    retries = ave.Retries(base=0.5, cap=7.0, jitter=0.1)
    for attempt in range(1, 8):
        for rand in (0.0, 0.25, 0.99):
            assert retries.delay(attempt, rand) == exponential(
                attempt, base=0.5, cap=7.0, jitter=0.1, rand=rand
            )


@pytest.mark.parametrize(
    ("retry_after", "run_id", "expected"),
    [(None, None, 2.0), (0.5, "vid_1", 2.0), (9.0, "vid_1", 9.0)],
)
def test_backoff_waits_at_least_retry_after_and_announces_it(
    retry_after: float | None, run_id: str | None, expected: float
) -> None:
    """The wait is the formula's, or Retry-After when longer; each is announced as RETRYING."""
    events: list[ave.Event] = []
    backoff = Backoff(ave.Retries(jitter=0.0).delay, lambda: 0.5, events.append)
    assert backoff.next(2, "busy", run_id=run_id, retry_after=retry_after) == expected
    assert [(e.kind, e.run_id, e.delay, e.detail) for e in events] == [
        (ave.EventKind.RETRYING, run_id, expected, "busy")
    ]


def test_backoff_draws_from_the_source_it_was_given() -> None:
    """One random source: the draws are the injected ones, in order."""
    draws = iter([0.0, 1.0 - 1e-12])
    backoff = Backoff(ave.Retries(jitter=0.2).delay, lambda: next(draws), lambda _e: None)
    assert backoff.next(1, "x") == pytest.approx(0.8)
    assert backoff.next(1, "x") == pytest.approx(1.2)
