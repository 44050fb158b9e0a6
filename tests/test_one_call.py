"""The one-call form: submit, wait, return the video; nothing paid is lost when it stops early."""

from __future__ import annotations

import asyncio

import pytest

import aiovideoextend as ave
from aiovideoextend.testing import Emulator, Fault

from .conftest import SCALE

# Whether a wait times out, and when a cancel lands, depend on compressed time only: exact here.
pytestmark = pytest.mark.fast_forward

MP4_URL = "https://example.com/source.mp4"


async def until(condition: object, *, step: float = 0.001, limit: int = 10_000) -> None:
    """Let the loop run (fast-forwarded) until ``condition()`` holds."""
    assert callable(condition)
    for _ in range(limit):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError("condition never held")


async def test_extend_and_wait_returns_the_video(emu: Emulator, session: ave.Session):
    """One call: the source-video flow submits once, waits, returns the completed video."""
    result = await session.extend_and_wait(
        "veo3-1-extend", "keep going", video_url=MP4_URL, duration=5, seed=7
    )
    [entry] = emu.ledger
    assert isinstance(result, ave.VideoResult)
    assert result.run_id == entry.run_id
    assert result.video_url.endswith(f"/files/{entry.run_id}.mp4")
    assert entry.payload["duration"] == 5
    assert entry.payload["seed"] == 7
    assert session.interrupted_jobs == ()


async def test_extend_midjourney_and_wait_returns_the_video(emu: Emulator, session: ave.Session):
    """One call for the Midjourney task flow too."""
    source = emu.midjourney_run_ids(emu.api_key)[0]
    result = await session.extend_midjourney_and_wait(source, index=3)
    [entry] = emu.ledger
    assert entry.route == "extend"
    assert entry.payload["index"] == 3
    assert result.run_id == entry.run_id
    assert result.model == ave.MIDJOURNEY_MODEL


async def test_run_takes_a_request_object(emu: Emulator, session: ave.Session):
    result = await session.run(ave.SourceExtend("veo3-1-fast-extend", "p", video_url=MP4_URL))
    assert [e.run_id for e in emu.ledger] == [result.run_id]


async def test_bad_input_raises_before_anything_is_sent(emu: Emulator, session: ave.Session):
    with pytest.raises(ave.InvalidRequestError, match="unknown option"):
        await session.extend_and_wait("veo3-1-extend", "p", video_url=MP4_URL, duraton=5)  # type: ignore[call-arg]
    with pytest.raises(ave.InvalidRequestError, match="index"):
        await session.extend_midjourney_and_wait("vid_x", index=4)
    assert emu.stats.requests == {}


async def test_a_failed_run_raises_with_its_run_id(make_emulator, make_session):
    emu = await make_emulator(failure_rate=1.0)
    session = make_session(base_url=emu.base_url)
    with pytest.raises(ave.JobFailedError) as caught:
        await session.extend_and_wait("veo3-1-extend", "p", video_url=MP4_URL)
    assert caught.value.run_id == emu.ledger[0].run_id


async def test_a_timeout_keeps_the_job_reachable(make_emulator, make_session):
    """A wait that times out raises JobTimeoutError with the run id; the job stays in
    session.interrupted_jobs and awaiting it again resumes the wait to the video."""
    emu = await make_emulator(run_seconds=(120.0, 120.0))
    session = make_session(base_url=emu.base_url)
    with pytest.raises(ave.JobTimeoutError) as caught:
        await session.extend_and_wait("veo3-1-extend", "p", video_url=MP4_URL, timeout=5 / SCALE)
    [entry] = emu.ledger
    assert caught.value.run_id == entry.run_id
    [job] = session.interrupted_jobs
    assert job.run_id == entry.run_id
    result = await job
    assert result.run_id == entry.run_id
    assert session.interrupted_jobs == ()  # done: no longer interrupted


async def test_a_cancelled_wait_keeps_the_job_reachable(make_emulator, make_session):
    """Cancelling the caller while it waits: the CancelledError names the run id, the job is in
    session.interrupted_jobs, and the run is not lost (nor charged twice)."""
    emu = await make_emulator(run_seconds=(120.0, 120.0))
    session = make_session(base_url=emu.base_url)
    task = asyncio.create_task(
        session.extend_and_wait("veo3-1-extend", "p", video_url=MP4_URL, timeout=None)
    )
    await until(lambda: len(emu.ledger) == 1 and emu.stats.requests["status"] >= 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    run_id = emu.ledger[0].run_id
    assert any(run_id in note for note in getattr(caught.value, "__notes__", []))
    [job] = session.interrupted_jobs
    assert job.run_id == run_id
    assert (await job).run_id == run_id
    assert len(emu.ledger) == 1


async def test_a_cancel_while_the_submit_is_on_the_wire_loses_nothing(make_emulator, make_session):
    """Cancelled while the server holds the submit: the submit still finishes (cancelling it
    would leave the outcome unknown) and its run lands in session.interrupted_jobs."""
    emu = await make_emulator()
    emu.faults.add(Fault("generate", "slow", delay=0.5, count=1))
    session = make_session(base_url=emu.base_url)
    task = asyncio.create_task(session.extend_and_wait("veo3-1-extend", "p", video_url=MP4_URL))
    await until(lambda: emu.stats.requests["generate"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as caught:
        await task
    assert any("interrupted_jobs" in note for note in getattr(caught.value, "__notes__", []))
    await until(lambda: len(session.interrupted_jobs) == 1)
    [entry] = emu.ledger
    [job] = session.interrupted_jobs
    assert job.run_id == entry.run_id
    assert (await job).run_id == entry.run_id


async def test_a_cancel_while_queued_in_the_limiter_sends_nothing(emu: Emulator, make_session):
    """Cancelled before its submit left (waiting for a rate-limit slot): nothing is sent."""
    session = make_session(limits=ave.Limits(generate=ave.Budget(1, 60.0)))
    first = await session.extend("veo3-1-extend", "first", video_url=MP4_URL)
    task = asyncio.create_task(
        session.extend_and_wait("veo3-1-extend", "second", video_url=MP4_URL)
    )
    await asyncio.sleep(1 / SCALE)  # well inside the window: still queued
    assert emu.stats.requests["generate"] == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await first
    await asyncio.sleep(3 * 60 / SCALE)  # several windows later: it never left
    assert [e.payload["prompt"] for e in emu.ledger] == ["first"]
    assert session.interrupted_jobs == ()
