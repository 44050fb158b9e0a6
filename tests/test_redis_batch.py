"""One batch split over several workers through Redis: the shared journal and ``batch --redis``.

A real ``redis-server`` (the fixture of tests/test_redis_limiter.py), a real emulator in strict
sliding-window mode, and workers that are real ``aiovideoextend batch --redis`` processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

import aiovideoextend as ave
from aiovideoextend.batch import BatchOutcome, run_batch
from aiovideoextend.exceptions import JournalError
from aiovideoextend.redis_journal import RedisJournal
from aiovideoextend.testing import Emulator

from .scaleout import MODEL, CliWorker, free_port, run_cli_workers, write_manifest
from .test_ratelimit import max_in_window
from .test_redis_limiter import redis_url  # noqa: F401  (a fixture)

KEY = "sk-nano-test-0001"


def source(n: int) -> ave.SourceExtend:
    return ave.SourceExtend(MODEL, f"shot {n}", video_url=f"https://example.com/{n}.mp4")


@pytest.fixture
def batch_id() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def make_journal(
    redis_url: str,  # noqa: F811
    batch_id: str,
) -> AsyncIterator[Callable[..., RedisJournal]]:
    """Journals of the test's batch, each with its own connection (like a worker process)."""
    made: list[RedisJournal] = []

    def make(**options: Any) -> RedisJournal:
        options.setdefault("lease", 5.0)
        journal = RedisJournal(options.pop("url", redis_url), batch_id, **options)
        made.append(journal)
        return journal

    yield make
    for journal in made:
        await journal.aclose()


async def _intent(journal: RedisJournal, entry_id: str) -> bool:
    return await journal.record_intent(entry_id, request_key="k", model=MODEL, position=0)


# --- the journal: claims, leases, adoption ----------------------------------------------------


async def test_an_intent_is_a_claim_only_one_worker_wins(make_journal):
    """Two workers record the same intent: one claim succeeds, the other is told, nothing is
    overwritten; the winner's life cycle round-trips and the sequence orders it."""
    a, b = make_journal(), make_journal()
    assert await _intent(a, "e:0")
    assert not await _intent(b, "e:0")
    entries = await b.entries()
    assert entries["e:0"].owner == a.worker_id
    assert entries["e:0"].owner_alive
    assert not await b.adopt("e:0")  # its owner is alive
    await a.record_submitted("e:0", "vid_1", 0.5)
    with pytest.raises(JournalError, match="past its intent"):
        await _intent(a, "e:0")
    assert await _intent(b, "f:0")
    await a.record_finished("e:0", {"status": "completed", "candidates": []})
    assert not await _intent(b, "e:0")  # finished: nobody claims it again
    entries = await a.entries()
    assert entries["e:0"].state == "finished"
    assert entries["e:0"].outcome == {"status": "completed", "candidates": []}
    assert entries["e:0"].precharge == 0.5
    assert entries["f:0"].intent_seq > entries["e:0"].submitted_seq  # type: ignore[operator]
    assert await a.total_precharge() == 0.5
    assert set(await a.entries(["f:0", "missing"])) == {"f:0"}


async def test_a_dead_workers_entries_are_adopted_once_its_lease_lapses(make_journal):
    """No renewals (a SIGKILL): after the lease, exactly one survivor adopts each entry."""
    dead = make_journal(lease=0.3)
    assert await _intent(dead, "e:0")
    dead._renewer.cancel()  # type: ignore[union-attr]  (what a SIGKILL does to renewals)
    a, b = make_journal(), make_journal()
    assert await a.adopt("e:0") is None
    await asyncio.sleep(0.35)
    entries = await a.entries()
    assert not entries["e:0"].owner_alive
    adopted = await asyncio.gather(a.adopt("e:0"), b.adopt("e:0"))
    winners = [entry for entry in adopted if entry is not None]
    assert len(winners) == 1
    assert winners[0].adopted
    assert winners[0].state == "intent"
    winner = a if adopted[0] is not None else b
    # The adopter may resubmit it; the dead worker may not record anything for it any more.
    assert await _intent(winner, "e:0")
    with pytest.raises(JournalError, match="lease"):
        await _intent(dead, "x:0")
    with pytest.raises(JournalError, match="charged twice"):
        await dead.record_submitted("e:0", "vid_late", None)


