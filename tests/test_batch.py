"""run_batch against the emulator: outcomes, the journal, reconciliation, spend guards."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import pytest

import aiovideoextend as ave
from aiovideoextend.batch import BatchItem, BatchOutcome, BatchUpdate, Journal, run_batch
from aiovideoextend.testing import Fault

if TYPE_CHECKING:
    from pathlib import Path

    from aiovideoextend.testing import Emulator

MODEL = "veo3-1-extend"


def source(n: int, model: str = MODEL) -> ave.SourceExtend:
    return ave.SourceExtend(model, f"prompt {n}", video_url=f"https://example.com/{n}.mp4")


async def collect(session: ave.Session, requests: Any, **options: Any) -> list[BatchOutcome]:
    return [outcome async for outcome in run_batch(session, requests, **options)]


def by_index(outcomes: list[BatchOutcome]) -> dict[int, BatchOutcome]:
    result = {o.index: o for o in outcomes}
    assert len(result) == len(outcomes), "an index was reported twice"
    return result


async def test_every_request_gets_one_outcome(session, emu: Emulator):
    """Both flows complete; an invalid dict and a BatchItem error are outcomes, never sent."""
    midjourney = emu.midjourney_run_ids(emu.api_key)[0]
    requests = [
        ave.MidjourneyExtend(midjourney, 1),
        source(1),
        {"run_id": midjourney, "index": 7},
        BatchItem(error="broken line", line=9),
        {"model": MODEL, "prompt": "p", "video_url": "https://example.com/d.mp4"},
    ]
    updates: list[BatchUpdate] = []
    outcomes = by_index(await collect(session, requests, on_update=updates.append))
    assert [outcomes[i].status for i in range(5)] == [
        "completed",
        "completed",
        "invalid",
        "invalid",
        "completed",
    ]
    assert "0-3" in (outcomes[2].error or "")
    assert outcomes[3].line == 9
    assert outcomes[0].video_url
    assert outcomes[0].cost is not None
    assert len(emu.ledger) == 3
    states = {u.state for u in updates}
    assert {"queued", "submitting", "completed"} <= states


async def test_failed_jobs_are_outcomes(make_emulator, make_session):
    """A job that fails on the server is an outcome with the reason, and the batch goes on."""
    emu = await make_emulator(failure_rate=1.0)
    async with make_session(base_url=emu.base_url) as session:
        outcomes = await collect(session, [source(1), source(2)])
    assert {o.status for o in outcomes} == {"failed"}
    assert all(o.error and o.finished for o in outcomes)


async def test_rerun_with_journal_resubmits_nothing(session, emu: Emulator, tmp_path: Path):
    """A finished batch run again comes back from the journal without a single submit."""
    journal = tmp_path / "j"
    requests = [source(n) for n in range(6)]
    first = by_index(await collect(session, requests, journal=journal))
    submits = len(emu.ledger)
    second = by_index(await collect(session, requests, journal=journal))
    assert len(emu.ledger) == submits == 6
    assert all(o.resumed for o in second.values())
    assert {i: o.run_id for i, o in first.items()} == {i: o.run_id for i, o in second.items()}


async def test_identical_requests_are_separate_entries(session, emu: Emulator, tmp_path: Path):
    """Two identical lines are two submits, and a rerun still knows both."""
    requests = [source(1), source(1)]
    first = await collect(session, requests, journal=tmp_path / "j")
    assert len({o.run_id for o in first}) == 2
    await collect(session, requests, journal=tmp_path / "j")
    assert len(emu.ledger) == 2


async def test_submitted_runs_are_reattached(session, emu: Emulator, tmp_path: Path):
    """An entry with a run id but no outcome is attached to, not resubmitted."""
    request = source(1)
    job = await session.submit(request)
    with Journal(tmp_path / "j") as journal:
        entry_id = f"{request.key}:0"
        journal.record_intent(entry_id, request_key=request.key, model=MODEL, position=0)
        journal.record_submitted(entry_id, job.run_id, 1.2)
        (outcome,) = await collect(session, [request], journal=journal)
    assert outcome.status == "completed"
    assert outcome.run_id == job.run_id
    assert len(emu.ledger) == 1


async def _lost_answer(session: ave.Session, journal: Journal, request: ave.SourceExtend) -> str:
    """Leave the journal as a crash between sending a submit and recording its answer does."""
    runs = await session.recover(model=request.model, limit=50)
    journal.record_known_runs(request.model, [r.run_id for r in runs], complete=len(runs) < 50)
    entry_id = f"{request.key}:0"
    journal.record_intent(entry_id, request_key=request.key, model=request.model, position=0)
    job = await session.submit(request)
    return job.run_id


async def test_lost_answer_is_adopted_not_resubmitted(make_session, emu: Emulator, tmp_path):
    """The one run created after the intent is adopted: no second charge."""
    request = source(1)
    with Journal(tmp_path / "j") as journal:
        async with make_session() as crashed:
            run_id = await _lost_answer(crashed, journal, request)
        async with make_session() as session:
            (outcome,) = await collect(session, [request], journal=journal)
    assert outcome.status == "completed"
    assert outcome.run_id == run_id
    assert len(emu.ledger) == 1
    assert emu.duplicate_charges() == 0


async def test_intent_that_created_nothing_is_submitted(session, emu: Emulator, tmp_path):
    """An intent with no new run on the server (the crash came before sending) is submitted."""
    request = source(1)
    with Journal(tmp_path / "j") as journal:
        journal.record_known_runs(MODEL, [], complete=True)
        journal.record_intent(f"{request.key}:0", request_key=request.key, model=MODEL, position=0)
        (outcome,) = await collect(session, [request], journal=journal)
    assert outcome.status == "completed"
    assert len(emu.ledger) == 1


async def test_several_candidates_are_ambiguous(make_session, emu: Emulator, tmp_path):
    """Two unknown new runs: the entry is 'ambiguous', never resubmitted, and stays so."""
    request = source(1)
    with Journal(tmp_path / "j") as journal:
        async with make_session() as crashed:
            await _lost_answer(crashed, journal, request)
            await crashed.submit(source(99))  # someone else's run of the same model
        async with make_session() as session:
            (outcome,) = await collect(session, [request], journal=journal)
            assert outcome.status == "ambiguous"
            assert len(outcome.candidates) == 2
            (again,) = await collect(session, [request], journal=journal)
    assert again.status == "ambiguous"
    assert again.resumed
    assert len(emu.ledger) == 2


async def test_recover_failure_blocks_the_model(session, emu: Emulator, tmp_path):
    """If the lost intent cannot be checked, neither it nor more of that model is submitted."""
    request, other = source(1), source(2)
    with Journal(tmp_path / "j") as journal:
        journal.record_intent(f"{request.key}:0", request_key=request.key, model=MODEL, position=0)
        emu.faults.add(Fault("recover", "server_error"))
        outcomes = by_index(await collect(session, [request, other], journal=journal))
    assert outcomes[0].status == "unfinished"
    assert outcomes[1].status == "skipped"
    assert emu.ledger == []


async def test_max_cost_stops_submitting(session, emu: Emulator):
    """Once the precharges would pass max_cost, the rest is skipped (not finished)."""
    outcomes = await collect(session, [source(n) for n in range(6)], max_cost=3.0)
    statuses = [o.status for o in sorted(outcomes, key=lambda o: o.index)]
    assert statuses.count("completed") == 2  # 1.20 each: a third would pass 3.00
    assert statuses[2:] == ["skipped"] * 4
    assert sum(entry.precharge for entry in emu.ledger) <= 3.0
    assert not max(outcomes, key=lambda o: o.index).finished


async def test_insufficient_balance_is_an_outcome_and_stops(make_emulator, make_session):
    """A 402 is an outcome, never a crash; no submit starts after it (those already on the wire
    when it came back are 402s too); every one is left for a rerun."""
    emu = await make_emulator(users={"sk-nano-poor": 2.0})
    async with make_session(base_url=emu.base_url, api_key="sk-nano-poor") as session:
        outcomes = by_index(await collect(session, [source(n) for n in range(4)]))
    statuses = sorted(o.status for o in outcomes.values())
    assert statuses.count("completed") == 1
    assert "insufficient_balance" in statuses
    assert set(statuses) <= {"completed", "insufficient_balance", "skipped"}
    assert len(emu.ledger) == 1


async def test_after_a_402_queued_submits_are_not_sent(make_emulator, make_session):
    """Submits waiting for the rate limit when a 402 comes back are not sent at all: one 402,
    not one per queued line."""
    emu = await make_emulator(users={"sk-nano-poor": 2.0})
    limits = ave.Limits(generate=ave.Budget(2, 60.0))
    async with make_session(
        base_url=emu.base_url, api_key="sk-nano-poor", limits=limits
    ) as session:
        outcomes = by_index(await collect(session, [source(n) for n in range(12)]))
    statuses = [o.status for o in outcomes.values()]
    assert statuses.count("completed") == 1
    assert statuses.count("skipped") >= 9
    assert emu.stats.requests["generate"] <= 3  # the two of the first window, at most one more
    assert all(
        "not submitted" in (o.error or "") for o in outcomes.values() if o.status == "skipped"
    )


async def test_min_balance_floor(make_emulator, make_session):
    """min_balance stops before the reported balance would drop under the floor."""
    emu = await make_emulator(users={"sk-nano-some": 5.0})
    async with make_session(base_url=emu.base_url, api_key="sk-nano-some") as session:
        outcomes = await collect(session, [source(n) for n in range(4)], min_balance=2.0)
    assert [o.status for o in sorted(outcomes, key=lambda o: o.index)] == [
        "completed",
        "completed",
        "skipped",
        "skipped",
    ]


async def test_max_in_flight_bounds_running_jobs(session, emu: Emulator):
    """With max_in_flight=2 no more than two jobs are submitted and unfinished at once."""
    running: set[int] = set()
    peak = 0

    def on_update(update: BatchUpdate) -> None:
        nonlocal peak
        if update.state in ("pending", "processing"):
            running.add(update.index)
        elif update.state in ("completed", "failed", "cancelled"):
            running.discard(update.index)
        peak = max(peak, len(running))

    outcomes = await collect(
        session, [source(n) for n in range(6)], max_in_flight=2, on_update=on_update
    )
    assert len(outcomes) == 6
    assert peak == 2


async def test_cancellation_leaves_a_resumable_journal(session, emu: Emulator, tmp_path):
    """Cancelling mid-batch stops at once; rerunning finishes without paying twice."""
    requests = [source(n) for n in range(8)]
    task = asyncio.create_task(collect(session, requests, journal=tmp_path / "j"))
    while len(emu.ledger) < 3:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    outcomes = await collect(session, requests, journal=tmp_path / "j")
    assert {o.status for o in outcomes} == {"completed"}
    assert len(emu.ledger) == 8
    assert emu.duplicate_charges() == 0


async def test_downloads_completed_videos(session, emu: Emulator, tmp_path):
    """download= streams each completed video to <run_id>.mp4, also for resumed entries."""
    requests = [source(1), source(2)]
    outcomes = await collect(session, requests, journal=tmp_path / "j", download=tmp_path / "v")
    for outcome in outcomes:
        assert outcome.path == str(tmp_path / "v" / f"{outcome.run_id}.mp4")
    first = outcomes[0]
    assert first.path is not None
    (tmp_path / "v" / f"{first.run_id}.mp4").unlink()
    again = await collect(session, requests, journal=tmp_path / "j", download=tmp_path / "v")
    assert all(o.resumed and o.path for o in again)
    assert (tmp_path / "v" / f"{first.run_id}.mp4").exists()


async def test_bad_max_in_flight():
    """max_in_flight below 1 is refused before anything starts."""
    with pytest.raises(ValueError, match="max_in_flight"):
        async for _ in run_batch(None, [], max_in_flight=0):  # type: ignore[arg-type]
            pass


async def test_a_waiting_submit_is_reported_once_per_budget(make_session):
    """Submits held by the rate limit show as waiting, each once for its budget, however often
    polls and other submits wait for a slot meanwhile."""
    limits = ave.Limits(generate=ave.Budget(2, 60.0))
    updates: list[BatchUpdate] = []
    async with make_session(limits=limits) as session:
        outcomes = await collect(session, [source(n) for n in range(6)], on_update=updates.append)
    assert {o.status for o in outcomes} == {"completed"}
    waits: dict[int, list[str]] = {}
    for update in updates:
        if update.state == "waiting":
            waits.setdefault(update.index, []).append((update.detail or "").split(" ")[0])
    assert len(waits) >= 4  # four of six wait for the generate budget at least
    for details in waits.values():
        # never the same budget twice in a row for one submit
        assert all(a != b for a, b in itertools.pairwise(details))
