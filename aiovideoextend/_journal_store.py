"""The SQLite journal seen through the async :class:`~aiovideoextend.JournalStore` protocol.

:class:`LocalJournalStore` runs a :class:`~aiovideoextend._journal.Journal` on one worker thread,
so that the event loop never waits for a disk, and commits the writes that arrive together in one
transaction (a group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from typing import TYPE_CHECKING, Any, Final, TypeVar

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable

    from ._journal import Journal, Op
    from ._journal_api import JournalEntry

__all__ = ["LocalJournalStore"]

_T = TypeVar("_T")
#: commits of the worker thread between two checkpoints (SQLite's own default: 1,000 pages)
_CHECKPOINT_EVERY: Final = 200


@attrs.define
class _Job:
    """Work for the journal's thread: a write (``op``) or a read (``call``)."""

    done: asyncio.Future[Any]
    op: Op | None = None
    durable: bool = True
    call: Callable[[], Any] | None = None


def _settle(done: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
    """From the worker thread: hand a result to the waiting coroutine (unless it gave up)."""

    def settle() -> None:
        if done.done():
            return  # its caller was cancelled; the write stands (or failed) anyway
        if error is None:
            done.set_result(result)
        else:
            done.set_exception(error)

    with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
        done.get_loop().call_soon_threadsafe(settle)


class LocalJournalStore:
    """A :class:`Journal` seen through the async :class:`~aiovideoextend.JournalStore` protocol.

    One writer per file (the lock), so every entry is its own: an unresolved intent found at the
    start belongs to a crashed earlier run.

    The database is used from one worker thread, so the event loop never waits for a disk. Writes
    that arrive while a commit is under way are committed together (a group commit), and each
    caller returns once its own write is committed. Intents are fsynced before their submit
    leaves; run ids and outcomes skip the fsync (a crash of the process keeps them; a power cut
    keeps them once the next intent's fsync, or the end of the batch, has passed), so that the
    disk does not hold the next submit back.
    """

    poll_interval: Final = 1.0
    concurrent: Final = False

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def _submit(self, job: _Job) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="aiovideoextend-journal", daemon=True
            )
            self._thread.start()
        self._queue.put(job)

    async def _run(self, call: Callable[[], _T]) -> _T:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submit(_Job(done, call=call))
        result: _T = await done
        return result

    async def _write(self, op: Op, *, durable: bool) -> None:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._submit(_Job(done, op=op, durable=durable))
        await done

    def _work(self) -> None:
        """The worker thread: reads one by one, writes waiting together in one commit."""
        carry: list[_Job | None] = []
        # Checkpoints (copying the WAL into the database, with an fsync) happen when nothing
        # waits, not in the middle of a burst of submits as SQLite's automatic ones would.
        self.journal.db.execute("PRAGMA wal_autocheckpoint=0")
        commits = 0
        while True:
            if not carry and commits >= _CHECKPOINT_EVERY and self._queue.empty():
                commits = 0
                with contextlib.suppress(sqlite3.Error):
                    self.journal.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
            job = carry.pop() if carry else self._queue.get()
            if job is None:
                with contextlib.suppress(sqlite3.Error):
                    self.journal.db.execute("PRAGMA wal_autocheckpoint=1000")
                return
            if job.op is None:
                self._call(job)
                continue
            group = [job]
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or nxt.op is None:
                    carry.append(nxt)
                    break
                group.append(nxt)
            self._commit_group(group)
            commits += 1

    def _call(self, job: _Job) -> None:
        assert job.call is not None  # noqa: S101
        try:
            result = job.call()
        except Exception as exc:  # the caller gets it
            _settle(job.done, None, exc)
        else:
            _settle(job.done, result, None)

    def _commit_group(self, group: list[_Job]) -> None:
        ops = [job.op for job in group if job.op is not None]
        durable = any(job.durable for job in group)
        errors: list[Exception | None]
        try:
            errors = list(self.journal.apply(ops, durable=durable))
        except Exception as exc:  # each caller gets it
            errors = [exc] * len(group)
        for job, error in zip(group, errors, strict=True):
            _settle(job.done, None, error)

    async def aclose(self) -> None:
        """Finish the writes under way, make them durable, stop the worker thread (the journal
        itself stays open)."""
        if self._thread is None:
            return
        with contextlib.suppress(sqlite3.Error, RuntimeError):
            await self._run(self.journal.sync)
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def entries(self, entry_ids: Collection[str] | None = None) -> dict[str, JournalEntry]:
        found = await self._run(self.journal.entries)
        if entry_ids is None:
            return found
        return {entry_id: found[entry_id] for entry_id in entry_ids if entry_id in found}

    async def known_runs(self, model: str) -> dict[str, int]:
        return await self._run(lambda: self.journal.known_runs(model))

    async def complete_snapshot_seq(self, model: str) -> int | None:
        return await self._run(lambda: self.journal.complete_snapshot_seq(model))

    async def record_intent(
        self, entry_id: str, *, request_key: str, model: str, position: int
    ) -> bool:
        op = self.journal.intent_op(
            entry_id, request_key=request_key, model=model, position=position
        )
        await self._write(op, durable=True)
        return True

    async def record_submitted(
        self, entry_id: str, run_id: str, precharge: float | None, *, answered: bool = True
    ) -> None:
        op = self.journal.submitted_op(entry_id, run_id, precharge, answered=answered)
        await self._write(op, durable=False)

    async def record_finished(self, entry_id: str, outcome: dict[str, Any]) -> None:
        await self._write(self.journal.finished_op(entry_id, outcome), durable=False)

    async def forget_intent(self, entry_id: str) -> None:
        await self._run(lambda: self.journal.forget_intent(entry_id))

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        ids = list(run_ids)
        await self._run(lambda: self.journal.record_known_runs(model, ids, complete=complete))
