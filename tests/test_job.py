"""Job: awaiting, updates, shared polling, terminal states, deadlines, poll faults."""

from __future__ import annotations

import asyncio
import logging

import pytest

import aiovideoextend as ave
from aiovideoextend.testing import Emulator, Fault

from .conftest import SCALE

# What a poll finds and how many polls a job costs depend on compressed time only: exact here.
pytestmark = pytest.mark.fast_forward

MP4_URL = "https://example.com/source.mp4"


async def submit(session: ave.Session, prompt: str = "p") -> ave.Job:
    return await session.extend("veo3-1-extend", prompt, video_url=MP4_URL)


@pytest.mark.parametrize("envelope", ["nested", "flat", "mixed"])
async def test_every_envelope_completes(make_emulator, envelope):
    """Jobs complete whichever status envelope the server uses."""
    emu = await make_emulator(envelope=envelope)
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        jobs = [await submit(session, str(i)) for i in range(6)]
        results = await asyncio.gather(*jobs)
    assert [r.run_id for r in results] == [j.run_id for j in jobs]
    assert all(r.video_url for r in results)


async def test_updates_yield_each_change_and_end_terminal(session: ave.Session):
    """updates() yields pending/processing changes and ends with COMPLETED."""
    job = await submit(session)
    seen = [update.status async for update in job.updates()]
    assert seen[-1] is ave.JobStatus.COMPLETED
    assert ave.JobStatus.PROCESSING in seen or ave.JobStatus.PENDING in seen
    assert seen == sorted(seen, key=list(ave.JobStatus).index)
    assert [u.status async for u in job.updates()] == [ave.JobStatus.COMPLETED]


async def test_flat_envelope_updates_carry_progress_and_eta(make_emulator):
    """With the flat envelope updates carry progress and time remaining."""
    emu = await make_emulator(envelope="flat", run_seconds=(60.0, 60.0))
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        job = await submit(session)
        updates = [u async for u in job.updates()]
    assert any(u.progress is not None for u in updates)
    assert any(u.eta is not None for u in updates)
    assert updates[-1].video_url


async def test_awaiters_share_one_poll_loop(make_emulator):
    """Three tasks awaiting one job cost the polls of one: the same polls at the same times."""
    schedules = []
    for awaiters in (1, 3):
        emu = await make_emulator(seed=1, queue_seconds=(10, 10), run_seconds=(30, 30))
        async with ave.Session(
            emu.api_key,
            base_url=emu.base_url,
            time_scale=SCALE,
            poll=ave.PollPolicy(jitter=0),
        ) as session:
            start = asyncio.get_running_loop().time()
            job = await submit(session)
            await asyncio.gather(*(job.result() for _ in range(awaiters)))
        # Microseconds since the submit: the fast-forwarded clock makes both runs' exact.
        polls = [round((t - start) * 1e6) for t, route in emu.stats.arrivals if route == "status"]
        assert len(polls) == emu.stats.polls[job.run_id]
        schedules.append(polls)
    assert schedules[0] == schedules[1]
    assert len(schedules[0]) >= 2


async def test_nobody_waiting_means_no_polling(emu: Emulator, session: ave.Session):
    """A job nobody awaits is not polled."""
    job = await submit(session)
    await asyncio.sleep(0.05)
    assert emu.stats.polls[job.run_id] == 0
    await job
    assert emu.stats.polls[job.run_id] >= 1


async def test_refresh_polls_once(emu: Emulator, session: ave.Session):
    """refresh() polls exactly once and updates the job."""
    job = await submit(session)  # no time passes before the refresh: the job is queued
    update = await job.refresh()
    assert emu.stats.polls[job.run_id] == 1
    assert job.last_update == update
    assert update.status in (ave.JobStatus.PENDING, ave.JobStatus.PROCESSING)


async def test_failed_job_raises_with_details(make_emulator):
    """A content-policy failure raises JobFailedError with is_nsfw and the friendly text."""
    emu = await make_emulator(nsfw_rate=1.0)
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        job = await submit(session)
        with pytest.raises(ave.JobFailedError) as info:
            await job
    assert info.value.run_id == job.run_id
    assert info.value.is_nsfw
    assert info.value.user_friendly_error
    assert job.status is ave.JobStatus.FAILED
    assert emu.ledger[0].refunded


@pytest.mark.parametrize("envelope", ["nested", "flat"])
async def test_plain_failure_is_not_nsfw(make_emulator, envelope):
    """An ordinary failure raises JobFailedError with the server's error text."""
    emu = await make_emulator(failure_rate=1.0, envelope=envelope)
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        with pytest.raises(ave.JobFailedError) as info:
            await (await submit(session))
    assert not info.value.is_nsfw
    assert info.value.error


async def test_cancelled_job_raises_cancelled(emu: Emulator, session: ave.Session):
    """A job cancelled on the server raises JobCancelledError."""
    job = await submit(session)
    emu.cancel(job.run_id)
    with pytest.raises(ave.JobCancelledError) as info:
        await job
    assert info.value.run_id == job.run_id
    assert job.status is ave.JobStatus.CANCELLED


async def test_result_timeout_raises_job_timeout(make_emulator):
    """result(timeout=...) raises JobTimeoutError (a TimeoutError) and the job runs on."""
    emu = await make_emulator(queue_seconds=(600, 600))
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        job = await submit(session)
        with pytest.raises(TimeoutError) as info:
            await job.result(timeout=0.05)
        assert isinstance(info.value, ave.JobTimeoutError)
        assert info.value.run_id == job.run_id
        assert not job.done()


