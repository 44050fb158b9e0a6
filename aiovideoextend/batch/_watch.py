"""Shared batches: entries another live worker holds are watched, not raced for.

Workers of one shared journal (:class:`~aiovideoextend.redis_journal.RedisJournal`) each claim
an entry by recording its intent. Before a lane submits, :class:`LookAhead` reads whether the
next entries are claimed already (a lost race costs a rate-limit slot's round trips); an entry
another live worker holds goes to the :class:`Watcher`, which looks at it every
``poll_interval`` and hands it back when that worker finished it, let it go, or is gone.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import itertools
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from aiovideoextend._journal_api import JournalEntry, JournalStore

    from ._entries import Entry

__all__ = ["LOOK_AHEAD", "LookAhead", "Watcher", "claimed_elsewhere", "held_elsewhere", "start_at"]

#: entries looked up at once before a lane submits them, and the most submits a lane has
#: queued at a time (so that a look is still fresh when their slots come)
LOOK_AHEAD: Final = 31


def claimed_elsewhere(record: JournalEntry | None, worker_id: str | None) -> bool:
    """Another worker claimed the entry and is alive, or finished it: not to be submitted."""
    return (
        record is not None
        and record.owner is not None
        and record.owner != worker_id
        and (record.owner_alive or record.state == "finished")
    )


def held_elsewhere(record: JournalEntry | None, worker_id: str | None) -> bool:
    """Another live worker holds the unfinished entry: keep watching it."""
    return (
        record is not None
        and record.state != "finished"
        and record.owner_alive
        and record.owner != worker_id
    )


def start_at(lane: collections.deque[Entry], worker_id: str, model: str) -> None:
    """Rotate a lane to this worker's place in it: workers of one shared batch start at
    different places of each lane, so that they seldom race for the same entry (a lost race
    costs a rate-limit slot's round trips for nothing)."""
    if lane:
        digest = hashlib.sha256(f"{worker_id}:{model}".encode()).digest()
        lane.rotate(-(int.from_bytes(digest[:8], "big") % len(lane)))


class LookAhead:
    """A lane's look at who claimed its next entries: one read covers the next
    :data:`LOOK_AHEAD` of them, and each look serves once (an entry that comes back to the lane,
    its owner having let it go, is looked at afresh)."""

    def __init__(self, journal: JournalStore) -> None:
        self.journal = journal
        #: entry id -> claimed by another worker, from the last read
        self.looked: dict[str, bool] = {}

    async def claimed(self, entry: Entry, lane: Iterable[Entry]) -> bool:
        held = self.looked.pop(entry.entry_id, None)
        if held is not None:
            return held
        ahead = [entry.entry_id, *(e.entry_id for e in itertools.islice(lane, LOOK_AHEAD))]
        records = await self.journal.entries(ahead)
        worker_id = self.journal.worker_id
        for entry_id in ahead:
            self.looked[entry_id] = claimed_elsewhere(records.get(entry_id), worker_id)
        return self.looked.pop(entry.entry_id)


#: what the runner does with entries their holder let go: (entry, its record; None: forgotten)
Settle = Callable[[list[tuple["Entry", "JournalEntry | None"]]], Awaitable[None]]


class Watcher:
    """Entries another live worker holds, looked at every ``poll_interval`` by one task."""

    def __init__(
        self,
        journal: JournalStore,
        spawn: Callable[[Any], asyncio.Task[None]],
        settle: Settle,
    ) -> None:
        self.journal = journal
        self._spawn = spawn
        self._settle = settle
        #: by entry id
        self.watched: dict[str, Entry] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, entry: Entry) -> None:
        self.watched[entry.entry_id] = entry
        if self._task is None or self._task.done():
            self._task = self._spawn(self._loop())

    async def _loop(self) -> None:
        journal = self.journal
        while self.watched:
            await asyncio.sleep(journal.poll_interval)
            records = await journal.entries(list(self.watched))
            released = []
            for entry_id, entry in list(self.watched.items()):
                record = records.get(entry_id)
                if not held_elsewhere(record, journal.worker_id):
                    del self.watched[entry_id]
                    released.append((entry, record))
            await self._settle(released)
