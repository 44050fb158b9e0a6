"""What a batch needs of its journal, so that it can live in SQLite (one process) or Redis (many).

:class:`~aiovideoextend.batch.Journal` (a local SQLite file, wrapped in
:class:`~aiovideoextend._journal_store.LocalJournalStore`) and
:class:`~aiovideoextend.redis_journal.RedisJournal` (one batch split over many workers and hosts)
both satisfy :class:`JournalStore`. Every method is a coroutine, and every write is atomic. They
hand entries back as :class:`JournalEntry` records (decoded by one rule, ``_converter``'s).

Ownership (``shared`` stores only): recording an intent is a *claim* of the entry by this worker,
and fails (returns ``False``) when another worker holds it. A worker holds its entries for as
long as its lease runs; :meth:`JournalStore.adopt` takes over an entry whose owner's lease has
lapsed (or that its owner released), and only the adopter may then reconcile or follow it.
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
    #: our clock when the answer naming ``run_id`` was recorded (None: adopted, or older)
    submitted_at: float | None = None
    precharge: float | None = None
    #: the finished outcome as a JSON-able dict (see ``aiovideoextend.batch.BatchOutcome``)
    outcome: dict[str, Any] | None = None
    #: shared journals only: the worker that holds the entry, whether its lease is still
    #: running, and whether it took the entry over from a worker whose lease lapsed
    owner: str | None = None
    owner_alive: bool = False
    adopted: bool = False


@runtime_checkable
class JournalStore(Protocol):
    """A batch journal: intents before submits, run ids after, outcomes, run snapshots."""

    @property
    def shared(self) -> bool:
        """Other live workers may hold entries of this journal at the same time."""
        ...

    @property
    def worker_id(self) -> str | None:
        """This worker's id in ``JournalEntry.owner`` (``None`` for a single-writer journal)."""
        ...

    @property
    def poll_interval(self) -> float:
        """Seconds between looks at entries other workers hold (shared stores)."""
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
        """Claim the entry and commit that a submit is about to leave.

        ``False``: another worker holds the entry (or finished it); nothing was written. Raises
        :class:`~aiovideoextend.JournalError` when the entry is this worker's and past its intent.
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
        """Drop an intent the server definitely did not act on (the entry is unclaimed again)."""
        ...

    async def release(self, entry_id: str) -> None:
        """Stop holding an unfinished entry, so that another worker may adopt it now."""
        ...

    async def adopt(self, entry_id: str) -> JournalEntry | None:
        """Take over an unfinished entry whose owner is gone; ``None`` if it cannot be taken."""
        ...

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        """Commit the runs of ``model`` that exist before this worker submits any of it."""
        ...
