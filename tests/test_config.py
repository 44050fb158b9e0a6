"""Configuration objects: validation, time scaling and the retry backoff."""

from __future__ import annotations

import math
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiovideoextend import Budget, Limits, PollPolicy, Retries, Timeouts

BAD_POSITIVE = [0, -1, -0.5, math.nan, math.inf, -math.inf]
NOT_NUMBERS = [True, False, "5", None, [1]]


@pytest.mark.parametrize("value", BAD_POSITIVE)
@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (Budget, "period"),
        (PollPolicy, "first"),
        (PollPolicy, "min_interval"),
        (PollPolicy, "max_interval"),
        (PollPolicy, "backoff"),
        (PollPolicy, "timeout"),
        (Retries, "base"),
        (Retries, "cap"),
        (Timeouts, "connect"),
        (Timeouts, "total"),
    ],
)
def test_positive_fields_reject_non_positive(cls: type, field: str, value: float) -> None:
    """Durations must be finite and > 0: zero, negative, NaN and infinity are refused."""
    kwargs: dict[str, Any] = {field: value}
    if cls is Budget:
        kwargs["count"] = 1
    with pytest.raises(ValueError, match=field):
        cls(**kwargs)


@pytest.mark.parametrize("value", NOT_NUMBERS)
@pytest.mark.parametrize(
    ("cls", "field"),
    [
        (Budget, "period"),
        (PollPolicy, "first"),
        (PollPolicy, "jitter"),
        (Limits, "margin"),
        (Retries, "cap"),
        (Retries, "reconcile_skew"),
    ],
)
def test_numeric_fields_reject_other_types(cls: type, field: str, value: object) -> None:
    """A bool, a string or None where a number belongs is a TypeError naming the field."""
    kwargs: dict[str, Any] = {field: value}
    if cls is Budget:
        kwargs["count"] = 1
    with pytest.raises(TypeError, match=field):
        cls(**kwargs)


@pytest.mark.parametrize(("cls", "field"), [(Budget, "count"), (Retries, "attempts")])
@pytest.mark.parametrize(
    ("value", "error"),
    [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError), ("3", TypeError)],
)
def test_counts_are_positive_ints(cls: type, field: str, value: object, error: type) -> None:
    """Request counts and attempts are ints >= 1 (not floats, not bools)."""
    kwargs: dict[str, Any] = {field: value}
    if cls is Budget:
        kwargs["period"] = 1.0
    with pytest.raises(error, match=field):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("cls", "field"),
    [(Limits, "margin"), (Limits, "slack"), (Retries, "reconcile_skew")],
)
@pytest.mark.parametrize("value", [-0.001, math.nan, math.inf])
def test_non_negative_fields(cls: type, field: str, value: float) -> None:
    """Margins, slack and skew may be 0 but not negative, NaN or infinite."""
    cls(**{field: 0})
    with pytest.raises(ValueError, match=field):
        cls(**{field: value})


@pytest.mark.parametrize("cls", [PollPolicy, Retries])
@pytest.mark.parametrize("value", [-0.1, 1.01, 5, math.nan])
def test_jitter_is_a_fraction(cls: type, value: float) -> None:
    """Jitter outside [0, 1] is refused: over 1 it could make a delay negative."""
    with pytest.raises(ValueError, match="jitter"):
        cls(jitter=value)


@pytest.mark.parametrize("cls", [PollPolicy, Retries])
@pytest.mark.parametrize("value", [0, 0.5, 1])
def test_jitter_bounds_are_allowed(cls: type, value: float) -> None:
    """Jitter 0 (none), 1 (full) and anything between are fine."""
    assert cls(jitter=value).jitter == value


def test_none_means_no_limit() -> None:
    """PollPolicy.timeout and both Timeouts may be None (wait for ever)."""
    assert PollPolicy(timeout=None).timeout is None
    assert Timeouts(connect=None, total=None) == Timeouts(None, None)


def test_min_interval_over_max_interval() -> None:
    """min_interval above max_interval is refused; equal is fine."""
    with pytest.raises(ValueError, match="min_interval"):
        PollPolicy(min_interval=20.0, max_interval=10.0)
    assert PollPolicy(min_interval=5.0, max_interval=5.0).min_interval == 5.0


def test_defaults_are_the_documented_limits() -> None:
    """The default limits are NanoGPT's: extend 20/min, generate 50/min, recover 20/min, 25 rps."""
    limits = Limits()
    assert limits.extend == Budget(20, 60.0)
    assert limits.generate == Budget(50, 60.0)
    assert limits.recover == Budget(20, 60.0)
    assert limits.overall == Budget(25, 1.0)


def test_frozen() -> None:
    """Config objects are immutable and hashable (safe to share between sessions)."""
    policy = PollPolicy()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        policy.first = 1.0  # type: ignore[misc]
    assert {Limits(), Limits()} == {Limits()}
    assert hash(Retries()) == hash(Retries())


