"""The aiovideoextend command, end to end: subprocesses against an in-test emulator."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from typing import TYPE_CHECKING, Any

import pytest

from aiovideoextend.cli import build_parser
from aiovideoextend.testing import Emulator

if TYPE_CHECKING:
    from pathlib import Path

# CLI processes on seconds of compressed time: one generous limit of their own, for a busy
# machine, instead of waits on the wall clock inside the tests.
pytestmark = pytest.mark.timeout(300)

SCALE = 600
KEY = "sk-nano-test-0001"
MODELS = ("veo3-1-extend", "veo3-1-fast-extend", "bytedance-seedance-v1.5-pro-extend")


def manifest(path: Path, midjourney: list[str], count: int, *, bad: bool = False) -> Path:
    lines = []
    for n in range(count):
        if n % 3 == 0:
            # Distinct (run, index) pairs: identical lines would be meant as two paid submits.
            pair = n // 3
            run_id = midjourney[pair // 4 % len(midjourney)]
            lines.append({"run_id": run_id, "index": pair % 4})
        else:
            url = f"https://example.com/{n}.mp4"
            lines.append({"model": MODELS[n % 3], "prompt": f"shot {n}", "video_url": url})
    text = [json.dumps(line) for line in lines]
    if bad:
        text[1] = '{"model": "veo3-1-extend", "prompt": "no source"}'
        text[4] = "{broken"
    path.write_text("\n".join(text) + "\n")
    return path


class Run:
    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.stdout = ""
        self.stderr = ""

    async def finish(self) -> int:
        out, err = await self.proc.communicate()
        self.stdout, self.stderr = out.decode(), err.decode()
        assert self.proc.returncode is not None
        return self.proc.returncode


async def start(emu: Emulator, *args: str, cwd: Path, **env: str) -> Run:
    environ = {
        **os.environ,
        "NANOGPT_BASE_URL": emu.base_url,
        "NANOGPT_API_KEY": emu.api_key,
        "PYTHONWARNINGS": "error",
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiovideoextend",
        *args,
        cwd=cwd,
        env=environ,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    return Run(proc)


async def run(emu: Emulator, *args: str, cwd: Path) -> Run:
    process = await start(emu, *args, cwd=cwd)
    await process.finish()
    return process


def results(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.005)


def cli_emulator(*, seed: int, midjourney_runs: int = 3) -> Emulator:
    """The emulator the command-line tests run against: no failures, minutes-long jobs."""
    return Emulator(
        time_scale=SCALE,
        users={KEY: 1000.0},
        seed=seed,
        failure_rate=0.0,
        nsfw_rate=0.0,
        midjourney_runs=midjourney_runs,
        queue_seconds=(5.0, 30.0),
        run_seconds=(30.0, 120.0),
    )


@pytest.fixture
async def emu():
    async with cli_emulator(seed=1) as emulator:
        yield emulator


async def test_full_batch(emu, tmp_path):
    """Every line completes; the results file has one object per line; exit 0."""
    jobs = manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 12)
    done = await run(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
    assert done.proc.returncode == 0, done.stderr
    records = results(tmp_path / "jobs.jsonl.results.jsonl")
    assert sorted(r["line"] for r in records) == list(range(1, 13))
    assert {r["status"] for r in records} == {"completed"}
    assert all(r["run_id"] and r["video_url"] and r["cost"] for r in records)
    assert (tmp_path / "jobs.jsonl.journal").exists()
    assert "done: completed 12" in done.stdout
    assert emu.api_key not in done.stdout + done.stderr
    assert emu.api_key.encode() not in (tmp_path / "jobs.jsonl.journal").read_bytes()
    # Running it again resumes: nothing new is paid for, nothing is written twice.
    again = await run(emu, "batch", str(jobs), "--time-scale", str(SCALE), cwd=tmp_path)
    assert again.proc.returncode == 0
    assert len(results(tmp_path / "jobs.jsonl.results.jsonl")) == 12
    assert len(emu.ledger) == 12


async def test_sigkill_then_rerun_pays_once(emu, tmp_path):
    """A batch killed with SIGKILL part-way and rerun: zero duplicate charges, one result each."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 30)
    args = ("batch", "jobs.jsonl", "--time-scale", str(SCALE), "--results", "out.jsonl")
    first = await start(emu, *args, cwd=tmp_path)
    await until(lambda: len(emu.ledger) >= 8)
    first.proc.send_signal(signal.SIGKILL)
    assert await first.finish() == -signal.SIGKILL
    assert (
        len(emu.ledger) < 30
        or not (tmp_path / "out.jsonl").exists()
        or len(results(tmp_path / "out.jsonl")) < 30
    )
    second = await run(emu, *args, cwd=tmp_path)
    records = results(tmp_path / "out.jsonl")
    assert sorted(r["line"] for r in records) == list(range(1, 31))
    assert emu.duplicate_charges() == 0
    completed = [r["run_id"] for r in records if r["status"] == "completed"]
    assert len(set(completed)) == len(completed)
    # Submits in flight at the kill whose runs cannot be told apart end ambiguous (exit 1),
    # each followed to its end; every paid run is a line's result or one of its candidates.
    statuses = {r["status"] for r in records}
    assert statuses <= {"completed", "ambiguous"}
    assert second.proc.returncode == (0 if statuses == {"completed"} else 1), second.stderr
    named = {r["run_id"] for r in records} | {c["run_id"] for r in records for c in r["candidates"]}
    assert {entry.run_id for entry in emu.ledger} <= named
    for record in records:
        for candidate in record["candidates"]:
            assert candidate["status"] == "completed"
            assert candidate["video_url"]


