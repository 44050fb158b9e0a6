"""Submits are never blindly retried: unknown outcomes are reconciled, 429s wait their turn."""

from __future__ import annotations

import socket

import pytest

import aiovideoextend as ave
from aiovideoextend.testing import Emulator, Fault

from .conftest import SCALE

MP4_URL = "https://example.com/source.mp4"


async def submit(session: ave.Session, prompt: str = "p") -> ave.Job:
    return await session.extend("veo3-1-extend", prompt, video_url=MP4_URL)


@pytest.mark.parametrize("route", ["generate", "extend"])
async def test_ambiguous_submit_is_adopted_not_resubmitted(emu: Emulator, session, route):
    """A submit created and charged but never answered is found through recover: one charge."""
    emu.faults.add(Fault(route, "ambiguous", count=1))
    events: list[ave.Event] = []
    session.add_event_hook(events.append)
    if route == "extend":
        job = await session.extend_midjourney(emu.midjourney_run_ids(emu.api_key)[0], index=1)
    else:
        job = await submit(session)
    assert len(emu.ledger) == 1
    assert emu.ledger[0].run_id == job.run_id
    assert not emu.ledger[0].delivered
    assert emu.duplicate_charges() == 0
    assert emu.stats.requests["recover"] == 1
    assert any(e.kind is ave.EventKind.RECONCILED and e.run_id == job.run_id for e in events)
    assert (await job).run_id == job.run_id


async def test_reset_before_creation_is_resubmitted_once(emu: Emulator, session):
    """A connection reset that created no job: recover finds nothing, the submit goes again."""
    emu.faults.add(Fault("generate", "reset", count=1))
    job = await submit(session)
    assert [e.run_id for e in emu.ledger] == [job.run_id]
    assert emu.stats.requests["generate"] == 2
    assert emu.duplicate_charges() == 0


@pytest.mark.parametrize("kind", ["server_error", "bad_gateway_html", "malformed_json"])
async def test_unknown_outcomes_are_reconciled(emu: Emulator, session, kind):
    """5xx, HTML error pages and unreadable 2xx bodies on submit are reconciled, never blindly retried."""
    emu.faults.add(Fault("generate", kind, count=1))
    job = await submit(session)
    assert emu.stats.requests["recover"] == 1
    assert emu.duplicate_charges() == 0
    assert job.run_id in {e.run_id for e in emu.ledger}
    await job


async def test_several_candidates_raise_ambiguous_submit(emu: Emulator, make_session):
    """When recover shows two unclaimed new runs, nothing is adopted or resubmitted."""
    async with make_session() as ours, make_session() as theirs:
        await submit(theirs, "theirs")  # another process of the same account
        theirs_run = emu.ledger[0].run_id
        emu.faults.add(Fault("generate", "ambiguous", count=1))
        with pytest.raises(ave.AmbiguousSubmitError) as info:
            await submit(ours, "ours")
    assert theirs_run in info.value.candidates
    assert len(info.value.candidates) == 2
    assert info.value.model == "veo3-1-extend"
    assert len(emu.ledger) == 2
    assert emu.duplicate_charges() == 0


@pytest.mark.parametrize("retry_after", [True, False])
async def test_429_pauses_the_budget_and_retries(make_emulator, retry_after):
    """A 429 (with or without Retry-After) pauses that budget, then the submit goes through."""
    emu = await make_emulator(retry_after=retry_after)
    async with ave.Session(
        emu.api_key,
        base_url=emu.base_url,
        time_scale=SCALE,
        limiter=ave.RateLimiter(ave.Limits().scaled(SCALE)),
    ) as session:
        events: list[ave.Event] = []
        session.add_event_hook(events.append)
        emu.faults.add(Fault("generate", "rate_limit", count=1))
        job = await submit(session)
    assert emu.stats.requests["generate"] == 2
    assert len(emu.ledger) == 1
    assert emu.ledger[0].run_id == job.run_id
    limited = [e for e in events if e.kind is ave.EventKind.RATE_LIMITED]
    assert len(limited) == 1
    assert limited[0].budget == "generate"


async def test_refused_connection_is_retried_then_reported():
    """Connection refused proves nothing was sent: retried, then a TransportError."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with ave.Session(
        "k",
        base_url=f"http://127.0.0.1:{port}/api",
        time_scale=SCALE,
        retries=ave.Retries(attempts=3),
    ) as session:
        events: list[ave.Event] = []
        session.add_event_hook(events.append)
        with pytest.raises(ave.TransportError, match="cannot connect"):
            await submit(session)
    assert sum(e.kind is ave.EventKind.RETRYING for e in events) == 2


async def test_client_errors_are_not_retried(emu: Emulator, session):
    """A 400 is final: raised at once, sent once."""
    emu.set_video_length("https://example.com/long.mp4", 500)
    with pytest.raises(ave.BadRequestError):
        await session.extend("veo3-1-extend", "p", video_url="https://example.com/long.mp4")
    assert emu.stats.requests["generate"] == 1
    assert emu.stats.requests["recover"] == 0


async def test_a_429_asking_for_a_long_wait_is_raised_not_slept(emu: Emulator, session):
    """A Retry-After beyond LONGEST_RATE_LIMIT_WAIT (a daily cap) raises RateLimitError at once."""
    emu.faults.add(Fault("generate", "rate_limit", count=1, delay=3600 / SCALE))
    with pytest.raises(ave.RateLimitError) as info:
        await submit(session)
    assert info.value.retry_after == pytest.approx(3600 / SCALE)
    assert emu.stats.requests["generate"] == 1
    assert emu.ledger == []