async def test_leases_are_renewed_while_a_worker_lives(make_journal):
    """A live worker keeps its entries far beyond the lease; closing hands them over at once."""
    # Renewed every lease / 3: a stall of the loop under 0.4 s (a busy machine) cannot lose it.
    holder, other = make_journal(lease=0.6), make_journal()
    assert await _intent(holder, "e:0")
    await asyncio.sleep(1.5)
    assert await other.adopt("e:0") is None
    await holder.aclose()
    adopted = await other.adopt("e:0")
    assert adopted is not None
    assert adopted.owner == other.worker_id


async def test_release_and_forget(make_journal):
    """Releasing hands an entry over while alive; forgetting an intent unclaims it."""
    a, b = make_journal(), make_journal()
    assert await _intent(a, "e:0")
    await a.record_submitted("e:0", "vid_1", None)
    await b.release("e:0")  # not b's: nothing happens
    assert await b.adopt("e:0") is None
    await a.release("e:0")
    adopted = await b.adopt("e:0")
    assert adopted is not None
    assert adopted.run_id == "vid_1"
    assert not adopted.adopted  # a submitted entry needs no reconciling
    assert await _intent(a, "f:0")
    await a.forget_intent("f:0")
    assert "f:0" not in await a.entries()
    assert await _intent(b, "f:0")


async def test_snapshots_and_known_runs(make_journal):
    """Known runs keep the sequence they were first seen at; the first complete snapshot counts."""
    journal = make_journal()
    await journal.record_known_runs(MODEL, ["vid_a"], complete=False)
    assert await journal.complete_snapshot_seq(MODEL) is None
    await journal.record_known_runs(MODEL, ["vid_a", "vid_b"], complete=True)
    first = await journal.complete_snapshot_seq(MODEL)
    await journal.record_known_runs(MODEL, [], complete=True)
    assert await journal.complete_snapshot_seq(MODEL) == first
    known = await journal.known_runs(MODEL)
    assert known["vid_a"] < known["vid_b"] == first
    assert await journal.known_runs("other") == {}


