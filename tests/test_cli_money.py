"""The command line and money: every paid run reaches the results file, another batch's journal
is refused, an interrupted batch says what runs and what it cost, --max-cost spans reruns, and
identical outcomes are shown once. Subprocesses against an in-test emulator."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
from itertools import accumulate
from typing import TYPE_CHECKING, Any

import pytest

from aiovideoextend._manifest import request_from_fields
from aiovideoextend.testing import Emulator, Fault

from .test_cli import KEY, SCALE, cli_emulator, results, run, start, until

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(300)

MODEL = "veo3-1-extend"


def line(n: int, model: str = MODEL) -> dict[str, Any]:
    return {"model": model, "prompt": f"shot {n}", "video_url": f"https://example.com/{n}.mp4"}


def write(path: Path, fields: list[dict[str, Any] | str]) -> Path:
    text = [f if isinstance(f, str) else json.dumps(f) for f in fields]
    path.write_text("\n".join(text) + "\n")
    return path


def keys(fields: list[dict[str, Any] | str]) -> list[str | None]:
    return [None if isinstance(f, str) else request_from_fields(f).key for f in fields]


def stderr_error_lines(text: str) -> list[str]:
    return [t for t in text.splitlines() if t.strip()]


@pytest.fixture
async def emu():
    async with cli_emulator(seed=3, midjourney_runs=2) as emulator:
        yield emulator


async def batch(emu: Emulator, tmp_path: Path, *args: str) -> Any:
    return await run(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), *args, cwd=tmp_path)


def assert_every_paid_run_is_recorded(emu: Emulator, records: list[dict[str, Any]]) -> None:
    named = {r["run_id"] for r in records} | {c["run_id"] for r in records for c in r["candidates"]}
    assert {entry.run_id for entry in emu.ledger} <= named


async def test_a_fixed_line_and_an_inserted_line_reach_the_results(emu, tmp_path):
    """A line fixed after it was invalid, and a line inserted at the top of a finished
    manifest, are submitted, paid, and in the results file: each line's record is its current
    request's (by key), the old ones are replaced, never left beside them."""
    fields: list[dict[str, Any] | str] = [line(n) for n in range(5)]
    fields[2] = {"model": MODEL, "prompt": "no source"}
    jobs = write(tmp_path / "jobs.jsonl", fields)
    first = await batch(emu, tmp_path)
    assert first.proc.returncode == 2, first.stderr
    path = tmp_path / "jobs.jsonl.results.jsonl"
    assert {r["line"]: r["status"] for r in results(path)}[3] == "invalid"

    fields[2] = line(99)  # the bad line, fixed
    write(jobs, fields)
    second = await batch(emu, tmp_path)
    assert second.proc.returncode == 0, second.stderr
    records = results(path)
    assert [(r["line"], r["status"]) for r in records if r["line"] == 3] == [(3, "completed")]
    assert sorted(r["line"] for r in records) == [1, 2, 3, 4, 5]
    assert len(emu.ledger) == 5
    assert_every_paid_run_is_recorded(emu, records)

    fields.insert(0, line(100))  # a new line at the top: every other line moves down
    write(jobs, fields)
    third = await batch(emu, tmp_path)
    assert third.proc.returncode == 0, third.stderr
    records = results(path)
    assert len(emu.ledger) == 6  # only the new line was paid for
    assert sorted(r["line"] for r in records) == [1, 2, 3, 4, 5, 6]
    assert {r["status"] for r in records} == {"completed"}
    by_line = {r["line"]: r for r in records}
    assert [by_line[n]["key"] for n in range(1, 7)] == keys(fields)
    assert_every_paid_run_is_recorded(emu, records)
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


async def test_a_removed_lines_paid_run_stays_in_the_results_marked(emu, tmp_path):
    """A line removed from a finished manifest: its paid run is not dropped from the results
    file; it stays, marked "in_manifest": false, and the run says so."""
    fields: list[dict[str, Any] | str] = [line(n) for n in range(4)]
    jobs = write(tmp_path / "jobs.jsonl", fields)
    assert (await batch(emu, tmp_path)).proc.returncode == 0
    path = tmp_path / "jobs.jsonl.results.jsonl"
    removed = {r["line"]: r for r in results(path)}[2]
    del fields[1]
    write(jobs, fields)
    again = await batch(emu, tmp_path)
    assert again.proc.returncode == 0, again.stderr
    assert "1 paid run(s) recorded in the journal are for requests no longer in the manifest" in (
        again.stderr
    )
    records = results(path)
    current = [r for r in records if r.get("in_manifest") is not False]
    stale = [r for r in records if r.get("in_manifest") is False]
    assert sorted(r["line"] for r in current) == [1, 2, 3]
    assert [r["key"] for r in sorted(current, key=lambda r: r["line"])] == keys(fields)
    assert [r["run_id"] for r in stale] == [removed["run_id"]]
    assert len(emu.ledger) == 4
    assert_every_paid_run_is_recorded(emu, records)


