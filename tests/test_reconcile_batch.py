"""The reconciler in journaled batches: intents a dead worker left, ambiguous lines and their
candidates, `aiovideoextend resolve`, and submits that go out together with a journal."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import uuid
from typing import TYPE_CHECKING, Any

import attrs
import pytest

import aiovideoextend as ave
import aiovideoextend.batch as batch_module
from aiovideoextend._resolve import resolve_line
from aiovideoextend.batch import BatchOutcome, Journal, run_batch
from aiovideoextend.batch._records import result_record
from aiovideoextend.exceptions import JournalError
from aiovideoextend.testing import Fault

if TYPE_CHECKING:
    from aiovideoextend.testing import Emulator

MODEL = "veo3-1-extend"
MP4 = "https://example.com/own.mp4"


def source(n: int) -> ave.SourceExtend:
    return ave.SourceExtend(MODEL, f"prompt {n}", video_url=f"https://example.com/{n}.mp4")


async def collect(session: ave.Session, requests: Any, **options: Any) -> list[BatchOutcome]:
    outcomes = [outcome async for outcome in run_batch(session, requests, **options)]
    return sorted(outcomes, key=lambda o: o.index)


async def resolve(*args: str) -> int:
    """`aiovideoextend resolve ...` in a subprocess, as a person runs it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiovideoextend", "resolve", *args
    )
    return await proc.wait()


def intent(journal: Journal, request: ave.SourceExtend, position: int) -> str:
    entry_id = f"{request.key}:0"
    journal.record_intent(entry_id, request_key=request.key, model=request.model, position=position)
    return entry_id


async def test_a_dead_workers_lost_answers_are_matched_by_their_flights(
    make_session, emu: Emulator, tmp_path
):
    """Submits a dead worker sent one after another, answers lost: each intent's time and the
    answered submits' clock tell whose run is whose; nothing is resubmitted or left ambiguous."""
    requests = [source(n) for n in range(6)]
    with Journal(tmp_path / "j") as journal:
        async with make_session() as dead:
            await dead.recover(model=MODEL, limit=50)
            for position, request in enumerate(requests[:4]):  # answered: they pin the clock
                entry_id = intent(journal, request, position)
                job = await dead.submit(request)
                journal.record_submitted(entry_id, job.run_id, None)
            for position, request in enumerate(requests[4:], start=4):  # answers lost
                intent(journal, request, position)
                await dead.submit(request)
                await asyncio.sleep(0.3)  # the next one left well after this one's run existed
        async with make_session() as session:
            outcomes = await collect(session, requests, journal=journal)
    assert [o.status for o in outcomes] == ["completed"] * 6
    for request, outcome in zip(requests, outcomes, strict=True):
        assert emu.created_by(outcome.run_id or "")["prompt"] == request.prompt  # type: ignore[index]
    assert len(emu.ledger) == 6
    assert emu.duplicate_charges() == 0


async def test_an_ambiguous_line_names_followed_candidates_and_can_be_resolved(
    make_session, emu: Emulator, tmp_path
):
    """Two intents whose runs cannot be told apart: both lines end ambiguous, each naming both
    runs with their final status and video; resolving one writes its result (journal and
    results file, one record per line) and a rerun reports it."""
    requests = [source(1), source(2)]
    journal_path, results_path = (
        tmp_path / "jobs.jsonl.journal",
        tmp_path / "jobs.jsonl.results.jsonl",
    )
    with Journal(journal_path) as journal:
        async with make_session() as dead:
            await dead.recover(model=MODEL, limit=50)
            for position, request in enumerate(requests):
                intent(journal, request, position)
            jobs = await asyncio.gather(*(dead.submit(r) for r in requests))  # both lost
        async with make_session() as session:
            outcomes = await collect(
                session, requests, journal=journal, download=tmp_path / "videos"
            )
        runs = {job.run_id for job in jobs}
        assert [o.status for o in outcomes] == ["ambiguous", "ambiguous"]
        for outcome in outcomes:
            assert {c.run_id for c in outcome.candidates} == runs
            assert all(
                c.status == "completed" and c.video_url and c.path for c in outcome.candidates
            )
        with results_path.open("w") as f:
            for outcome in outcomes:
                f.write(json.dumps(result_record(outcome)) + "\n")
        own = jobs[0].run_id  # line 1's body created it (the emulator knows)
        with pytest.raises(JournalError, match="not a candidate"):
            resolve_line(journal, 1, "vid_nope", results_path)
        with pytest.raises(JournalError, match="no finished outcome"):
            resolve_line(journal, 9, own)
    assert emu.created_by(own)["prompt"] == "prompt 1"  # type: ignore[index]
    manifest = tmp_path / "jobs.jsonl"
    assert await resolve(str(manifest), "1", own) == 0
    assert await resolve(str(manifest), "2", own) == 2  # already line 1's
    assert await resolve(str(manifest), "1", own) == 2  # not ambiguous any more
    records = [json.loads(raw) for raw in results_path.read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2]
    assert records[0]["status"] == "completed"
    assert records[0]["run_id"] == own
    assert records[0]["resolved"] is True
    assert records[1]["status"] == "ambiguous"
    with Journal(journal_path) as journal:
        async with make_session() as session:
            again = await collect(session, requests, journal=journal)
    assert [o.status for o in again] == ["completed", "ambiguous"]
    assert again[0].run_id == own
    assert again[0].resumed
    assert len(emu.ledger) == 2


