"""Every fault the emulator injects x both extend flows x the submit and status routes.

Two doses per cell: a burst (the next two matching requests) that the client must ride out to
a completed job, and a fault that never stops, where the client must give up with a typed error
that names the run (or, when no run was ever created, with an empty ledger). In every cell:
nothing is charged twice and no task of the client outlives its session.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aiovideoextend as ave
from aiovideoextend.testing import Emulator, Fault
from aiovideoextend.testing._faults import FAULT_KINDS

from .conftest import SCALE

MP4_URL = "https://example.com/source.mp4"
JOBS = 3
#: Status faults that never stop end at this deadline: 120 emulated seconds = 0.2 s here.
DEADLINE = 120.0
#: A "slow" answer takes longer than the client's request timeout.
TIMEOUT = ave.Timeouts(total=0.1)
SLOW = 0.3
# Kinds that never create a run when they hit a submit.
NOTHING_CREATED = {"server_error", "bad_gateway_html", "reset", "rate_limit", "slow"}
STATUS_ONLY = {"unknown_status", "no_video_url"}
SUBMIT_ONLY = {"ambiguous"}


def cells() -> list[Any]:
    params = []
    # A 429 comes with Retry-After or without it (the emulator's retry_after=False).
    # late_create (a run created after the client gave up) is the documented unsafe case: it
    # has tests of its own in tests/testing/test_faults.py, not this matrix's expectations.
    for kind in [*sorted(FAULT_KINDS - {"late_create"}), "rate_limit_bare"]:
        for flow in ("midjourney", "source"):
            for route in ("submit", "status"):
                if (route == "submit" and kind in STATUS_ONLY) or (
                    route == "status" and kind in SUBMIT_ONLY
                ):
                    continue
                # A status fault that never stops is counted in compressed time against
                # DEADLINE: on a fast-forwarded clock that costs no waiting.
                marks = [pytest.mark.fast_forward] if route == "status" else []
                params.extend(
                    pytest.param(
                        kind, flow, route, dose, id=f"{kind}-{flow}-{route}-{dose}", marks=marks
                    )
                    for dose in ("burst", "always")
                )
    return params


def client_tasks(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since ``before`` that belong to the client (not to the emulator's server)."""
    leaked = []
    for task in asyncio.all_tasks() - before:
        if task is asyncio.current_task() or task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        where = code.co_filename if code is not None else ""
        if "aiohttp/web" in where or "aiovideoextend/testing" in where:
            continue
        leaked.append(task)
    return leaked