async def test_a_journal_of_another_batch_is_refused_unless_asked_for(emu, tmp_path):
    """A journal that records none of the manifest's requests: one line, exit 2, nothing sent.
    With --reuse-journal it is used, and its spend counts toward --max-cost."""
    write(tmp_path / "other.jsonl", [line(n) for n in range(3)])
    other = await run(
        emu, "batch", "other.jsonl", "--time-scale", str(SCALE), "--journal", "shared.journal",
        cwd=tmp_path,
    )  # fmt: skip
    assert other.proc.returncode == 0, other.stderr
    spent = sum(entry.precharge for entry in emu.ledger)
    write(tmp_path / "jobs.jsonl", [line(n) for n in range(10, 14)])
    refused = await batch(emu, tmp_path, "--journal", "shared.journal")
    assert refused.proc.returncode == 2
    (message,) = stderr_error_lines(refused.stderr)
    assert "records 3 requests and none of them is in jobs.jsonl" in message
    assert "--reuse-journal" in message
    assert len(emu.ledger) == 3
    assert not (tmp_path / "jobs.jsonl.results.jsonl").exists()

    reused = await batch(
        emu, tmp_path, "--journal", "shared.journal", "--reuse-journal", "--max-cost", f"{spent}"
    )
    assert reused.proc.returncode == 1, reused.stderr
    assert len(emu.ledger) == 3  # the other batch's spend used the whole budget
    assert "4 lines not submitted (lines 1-4): max cost" in reused.stdout
    assert "its earlier runs included" in reused.stdout


async def test_max_cost_counts_across_reruns_and_rejects_negative_values(emu, tmp_path):
    """--max-cost: its help and its stop message say that it spans reruns; a rerun with the
    same limit submits nothing more; a negative or non-numeric limit is a usage error."""
    write(tmp_path / "jobs.jsonl", [line(n) for n in range(8)])
    help_text = (await run(emu, "batch", "--help", cwd=tmp_path)).stdout
    assert "counts across reruns" in " ".join(help_text.split())
    for bad in ("-1", "nan", "ten"):
        refused = await batch(emu, tmp_path, "--max-cost", bad)
        assert refused.proc.returncode == 2
        assert "--max-cost" in refused.stderr
        assert emu.ledger == []
    assert not (tmp_path / "jobs.jsonl.journal").exists()

    first = await batch(emu, tmp_path, "--max-cost", "2.5")
    assert first.proc.returncode == 1, first.stderr
    paid = len(emu.ledger)
    assert 1 <= paid < 8
    assert sum(entry.precharge for entry in emu.ledger) <= 2.5
    again = await batch(emu, tmp_path, "--max-cost", "2.5")
    assert again.proc.returncode == 1, again.stderr
    assert len(emu.ledger) == paid  # the earlier run's precharges count
    assert f"{8 - paid} lines not submitted (lines {paid + 1}-8): max cost $2.5 reached" in (
        again.stdout
    )
    assert "its earlier runs included" in again.stdout


async def test_identical_outcomes_are_grouped_and_each_line_shown_once(emu, tmp_path):
    """A batch stopped by --max-cost: the skipped lines are one row (plus their first), not one
    row each; each invalid line shows once; the results file keeps every line's detail."""
    fields: list[dict[str, Any] | str] = [line(n) for n in range(30)]
    fields[1] = {"model": MODEL, "prompt": "no source"}
    fields[4] = "{broken"
    write(tmp_path / "jobs.jsonl", fields)
    done = await batch(emu, tmp_path, "--max-cost", "2")
    assert done.proc.returncode == 2, done.stderr
    output = done.stdout + done.stderr
    assert output.count("line 2: invalid") == 1
    assert output.count("line 5: invalid") == 1
    assert "2 lines invalid (lines 2, 5)" in done.stdout
    records = results(tmp_path / "jobs.jsonl.results.jsonl")
    skipped = sorted(r["line"] for r in records if r["status"] == "skipped")
    assert len(skipped) >= 20
    assert all("max cost $2 reached" in r["error"] for r in records if r["status"] == "skipped")
    # The reason shows twice: on the first skipped line's row and in the summary; the other
    # lines are one row.
    assert len([t for t in output.splitlines() if "max cost $2 reached" in t]) == 2
    assert re.search(
        rf"{len(skipped) - 1} more lines not submitted for the same reason", done.stderr
    )
    assert f"{len(skipped)} lines not submitted (" in done.stdout
    assert sorted(r["line"] for r in records) == list(range(1, 31))


