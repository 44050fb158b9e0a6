"""The results file keyed by request, the summary's money, grouped outcomes, max_cost checks."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

import pytest

import aiovideoextend as ave
from aiovideoextend._journal import Journal
from aiovideoextend._resolve import resolve_line
from aiovideoextend.batch import BatchOutcome, BatchUpdate, run_batch
from aiovideoextend.cli._progress import PlainDisplay, Tally, summary_lines
from aiovideoextend.cli._results import ResultsFile

if TYPE_CHECKING:
    from pathlib import Path

    from aiovideoextend.testing import Emulator


def done(line: int, key: str | None, run_id: str | None = None, **fields: Any) -> BatchOutcome:
    status = fields.pop("status", "completed" if run_id else "invalid")
    return BatchOutcome(line - 1, status, line=line, key=key, run_id=run_id, **fields)


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in path.read_text().splitlines()]


def test_records_follow_their_request_when_lines_move_or_change(tmp_path):
    """Opened with the manifest's (line, key) pairs: a record moves with its request, a changed
    line's unpaid record goes, a paid run whose request left stays marked, and comes back when
    its request does; the file is rewritten whole, with no temporary file left."""
    path = tmp_path / "r.jsonl"
    with ResultsFile(path, [(1, "a"), (2, None), (3, "c"), (4, "d")]) as results:
        assert results.write(done(1, "a", "vid_a", cost=1.0))
        assert results.write(done(2, None, error="bad line"))
        assert results.write(done(3, "c", "vid_c"))
        assert results.write(done(4, "d", "vid_d"))
    # A line inserted at the top, line 2 fixed (now "b"), "d" removed.
    expected = [(1, "new"), (2, "a"), (3, "b"), (4, "c")]
    with ResultsFile(path, expected) as results:
        assert {n: r["key"] for n, r in results.records.items()} == {2: "a", 4: "c"}
        assert [r["run_id"] for r in results.stale] == ["vid_d"]
        assert not results.write(done(2, "a", "vid_a", cost=1.0, resumed=True))
        assert results.write(done(1, "new", "vid_new"))
        assert results.write(done(3, "b", "vid_b"))
    records = read(path)
    current = sorted((r["line"], r["key"], r["run_id"]) for r in records if "in_manifest" not in r)
    assert current == [
        (1, "new", "vid_new"),
        (2, "a", "vid_a"),
        (3, "b", "vid_b"),
        (4, "c", "vid_c"),
    ]
    assert [(r["run_id"], r["in_manifest"]) for r in records if "in_manifest" in r] == [
        ("vid_d", False)
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl"]
    # "d" back at the end: its record is its line's again, not a second one.
    with ResultsFile(path, [*expected, (5, "d")]) as results:
        assert results.records[5]["run_id"] == "vid_d"
        assert results.stale == []
    assert len(read(path)) == 5


def test_a_line_whose_run_changed_keeps_the_old_paid_run(tmp_path):
    """A line's record replaced by another run (an unfinished run that ended is replaced in
    place; a different run keeps the old one, marked): a paid run is never dropped."""
    path = tmp_path / "r.jsonl"
    with ResultsFile(path, [(1, "a")]) as results:
        assert results.write(done(1, "a", "vid_1", status="unfinished"))
        assert results.write(done(1, "a", "vid_1"))
        assert not results.write(done(1, "a", "vid_1"))
        assert results.write(done(1, "a", "vid_2"))
    records = read(path)
    assert [(r["run_id"], r["status"], r.get("in_manifest")) for r in records] == [
        ("vid_1", "completed", False),
        ("vid_2", "completed", None),
    ]


def test_resolve_replaces_the_current_record_not_a_stale_one(tmp_path):
    """`aiovideoextend resolve` swaps the line's own record; a stale record at the same line
    number (a request that left the manifest) is left alone."""
    path = tmp_path / "r.jsonl"
    stale = {"line": 1, "key": "old", "status": "completed", "run_id": "vid_old"}
    ambiguous = {"line": 1, "key": "k", "status": "ambiguous", "run_id": None}
    path.write_text(
        json.dumps({**stale, "in_manifest": False}) + "\n" + json.dumps(ambiguous) + "\n"
    )
    with Journal(tmp_path / "j.journal") as journal:
        journal.record_intent("k:0", request_key="k", model="veo3-1-extend", position=0)
        candidates = [{"run_id": "vid_x", "status": "completed", "video_url": "https://v/x.mp4"}]
        journal.record_finished(
            "k:0", {"status": "ambiguous", "line": 1, "candidates": candidates, "run_id": None}
        )
        resolve_line(journal, 1, "vid_x", path)
    records = read(path)
    assert records[0] == {**stale, "in_manifest": False}
    assert (records[1]["run_id"], records[1]["status"], records[1]["resolved"]) == (
        "vid_x",
        "completed",
        True,
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_interrupted_summary_before_anything_ended():
    """Nothing ended: no 'done: ; total cost $0.00' but what runs, its precharge, and the
    balance as last reported."""
    tally = Tally(total=150, interrupted=True, running=96, precharged=59.8, balance=0.4)
    text = summary_lines(tally.summary())
    assert text[0] == "interrupted: no line ended yet (of 150 lines)"
    assert text[1].startswith("still running on the server: 96 jobs, $59.80 precharged")
    assert "not submitted yet: 54 lines" in text
    assert text[-1].startswith("remaining balance $0.40, as last reported by the server")
    assert not any("total cost" in t or "done:" in t for t in text)


def test_identical_outcomes_are_one_row_and_the_summary_groups_them(capsys):
    """128 lines skipped for one reason: the first line's row, then one row for the rest; the
    summary has one row: '128 lines not submitted (lines 23-150): max cost $10 reached'."""
    stream = io.StringIO()
    display = PlainDisplay(Tally(total=150), stream)
    reason = "not submitted: max cost $10 reached"
    display.outcome(BatchOutcome(0, "completed", line=1, run_id="vid_1", cost=0.5))
    for index in range(22, 150):
        display.outcome(BatchOutcome(index, "skipped", line=index + 1, error=reason))
    display.stop()
    rows = stream.getvalue().splitlines()
    assert len(rows) == 3
    assert "line 23: skipped (not submitted: max cost $10 reached)" in rows[1]
    assert "127 more lines not submitted for the same reason (lines 24-150)" in rows[2]
    display.summary()
    out = capsys.readouterr().out
    assert "  128 lines not submitted (lines 23-150): max cost $10 reached\n" in out
    assert out.count("max cost") == 1


async def test_run_batch_rejects_a_negative_max_cost(session, emu: Emulator):
    """max_cost below zero is a ValueError before anything is sent."""
    request = ave.SourceExtend("veo3-1-extend", "p", video_url="https://example.com/a.mp4")
    with pytest.raises(ValueError, match="max_cost must be 0 or more"):
        async for _ in run_batch(session, [request], max_cost=-1.0):
            pass
    assert emu.ledger == []


def test_a_resumed_run_is_followed_not_shown_as_submitted():
    """The plain log says 'following' for a run from the journal: a rerun does not look like a
    second submit."""
    stream = io.StringIO()
    display = PlainDisplay(Tally(total=2), stream)
    display.update(BatchUpdate(0, 1, "pending", run_id="vid_0", detail="from journal"))
    display.update(BatchUpdate(1, 2, "pending", run_id="vid_1"))
    display.update(BatchUpdate(1, 2, "processing", run_id="vid_1"))
    rows = stream.getvalue().splitlines()
    assert len(rows) == 2
    assert rows[0].endswith("line 1: following vid_0 [from journal]")
    assert rows[1].endswith("line 2: submitted vid_1")