async def submit(session: ave.Session, emu: Emulator, flow: str, n: int) -> ave.Job:
    if flow == "midjourney":
        runs = emu.midjourney_run_ids(emu.api_key)
        return await session.extend_midjourney(runs[n // 4], index=n % 4)
    return await session.extend("veo3-1-extend", f"shot {n}", video_url=MP4_URL)


@pytest.mark.parametrize(("kind", "flow", "route", "dose"), cells())
async def test_fault_cell(make_emulator, kind, flow, route, dose):
    """Each job completes or ends in a typed error with its run id; no double charge, no leak."""
    emu: Emulator = await make_emulator(seed=7, retry_after=kind != "rate_limit_bare")
    kind = kind.removesuffix("_bare")
    target = "status" if route == "status" else ("extend" if flow == "midjourney" else "generate")
    delay = SLOW if kind == "slow" else None
    fault = (
        Fault(target, kind, count=2, delay=delay)
        if dose == "burst"
        else Fault(target, kind, delay=delay)
    )
    before = asyncio.all_tasks()
    session = ave.Session(
        emu.api_key,
        base_url=emu.base_url,
        time_scale=SCALE,
        limiter=ave.RateLimiter(ave.Limits().scaled(SCALE)),
        # Only status faults that never stop race the deadline (on a fast-forwarded clock); the
        # other cells' jobs are waited for to the end. A burst cell once ran out of the deadline
        # on a busy machine (1 run in 4): the fast-forwarded clock can jump to the next timer
        # while an answer is still on its way through the loopback interface.
        poll=ave.PollPolicy(timeout=DEADLINE if route == "status" and dose == "always" else None),
        timeout=TIMEOUT,
        retries=ave.Retries(attempts=4),
    )
    outcomes: list[ave.VideoResult | BaseException] = []
    jobs: list[ave.Job] = []
    async with session:
        emu.faults.add(fault)
        # One submit at a time: concurrent lost answers of one model are AmbiguousSubmitError
        # by design (tests/test_submit.py); here each cell shows one fault's effect.
        for n in range(JOBS):
            try:
                jobs.append(await submit(session, emu, flow, n))
            except ave.VideoExtendError as exc:
                outcomes.append(exc)
        outcomes += await asyncio.gather(*jobs, return_exceptions=True)
    for _ in range(3):
        await asyncio.sleep(0)
    assert client_tasks(before) == []
    assert emu.duplicate_charges() == 0
    ledger = {entry.run_id for entry in emu.ledger}
    assert {job.run_id for job in jobs} == ledger, "a charged run is not followed by any job"
    assert not [o for o in outcomes if not isinstance(o, ave.VideoResult | ave.VideoExtendError)]

    completed = [o for o in outcomes if isinstance(o, ave.VideoResult)]
    errors = [o for o in outcomes if isinstance(o, ave.VideoExtendError)]
    for error in errors:
        if isinstance(error, ave.JobError):
            assert error.run_id in ledger
            assert error.run_id in str(error)
    for result in completed:
        assert emu.job(result.run_id).status.value == "completed"

    if dose == "burst" and kind != "no_video_url":
        assert len(completed) == JOBS, errors
    elif kind == "no_video_url":
        # The status without a URL is the one that said COMPLETED: the job failed, saying why.
        assert all(isinstance(e, ave.JobFailedError) and "video URL" in str(e) for e in errors)
        assert dose == "burst" or len(errors) == JOBS
    elif route == "status":
        # Polls never succeed: the job is still running when the deadline passes, named by id.
        assert len(errors) == JOBS
        assert all(isinstance(e, ave.JobTimeoutError) for e in errors)
    elif kind in NOTHING_CREATED:
        # Every attempt failed before a run existed: a typed error, nothing charged.
        assert len(errors) == JOBS
        assert all(isinstance(e, ave.TransportError | ave.APIError) for e in errors)
        assert ledger == set()
    else:
        # The run was created and its answer lost or mangled every time: found through recover.
        assert len(completed) == JOBS, errors
        assert len(ledger) == JOBS


@pytest.mark.parametrize("lost", ["malformed_json", "ambiguous", "missing_fields"])
async def test_lost_answers_among_concurrent_submits_get_their_own_runs(
    emu: Emulator, session, lost
):
    """A lost answer among concurrent submits is matched to its own run; a 503 is sent again."""
    emu.faults.add(Fault("generate", "reset", count=1))
    first = await session.extend("veo3-1-extend", "first", video_url=MP4_URL)
    emu.faults.add(Fault("generate", lost, count=1))
    emu.faults.add(Fault("generate", "server_error", status=503, count=1))
    prompts = [f"together {n}" for n in range(4)]
    jobs = await asyncio.gather(
        *(session.extend("veo3-1-extend", p, video_url=MP4_URL) for p in prompts)
    )
    bodies = {entry.run_id: entry.payload["prompt"] for entry in emu.ledger}
    assert bodies[first.run_id] == "first"
    assert [bodies[job.run_id] for job in jobs] == prompts
    assert len(emu.ledger) == 5
    assert emu.duplicate_charges() == 0


@pytest.mark.parametrize("created_at", ["missing", "exact"])
@pytest.mark.parametrize("lost", ["ambiguous", "malformed_json"])
async def test_after_a_loss_submits_go_one_at_a_time(make_emulator, lost, created_at):
    """After a lost answer the model's submits go one at a time for a while (a careful spell),
    so that each later loss is matched to its own run, with or without createdAt."""
    emu = await make_emulator(created_at=created_at)
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as session:
        emu.faults.add(Fault("generate", lost, count=1))
        first = await session.extend("veo3-1-extend", "first", video_url=MP4_URL)
        emu.faults.add(Fault("generate", lost, count=2))
        prompts = [f"careful {n}" for n in range(4)]
        jobs = await asyncio.gather(
            *(session.extend("veo3-1-extend", p, video_url=MP4_URL) for p in prompts)
        )
    assert emu.created_by(first.run_id)["prompt"] == "first"
    assert [emu.created_by(job.run_id)["prompt"] for job in jobs] == prompts
    assert len(emu.ledger) == 5
    assert emu.duplicate_charges() == 0


async def test_concurrent_submits_leave_together_in_good_times(emu: Emulator, session):
    """Without trouble, submits of one model are not serialised: all are out before any answer."""
    emu.faults.add(Fault("generate", "slow", count=8, delay=0.05))
    seen_at_first_answer: list[int] = []

    def on_event(event: ave.Event) -> None:
        if event.kind is ave.EventKind.SUBMITTED and not seen_at_first_answer:
            seen_at_first_answer.append(emu.stats.requests["generate"])

    session.add_event_hook(on_event)
    await asyncio.gather(
        *(session.extend("veo3-1-extend", f"p{n}", video_url=MP4_URL) for n in range(8))
    )
    assert seen_at_first_answer == [8]


async def test_recover_down_while_reconciling_is_ambiguous_not_resubmitted(
    emu: Emulator, make_session
):
    """A lost answer that recover cannot check raises AmbiguousSubmitError: nothing is resent."""
    emu.faults.add(Fault("generate", "ambiguous", count=1))
    emu.faults.add(Fault("recover", "server_error"))
    async with make_session(retries=ave.Retries(attempts=2)) as session:
        with pytest.raises(ave.AmbiguousSubmitError, match="recover could not tell") as info:
            await session.extend("veo3-1-extend", "p", video_url=MP4_URL)
    assert info.value.candidates == ()
    assert emu.stats.requests["generate"] == 1
    assert len(emu.ledger) == 1