async def test_downloaded_videos_follow_the_umask(emu, tmp_path):
    """batch --download: the videos are 0644 under umask 022 (0666 less the umask), not 0600."""
    write(tmp_path / "jobs.jsonl", [line(n) for n in range(2)])
    old = os.umask(0o022)  # the child inherits it
    try:
        done = await batch(emu, tmp_path, "--download", "videos")
    finally:
        os.umask(old)
    assert done.proc.returncode == 0, done.stderr
    videos = list((tmp_path / "videos").iterdir())
    assert len(videos) == 2
    assert {stat.S_IMODE(v.stat().st_mode) for v in videos} == {0o644}


@pytest.fixture
async def slow_emu():
    """Jobs that take about two real seconds: a Ctrl-C a moment after the submits finds them
    running."""
    async with Emulator(
        time_scale=SCALE,
        users={KEY: 1000.0},
        seed=5,
        failure_rate=0.0,
        nsfw_rate=0.0,
        queue_seconds=(1200.0, 1200.0),
        run_seconds=(0.0, 1.0),
    ) as emulator:
        yield emulator


async def test_ctrl_c_with_every_submit_on_the_wire_still_names_the_balance(emu, tmp_path):
    """Ctrl-C while all submits wait for their answers: the batch waits for them, and the
    summary names the jobs running, their precharge and the balance those answers reported."""
    count = 4
    emu.faults.add(Fault("generate", "slow", delay=0.5, count=count))
    write(tmp_path / "jobs.jsonl", [line(n) for n in range(count)])
    first = await start(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
    await until(lambda: emu.stats.requests["generate"] >= count)
    first.proc.send_signal(signal.SIGINT)
    assert await first.finish() == 130, first.stderr
    out = first.stdout
    assert f"still running on the server: {count} jobs" in out, out
    balance = re.search(r"remaining balance \$([\d.]+), as last reported by the server", out)
    assert balance is not None, out
    assert len(emu.ledger) == count


async def test_ctrl_c_summary_states_running_precharged_final_and_balance(slow_emu, tmp_path):
    """After Ctrl-C the summary says how many jobs still run on the server and what they were
    precharged, what is final, and the balance as last reported: never 'done: ; total cost
    $0.00'. Their runs are in the results file already; the resume finishes them, paying once."""
    emu = slow_emu
    count = 6
    write(tmp_path / "jobs.jsonl", [line(n) for n in range(count)])
    first = await start(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
    await until(lambda: len(emu.ledger) >= 3)
    first.proc.send_signal(signal.SIGINT)
    assert await first.finish() == 130, first.stderr
    out = first.stdout
    assert "done: ;" not in out
    assert "total cost $0.00" not in out
    head = out.splitlines()[0]
    assert head.startswith("interrupted: ")
    assert head.endswith(f"(of {count} lines)") or f"(of {count} lines);" in head
    if "completed" not in head:
        assert head == f"interrupted: no line ended yet (of {count} lines)"
    found = re.search(r"still running on the server: (\d+) jobs, \$([\d.]+) precharged", out)
    assert found is not None, out
    running, precharged = int(found[1]), float(found[2])
    records = results(tmp_path / "jobs.jsonl.results.jsonl")
    unfinished = [r for r in records if r["status"] == "unfinished"]
    assert len(unfinished) == running >= 1
    assert precharged == pytest.approx(sum(r["precharge"] for r in unfinished), abs=0.006)
    ledger = {entry.run_id: entry.precharge for entry in emu.ledger}
    assert {r["run_id"] for r in unfinished} <= set(ledger)
    balance = re.search(r"remaining balance \$([\d.]+), as last reported by the server", out)
    assert balance is not None, out
    after = [round(1000.0 - spent, 2) for spent in accumulate(ledger.values())]
    assert float(balance[1]) in after

    paid = len(emu.ledger)
    resumed = await run(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
    assert resumed.proc.returncode == 0, resumed.stderr
    # The runs from the journal are followed, not shown as submitted again.
    assert resumed.stderr.count(": submitted vid_") == len(emu.ledger) - paid
    for record in unfinished:
        assert f"line {record['line']}: following {record['run_id']}" in resumed.stderr
    assert f"done: completed {count} (of {count} lines); final cost $" in resumed.stdout
    records = results(tmp_path / "jobs.jsonl.results.jsonl")
    assert sorted(r["line"] for r in records) == list(range(1, count + 1))
    assert {r["status"] for r in records} == {"completed"}
    assert emu.duplicate_charges() == 0
    assert_every_paid_run_is_recorded(emu, records)
