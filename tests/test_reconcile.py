"""The reconciler end to end, through a Session against the emulator: lost answers with distinct
bodies, skewed and coarse clocks, late creations. The rules themselves are tabled in
tests/test_attribution.py."""

from __future__ import annotations

import asyncio

import pytest

import aiovideoextend as ave
from aiovideoextend._reconcile import CALM
from aiovideoextend.testing import Emulator, Fault

from .conftest import SCALE

MP4_URL = "https://example.com/source.mp4"
MODEL = "veo3-1-extend"


def prompts_of(emu: Emulator, jobs: list[ave.Job]) -> list[str]:
    return [emu.created_by(job.run_id)["prompt"] for job in jobs]  # type: ignore[index]


@pytest.mark.parametrize(("created_at", "skew"), [("exact", 0.0), ("exact", 3.0), ("coarse", -2.0)])
async def test_one_lost_answer_among_many_goes_to_its_own_request(make_emulator, created_at, skew):
    """Whatever the server's clock says, a lost answer among concurrent distinct submits is
    matched to the run its own body created; nobody else's run is handed over."""
    emu = await make_emulator(created_at=created_at, clock_skew=skew)
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        await session.extend(MODEL, "warm-up", video_url=MP4_URL)
        emu.faults.add(Fault("generate", "ambiguous", count=1))
        prompts = [f"shot {n}" for n in range(6)]
        jobs = await asyncio.gather(*(session.extend(MODEL, p, video_url=MP4_URL) for p in prompts))
    assert prompts_of(emu, jobs) == prompts
    assert len(emu.ledger) == 7
    assert emu.duplicate_charges() == 0


async def test_two_lost_answers_are_told_apart_or_named_never_swapped(make_emulator):
    """Two lost answers of distinct bodies in one burst: each gets its own run, or raises
    AmbiguousSubmitError naming both runs; a run never goes to the other body."""
    emu = await make_emulator(latency=(0.0, 0.002))
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        await session.extend(MODEL, "warm-up", video_url=MP4_URL)
        emu.faults.add(Fault("generate", "ambiguous", count=2))
        prompts = [f"shot {n}" for n in range(6)]
        answers = await asyncio.gather(
            *(session.extend(MODEL, p, video_url=MP4_URL) for p in prompts),
            return_exceptions=True,
        )
    lost_runs = {e.run_id for e in emu.ledger if not e.delivered}
    assert len(lost_runs) == 2
    named: set[str] = set()
    for prompt, answer in zip(prompts, answers, strict=True):
        if isinstance(answer, ave.AmbiguousSubmitError):
            assert set(answer.candidates) == lost_runs
            named |= set(answer.candidates)
        else:
            assert isinstance(answer, ave.Job)
            assert emu.created_by(answer.run_id)["prompt"] == prompt  # type: ignore[index]
            named.add(answer.run_id)
    assert {e.run_id for e in emu.ledger} - {emu.ledger[0].run_id} == named
    assert emu.duplicate_charges() == 0


@pytest.mark.parametrize("created_at", ["exact", "missing"])
async def test_tagged_submits_lost_together_each_get_their_own_run(make_emulator, created_at):
    """With Retries(tag_submits=True) every source-video submit carries a conversationUUID of
    its own; recover echoes it, so lost answers that flew together are told apart exactly,
    with or without createdAt."""
    emu = await make_emulator(latency=(0.0, 0.002), created_at=created_at)
    retries = ave.Retries(tag_submits=True)
    async with ave.Session(
        emu.api_key, base_url=emu.base_url, time_scale=SCALE, retries=retries
    ) as session:
        await session.extend(MODEL, "warm-up", video_url=MP4_URL)
        emu.faults.add(Fault("generate", "ambiguous", count=3))
        prompts = [f"shot {n}" for n in range(8)]
        jobs = await asyncio.gather(*(session.extend(MODEL, p, video_url=MP4_URL) for p in prompts))
    assert prompts_of(emu, jobs) == prompts
    assert sum(not e.delivered for e in emu.ledger) == 3
    tags = [emu.created_by(job.run_id)["conversationUUID"] for job in jobs]  # type: ignore[index]
    assert len(set(tags)) == len(prompts)
    assert emu.duplicate_charges() == 0


async def test_a_tag_of_the_callers_own_is_kept(make_emulator):
    """tag_submits never replaces a conversationUUID the caller chose."""
    emu = await make_emulator()
    retries = ave.Retries(tag_submits=True)
    async with ave.Session(
        emu.api_key, base_url=emu.base_url, time_scale=SCALE, retries=retries
    ) as session:
        job = await session.extend(MODEL, "mine", video_url=MP4_URL, conversation_uuid="conv-1")
    assert emu.created_by(job.run_id)["conversationUUID"] == "conv-1"  # type: ignore[index]


