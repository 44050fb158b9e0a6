"""The results file and the progress displays the command line uses."""

from __future__ import annotations

import io
import json

from aiovideoextend.batch import BatchOutcome, BatchUpdate
from aiovideoextend.cli._progress import JsonDisplay, PlainDisplay, Tally, make_display
from aiovideoextend.cli._results import ResultsFile
from aiovideoextend.models import Event, EventKind


def outcome(index: int, status: str = "completed", **fields) -> BatchOutcome:
    return BatchOutcome(index, status, line=index + 1, run_id=f"vid_{index}", **fields)


def test_results_are_written_once_per_line_across_reopens(tmp_path):
    """A line already in the file is not written again; a line whose outcome changed (skipped,
    then run) is replaced, never written twice."""
    path = tmp_path / "r.jsonl"
    with ResultsFile(path) as results:
        assert results.write(outcome(0, cost=0.5))
        assert not results.write(outcome(0))
        assert results.write(BatchOutcome(1, "skipped", line=2, error="not submitted: x"))
        assert not results.write(BatchOutcome(1, "skipped", line=2, error="not submitted: x"))
    with ResultsFile(path) as results:
        assert not results.write(outcome(0))
        assert results.write(outcome(1, "failed", error="boom"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["line"], r["status"]) for r in records] == [(1, "completed"), (2, "failed")]
    assert "index" not in records[0]


def test_torn_last_line_is_cut_off(tmp_path):
    """A crash mid-write leaves half a line: it is dropped and that line written again."""
    path = tmp_path / "r.jsonl"
    path.write_text('{"line": 1, "status": "completed"}\n{"line": 2, "sta')
    with ResultsFile(path) as results:
        assert results.done == {1}
        assert results.write(outcome(1))
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    assert json.loads(lines[1])["line"] == 2


def test_tally_counts_and_summary():
    """States are counted live; the summary has costs, balance and the reasons."""
    tally = Tally(total=3)
    tally.update(BatchUpdate(0, 1, "waiting", detail="extend budget"))
    tally.update(BatchUpdate(1, 2, "pending", run_id="vid_1", balance=12.5))
    assert tally.counts_line() == "waiting for rate limit 1 · submitted 1"
    tally.outcome(outcome(1, cost=0.25))
    tally.outcome(outcome(2, "failed", error="nsfw"))
    summary = tally.summary()
    assert summary["counts"] == {"completed": 1, "failed": 1}
    assert summary["cost"] == 0.25
    assert summary["balance"] == 12.5
    assert summary["failures"] == [
        {"line": 3, "status": "failed", "run_id": "vid_2", "error": "nsfw"}
    ]


def test_plain_display_logs_submits_waits_and_outcomes(capsys):
    """Without a terminal: one line per submit, per rate-limit wait and per outcome."""
    stream = io.StringIO()
    display = PlainDisplay(Tally(total=2), stream)
    display.update(BatchUpdate(0, 1, "pending", run_id="vid_0"))
    display.event(Event(EventKind.WAITING_FOR_RATE_LIMIT, budget="extend", delay=2.0))
    display.event(Event(EventKind.WAITING_FOR_RATE_LIMIT, budget="extend", delay=1.0))
    display.event(Event(EventKind.RATE_LIMITED, budget="extend", delay=3.0))
    display.outcome(outcome(0, cost=0.4))
    text = stream.getvalue()
    assert "line 1: submitted vid_0" in text
    assert text.count("for the extend rate limit") == 1
    assert "rate limited by the server" in text
    assert "line 1: completed vid_0 $0.40  [1/2]" in text
    display.summary()
    assert "done: completed 1" in capsys.readouterr().out


def test_json_display_and_non_terminal_choice(capsys):
    """--json prints outcome and summary objects; a non-terminal gets plain lines."""
    display = make_display(Tally(total=1), json_output=True)
    assert isinstance(display, JsonDisplay)
    display.outcome(outcome(0))
    display.summary()
    display.message("hi", extra=1)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events] == ["outcome", "summary", "message"]
    assert events[0]["line"] == 1
    assert isinstance(make_display(Tally(), json_output=False), PlainDisplay)


def test_rich_display_shows_bar_counts_wait_failures_and_summary(capsys):
    """On a terminal: a bar with the counts, the current rate-limit wait, failures as they come,
    and a summary table with cost, balance and the lines that did not complete."""
    from rich.console import Console

    from aiovideoextend.cli._progress import RichDisplay

    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    tally = Tally(total=2)
    display = RichDisplay(tally, console, title="Testing")
    display.start()
    display.update(BatchUpdate(0, 1, "pending", run_id="vid_0", balance=9.5))
    display.event(Event(EventKind.WAITING_FOR_RATE_LIMIT, budget="generate", delay=30.0))
    display.outcome(outcome(0, cost=0.4))
    display.outcome(outcome(1, "failed", error="content policy"))
    display.message("hello from the batch")
    rendered = Console(file=io.StringIO(), width=120, color_system=None)
    with rendered.capture() as capture:
        rendered.print(display)
    display.stop()
    text = screen.getvalue() + capture.get()
    assert "Testing" in text
    assert "2/2" in text
    assert "generate rate limit" in text
    assert "line 2: failed vid_1 (content policy)" in text
    assert "hello from the batch" in text
    display.summary()
    out = capsys.readouterr().out
    assert "Batch summary" in out
    assert "$0.40" in out
    assert "$9.50" in out
    # The reason was shown once, as the line ended; the summary names the line.
    assert "content policy" not in out
    assert "1 line failed (line 2)" in out
