"""The batch's pure pieces: outcome records written and read back, how an entry ends when its
submit or job raises, whose an entry of a shared journal is, and the in-flight bound. Tables of
cases, no server (tests/test_spend_guard.py has the spend guard's)."""

from __future__ import annotations

import asyncio
import json

import pytest

from aiovideoextend._converter import structure_journal_entry
from aiovideoextend._journal_api import JournalEntry
from aiovideoextend._requests import MidjourneyExtend, SourceExtend
from aiovideoextend.batch import BatchOutcome, Candidate
from aiovideoextend.batch._endings import Ending, job_failed, submit_failed
from aiovideoextend.batch._entries import Entry
from aiovideoextend.batch._records import journal_record, outcome_from_journal, result_record
from aiovideoextend.batch._slots import Slots
from aiovideoextend.exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    EndpointNotFoundError,
    InsufficientBalanceError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    JournalError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
)

MJ = MidjourneyExtend("vid_src", 1)
SOURCE = SourceExtend("veo3-1-extend", "p", video_url="https://example.com/v.mp4")

AMBIGUOUS = BatchOutcome(
    1,
    "ambiguous",
    line=2,
    key="k",
    model="veo3-1-extend",
    error="cannot tell",
    candidates=(
        Candidate("vid_1", "completed", "https://v/1.mp4", path="/tmp/vid_1.mp4"),
        Candidate("vid_2", "failed", error="nsfw"),
    ),
)
OUTCOMES = [
    ("completed", BatchOutcome(0, "completed", line=1, key="k", model="m", run_id="vid_1",
                               video_url="https://v/1.mp4", cost=0.5, precharge=0.5)),
    ("failed, no line", BatchOutcome(3, "failed", key="k", model="m", run_id="vid_1", error="nsfw",
                                     precharge=0.5)),
    ("ambiguous", AMBIGUOUS),
]  # fmt: skip


def entry(outcome: dict[str, object] | str | None, **fields: object) -> JournalEntry:
    base: dict[str, object] = {
        "entry_id": "k:0",
        "request_key": "k",
        "model": "veo3-1-extend",
        "position": 4,
        "state": "finished",
        "intent_seq": 1,
        "intent_at": 1.0,
        "outcome": outcome if outcome is None or isinstance(outcome, str) else json.dumps(outcome),
    }
    return structure_journal_entry({**base, **fields})


@pytest.mark.parametrize("outcome", [o for _, o in OUTCOMES], ids=[i for i, _ in OUTCOMES])
def test_an_outcome_survives_the_journal(outcome: BatchOutcome) -> None:
    """What the journal keeps of a finished outcome reads back as the same outcome, resumed
    (path stays this run's: it is not kept)."""
    stored = json.loads(json.dumps(journal_record(outcome)))
    record = entry(stored, request_key=outcome.key, model=outcome.model)
    back = outcome_from_journal(record, index=outcome.index, line=outcome.line)
    assert back == BatchOutcome(
        **{**outcome.to_dict(), "resumed": True, "candidates": outcome.candidates}
    )


@pytest.mark.parametrize("outcome", [o for _, o in OUTCOMES], ids=[i for i, _ in OUTCOMES])
def test_one_serialisation(outcome: BatchOutcome) -> None:
    """The results record, the journal's and to_dict are one dict: line first and never empty,
    no index in the file, the journal's a subset, everything JSON-able."""
    full = outcome.to_dict()
    record = result_record(outcome)
    assert next(iter(record)) == "line"
    assert record == {
        **{k: v for k, v in full.items() if k != "index"},
        "line": outcome.line or outcome.index + 1,
    }
    journaled = journal_record(outcome)
    assert journaled.items() <= record.items()
    assert set(journaled) == {
        "status",
        "model",
        "run_id",
        "video_url",
        "error",
        "cost",
        "precharge",
        "candidates",
        "line",
    }
    assert json.loads(json.dumps(record)) == record
    assert all(isinstance(c, dict) for c in record["candidates"])


