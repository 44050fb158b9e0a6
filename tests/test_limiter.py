"""The sliding-window limiter, on a fast-forwarded loop clock (looptime): no real waiting."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Coroutine
from typing import Any

import looptime
import pytest

from aiovideoextend import Budget, Limits
from aiovideoextend._limiter import RateLimiter, SlidingWindow, shared_limiter


def fast_forward(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a looptime loop: sleeps and timers complete at once, in fake time.

    Our own loop rather than looptime's pytest plugin: the plugin makes every plain (sync) test
    create an event loop that nobody closes, which ``filterwarnings = error`` then reports.
    """

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        loop = looptime.new_event_loop(start=0.0, _enabled=False)
        try:
            with loop.looptime_enabled():
                loop.run_until_complete(test(*args, **kwargs))
        finally:
            loop.close()

    return run


def now() -> float:
    return asyncio.get_running_loop().time()


@fast_forward
async def test_burst_of_count_goes_out_at_once():
    """The first `count` requests are admitted without waiting (a batch of N goes out at once)."""
    window = SlidingWindow("generate", Budget(20, 60))
    start = now()
    for _ in range(20):
        await window.acquire()
    assert now() == start


@fast_forward
async def test_next_request_waits_a_window_after_the_first_response():
    """Request N+1 leaves one full window after the earliest response came back."""
    window = SlidingWindow("extend", Budget(2, 10))
    await window.acquire()
    await window.acquire()
    await asyncio.sleep(3)
    window.release()  # first response at t=3
    await asyncio.sleep(1)
    window.release()  # second at t=4
    start = now()
    await window.acquire()
    assert now() - start == pytest.approx(3 + 10 - 4)


@fast_forward
async def test_in_flight_requests_block_until_released():
    """A slot stays taken while its request is in flight, however long that is."""
    window = SlidingWindow("extend", Budget(1, 1))
    await window.acquire()
    waiter = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(100)
    assert not waiter.done()
    window.release()
    await asyncio.sleep(0.5)
    assert not waiter.done()
    await asyncio.sleep(0.6)
    assert waiter.done()
    window.release()


@fast_forward
async def test_margin_and_slack_widen_the_window():
    """margin and slack make each request count a little longer than the server's window."""
    window = SlidingWindow("x", Budget(1, 10), margin=0.1, slack=0.5)
    assert window.window == pytest.approx(11.5)


@pytest.mark.parametrize("seed", range(5))
@fast_forward
async def test_no_window_ever_sees_more_than_count_arrivals(seed):
    """Whatever the latency, arrivals (anywhere between send and response) never exceed N per window."""
    rng = random.Random(seed)
    count, period = 5, 1.0
    window = SlidingWindow("generate", Budget(count, period))
    arrivals: list[float] = []

    async def request() -> None:
        await window.acquire()
        sent = now()
        latency = rng.uniform(0.001, 0.4)
        await asyncio.sleep(latency)
        window.release()
        # The server counted it at some moment in flight: take the worst case, both ends.
        arrivals.append(rng.choice([sent, sent + latency, sent + rng.uniform(0, latency)]))

    await asyncio.gather(*(request() for _ in range(60)))
    arrivals.sort()
    for i, first in enumerate(arrivals):
        inside = [t for t in arrivals[i:] if t < first + period]
        assert len(inside) <= count


@fast_forward
async def test_throughput_is_close_to_the_limit_with_zero_latency():
    """With instant responses the limiter admits count per window, no fewer."""
    window = SlidingWindow("generate", Budget(10, 1.0))
    start = now()
    for _ in range(50):
        await window.acquire()
        window.release()
    # 10 at t=0, then 10 more each window: the 50th leaves at t=4 windows.
    assert now() - start == pytest.approx(4.0)


@fast_forward
async def test_waiters_are_served_first_come_first_served():
    """Slots go to waiters in the order they asked."""
    window = SlidingWindow("x", Budget(1, 1))
    order: list[int] = []

    async def take(i: int) -> None:
        await window.acquire()
        order.append(i)
        window.release()

    await asyncio.gather(*(take(i) for i in range(6)))
    assert order == list(range(6))


@fast_forward
async def test_submits_wait_ahead_of_polls():
    """Waiters that ask to go first (a submit's overall slot) are served before the others,
    in their own order; the others keep theirs."""
    window = SlidingWindow("overall", Budget(1, 1))
    order: list[str] = []

    async def take(name: str, *, first: bool) -> None:
        await window.acquire(first=first)
        order.append(name)
        window.release()

    await window.acquire()  # the slot is busy: everybody below queues
    tasks = [
        asyncio.ensure_future(take(name, first=name.startswith("submit")))
        for name in ("poll 1", "submit 1", "poll 2", "submit 2", "poll 3")
    ]
    await asyncio.sleep(0)
    window.release()
    await asyncio.gather(*tasks)
    assert order == ["submit 1", "submit 2", "poll 1", "poll 2", "poll 3"]


@fast_forward
async def test_pause_holds_every_request_of_the_budget():
    """After a 429 the whole budget waits out the pause."""
    window = SlidingWindow("x", Budget(10, 1))
    window.pause(30)
    start = now()
    await window.acquire()
    assert now() - start == pytest.approx(30)
    assert window.delay() == 0


@fast_forward
async def test_a_cancelled_waiter_loses_nothing():
    """Cancelling a waiting acquire leaves the capacity for the next waiter."""
    window = SlidingWindow("x", Budget(1, 1))
    await window.acquire()
    doomed = asyncio.ensure_future(window.acquire())
    survivor = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    doomed.cancel()
    window.release()
    await asyncio.sleep(1.01)
    assert survivor.done()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    window.release()


@fast_forward
async def test_a_slot_granted_to_a_cancelled_task_is_handed_on():
    """A slot granted just as its task was cancelled goes to the next waiter."""
    window = SlidingWindow("x", Budget(1, 1))
    await window.acquire()
    first = asyncio.ensure_future(window.acquire())
    second = asyncio.ensure_future(window.acquire())
    await asyncio.sleep(0)
    window.cancel()  # the holder never sent: slot free at once, granted to `first`
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.sleep(0.01)
    assert second.done()
    assert window._in_flight == 1


@fast_forward
async def test_delay_reports_the_wait():
    """delay() says how long until a slot frees up."""
    window = SlidingWindow("x", Budget(1, 5))
    assert window.delay() == 0
    await window.acquire()
    window.release()
    assert window.delay() == pytest.approx(5)


@fast_forward
async def test_shared_limiter_is_one_per_base_url_and_limits():
    """Sessions of a process that talk to the same server share one limiter."""
    a = shared_limiter("https://x/api", Limits())
    assert shared_limiter("https://x/api", Limits()) is a
    assert shared_limiter("https://y/api", Limits()) is not a
    assert isinstance(a, RateLimiter)
    assert a.overall.count == 25
    assert a.budget("extend").count == 20