async def test_redis_unreachable_is_a_journal_error(make_journal):
    """No Redis: a clear JournalError before any submit, never a silent local fallback."""
    journal = make_journal(url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(JournalError, match="unavailable"):
        await _intent(journal, "e:0")


async def test_validation_and_lifecycle(redis_url, batch_id):  # noqa: F811
    with pytest.raises(ValueError, match="batch_id"):
        RedisJournal(redis_url, "a b")
    with pytest.raises(ValueError, match="lease"):
        RedisJournal(redis_url, batch_id, lease=0)
    async with aioredis.Redis.from_url(redis_url) as client:
        journal = RedisJournal(client, batch_id)
        assert "new" in repr(journal)
        async with journal:
            assert await _intent(journal, "e:0")
            assert "open" in repr(journal)
        assert "closed" in repr(journal)
        await journal.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await _intent(journal, "e:1")
        assert await journal.delete() >= 3
        assert await client.ping()  # not the journal's to close


# --- run_batch with a shared journal, in one process -----------------------------------------


async def _worker(
    emu: Emulator, journal: RedisJournal, requests: list[Any], url: str, prefix: str
) -> list[BatchOutcome]:
    from aiovideoextend.redis_limiter import RedisRateLimiter

    async with (
        RedisRateLimiter(url, ave.Limits().scaled(600), prefix=prefix) as limiter,
        ave.Session(emu.api_key, base_url=emu.base_url, time_scale=600, limiter=limiter) as s,
    ):
        return [outcome async for outcome in run_batch(s, requests, journal=journal)]


async def test_two_workers_split_a_batch_and_each_reports_all(
    make_emulator,
    make_journal,
    redis_url,  # noqa: F811
):
    """Two run_batch calls on one journal: every request is paid once, each worker reports all."""
    emu = await make_emulator()
    requests = [source(n) for n in range(12)]
    prefix = f"limits-{uuid.uuid4().hex[:8]}"
    a, b = make_journal(poll_interval=0.05), make_journal(poll_interval=0.05)
    first, second = await asyncio.gather(
        _worker(emu, a, requests, redis_url, prefix), _worker(emu, b, requests, redis_url, prefix)
    )
    for outcomes in (first, second):
        assert sorted(o.index for o in outcomes) == list(range(12))
        assert {o.status for o in outcomes} == {"completed"}
    assert {o.index: o.run_id for o in first} == {o.index: o.run_id for o in second}
    ran_here = [o.index for o in first if not o.resumed], [o.index for o in second if not o.resumed]
    assert sorted(ran_here[0] + ran_here[1]) == list(range(12))
    assert len(emu.ledger) == 12
    assert emu.duplicate_charges() == 0


async def test_a_lost_intent_of_a_dead_worker_is_reconciled_not_paid_twice(
    make_emulator,
    make_journal,
    redis_url,  # noqa: F811
):
    """A worker died between sending a submit and recording its run: a survivor adopts the
    entry after the lease and finds the run through recover, while others keep submitting."""
    emu = await make_emulator()
    requests = [source(n) for n in range(6)]
    dead = make_journal(lease=0.3)
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=600) as crashed:
        runs = await crashed.recover(model=MODEL, limit=50)
        await dead.record_known_runs(MODEL, [r.run_id for r in runs], complete=True)
        lost = requests[2]
        assert await dead.record_intent(
            f"{lost.key}:0", request_key=lost.key, model=MODEL, position=2
        )
        lost_run = (await crashed.submit(lost)).run_id
    dead._renewer.cancel()  # type: ignore[union-attr]
    survivor = make_journal(poll_interval=0.05)
    outcomes = await _worker(emu, survivor, requests, redis_url, f"l-{uuid.uuid4().hex[:8]}")
    by_index = {o.index: o for o in outcomes}
    assert {o.status for o in outcomes} == {"completed"}
    assert by_index[2].run_id == lost_run
    assert len(emu.ledger) == 6
    assert emu.duplicate_charges() == 0


# --- the command line: N copies of one command -------------------------------------------------


def _results(worker: CliWorker) -> dict[int, dict[str, Any]]:
    records = [json.loads(line) for line in worker.results.read_text().splitlines()]
    by_line = {r["line"]: r for r in records}
    assert len(by_line) == len(records), "a line was written twice"
    return by_line


# Seconds of compressed time in 4 processes: a generous limit of their own for a busy machine.
@pytest.mark.timeout(300)
async def test_four_cli_workers_split_one_batch(
    make_emulator,
    redis_url,  # noqa: F811
    tmp_path,
):
    """4 x ``batch --redis``: 0 x 429, never more than the limit in any window, each line paid
    once, and every worker's results file holds every line exactly once (bench/scaleout.py
    measures how close to the limit they get)."""
    scale, count, lines = 60.0, 50, 200
    emu = await make_emulator(time_scale=scale, limit_algorithm="sliding", users={KEY: 1e6})
    done = await run_cli_workers(emu, redis_url, tmp_path, lines, scale=scale, lease=3.0)
    for worker, code in done:
        assert code == 0, worker.stderr
        results = _results(worker)
        assert sorted(results) == list(range(1, lines + 1))
        assert {r["status"] for r in results.values()} == {"completed"}
    ran = [o["line"] for worker, _ in done for o in worker.outcomes() if not o["resumed"]]
    assert sorted(ran) == list(range(1, lines + 1))
    assert len(emu.ledger) == lines
    assert emu.duplicate_charges() == 0
    assert sum(emu.stats.rate_limited.values()) == 0
    arrivals = [t for t, route in emu.stats.arrivals if route == "generate"]
    assert max_in_window(arrivals, 60 / scale) <= count
    assert len(arrivals) == lines