async def test_sigint_exits_130_and_prints_the_resume_command(emu, tmp_path):
    """Ctrl-C stops at once with exit 130 and the exact command; that command finishes it."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 30)
    first = await start(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
    await until(lambda: len(emu.ledger) >= 5)
    first.proc.send_signal(signal.SIGINT)
    assert await first.finish() == 130
    assert "Resume with:" in first.stderr
    command = first.stderr.split("Resume with:")[1].strip().splitlines()[0]
    argv = shlex.split(command)
    assert argv[-3:] == ["jobs.jsonl", "--time-scale", str(SCALE)]
    resumed = await start(emu, *argv[3:], cwd=tmp_path)  # drop "python -m aiovideoextend"
    assert await resumed.finish() == 0, resumed.stderr
    assert len(results(tmp_path / "jobs.jsonl.results.jsonl")) == 30
    assert emu.duplicate_charges() == 0


async def test_bad_manifest_lines_are_reported_and_the_rest_runs(emu, tmp_path):
    """Bad lines are named with their line number, the rest completes, exit code 2."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 8, bad=True)
    done = await run(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
    assert done.proc.returncode == 2
    # Each bad line is shown once, as it is found; the summary names them.
    output = done.stdout + done.stderr
    assert output.count("line 2: invalid") == 1
    assert output.count("line 5: invalid (not valid JSON") == 1
    assert "2 lines invalid (lines 2, 5)" in done.stdout
    records = {r["line"]: r for r in results(tmp_path / "jobs.jsonl.results.jsonl")}
    assert len(records) == 8
    assert records[2]["status"] == records[5]["status"] == "invalid"
    assert sum(r["status"] == "completed" for r in records.values()) == 6
    assert len(emu.ledger) == 6


async def test_unreadable_manifest_and_missing_key(emu, tmp_path):
    """No manifest, or no API key: exit 2 with a message, nothing submitted."""
    done = await run(emu, "batch", "missing.jsonl", cwd=tmp_path)
    assert done.proc.returncode == 2
    assert "cannot read manifest" in done.stderr
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 2)
    nokey = await start(emu, "batch", "jobs.jsonl", cwd=tmp_path, NANOGPT_API_KEY="")
    assert await nokey.finish() == 2
    assert "NANOGPT_API_KEY" in nokey.stderr
    assert emu.ledger == []