READS = [
    # (id, stored outcome, expected fields of the resumed outcome)
    ("no outcome at all: failed", None, {"status": "failed", "model": "veo3-1-extend"}),
    ("the request's model when none was kept", {"status": "failed", "model": None, "error": "x"},
     {"status": "failed", "model": "veo3-1-extend", "error": "x"}),
    ("0.1 journals kept bare candidate ids", {"status": "ambiguous", "candidates": ["vid_1", "vid_2"]},
     {"status": "ambiguous", "candidates": (Candidate("vid_1"), Candidate("vid_2"))}),
    ("unknown keys are left out", {"status": "completed", "run_id": "vid_1", "resolved": True,
                                   "path": "/old/vid_1.mp4", "surprise": 1},
     {"status": "completed", "run_id": "vid_1"}),
    ("candidate dicts with more fields", {"status": "ambiguous",
                                          "candidates": [{"run_id": "vid_1", "status": "completed", "x": 1}]},
     {"status": "ambiguous", "candidates": (Candidate("vid_1", "completed"),)}),
]  # fmt: skip


@pytest.mark.parametrize(("stored", "expected"), [c[1:] for c in READS], ids=[c[0] for c in READS])
def test_reading_older_and_odd_journal_outcomes(stored, expected) -> None:
    outcome = outcome_from_journal(entry(stored), index=4, line=None)
    defaults = {"index": 4, "line": None, "key": "k", "model": "veo3-1-extend", "resumed": True}
    assert outcome == BatchOutcome(**{**defaults, **expected})


ENTRY_FIELDS = [
    # (id, stored fields as a store hands them over, what the entry says)
    ("a SQLite row", {"run_id": "vid_1", "submitted_seq": 2, "precharge": 0.5, "submitted_at": 3.5},
     {"run_id": "vid_1", "submitted_seq": 2, "precharge": 0.5, "submitted_at": 3.5}),
    ("a Redis hash: text, '' for none",
     {"position": "4", "intent_seq": "1", "intent_at": "1.0", "run_id": "", "submitted_seq": "",
      "precharge": "", "submitted_at": "", "owner": ""},
     {"run_id": None, "submitted_seq": None, "precharge": None, "owner": None}),
    ("an entry with a live owner", {"owner": "w1", "owner_alive": True},
     {"owner": "w1", "owner_alive": True}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "expected"), [c[1:] for c in ENTRY_FIELDS], ids=[c[0] for c in ENTRY_FIELDS]
)
def test_one_decode_of_journal_entries(fields, expected) -> None:
    decoded = entry(None, **fields)
    assert {name: getattr(decoded, name) for name in expected} == expected
    assert (decoded.position, decoded.intent_seq, decoded.intent_at) == (4, 1, 1.0)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"state": "paid"}, "unknown state 'paid'"),
        ({"intent_seq": "x"}, "invalid literal"),
        ({"raw_outcome": "[1]"}, "not a JSON object"),
        ({"raw_outcome": "{"}, "cannot be read"),
    ],
)
def test_an_unreadable_entry_is_a_journal_error(fields, match) -> None:
    raw = fields.pop("raw_outcome", None)
    with pytest.raises(JournalError, match=match):
        entry(raw, **fields)


def test_an_entry_without_its_intent_is_a_journal_error() -> None:
    with pytest.raises(JournalError, match="k:0 cannot be read: no intent_seq"):
        structure_journal_entry({"entry_id": "k:0", "request_key": "k", "model": "m",
                                 "position": 0, "state": "intent", "intent_at": 1.0})  # fmt: skip


def api(cls, status: int, message: str = "no"):
    return cls(message, status_code=status)


