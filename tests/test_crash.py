"""Crash safety beyond tests/test_cli.py and tests/test_journal.py.

Those kill the batch once at a fixed point and tear a WAL frame by hand; here the batch is
killed at seeded random points (several times, with lost answers in the mix), a process is
killed in the middle of journal transactions, and the command meets a corrupt or newer journal.
``nox -s soak`` runs 20 more kill trials (bench/soak.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
from typing import TYPE_CHECKING, Any

import pytest

from aiovideoextend._journal import SCHEMA_VERSION, Journal
from aiovideoextend.testing import Emulator, Fault

if TYPE_CHECKING:
    from pathlib import Path

# CLI processes on seconds of compressed time: one generous limit of their own, for a busy
# machine, instead of waits on the wall clock inside the tests.
pytestmark = pytest.mark.timeout(300)

SCALE = 600
KEY = "sk-nano-crash-0001"


@pytest.fixture
async def emu() -> Any:
    async with Emulator(
        time_scale=SCALE,
        users={KEY: 1000.0},
        seed=3,
        failure_rate=0.05,
        nsfw_rate=0.0,
        midjourney_runs=2,
        queue_seconds=(5.0, 30.0),
        run_seconds=(30.0, 90.0),
    ) as emulator:
        yield emulator


async def batch(emu: Emulator, cwd: Path, kill: tuple[int, float] | None = None) -> tuple[int, str]:
    """Run the batch command; with ``kill=(paid, extra)`` SIGKILL it ``extra`` s after the
    ledger grew by ``paid`` (if it is still running)."""
    env = {**os.environ, "NANOGPT_BASE_URL": emu.base_url, "NANOGPT_API_KEY": KEY}
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "aiovideoextend", "batch", "jobs.jsonl"),
        *("--results", "out.jsonl", "--time-scale", str(SCALE)),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    talk = asyncio.ensure_future(proc.communicate())
    if kill is not None:
        target = len(emu.ledger) + kill[0]
        while not talk.done() and len(emu.ledger) < target:
            await asyncio.sleep(0.002)
        done, _ = await asyncio.wait({talk}, timeout=kill[1])
        if not done:
            proc.send_signal(signal.SIGKILL)
    out, err = await talk
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


def write_manifest(emu: Emulator, path: Path, count: int) -> None:
    mj = [(run, i) for run in emu.midjourney_run_ids(KEY) for i in range(4)]
    lines = []
    for n in range(count):
        if n % 3 == 0 and mj:
            run, index = mj.pop()
            lines.append({"run_id": run, "index": index})
        else:
            url = f"https://example.com/{n}.mp4"
            lines.append({"model": "veo3-1-fast-extend", "prompt": f"s{n}", "video_url": url})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.parametrize("seed", [1, 2])
async def test_killed_at_random_points_then_rerun(emu: Emulator, tmp_path, seed):
    """Up to three SIGKILLs at random moments, lost answers in between; the rerun pays nothing
    twice, loses no run and writes one result per manifest line."""
    rng = random.Random(seed)
    emu.faults.add(Fault("generate", "ambiguous", rate=0.1))
    emu.faults.add(Fault("*", "server_error", rate=0.05))
    write_manifest(emu, tmp_path / "jobs.jsonl", 16)
    kills = 0
    for _ in range(3):
        code, _ = await batch(emu, tmp_path, kill=(rng.randint(0, 8), rng.uniform(0, 0.2)))
        kills += code == -signal.SIGKILL
    code, output = await batch(emu, tmp_path)
    assert code in (0, 1), output
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(r["line"] for r in records) == list(range(1, 17))
    reported = {r["run_id"] for r in records} | {
        c["run_id"] for r in records for c in r["candidates"]
    }
    assert {entry.run_id for entry in emu.ledger} <= reported
    assert emu.duplicate_charges() == 0
    assert kills >= 1


WRITER = """
import sys
from aiovideoextend._journal import Journal
journal = Journal(sys.argv[1])
print("open", flush=True)
n = 0
while True:
    entry = f"k{n}:0"
    journal.record_intent(entry, request_key=f"k{n}", model="m", position=n)
    journal.record_submitted(entry, f"vid_{n}", 0.5)
    journal.record_finished(entry, {"status": "completed", "run_id": f"vid_{n}"})
    n += 1
"""


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3])
async def test_kill_during_journal_transactions_leaves_a_consistent_journal(tmp_path, delay):
    """A process killed while committing: the journal opens, and every entry is whole."""
    path = tmp_path / "j"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WRITER, str(path), stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    assert await proc.stdout.readline() == b"open\n"
    await asyncio.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    assert await proc.wait() == -signal.SIGKILL
    with Journal(path) as journal:
        entries = journal.entries()
    assert entries
    numbers = sorted(int(entry_id[1:].split(":")[0]) for entry_id in entries)
    assert numbers == list(range(len(numbers)))
    for entry_id, entry in entries.items():
        n = entry_id[1:].split(":")[0]
        if entry.state != "intent":
            assert entry.run_id == f"vid_{n}"
            assert entry.precharge == 0.5
        if entry.state == "finished":
            assert entry.outcome == {"status": "completed", "run_id": f"vid_{n}"}
    # Only the last entry can be caught half way through its three commits.
    assert all(e.state == "finished" for e_id, e in entries.items() if e_id != f"k{numbers[-1]}:0")


@pytest.mark.parametrize("damage", ["corrupt", "newer"])
async def test_command_refuses_a_corrupt_or_newer_journal(emu: Emulator, tmp_path, damage):
    """The batch command says what is wrong, exits 2, submits nothing, leaves the file alone."""
    write_manifest(emu, tmp_path / "jobs.jsonl", 3)
    journal = tmp_path / "jobs.jsonl.journal"
    if damage == "corrupt":
        journal.write_bytes(b"SQLite format 3\x00" + b"\xde\xad" * 4000)
    else:
        Journal(journal).close()
        db = sqlite3.connect(journal)
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
        db.commit()
        db.close()
    before = journal.read_bytes()
    code, output = await batch(emu, tmp_path)
    assert code == 2
    assert ("corrupt" if damage == "corrupt" else "newer aiovideoextend") in output
    assert "Traceback" not in output
    assert emu.ledger == []
    assert journal.read_bytes() == before