async def test_max_cost_json_output(emu, tmp_path):
    """--max-cost stops submitting; --json prints outcomes and a summary; exit 1."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 9)
    done = await run(
        emu,
        "batch",
        "jobs.jsonl",
        "--time-scale",
        str(SCALE),
        "--max-cost",
        "2",
        "--json",
        cwd=tmp_path,
    )
    assert done.proc.returncode == 1
    events = [json.loads(line) for line in done.stdout.splitlines()]
    (summary,) = [e for e in events if e["event"] == "summary"]
    assert summary["counts"]["skipped"] >= 1
    assert sum(e.precharge for e in emu.ledger) <= 2.0
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert len(outcomes) == 9
    # Skipped lines are in the results file too, with their reason (a rerun replaces them).
    records = results(tmp_path / "jobs.jsonl.results.jsonl")
    assert sorted(r["line"] for r in records) == list(range(1, 10))
    skipped = [r for r in records if r["status"] == "skipped"]
    assert len(skipped) == summary["counts"]["skipped"]
    assert all("max cost $2 reached" in r["error"] for r in skipped)


async def test_downloads(emu, tmp_path):
    """--download saves each video as <run_id>.mp4; a rerun finds them complete."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 4)
    args = ("batch", "jobs.jsonl", "--time-scale", str(SCALE), "--download", "videos")
    done = await run(emu, *args, cwd=tmp_path)
    assert done.proc.returncode == 0, done.stderr
    records = results(tmp_path / "jobs.jsonl.results.jsonl")
    names = sorted(p.name for p in (tmp_path / "videos").iterdir())
    assert names == sorted(f"{r['run_id']}.mp4" for r in records)
    assert all(r["path"] for r in records)
    again = await run(emu, *args, cwd=tmp_path)
    assert again.proc.returncode == 0
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == names


async def test_single_job_commands(emu, tmp_path):
    """extend, status, wait and download work on one run."""
    midjourney = emu.midjourney_run_ids(KEY)[0]
    scale = ("--time-scale", str(SCALE))
    done = await run(
        emu, "extend", "--run-id", midjourney, "--index", "2", "--json", *scale, cwd=tmp_path
    )
    assert done.proc.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed"
    run_id = result["run_id"]
    status = await run(emu, "status", run_id, "--json", *scale, cwd=tmp_path)
    assert json.loads(status.stdout)["status"] == "completed"
    waited = await run(emu, "wait", run_id, *scale, cwd=tmp_path)
    assert f"{run_id} completed" in waited.stdout
    fetched = await run(emu, "download", run_id, "out", *scale, cwd=tmp_path)
    assert fetched.proc.returncode == 0, fetched.stderr
    assert (tmp_path / "out" / f"{run_id}.mp4").stat().st_size > 0
    missing = await run(emu, "status", "vid_nope", *scale, cwd=tmp_path)
    assert missing.proc.returncode == 1
    assert "NotFoundError" in missing.stderr


async def test_demo_runs_offline(tmp_path):
    """The demo runs 30 extends of both flows against its own emulator and exits 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiovideoextend",
        "demo",
        "--time-scale",
        "3000",
        "--json",
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if not k.startswith("NANOGPT_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    events = [json.loads(line) for line in out.decode().splitlines()]
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert len(outcomes) == 30
    models = {e["model"] for e in outcomes if e["model"]}
    assert "midjourney-video" in models
    assert len(models) > 1
    assert "0 duplicate charges" in out.decode()


def test_parser_has_every_command():
    """Every documented subcommand parses."""
    parser = build_parser()
    for argv in (
        ["batch", "m.jsonl", "--max-in-flight", "3", "--max-cost", "5", "--json"],
        ["demo"],
        ["extend", "--model", "veo3-1-extend", "--prompt", "p", "--video-url", "https://x"],
        ["status", "vid_a"],
        ["wait", "vid_a"],
        ["download", "vid_a", "dir"],
        ["emulator", "--port", "0"],
    ):
        assert parser.parse_args(argv).handler


async def test_batch_redis_is_gone_and_batch_id_goes_with_queue(emu, tmp_path):
    """`batch --redis` (replaced by the task queue) says what replaced it, and --batch-id
    without --queue is refused: exit 2, nothing submitted."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 1)
    for extra in (["--redis", "redis://127.0.0.1:1/0"], ["--batch-id", "x"]):
        done = await run(emu, "batch", "jobs.jsonl", *extra, cwd=tmp_path)
        assert done.proc.returncode == 2, done.stderr
        assert "--queue" in done.stderr
    assert emu.ledger == []


def test_resume_command_hides_a_redis_password():
    from aiovideoextend.cli._context import hide_password as _hide_password

    assert _hide_password("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert _hide_password("redis://u:s3cret@h/0") == "redis://u:***@h/0"
    assert _hide_password("redis://h:6379/0") == "redis://h:6379/0"
    assert _hide_password("jobs.jsonl") == "jobs.jsonl"
