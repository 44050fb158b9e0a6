"""The batch journal: a small SQLite database that makes a batch crash-safe.

Every write is one committed transaction (WAL, ``synchronous=FULL``), so a crash, a SIGKILL or a
power cut leaves the journal at the last commit: SQLite's own recovery discards a torn write.

The protocol that keeps a batch from paying twice:

1. before a submit leaves, the *intent* is committed (``state='intent'``, no run id);
2. right after the response, the run id is committed (``state='submitted'``);
3. when the job ends, the outcome is committed (``state='finished'``).

An intent without a run id is the crash window between 1 and 2: nobody knows whether the server
created a job. :mod:`aiovideoextend.batch` reconciles such intents through
``generate-video/recover`` before anything is resubmitted. To do that without trusting clocks (the
server's and ours differ, and an emulator's runs faster), the journal also orders events with a
sequence number and keeps the run ids that already existed before a model's first submit
(``known_runs``).

The journal is never silently recreated: a corrupt file or one written by a newer version raises
:class:`JournalError`, because starting over would forget run ids that were already paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Self, TypeVar

import attrs

from .exceptions import JournalError

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

    #: one write of a group commit: statements on the open transaction
    Op = Callable[[sqlite3.Connection], None]

__all__ = ["SCHEMA_VERSION", "Journal", "JournalEntry", "JournalError", "LocalJournalStore"]

_T = TypeVar("_T")
#: commits of the worker thread between two checkpoints (SQLite's own default: 1,000 pages)
_CHECKPOINT_EVERY: Final = 200

SCHEMA_VERSION: Final = 2

_SCHEMA: Final = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE entries (
    entry_id TEXT PRIMARY KEY,
    request_key TEXT NOT NULL,
    model TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('intent', 'submitted', 'finished')),
    intent_seq INTEGER NOT NULL,
    intent_at REAL NOT NULL,
    run_id TEXT UNIQUE,
    submitted_seq INTEGER,
    precharge REAL,
    outcome TEXT,
    updated_at REAL NOT NULL,
    submitted_at REAL
);
CREATE TABLE known_runs (
    run_id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE snapshots (
    model TEXT NOT NULL,
    seq INTEGER NOT NULL,
    complete INTEGER NOT NULL
);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters VALUES ('seq', 0);
"""
_TABLES: Final = frozenset({"schema_version", "entries", "known_runs", "snapshots", "counters"})

State = Literal["intent", "submitted", "finished"]


@attrs.frozen
class JournalEntry:
    """One request's row in the journal."""

    entry_id: str
    request_key: str
    model: str
    position: int
    state: State
    intent_seq: int
    intent_at: float
    run_id: str | None = None
    submitted_seq: int | None = None
    #: our clock when the answer naming ``run_id`` was recorded (None: adopted, or older)
    submitted_at: float | None = None
    precharge: float | None = None
    #: the finished outcome as a JSON-able dict (see ``BatchOutcome.to_dict``)
    outcome: dict[str, Any] | None = None
    #: shared journals only: the worker that holds the entry, whether its lease is still
    #: running, and whether it took the entry over from a worker whose lease lapsed
    owner: str | None = None
    owner_alive: bool = False
    adopted: bool = False


