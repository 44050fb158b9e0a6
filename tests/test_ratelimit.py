"""Zero 429s at full throughput against every limit algorithm, with network jitter."""

from __future__ import annotations

import asyncio

import pytest

import aiovideoextend as ave
from aiovideoextend.testing import Emulator, Fault

from .conftest import SCALE

# Windows are counted on the loop clock: fast-forwarded, the elapsed times below are exact.
pytestmark = pytest.mark.fast_forward


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = 0
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def run_flow(emu: Emulator, flow: str, jobs: int) -> list[ave.Job]:
    async with ave.Session(
        emu.api_key,
        base_url=emu.base_url,
        time_scale=SCALE,
        limiter=ave.RateLimiter(ave.Limits().scaled(SCALE)),
    ) as session:
        sources = emu.midjourney_run_ids(emu.api_key)

        async def one(i: int) -> ave.Job:
            if flow == "extend":
                return await session.extend_midjourney(sources[i % len(sources)], index=i % 4)
            return await session.extend(
                "veo3-1-extend", f"shot {i}", video_url=f"https://example.com/{i}.mp4"
            )

        submitted = await asyncio.gather(*(one(i) for i in range(jobs)))
        await asyncio.gather(*submitted)
        return submitted


@pytest.mark.parametrize("algorithm", ["sliding", "fixed", "token"])
@pytest.mark.parametrize(("flow", "limit"), [("extend", 20), ("generate", 50)])
async def test_full_throughput_without_a_single_429(make_emulator, algorithm, flow, limit):
    """Submitting many more jobs than the limit, concurrently and with jitter, draws no 429."""
    emu = await make_emulator(limit_algorithm=algorithm, latency=(0.0, 0.004))
    jobs = await run_flow(emu, flow, 3 * limit + 5)
    assert sum(emu.stats.rate_limited.values()) == 0
    assert len({j.run_id for j in jobs}) == len(jobs)
    window = 60 / SCALE
    arrivals = [t for t, route in emu.stats.arrivals if route == flow]
    assert len(arrivals) == len(jobs)
    assert max_in_window(arrivals, window) <= limit
    # Never more than 25 requests of any kind in one (scaled) second.
    assert max_in_window([t for t, _ in emu.stats.arrivals], 1 / SCALE) <= 25


@pytest.mark.parametrize(("flow", "limit"), [("extend", 20), ("generate", 50)])
async def test_a_batch_of_up_to_n_goes_out_at_once(make_emulator, flow, limit):
    """Up to N jobs all leave within the first window: no needless pacing."""
    emu = await make_emulator()
    await run_flow(emu, flow, limit)
    arrivals = sorted(t for t, route in emu.stats.arrivals if route == flow)
    assert len(arrivals) == limit
    assert arrivals[-1] - arrivals[0] < 60 / SCALE


async def test_polls_share_the_overall_budget(make_emulator):
    """Status polls of many jobs never push the total over 25 per second."""
    emu = await make_emulator(queue_seconds=(1, 2), run_seconds=(2, 4))
    jobs = await run_flow(emu, "generate", 150)
    assert all(j.done() for j in jobs)
    assert sum(emu.stats.rate_limited.values()) == 0
    assert max_in_window([t for t, _ in emu.stats.arrivals], 1 / SCALE) <= 25


async def test_sessions_of_one_process_share_the_limiter(emu: Emulator):
    """Two sessions on the same server draw on one budget (NanoGPT limits per IP)."""
    async with (
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as a,
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as b,
    ):
        assert a._limiter is b._limiter

        async def burst(session: ave.Session) -> None:
            await asyncio.gather(
                *(
                    session.extend("veo3-1-extend", f"{i}", video_url="https://example.com/a.mp4")
                    for i in range(60)
                )
            )

        await asyncio.gather(burst(a), burst(b))
    assert sum(emu.stats.rate_limited.values()) == 0


@pytest.mark.parametrize("route", ["status", "recover"])
async def test_a_dropped_get_is_retried_through_the_limiter(emu: Emulator, session, route):
    """A connection dropped after a GET went out: the session retries it with a new slot of the
    limiter; aiohttp never resends it unseen, which would put two arrivals on one slot (the
    cause of 429s in a full window)."""
    job = await session.extend("veo3-1-extend", "p", video_url="https://example.com/a.mp4")
    events: list[ave.Event] = []
    session.add_event_hook(events.append)
    emu.faults.add(Fault(route, "reset", count=1))
    before = emu.stats.requests[route]
    if route == "status":
        await session.status(job.run_id)
    else:
        await session.recover(model="veo3-1-extend")
    retries = sum(e.kind is ave.EventKind.RETRYING for e in events)
    assert retries == 1
    assert emu.stats.requests[route] - before == 1 + retries