async def test_policy_deadline_applies_by_default(make_emulator):
    """PollPolicy.timeout is the default deadline of await job."""
    emu = await make_emulator(queue_seconds=(6000, 6000))
    policy = ave.PollPolicy(timeout=60)  # 60 emulated seconds = 0.1 s here
    async with ave.Session(
        emu.api_key, base_url=emu.base_url, time_scale=SCALE, poll=policy
    ) as session:
        job = await submit(session)
        with pytest.raises(ave.JobTimeoutError):
            await job
        with pytest.raises(ave.JobTimeoutError):
            async for _ in job.updates():
                pass


async def test_unknown_status_keeps_job_running_and_logs_once(emu, session, caplog):
    """An undocumented status string keeps the job running, is logged once, then it completes."""
    caplog.set_level(logging.WARNING, logger="aiovideoextend")
    emu.faults.add(Fault("status", "unknown_status", count=3))
    job = await submit(session)
    result = await job
    assert result.run_id == job.run_id
    unknown = [r for r in caplog.records if "unknown job status" in r.getMessage()]
    assert len(unknown) <= 1


@pytest.mark.parametrize(
    "kind", ["server_error", "bad_gateway_html", "malformed_json", "missing_fields", "reset"]
)
async def test_poll_faults_are_retried(emu: Emulator, session: ave.Session, kind):
    """Transient poll failures are retried; the job still ends completed."""
    emu.faults.add(Fault("status", kind, count=3))
    job = await submit(session)
    assert (await job).run_id == job.run_id


async def test_slow_poll_beyond_timeout_is_retried(emu: Emulator, make_session):
    """A status response slower than the request timeout is retried."""
    emu.faults.add(Fault("status", "slow", count=1, delay=2.0))
    async with make_session(timeout=ave.Timeouts(total=0.2)) as session:
        job = await submit(session)
        assert (await job).run_id == job.run_id


async def test_permanent_poll_errors_reach_awaiters(emu: Emulator, session: ave.Session):
    """An unknown run id raises NotFoundError to whoever awaits it."""
    job = session.job("vid_nosuchrun")
    with pytest.raises(ave.NotFoundError):
        await job
    assert job.done()


async def test_closing_the_session_releases_awaiters(emu_slow_session):
    """Awaiters get a clear RuntimeError when the session closes under them."""
    session, job = emu_slow_session
    waiter = asyncio.ensure_future(job.result())
    await asyncio.sleep(0.02)
    await session.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await waiter


@pytest.fixture
async def emu_slow_session(make_emulator):
    emu = await make_emulator(queue_seconds=(6000, 6000))
    session = ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE)
    async with session:
        job = await submit(session)
        yield session, job


async def test_events_report_submit_and_status_changes(session: ave.Session):
    """The event hook sees SUBMITTED and STATUS_CHANGED with run ids."""
    events: list[ave.Event] = []
    session.add_event_hook(events.append)
    job = await submit(session)
    await job
    kinds = {(e.kind, e.run_id) for e in events}
    assert (ave.EventKind.SUBMITTED, job.run_id) in kinds
    assert (ave.EventKind.STATUS_CHANGED, job.run_id) in kinds
    session.remove_event_hook(events.append)


async def test_a_failing_event_hook_does_not_break_the_session(session, caplog):
    """An exception in a hook is logged, never raised into the client."""

    def bad(event: ave.Event) -> None:
        raise ValueError("boom")

    session.add_event_hook(bad)
    await (await submit(session))
    assert "event hook" in caplog.text


async def test_many_jobs_in_flight_all_complete(make_emulator):
    """Hundreds of jobs awaited at once all complete, none starves."""
    emu = await make_emulator()
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        jobs = [await submit(session, str(i)) for i in range(300)]
        results = await asyncio.gather(*jobs)
    assert len({r.run_id for r in results}) == 300
    assert sum(emu.stats.rate_limited.values()) == 0


async def test_completed_without_a_url_is_a_failure(emu: Emulator, session: ave.Session):
    """A COMPLETED answer without a video URL raises JobFailedError saying so."""
    emu.faults.add(Fault("status", "no_video_url", rate=1.0))
    job = await submit(session)
    with pytest.raises(ave.JobFailedError, match="without a video URL") as info:
        await job
    assert info.value.run_id == job.run_id


async def test_only_the_oldest_jobs_scout_until_a_duration_is_learned(make_emulator):
    """Before any job of a model ended, only the oldest few are polled closely; the others wait
    for news and are brought forward when the first one ends: a fraction of the polls."""
    emu = await make_emulator(queue_seconds=(10.0, 10.0), run_seconds=(30.0, 30.0))
    async with ave.Session(
        emu.api_key, base_url=emu.base_url, time_scale=SCALE, poll=ave.PollPolicy(jitter=0)
    ) as session:
        jobs = []
        for i in range(10):
            jobs.append(await submit(session, str(i)))
            # Half an emulated second apart, like a client submitting one after the other
            # (submitted at one instant, all ten would be the oldest and all would scout).
            await asyncio.sleep(0.5 / SCALE)
        await asyncio.gather(*jobs)
    polls = [emu.stats.polls[job.run_id] for job in jobs]
    scouts, others = polls[:3], polls[3:]
    assert min(scouts) >= 4  # every `interval` (5 s) until the 40 s job ends
    assert max(others) <= 2  # brought forward once the first scout saw an end


async def test_a_seeded_session_polls_the_same_way_twice(make_emulator):
    """One random source per session: seeded alike, two runs poll at the same moments."""

    async def polls(seed: int) -> list[float]:
        emu = await make_emulator(seed=11)
        async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
            session._rng.seed(seed)
            jobs = [await submit(session, str(i)) for i in range(8)]
            await asyncio.gather(*jobs)
        times = [at for at, route in emu.stats.admitted if "status" in route]
        return [round(at - times[0], 6) for at in times]

    first = await polls(7)
    assert len(first) > 8
    assert await polls(7) == first
