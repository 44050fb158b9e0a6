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

import json
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from ._converter import structure_journal_entry
from ._journal_api import JournalEntry, State
from .exceptions import JournalError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    #: one write of a group commit: statements on the open transaction
    Op = Callable[[sqlite3.Connection], None]

__all__ = ["SCHEMA_VERSION", "Journal", "JournalEntry", "JournalError", "State"]

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
_COLUMNS: Final = (
    "entry_id",
    "request_key",
    "model",
    "position",
    "state",
    "intent_seq",
    "intent_at",
    "run_id",
    "submitted_seq",
    "precharge",
    "outcome",
    "submitted_at",
)


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
        cursor = self.db.execute(
            "SELECT entry_id, request_key, model, position, state, intent_seq, intent_at, run_id,"
            " submitted_seq, precharge, outcome, submitted_at FROM entries"
        )
        names = [column[0] for column in cursor.description]
        return {
            row[0]: structure_journal_entry(dict(zip(names, row, strict=True)))
            for row in cursor.fetchall()
        }

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