@pytest.mark.timeout(300)
async def test_a_killed_cli_worker_leaves_its_jobs_to_the_others(
    make_emulator,
    redis_url,  # noqa: F811
    tmp_path,
):
    """SIGKILL one of 4 workers mid-run: once its lease lapses the others adopt its entries
    (submitted ones are followed, a lost intent reconciled), every line completes, each once."""
    scale, count, lines = 30.0, 50, 100
    emu = await make_emulator(time_scale=scale, limit_algorithm="sliding", users={KEY: 1e6})
    victim: list[CliWorker] = []
    held: list[str] = []

    async def unfinished(worker_id: str | None) -> list[str]:
        async with aioredis.Redis.from_url(redis_url) as client:
            states = []
            async for key in client.scan_iter(match="*:entry:*"):
                fields = await client.hgetall(key)
                if fields.get(b"owner", b"").decode() == worker_id and fields.get(b"state") not in (
                    None,
                    b"finished",
                ):
                    states.append(fields[b"state"].decode())
            return states

    looking = asyncio.Lock()  # one worker frozen at a time

    async def kill_holding(worker: CliWorker) -> None:
        """From its 10th outcome on, freeze a worker and kill it if it holds unfinished entries
        (frozen, it cannot finish them between the look and the kill); else let it go on."""
        if victim or len(worker.outcomes()) < 10:
            return
        async with looking:
            if victim:
                return
            try:
                worker.proc.send_signal(signal.SIGSTOP)
            except ProcessLookupError:
                return  # it has ended
            if states := await unfinished(worker.worker_id):
                victim.append(worker)
                held.extend(states)
                worker.proc.send_signal(signal.SIGKILL)
                await worker.proc.wait()
            else:
                worker.proc.send_signal(signal.SIGCONT)

    # The survivors must stay alive: a lease far longer than a busy machine's stalls.
    done = await run_cli_workers(
        emu, redis_url, tmp_path, lines, scale=scale, lease=3.0, on_record=kill_holding
    )
    assert victim, "no worker held an unfinished entry after its 10th outcome"
    assert held
    survivors = [(worker, code) for worker, code in done if worker is not victim[0]]
    for worker, code in survivors:
        others = [o for o in worker.outcomes() if o.get("status") != "completed"]
        assert code == 0, (worker.stderr, others)
        results = _results(worker)
        assert sorted(results) == list(range(1, lines + 1))
        assert {r["status"] for r in results.values()} == {"completed"}, worker.stderr
    assert len(emu.ledger) == lines
    assert emu.duplicate_charges() == 0
    assert sum(emu.stats.rate_limited.values()) == 0
    arrivals = [t for t, route in emu.stats.arrivals if route == "generate"]
    assert max_in_window(arrivals, 60 / scale) <= count
    print(
        f"\nkilled after {len(victim[0].outcomes())} outcomes holding {len(held)} unfinished "
        "entries "
        f"({held.count('intent')} intents); "
        f"{len(emu.ledger)} charged for {lines} lines, "
        f"at most {max_in_window(arrivals, 60 / scale)} in any window"
    )


async def test_cli_redis_usage_errors(tmp_path, redis_url):  # noqa: F811
    """--journal with --redis, and --batch-id without it, are usage errors (exit 2)."""
    manifest = write_manifest(tmp_path / "m.jsonl", 1)
    env = {**os.environ, "NANOGPT_API_KEY": KEY, "PYTHONWARNINGS": "error"}
    for extra in (["--redis", redis_url, "--journal", "j"], ["--batch-id", "x"]):
        proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "aiovideoextend", "batch", str(manifest), *extra),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate()
        assert proc.returncode == 2, err
        assert b"--redis" in err


def test_resume_command_hides_a_redis_password():
    from aiovideoextend.cli._context import hide_password as _hide_password

    assert _hide_password("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert _hide_password("redis://u:s3cret@h/0") == "redis://u:***@h/0"
    assert _hide_password("redis://h:6379/0") == "redis://h:6379/0"
    assert _hide_password("jobs.jsonl") == "jobs.jsonl"
