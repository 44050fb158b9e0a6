"""Rate limiting: the three algorithms, per-route and overall budgets, 429s and Retry-After."""

from __future__ import annotations

import asyncio

import pytest

from aiovideoextend.testing._limits import (
    FixedWindow,
    RateLimiter,
    SlidingLog,
    TokenBucket,
    format_retry_after,
)

# Budgets are counted on the loop clock: fast-forwarded, a burst takes no time at all.
pytestmark = pytest.mark.fast_forward

KEY = "sk-nano-test-0001"
GOOD = {
    "model": "wan-wavespeed-22-spicy-extend",
    "prompt": "the cat keeps walking",
    "videoUrl": "https://example.com/cat.mp4",
}
RATE_LIMIT_BODY = {
    "error": {
        "message": "Rate limit exceeded",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }
}


async def test_sliding_log_is_strict():
    """The sliding log admits N, then waits exactly until the oldest arrival leaves."""
    budget = SlidingLog(3, 10.0)
    for t in (0.0, 1.0, 2.0):
        assert budget.wait(t) == 0
        budget.take(t)
    assert budget.wait(9.0) == pytest.approx(1.0)
    # A rejected request consumes nothing: at 10.0 the arrival at 0.0 has left the window.
    assert budget.wait(10.0) == 0
    budget.take(10.0)
    assert budget.wait(10.5) == pytest.approx(0.5)


async def test_fixed_window_resets_on_boundaries():
    """Fixed windows reset at aligned boundaries, allowing 2N across one boundary."""
    budget = FixedWindow(2, 10.0)
    for t in (8.0, 9.0):
        assert budget.wait(t) == 0
        budget.take(t)
    assert budget.wait(9.5) == pytest.approx(0.5)
    for t in (10.0, 10.5):
        assert budget.wait(t) == 0
        budget.take(t)
    assert budget.wait(11.0) == pytest.approx(9.0)


async def test_token_bucket_refills_continuously():
    """The bucket starts full, refills N/W per second and caps at N."""
    budget = TokenBucket(2, 10.0)
    for t in (0.0, 0.0):
        assert budget.wait(t) == 0
        budget.take(t)
    assert budget.wait(1.0) == pytest.approx(4.0)
    assert budget.wait(5.0) == 0
    budget.take(5.0)
    assert budget.wait(100.0) == 0
    budget.take(100.0)
    budget.take(100.0)
    assert budget.wait(100.0) == pytest.approx(5.0)


async def test_rate_limiter_is_per_client_and_all_or_nothing():
    """Each client has its own budgets; a request rejected overall consumes no route budget."""
    limiter = RateLimiter("sliding", {"generate": (2, 60.0), "overall": (1, 1.0)})
    assert limiter.hit("a", "generate", 0.0) == 0
    assert limiter.hit("b", "generate", 0.0) == 0
    assert limiter.hit("a", "generate", 0.5) == pytest.approx(0.5)
    assert limiter.hit("a", "generate", 1.0) == 0
    assert limiter.hit("a", "generate", 2.0) == pytest.approx(58.0)
    # No budget configured for the route: only the overall one applies.
    assert limiter.hit("a", "status", 3.0) == 0


@pytest.mark.parametrize(
    ("seconds", "fractional", "header"),
    [
        (60.0, True, "60"),
        (1.0, True, "1"),
        (2.01, True, "3"),
        (0.25, True, "0.25"),
        (0.1234, True, "0.124"),
        (1e-6, True, "0.001"),
        (0.9999, True, "1"),
        (0.25, False, "1"),
        (2.01, False, "3"),
    ],
)
async def test_retry_after_format(seconds, fractional, header):
    """Whole seconds (at least 1), or up to three decimals below 1 s when fractional."""
    assert format_retry_after(seconds, fractional) == header


@pytest.mark.parametrize("algorithm", ["sliding", "fixed", "token"])
async def test_burst_admits_exactly_the_budget(make_api, algorithm):
    """A burst of 8 submits against a 5/min budget gets exactly 5 accepted and 3 429s."""
    api = await make_api(time_scale=1.0, limit_algorithm=algorithm, limits={"generate": (5, 60.0)})
    replies = [await api.submit() for _ in range(8)]
    assert [reply.status for reply in replies] == [202] * 5 + [429] * 3
    for reply in replies[5:]:
        assert reply.body == RATE_LIMIT_BODY
        assert 1 <= int(reply.headers["Retry-After"]) <= 60
    stats = api.emu.stats
    assert stats.rate_limited["generate"] == 3
    assert stats.requests["generate"] == 8
    assert len(stats.arrivals) == 8
    assert len(stats.admitted) == 5
    assert len(api.emu.ledger) == 5


async def test_default_budgets(make_api):
    """Defaults: generate 50/min, extend 20/min, recover 20/min per client."""
    api = await make_api(time_scale=1.0, limits={"overall": None})
    statuses = [(await api.submit()).status for _ in range(51)]
    assert statuses.count(202) == 50
    assert statuses[-1] == 429
    parent = api.emu.midjourney_run_ids(KEY)[0]
    extends = [(await api.extend({"runId": parent, "index": 0})).status for _ in range(21)]
    assert extends.count(202) == 20
    assert extends[-1] == 429
    recovers = [(await api.call("GET", "/generate-video/recover")).status for _ in range(21)]
    assert recovers == [200] * 20 + [429]


async def test_overall_limit_counts_status_polls(make_api):
    """The overall budget (25/s by default) counts every route, status polls included."""
    api = await make_api(time_scale=1.0)
    run_id = (await api.submit()).body["runId"]
    statuses = [(await api.status(run_id)).status for _ in range(25)]
    assert statuses == [200] * 24 + [429]
    assert api.emu.stats.rate_limited["status"] == 1
    reply = await api.status(run_id)
    assert reply.headers["Retry-After"] == "1"


async def test_no_retry_after_when_disabled(make_api):
    """retry_after=False leaves the header off 429s."""
    api = await make_api(time_scale=1.0, retry_after=False, limits={"generate": (1, 60.0)})
    await api.submit()
    reply = await api.submit()
    assert reply.status == 429
    assert "Retry-After" not in reply.headers


async def test_retry_after_is_scaled_to_real_seconds(make_api):
    """Under time compression Retry-After is the real wait, with decimals below one second."""
    api = await make_api(time_scale=600.0, limits={"generate": (1, 60.0)})
    await api.submit()
    reply = await api.submit()
    assert reply.status == 429
    assert 0 < float(reply.headers["Retry-After"]) <= 0.1


async def test_limits_can_be_disabled(make_api):
    """A None limit switches that budget off."""
    api = await make_api(time_scale=1.0, limits={"generate": None, "overall": None})
    statuses = {(await api.submit()).status for _ in range(60)}
    assert statuses == {202}


async def test_sliding_window_never_exceeds_budget_under_load(make_api):
    """Hammering for several windows, no real-time window ever holds more than N admissions."""
    api = await make_api(time_scale=600.0, limits={"generate": (5, 6.0), "overall": None})
    window = 6.0 / 600.0
    accepted = 0
    # Two submits every tenth of a window for four windows: four times what the budget admits.
    for _ in range(40):
        for _ in range(2):
            accepted += (await api.submit()).status == 202
        await asyncio.sleep(window / 10)
    admitted = [t for t, route in api.emu.stats.admitted if route == "generate"]
    assert accepted == len(admitted) >= 10
    for i, t in enumerate(admitted):
        inside = [u for u in admitted[: i + 1] if u > t - window + 1e-9]
        assert len(inside) <= 5
    assert api.emu.stats.rate_limited["generate"] > 0
