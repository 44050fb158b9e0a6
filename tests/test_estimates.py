"""Estimated progress on the nested envelope, which says nothing but PROCESSING until the end."""

from __future__ import annotations

import asyncio

import pytest

import aiovideoextend as ave

from .conftest import SCALE

# Which status each poll finds depends on compressed time only: exact on a fast-forwarded loop.
pytestmark = pytest.mark.fast_forward

MP4_URL = "https://example.com/source.mp4"


async def test_nested_envelope_updates_carry_an_estimated_progress(make_emulator):
    """Once jobs of a model have ended, updates of the next one carry an estimated progress and
    time remaining (marked estimated, apart from the server's progress/eta, which stay None)."""
    emu = await make_emulator(envelope="nested", queue_seconds=(5.0, 5.0), run_seconds=(60.0, 60.0))
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        # Before anything ended: nothing to estimate from.
        first = await session.extend("veo3-1-extend", "first", video_url=MP4_URL)
        before = [u async for u in first.updates()]
        assert before[-1].status is ave.JobStatus.COMPLETED
        assert all(u.estimated_progress is None for u in before if not u.status.is_terminal)
        assert any(not u.status.is_terminal for u in before)
        for i in range(3):
            await session.extend_and_wait("veo3-1-extend", f"learn {i}", video_url=MP4_URL)

        job = await session.extend("veo3-1-extend", "followed", video_url=MP4_URL)
        updates = [u async for u in job.updates()]
    running = [u for u in updates if not u.status.is_terminal]
    assert running, updates
    assert all(u.progress is None and u.eta is None for u in running)  # the server said nothing
    estimated = [u for u in running if u.estimated_progress is not None]
    assert estimated
    for update in estimated:
        assert 0 <= update.estimated_progress < 100
        assert update.estimated_remaining is not None
        # Jobs take 65 emulated seconds: the estimate is in the server's seconds, like eta.
        assert 0 <= update.estimated_remaining <= 70
    progress = [u.estimated_progress for u in estimated]
    assert progress == sorted(progress)
    final = updates[-1]
    assert final.status is ave.JobStatus.COMPLETED
    assert final.estimated_progress == 100
    assert final.estimated_remaining == 0


async def test_no_estimate_for_a_job_of_unknown_age(make_emulator):
    """A job attached by run id may be of any age: no estimate, rather than a wrong one, even
    in a session that has learned the model's durations."""
    emu = await make_emulator(envelope="nested", run_seconds=(60.0, 60.0))
    async with (
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session,
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as other,
    ):
        for i in range(2):
            await session.extend_and_wait("veo3-1-extend", f"learn {i}", video_url=MP4_URL)
        own = await session.extend("veo3-1-extend", "own", video_url=MP4_URL)
        foreign = await other.extend("veo3-1-extend", "foreign", video_url=MP4_URL)
        await asyncio.sleep(10 / SCALE)
        attached = session.job(foreign.run_id, model="veo3-1-extend")
        seen = await attached.refresh()
        mine = await own.refresh()
    assert seen.status is ave.JobStatus.PROCESSING
    assert seen.estimated_progress is None
    assert seen.estimated_remaining is None
    assert mine.status is ave.JobStatus.PROCESSING
    assert mine.estimated_progress is not None