@pytest.mark.parametrize("created_at", ["exact", "missing"])
async def test_paced_midjourney_extends_lost_together_each_get_their_own_run(
    make_emulator, created_at
):
    """With Retries(pace_submits=True) a burst of Midjourney extends (which cannot carry a tag)
    leaves one at a time, even before anything failed: two lost answers in it are told apart by
    what the listing before each send showed, with createdAt or without it."""
    emu = await make_emulator(latency=(0.0, 0.002), created_at=created_at, midjourney_runs=2)
    parents = emu.midjourney_run_ids(emu.api_key)
    requests = [ave.MidjourneyExtend(parents[n // 4], n % 4) for n in range(8)]
    retries = ave.Retries(pace_submits=True)
    async with ave.Session(
        emu.api_key, base_url=emu.base_url, time_scale=SCALE, retries=retries
    ) as session:
        emu.faults.add(Fault("extend", "ambiguous", count=2))
        jobs = await asyncio.gather(*(session.submit(r) for r in requests))
    for request, job in zip(requests, jobs, strict=True):
        made = emu.created_by(job.run_id)
        assert made is not None
        assert (made.get("runId") or made.get("taskId"), made["index"]) == (
            request.run_id,
            request.index,
        )
    assert sum(not e.delivered for e in emu.ledger) == 2
    assert emu.duplicate_charges() == 0


async def test_ambiguous_candidates_can_be_attached_to(make_emulator):
    """The candidates of an AmbiguousSubmitError are jobs to follow: attach and await them."""
    emu = await make_emulator(created_at="missing")
    options = {"base_url": emu.base_url, "time_scale": SCALE}
    async with (
        ave.Session(emu.api_key, **options) as ours,
        ave.Session(emu.api_key, **options) as theirs,
    ):
        await ours.extend(MODEL, "warm-up", video_url=MP4_URL)
        await theirs.extend(MODEL, "theirs", video_url=MP4_URL)
        emu.faults.add(Fault("generate", "ambiguous", count=1))
        with pytest.raises(ave.AmbiguousSubmitError) as info:
            await ours.extend(MODEL, "ours", video_url=MP4_URL)
        jobs = ours.candidate_jobs(info.value)
        results = await asyncio.gather(*(job.result() for job in jobs))
    assert {job.run_id for job in jobs} == set(info.value.candidates)
    assert all(result.video_url for result in results)
    assert {job.model for job in jobs} == {MODEL}


async def test_a_late_creation_is_named_not_adopted(make_emulator):
    """The one unsafe case: a submit the server creates only after the client gave up. The
    client finds nothing, sends it again (paid twice), and names the late run as
    unattributed once it appears: it is never handed to another request."""
    emu = await make_emulator()
    async with ave.Session(
        emu.api_key,
        base_url=emu.base_url,
        time_scale=SCALE,
        timeout=ave.Timeouts(total=0.05),
    ) as session:
        await session.extend(MODEL, "warm-up", video_url=MP4_URL)
        emu.faults.add(Fault("generate", "late_create", count=1, delay=0.2))
        job = await session.extend(MODEL, "late", video_url=MP4_URL)
        others = await asyncio.gather(
            *(session.extend(MODEL, f"after {n}", video_url=MP4_URL) for n in range(3))
        )
        for _ in range(200):  # compressed time: the late look follows within a few windows
            if session.unattributed:
                break
            await asyncio.sleep(0.01)
        unattributed = {run.run_id for run in session.unattributed}
    late = [e.run_id for e in emu.ledger if not e.delivered]
    assert len(late) == 1
    assert unattributed == set(late)
    assert emu.created_by(job.run_id)["prompt"] == "late"  # type: ignore[index]
    assert job.run_id != late[0]
    assert prompts_of(emu, others) == [f"after {n}" for n in range(3)]
    assert emu.duplicate_charges() == 1  # the documented unsafe case: paid twice


async def test_a_503_starts_a_careful_spell_that_ends_after_calm_answers(
    emu: Emulator, make_session
):
    """A 503 creates nothing, but it shows the server in trouble: the model's next submits go
    one at a time, so that two answers then lost in one burst are each matched to their own
    run. Once CALM submits in a row got their answer the spell ends and a burst leaves
    together again."""
    first_answer: list[int] = []

    def on_event(event: ave.Event) -> None:
        if event.kind is ave.EventKind.SUBMITTED and not first_answer:
            first_answer.append(emu.stats.requests["generate"])

    async with make_session() as session:
        emu.faults.add(Fault("generate", "server_error", status=503, count=1))
        await session.extend(MODEL, "after a 503", video_url=MP4_URL)
        emu.faults.add(Fault("generate", "ambiguous", count=2))
        prompts = [f"careful {n}" for n in range(6)]
        jobs = await asyncio.gather(*(session.extend(MODEL, p, video_url=MP4_URL) for p in prompts))
        assert prompts_of(emu, jobs) == prompts
        # CALM answers in a row (the burst's last loss came before them) end the spell.
        for n in range(CALM):
            await session.extend(MODEL, f"calm {n}", video_url=MP4_URL)
        emu.faults.add(Fault("generate", "slow", count=8, delay=0.05))
        session.add_event_hook(on_event)
        before = emu.stats.requests["generate"]
        await asyncio.gather(
            *(session.extend(MODEL, f"burst {n}", video_url=MP4_URL) for n in range(8))
        )
    assert first_answer == [before + 8]
    assert sum(emu.stats.rate_limited.values()) == 0
    assert emu.duplicate_charges() == 0


async def test_a_submit_its_own_hook_held_back_starts_no_careful_spell(emu: Emulator, make_session):
    """A submit whose before_send hook stops it (a batch that stopped, an intent another
    worker took) never left: that is no news of the server, so the next burst still leaves
    together."""
    first_answer: list[int] = []

    def on_event(event: ave.Event) -> None:
        if event.kind is ave.EventKind.SUBMITTED and not first_answer:
            first_answer.append(emu.stats.requests["generate"])

    class HeldError(Exception):
        pass

    async def hold() -> None:
        raise HeldError

    async with make_session() as session:
        with pytest.raises(HeldError):
            await session._submit_with(ave.SourceExtend(MODEL, "held", video_url=MP4_URL), hold)
        emu.faults.add(Fault("generate", "slow", count=8, delay=0.05))
        session.add_event_hook(on_event)
        await asyncio.gather(
            *(session.extend(MODEL, f"burst {n}", video_url=MP4_URL) for n in range(8))
        )
    assert first_answer == [8]
    assert len(emu.ledger) == 8
