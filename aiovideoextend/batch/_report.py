"""What a batch tells its caller: one outcome per request, and updates on the way.

:class:`Reports` holds the outcome queue that ``run_batch`` yields from (a task's unexpected
error goes there too, and is raised), sends :class:`BatchUpdate` to ``on_update``, and turns the
session's events into updates: a followed run's status, and which submits wait for which rate
budget.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from aiovideoextend.models import Event, EventKind

from ._entries import Entry
from ._records import BatchOutcome, BatchUpdate

__all__ = ["Reports"]

log = logging.getLogger("aiovideoextend")


class Reports:
    def __init__(self, on_update: Callable[[BatchUpdate], None] | None) -> None:
        self.on_update = on_update
        self.queue: asyncio.Queue[BatchOutcome | BaseException] = asyncio.Queue()
        #: the entry each followed run is, by run id
        self.by_run: dict[str, Entry] = {}
        #: entries whose submit is under way, by route (rate budget)
        self.submitting: dict[str, set[Entry]] = collections.defaultdict(set)

    def update(
        self,
        entry: Entry,
        state: str,
        run_id: str | None = None,
        detail: str | None = None,
        balance: float | None = None,
    ) -> None:
        if state != "waiting":
            entry.waiting_on = None
        if self.on_update is not None:
            try:
                update = BatchUpdate(entry.index, entry.line, state, run_id, detail, balance)
                self.on_update(update)
            except Exception:
                log.exception("batch on_update callback failed")

    def outcome(self, entry: Entry, outcome: BatchOutcome) -> None:
        self.update(entry, outcome.status, outcome.run_id, outcome.error)
        self.queue.put_nowait(outcome)

    def failed(self, exc: BaseException) -> None:
        """A task of the batch ended with an error nobody expected: ``run_batch`` raises it."""
        self.queue.put_nowait(exc)

    def on_event(self, event: Event) -> None:
        if event.kind is EventKind.STATUS_CHANGED and event.run_id in self.by_run:
            status = event.status.value if event.status is not None else "unknown"
            if event.status is None or not event.status.is_terminal:
                self.update(self.by_run[event.run_id], status, event.run_id)
        elif (
            event.kind is EventKind.WAITING_FOR_RATE_LIMIT
            and event.run_id is None
            and self.on_update is not None
        ):
            # Each waiting submit is reported once per budget, not once per waiter of it: a
            # poll waits for the overall budget many times a second, and a burst holds hundreds
            # of submits (reporting each to each would stall the loop for milliseconds).
            budget = event.budget or ""
            overall = budget == "overall"
            routes = self.submitting.values() if overall else (self.submitting.get(budget, ()),)
            detail = f"{budget} budget, {event.delay or 0:.1f}s"
            for route in routes:
                for entry in route:
                    if entry.waiting_on is None or (not overall and entry.waiting_on != budget):
                        self.update(entry, "waiting", detail=detail)
                        entry.waiting_on = budget