SUBMIT_FAILURES = [
    # (id, error, request, ending; None: drop the intent and stop the batch)
    ("unreachable", APIConnectionError("down"), SOURCE, None),
    ("not NanoGPT", EndpointNotFoundError("404", status_code=404, url="u"), SOURCE, None),
    ("key rejected", api(AuthenticationError, 401), SOURCE, None),
    ("key not allowed here", api(PermissionDeniedError, 403), SOURCE, None),
    ("someone else's run", api(PermissionDeniedError, 403), MJ, Ending("failed", "403: no", "finish")),
    ("402", api(InsufficientBalanceError, 402),  SOURCE,
     Ending("insufficient_balance", "402: no", "forget", stop=True)),
    ("429 after retries", api(RateLimitError, 429), SOURCE,
     Ending("skipped", "not submitted: 429: no", "forget")),
    ("transport error, nothing created", TransportError("reset"), SOURCE,
     Ending("skipped", "not submitted: reset", "forget")),
    ("refused", api(BadRequestError, 400), SOURCE, Ending("failed", "400: no", "finish")),
    ("server error", api(ServerError, 500), SOURCE, Ending("failed", "500: no", "finish")),
    ("ambiguous, recover not asked", AmbiguousSubmitError("lost", model="m"), SOURCE,
     Ending("unfinished", "submit outcome unknown: lost", "release")),
    ("undecodable answer", ResponseDecodeError("junk"), SOURCE,
     Ending("unfinished", "submit outcome unknown: junk", "release")),
    ("journal failed", JournalError("disk"), SOURCE,
     Ending("unfinished", "submit outcome unknown: disk", "release")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "request_", "ending"),
    [c[1:] for c in SUBMIT_FAILURES],
    ids=[c[0] for c in SUBMIT_FAILURES],
)
def test_how_an_entry_ends_when_its_submit_raises(error, request_, ending) -> None:
    """A submit that surely created nothing drops its intent; one that may have created a job
    keeps it for reconciliation (never resubmitted blindly); a refusal is final."""
    assert submit_failed(error, request_) == ending


JOB_FAILURES = [
    ("failed", JobFailedError("vid_1 failed", run_id="vid_1", error="raw", user_friendly_error="nsfw"),
     Ending("failed", "nsfw", "finish", refund=True)),
    ("failed without a friendly error", JobFailedError("vid_1 failed", run_id="vid_1", error="raw"),
     Ending("failed", "raw", "finish", refund=True)),
    ("cancelled", JobCancelledError("gone", run_id="vid_1"),
     Ending("cancelled", "gone", "finish", refund=True)),
    ("timed out", JobTimeoutError("late", run_id="vid_1"),
     Ending("unfinished", "late; rerun to keep waiting", "release")),
    ("not found", api(NotFoundError, 404), Ending("failed", "404: no", "finish")),
    ("not ours", api(PermissionDeniedError, 403), Ending("failed", "403: no", "finish")),
    ("server unreachable", APIConnectionError("down"), None),
    ("key rejected", api(AuthenticationError, 401), None),
    ("server trouble", api(ServerError, 503),
     Ending("unfinished", "503: no; rerun to keep waiting", "release")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("error", "ending"), [c[1:] for c in JOB_FAILURES], ids=[c[0] for c in JOB_FAILURES]
)
def test_how_an_entry_ends_when_its_job_raises(error, ending) -> None:
    """Failed and cancelled jobs are refunded and final; a job that may still run is left for
    a rerun to keep following."""
    assert job_failed(error) == ending


def line(index: int) -> Entry:
    return Entry(index, index + 1, SOURCE, None, f"k:{index}")


async def test_the_in_flight_bound() -> None:
    """Submits wait for a slot; runs taken over from the journal take one at once, past the
    bound if need be, and those past it are given back first: a submit waits until fewer than
    max_in_flight entries run, however they started."""
    slots = Slots(2)
    a, b, c, d, e = (line(n) for n in range(5))
    await slots.acquire(a)
    await slots.take(b)  # a free slot
    await slots.take(c)  # past the bound: it runs anyway
    assert (a.holds_slot, b.holds_slot, c.holds_slot) == (True, True, True)
    waiting = asyncio.ensure_future(slots.acquire(d))
    await asyncio.sleep(0)
    slots.release(a)  # 2 of 2 still run (b, c)
    await asyncio.sleep(0)
    assert not waiting.done()
    slots.release(e)  # holds none: nothing is given back
    slots.release(b)
    await asyncio.wait_for(waiting, 1)
    assert d.holds_slot
    assert not a.holds_slot
    slots.release(a)  # again: it holds none any more
    assert slots._free.locked()  # type: ignore[union-attr]  (c and d run)
    slots.release(c)
    assert not slots._free.locked()  # type: ignore[union-attr]


async def test_no_bound() -> None:
    slots = Slots(None)
    entries = [line(n) for n in range(100)]
    for entry in entries:
        await slots.acquire(entry)
    assert all(entry.holds_slot for entry in entries)