async def test_a_dead_workers_tagged_intents_are_matched_by_their_tags(
    make_session, emu: Emulator, tmp_path
):
    """The same two lost intents as above, each request with a conversation_uuid of its own:
    recover echoes the tags, so each line gets the run its own request created."""
    requests = [
        ave.SourceExtend(
            MODEL,
            f"prompt {n}",
            video_url=f"https://example.com/{n}.mp4",
            options={"conversation_uuid": f"conv-{n}"},
        )
        for n in (1, 2)
    ]
    with Journal(tmp_path / "j") as journal:
        async with make_session() as dead:
            await dead.recover(model=MODEL, limit=50)
            for position, request in enumerate(requests):
                intent(journal, request, position)
            await asyncio.gather(*(dead.submit(r) for r in requests))  # both lost
        async with make_session() as session:
            outcomes = await collect(session, requests, journal=journal)
    assert [o.status for o in outcomes] == ["completed", "completed"]
    for request, outcome in zip(requests, outcomes, strict=True):
        assert emu.created_by(outcome.run_id or "")["prompt"] == request.prompt  # type: ignore[index]
    assert len(emu.ledger) == 2
    assert emu.duplicate_charges() == 0


async def test_with_tag_submits_a_dead_workers_lines_are_matched_by_derived_tags(
    make_session, emu: Emulator, tmp_path
):
    """Retries(tag_submits=True): a batch line's submits carry a tag derived from its entry id,
    so a rerun after a crash knows the tag of every lost intent and matches runs exactly,
    although both answers were lost in one burst with no createdAt to tell them apart."""
    emu.created_at = "missing"
    requests = [source(1), source(2)]
    tagging = ave.Retries(tag_submits=True)
    with Journal(tmp_path / "j") as journal:
        async with make_session() as dead:
            await dead.recover(model=MODEL, limit=50)
            sent = []
            for position, request in enumerate(requests):
                entry_id = intent(journal, request, position)
                tag = str(uuid.uuid5(batch_module._TAGS, entry_id))
                sent.append(attrs.evolve(request, options={"conversation_uuid": tag}))
            await asyncio.gather(*(dead.submit(r) for r in sent))  # both lost
        async with make_session(retries=tagging) as session:
            outcomes = await collect(session, requests, journal=journal)
    assert [o.status for o in outcomes] == ["completed", "completed"]
    for request, outcome in zip(requests, outcomes, strict=True):
        assert emu.created_by(outcome.run_id or "")["prompt"] == request.prompt  # type: ignore[index]
    assert len(emu.ledger) == 2


async def test_with_tag_submits_a_batch_line_sends_its_derived_tag(
    make_session, emu: Emulator, tmp_path
):
    """The tag a line's submit carries is the one a rerun derives; a line's own
    conversation_uuid is kept."""
    own = ave.SourceExtend(
        MODEL, "own tag", video_url=MP4, options={"conversation_uuid": "conv-own"}
    )
    requests = [source(1), own]
    async with make_session(retries=ave.Retries(tag_submits=True)) as session:
        outcomes = await collect(session, requests, journal=tmp_path / "j")
    tags = [emu.created_by(o.run_id or "")["conversationUUID"] for o in outcomes]  # type: ignore[index]
    assert tags == [str(uuid.uuid5(batch_module._TAGS, f"{requests[0].key}:0")), "conv-own"]


async def test_journaled_submits_leave_together(session, emu: Emulator, tmp_path):
    """With a journal, a model's submits are not serialised: all are out before any answer."""
    emu.faults.add(Fault("generate", "slow", count=8, delay=0.05))
    seen_at_first_answer: list[int] = []

    def on_event(event: ave.Event) -> None:
        if event.kind is ave.EventKind.SUBMITTED and not seen_at_first_answer:
            seen_at_first_answer.append(emu.stats.requests["generate"])

    session.add_event_hook(on_event)
    outcomes = await collect(session, [source(n) for n in range(8)], journal=tmp_path / "j")
    assert seen_at_first_answer == [8]
    assert {o.status for o in outcomes} == {"completed"}


async def test_ctrl_c_waits_for_submits_on_the_wire(session, emu: Emulator, tmp_path):
    """Cancelled while submits are on the wire: their answers are recorded first, so the rerun
    attaches to every run and nothing is ambiguous or paid twice."""
    emu.faults.add(Fault("generate", "slow", count=4, delay=0.1))
    requests = [source(n) for n in range(4)]
    with Journal(tmp_path / "j") as journal:

        async def run() -> None:
            async for _ in run_batch(session, requests, journal=journal):
                pass

        task = asyncio.ensure_future(run())
        for _ in range(500):
            if emu.stats.requests["generate"] == 4:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        entries = journal.entries()
        assert {e.state for e in entries.values()} == {"submitted"}
        outcomes = await collect(session, requests, journal=journal)
    assert [o.status for o in outcomes] == ["completed"] * 4
    assert len(emu.ledger) == 4


def test_a_schema_1_journal_is_upgraded_in_place(tmp_path):
    """Journals written before answers were timed open and gain the column; entries read back."""
    path = tmp_path / "old.journal"
    with Journal(path) as journal:
        journal.record_intent("k:0", request_key="k", model=MODEL, position=0)
        journal.record_submitted("k:0", "vid_1", 0.5)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE entries DROP COLUMN submitted_at")
    db.execute("UPDATE schema_version SET version = 1")
    db.commit()
    db.close()
    with Journal(path) as journal:
        entry = journal.entries()["k:0"]
        assert entry.run_id == "vid_1"
        assert entry.submitted_at is None
        journal.record_intent("m:0", request_key="m", model=MODEL, position=1)
        journal.record_submitted("m:0", "vid_2", None)
        assert journal.entries()["m:0"].submitted_at is not None
    version = sqlite3.connect(path).execute("SELECT version FROM schema_version").fetchone()[0]
    assert version == 2
