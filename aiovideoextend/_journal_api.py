"""What a batch needs of its journal, so that it can live in SQLite or elsewhere (Redis, for a
task queue).

:class:`~aiovideoextend.batch.Journal` (a local SQLite file, wrapped in
:class:`~aiovideoextend._journal_store.LocalJournalStore`) and
:class:`~aiovideoextend.queue.LineJournal` (one manifest line run by a task of a queue) both
satisfy :class:`JournalStore`. Every method is a coroutine, and every write is atomic. They hand
entries back as :class:`JournalEntry` records.

Several writers (a queue's task delivered twice): recording an intent fails (returns ``False``)
when another writer's intent or run is on record already; an entry's ``owner`` says whose intent
it is, and ``owner_alive`` whether its answer may still come (the reconciler waits for those).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import attrs

if TYPE_CHECKING:
    from collections.abc import Collection, Iterable

__all__ = ["JournalEntry", "JournalStore", "State"]

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
    #: our clock when the answer naming ``run_id`` was recorded (None: reconciled, or older)
    submitted_at: float | None = None
    precharge: float | None = None
    #: the finished outcome as a JSON-able dict (see ``aiovideoextend.batch.BatchOutcome``)
    outcome: dict[str, Any] | None = None
    #: journals with several writers: whose intent it is, and whether its answer may still come
    owner: str | None = None
    owner_alive: bool = False


@runtime_checkable
class JournalStore(Protocol):
    """A batch journal: intents before submits, run ids after, outcomes, run snapshots."""

    @property
    def poll_interval(self) -> float:
        """Seconds between looks at other writers' intents whose answers may still come."""
        ...

    @property
    def concurrent(self) -> bool:
        """Other processes submit entries of this journal at the same time: a lost answer is
        settled by the journal's reconciliation (it sees their intents), not by the session."""
        ...

    async def entries(self, entry_ids: Collection[str] | None = None) -> dict[str, JournalEntry]:
        """The entries by id (all of them, or those of ``entry_ids`` that exist)."""
        ...

    async def known_runs(self, model: str) -> dict[str, int]:
        """Runs that existed before a submit of ``model``, with the sequence they were seen at."""
        ...

    async def complete_snapshot_seq(self, model: str) -> int | None:
        """The sequence of the first complete snapshot of ``model``'s runs, if any."""
        ...

    async def record_intent(
        self, entry_id: str, *, request_key: str, model: str, position: int
    ) -> bool:
        """Commit that a submit is about to leave.

        ``False``: another writer's intent or run is on record for the entry; nothing was
        written, nothing is sent, and the entry ends ``unfinished`` here. Raises
        :class:`~aiovideoextend.JournalError` when the journal cannot record it.
        """
        ...

    async def record_submitted(
        self, entry_id: str, run_id: str, precharge: float | None, *, answered: bool = True
    ) -> None:
        """Commit the run id the server gave the entry's job; ``answered``: it came in the
        submit's answer (then the time it was recorded pins the server's clock)."""
        ...

    async def record_finished(self, entry_id: str, outcome: dict[str, Any]) -> None:
        """Commit an entry's final outcome."""
        ...

    async def forget_intent(self, entry_id: str) -> None:
        """Drop an intent the server definitely did not act on (the entry is new again)."""
        ...

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        """Commit the runs of ``model`` that exist before this worker submits any of it."""
        ...
