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
    assert emu.stats.requests["recover"] == 2  # the snapshot before the first submit, one look
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
    assert emu.stats.requests["recover"] == 2  # the snapshot before the first submit, one look
    assert len(emu.ledger) == 1
    assert emu.duplicate_charges() == 0
    assert job.run_id in {e.run_id for e in emu.ledger}
    await job


async def test_runs_that_cannot_be_told_apart_raise_ambiguous_submit(make_emulator):
    """Another process's run appeared while ours was lost, and no createdAt tells them apart:
    AmbiguousSubmitError names both runs; nothing is adopted or resubmitted."""
    emu = await make_emulator(created_at="missing")
    options = {"base_url": emu.base_url, "time_scale": SCALE}
    async with (
        ave.Session(emu.api_key, **options) as ours,
        ave.Session(emu.api_key, **options) as theirs,
    ):
        await submit(ours, "warm-up")  # ours has looked at the model's runs
        await submit(theirs, "theirs")  # another process of the same account
        theirs_run = emu.ledger[-1].run_id
        emu.faults.add(Fault("generate", "ambiguous", count=1))
        with pytest.raises(ave.AmbiguousSubmitError) as info:
            await submit(ours, "ours")
    ours_run = emu.ledger[-1].run_id
    assert set(info.value.candidates) == {theirs_run, ours_run}
    assert info.value.model == "veo3-1-extend"
    assert len(emu.ledger) == 3
    assert emu.duplicate_charges() == 0


async def test_a_run_seen_before_the_submit_left_is_never_adopted(make_emulator):
    """The traced misattribution: a run named earlier (here: listed by recover) is never handed
    to a submit sent later, even when it is the only unclaimed run and nothing gives dates."""
    emu = await make_emulator(created_at="missing")
    options = {"base_url": emu.base_url, "time_scale": SCALE}
    async with (
        ave.Session(emu.api_key, **options) as ours,
        ave.Session(emu.api_key, **options) as theirs,
    ):
        await submit(ours, "warm-up")
        await submit(theirs, "theirs")
        theirs_run = emu.ledger[-1].run_id
        listed = await ours.recover(model="veo3-1-extend", limit=50)
        assert theirs_run in {run.run_id for run in listed}
        emu.faults.add(Fault("generate", "server_error", count=1))  # a 500: nothing created
        job = await submit(ours, "ours")
    assert job.run_id != theirs_run
    assert emu.created_by(job.run_id)["prompt"] == "ours"
    assert emu.duplicate_charges() == 0


async def test_a_503_is_sent_again_without_reconciling(emu: Emulator, session):
    """A 503 means the server did not take the request: sent again, no recover look."""
    emu.faults.add(Fault("generate", "server_error", status=503, count=1))
    job = await submit(session)
    assert emu.stats.requests["generate"] == 2
    assert emu.stats.requests["recover"] == 1  # only the snapshot
    assert [e.run_id for e in emu.ledger] == [job.run_id]


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
    assert emu.stats.requests["recover"] == 1  # the snapshot before the first submit only


async def test_a_429_asking_for_a_long_wait_is_raised_not_slept(emu: Emulator, session):
    """A Retry-After beyond LONGEST_RATE_LIMIT_WAIT (a daily cap) raises RateLimitError at once."""
    emu.faults.add(Fault("generate", "rate_limit", count=1, delay=3600 / SCALE))
    with pytest.raises(ave.RateLimitError) as info:
        await submit(session)
    assert info.value.retry_after == pytest.approx(3600 / SCALE)
    assert emu.stats.requests["generate"] == 1
    assert emu.ledger == []