class Journal:
    """A batch journal on disk. Use as a context manager, or call :meth:`close`.

    The file is locked for as long as it is open, so two processes cannot run the same batch at
    once (the second one gets a :class:`JournalError`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        try:
            # The async store commits from its writer thread; one thread at a time uses it.
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=0.5, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from None
        try:
            self._setup(db)
        except JournalError:
            db.close()
            raise
        except sqlite3.OperationalError as exc:
            db.close()
            if "locked" in str(exc) or "busy" in str(exc):
                raise JournalError(
                    f"journal {self.path} is in use by another process; "
                    "wait for it to finish (two runs of one batch could pay twice)"
                ) from None
            raise self._corrupt(exc) from None
        except sqlite3.DatabaseError as exc:
            db.close()
            raise self._corrupt(exc) from None
        self._db = db

    def _corrupt(self, exc: Exception) -> JournalError:
        return JournalError(
            f"journal {self.path} is corrupt ({exc}); it is not replaced automatically because "
            "it may hold run ids that were already paid for. Inspect it, or move it aside to "
            "start over (runs it recorded would then be submitted again)"
        )

    def _setup(self, db: sqlite3.Connection) -> None:
        # An exclusive lock held for the connection's lifetime: one writer per batch, ever.
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise JournalError(f"journal {self.path}: cannot switch to WAL mode (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            self._quick_check(db)
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if not tables:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            else:
                self._check_version(db, tables)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _quick_check(self, db: sqlite3.Connection) -> None:
        check = db.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise self._corrupt(RuntimeError(check))

    def _check_version(self, db: sqlite3.Connection, tables: set[str]) -> None:
        if "schema_version" not in tables:
            raise self._corrupt(RuntimeError("not an aiovideoextend journal"))
        rows = db.execute("SELECT version FROM schema_version").fetchall()
        if len(rows) != 1 or not isinstance(rows[0][0], int):
            raise self._corrupt(RuntimeError("bad schema_version table"))
        version = rows[0][0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} was written by a newer aiovideoextend (schema {version}, "
                f"this version reads {SCHEMA_VERSION}); upgrade aiovideoextend to resume it"
            )
        if version < 1 or not tables >= _TABLES:
            raise self._corrupt(RuntimeError(f"schema {version} lacks tables"))
        if version == 1:
            # Schema 2 adds when each answer arrived (it pins the server's clock).
            db.execute("ALTER TABLE entries ADD COLUMN submitted_at REAL")
            db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the journal is closed")
        return self._db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _next_seq(self, db: sqlite3.Connection) -> int:
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'seq'")
        seq: int = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
        return seq

    # -- reads ------------------------------------------------------------------------------

    def entries(self) -> dict[str, JournalEntry]:
        """Every entry by id."""
        rows = self.db.execute(
            "SELECT entry_id, request_key, model, position, state, intent_seq, intent_at, run_id,"
            " submitted_seq, precharge, outcome, submitted_at FROM entries"
        ).fetchall()
        result = {}
        for row in rows:
            entry_id, key, model, position, state, intent_seq, intent_at, run_id, sub, pre = row[
                :10
            ]
            out, submitted_at = row[10:]
            result[entry_id] = JournalEntry(
                entry_id=entry_id,
                request_key=key,
                model=model,
                position=position,
                state=state,
                intent_seq=intent_seq,
                intent_at=intent_at,
                run_id=run_id,
                submitted_seq=sub,
                submitted_at=submitted_at,
                precharge=pre,
                outcome=None if out is None else json.loads(out),
            )
        return result

    def get(self, entry_id: str) -> JournalEntry | None:
        return self.entries().get(entry_id)

    def known_runs(self, model: str) -> dict[str, int]:
        """Runs that existed before a submit of ``model``, with the sequence they were seen at."""
        rows = self.db.execute("SELECT run_id, seq FROM known_runs WHERE model = ?", (model,))
        return dict(rows.fetchall())

    def total_precharge(self) -> float:
        """What every submit recorded in this journal was precharged."""
        row = self.db.execute("SELECT COALESCE(SUM(precharge), 0) FROM entries").fetchone()
        return float(row[0])

    # -- writes (each one a committed transaction, or several in one: see `apply`) -----------

    def apply(self, ops: Sequence[Op], *, durable: bool = True) -> list[JournalError | None]:
        """Commit ``ops`` in one transaction (one fsync for all of them); an op that raises
        :class:`JournalError` is undone alone and its error returned in its place.

        ``durable=False`` skips the fsync: the commit survives a crash of the process, and a
        power cut only once a later durable commit (or :meth:`sync`) has passed.
        """
        db = self.db
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        results: list[JournalError | None] = []
        with self._transaction() as db:
            for op in ops:
                db.execute("SAVEPOINT op")
                try:
                    op(db)
                except JournalError as exc:
                    db.execute("ROLLBACK TO op")
                    results.append(exc)
                else:
                    results.append(None)
                db.execute("RELEASE op")
        return results

    def sync(self) -> None:
        """Make every commit so far durable (a checkpoint with fsync)."""
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA wal_checkpoint(FULL)")

    def _commit(self, op: Op) -> None:
        (error,) = self.apply([op])
        if error is not None:
            raise error

    def intent_op(self, entry_id: str, *, request_key: str, model: str, position: int) -> Op:
        def op(db: sqlite3.Connection) -> None:
            seq = self._next_seq(db)
            now = time.time()
            cur = db.execute(
                "INSERT INTO entries (entry_id, request_key, model, position, state, intent_seq,"
                " intent_at, updated_at) VALUES (?, ?, ?, ?, 'intent', ?, ?, ?)"
                " ON CONFLICT (entry_id) DO UPDATE SET state = 'intent',"
                " intent_seq = excluded.intent_seq, intent_at = excluded.intent_at,"
                " updated_at = excluded.updated_at"
                " WHERE entries.state = 'intent'",
                (entry_id, request_key, model, position, seq, now, now),
            )
            if cur.rowcount != 1:
                raise JournalError(f"journal entry {entry_id} is already past its intent")

        return op

    def submitted_op(
        self, entry_id: str, run_id: str, precharge: float | None, *, answered: bool = True
    ) -> Op:
        def op(db: sqlite3.Connection) -> None:
            seq = self._next_seq(db)
            now = time.time()
            cur = db.execute(
                "UPDATE entries SET state = 'submitted', run_id = ?, submitted_seq = ?,"
                " precharge = ?, updated_at = ?, submitted_at = ?"
                " WHERE entry_id = ? AND state = 'intent'",
                (run_id, seq, precharge, now, now if answered else None, entry_id),
            )
            if cur.rowcount != 1:
                raise JournalError(f"journal entry {entry_id} has no open intent")

        return op

    def finished_op(self, entry_id: str, outcome: dict[str, Any]) -> Op:
        def op(db: sqlite3.Connection) -> None:
            cur = db.execute(
                "UPDATE entries SET state = 'finished', outcome = ?, updated_at = ?"
                " WHERE entry_id = ?",
                (json.dumps(outcome, sort_keys=True), time.time(), entry_id),
            )
            if cur.rowcount != 1:
                raise JournalError(f"journal entry {entry_id} does not exist")

        return op

    def record_intent(self, entry_id: str, *, request_key: str, model: str, position: int) -> None:
        """Commit that a submit is about to leave (replaces a reconciled-away earlier intent)."""
        self._commit(
            self.intent_op(entry_id, request_key=request_key, model=model, position=position)
        )

    def record_submitted(
        self, entry_id: str, run_id: str, precharge: float | None, *, answered: bool = True
    ) -> None:
        """Commit the run id the server gave the entry's job (``answered``: in its answer, not
        found through recover)."""
        self._commit(self.submitted_op(entry_id, run_id, precharge, answered=answered))

    def record_finished(self, entry_id: str, outcome: dict[str, Any]) -> None:
        """Commit an entry's final outcome."""
        self._commit(self.finished_op(entry_id, outcome))

    def forget_intent(self, entry_id: str) -> None:
        """Drop an intent the server definitely did not act on (it answered with an error)."""
        with self._transaction() as db:
            db.execute("DELETE FROM entries WHERE entry_id = ? AND state = 'intent'", (entry_id,))

    def record_known_runs(self, model: str, run_ids: Iterable[str], *, complete: bool) -> None:
        """Commit the runs of ``model`` that exist before this process submits any of it.

        ``complete``: the list is every run of the model (fewer than the recover limit), so any
        run missing from it was created later.
        """
        with self._transaction() as db:
            seq = self._next_seq(db)
            db.executemany(
                "INSERT OR IGNORE INTO known_runs (run_id, model, seq) VALUES (?, ?, ?)",
                [(run_id, model, seq) for run_id in run_ids],
            )
            db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (model, seq, int(complete)))

    def complete_snapshot_seq(self, model: str) -> int | None:
        """The sequence of the first complete snapshot of ``model``'s runs, if any."""
        row = self.db.execute(
            "SELECT MIN(seq) FROM snapshots WHERE model = ? AND complete = 1", (model,)
        ).fetchone()
        return None if row[0] is None else int(row[0])


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

    One writer per file (the lock), so every entry is its own and nothing is shared: an
    unresolved intent found at the start belongs to a crashed earlier run.

    The database is used from one worker thread, so the event loop never waits for a disk. Writes
    that arrive while a commit is under way are committed together (a group commit), and each
    caller returns once its own write is committed. Intents are fsynced before their submit
    leaves; run ids and outcomes skip the fsync (a crash of the process keeps them; a power cut
    keeps them once the next intent's fsync, or the end of the batch, has passed), so that the
    disk does not hold the next submit back.
    """

    shared: Final = False
    worker_id: Final = None
    poll_interval: Final = 1.0

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

    async def release(self, entry_id: str) -> None:
        """Nothing to hand over: the next run of the batch picks the entry up."""

    async def adopt(self, entry_id: str) -> JournalEntry | None:
        return await self._run(lambda: self.journal.get(entry_id))

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        ids = list(run_ids)
        await self._run(lambda: self.journal.record_known_runs(model, ids, complete=complete))