def test_budget_scaled() -> None:
    """A budget for a 10x faster clock keeps the count and divides the period."""
    assert Budget(20, 60.0).scaled(10) == Budget(20, 6.0)


def test_limits_scaled() -> None:
    """Limits.scaled divides every period and the slack; the margin is a fraction and stays."""
    limits = Limits(margin=0.05, slack=0.5).scaled(100)
    assert limits.extend == Budget(20, 0.6)
    assert limits.generate == Budget(50, 0.6)
    assert limits.recover == Budget(20, 0.6)
    assert limits.overall == Budget(25, 0.01)
    assert limits.margin == 0.05
    assert limits.slack == 0.005


def test_poll_policy_scaled() -> None:
    """PollPolicy.scaled divides the waits and the deadline, keeping backoff and jitter."""
    policy = PollPolicy(first=5, min_interval=1, max_interval=15, backoff=1.5, jitter=0.2)
    fast = policy.scaled(10)
    assert (fast.first, fast.min_interval, fast.max_interval, fast.timeout) == (
        0.5,
        0.1,
        1.5,
        180.0,
    )
    assert (fast.backoff, fast.jitter) == (1.5, 0.2)
    assert PollPolicy(timeout=None).scaled(10).timeout is None


def test_retries_scaled() -> None:
    """Retries.scaled divides base and cap; attempts, jitter and the skew stay."""
    fast = Retries(attempts=3, base=2, cap=40, jitter=0.5, reconcile_skew=9).scaled(4)
    assert fast == Retries(attempts=3, base=0.5, cap=10, jitter=0.5, reconcile_skew=9)


@pytest.mark.parametrize(
    "config", [Limits(), PollPolicy(), Retries()], ids=lambda c: type(c).__name__
)
def test_scaled_by_one_is_identity(config: Any) -> None:
    """Scaling by 1 returns the very same object."""
    assert config.scaled(1) is config
    assert config.scaled(1.0) is config


@pytest.mark.parametrize(
    "config",
    [Budget(1, 1.0), Limits(), PollPolicy(), Retries()],
    ids=lambda c: type(c).__name__,
)
@pytest.mark.parametrize("scale", [0, -2, math.nan, math.inf, True, "10"])
def test_scaled_rejects_bad_scales(config: Any, scale: object) -> None:
    """A time scale must be a finite number > 0."""
    with pytest.raises(ValueError, match="time_scale"):
        config.scaled(scale)


def test_delay_doubles_up_to_the_cap() -> None:
    """Without jitter the backoff is base, 2*base, 4*base... until the cap."""
    retries = Retries(base=1.0, cap=10.0, jitter=0.0)
    assert [retries.delay(n, 0.3) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_delay_jitter_extremes() -> None:
    """rand 0 gives raw*(1-jitter), rand 0.5 raw, rand near 1 almost raw*(1+jitter)."""
    retries = Retries(base=2.0, cap=30.0, jitter=0.25)
    assert retries.delay(2, 0.0) == pytest.approx(3.0)
    assert retries.delay(2, 0.5) == pytest.approx(4.0)
    assert retries.delay(2, 0.999999) == pytest.approx(5.0, rel=1e-5)


def test_delay_for_huge_attempt_numbers() -> None:
    """An attempt number past 1024 is the cap, not an OverflowError."""
    retries = Retries(base=1.0, cap=30.0, jitter=0.0)
    assert retries.delay(5000, 0.5) == 30.0
    assert retries.delay(10**9, 0.5) == 30.0


def test_delay_below_first_attempt() -> None:
    """Attempt numbers below 1 are treated as the first attempt."""
    retries = Retries(base=1.5, jitter=0.0)
    assert retries.delay(0, 0.5) == retries.delay(-4, 0.5) == retries.delay(1, 0.5) == 1.5


@settings(max_examples=200, deadline=None)
@given(
    base=st.floats(min_value=1e-6, max_value=1e6),
    cap=st.floats(min_value=1e-6, max_value=1e6),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    attempt=st.integers(min_value=-5, max_value=10**6),
    rand=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_delay_bounds(base: float, cap: float, jitter: float, attempt: int, rand: float) -> None:
    """Every delay is finite, >= 0, and within jitter of the capped exponential value."""
    delay = Retries(base=base, cap=cap, jitter=jitter).delay(attempt, rand)
    raw = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 1000))
    assert math.isfinite(delay)
    assert 0 <= delay <= cap * (1 + jitter) * (1 + 1e-12)
    assert raw * (1 - jitter) * (1 - 1e-12) <= delay <= raw * (1 + jitter) * (1 + 1e-12)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=60))
def test_delay_never_shrinks_without_jitter(attempt: int) -> None:
    """Without jitter, a later attempt never waits less than an earlier one."""
    retries = Retries(jitter=0.0)
    assert retries.delay(attempt + 1, 0.0) >= retries.delay(attempt, 0.0)
