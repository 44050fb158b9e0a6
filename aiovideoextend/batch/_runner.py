"""The batch runner: lanes of submits per model, the jobs they start followed to their ends.

Each entry is planned from the journal (finished: reported; submitted: followed; a lost intent:
reconciled by :mod:`._recovery`; new: queued in its model's lane), then each lane submits in
order as the rate limit, the in-flight bound (a semaphore) and the spend guard
(:mod:`._guard`) allow; outcomes and updates go out through :mod:`._report`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from aiovideoextend._journal_api import JournalEntry, JournalStore
from aiovideoextend._ticket import LeftToJournal
from aiovideoextend.exceptions import (
    AmbiguousSubmitError,
    VideoExtendError,
)

from ._endings import Ending, HeldElsewhere, Stopped, job_failed, submit_failed
from ._entries import Entry
from ._guard import SpendGuard
from ._records import BatchOutcome, BatchUpdate, journal_record, outcome_from_journal
from ._recovery import Candidates, CannotCheck, reconcile, save_video, snapshot
from ._report import Reports
from ._slots import Slots

if TYPE_CHECKING:
    from aiovideoextend._job import Job
    from aiovideoextend._session import Session

__all__ = ["Runner"]

#: lost intents of one model, with their journal entries
Unresolved = dict[str, list[tuple[Entry, JournalEntry]]]


class Runner:
    def __init__(
        self,
        session: Session,
        entries: list[Entry],
        *,
        journal: JournalStore | None,
        max_in_flight: int | None,
        guard: SpendGuard,
        on_update: Callable[[BatchUpdate], None] | None,
        download: Path | None,
    ) -> None:
        self.session = session
        self.entries = entries
        self.journal = journal
        self.guard = guard
        self.download = download
        self.reports = Reports(on_update)
        self.tasks: set[asyncio.Task[None]] = set()
        self.slots = Slots(max_in_flight)
        self.lanes: dict[str, collections.deque[Entry]] = collections.defaultdict(collections.deque)
        self.lane_tasks: dict[str, asyncio.Task[None]] = {}
        self.snapshotted: set[str] = set()
        self.started = False
        self.unresolved: Unresolved = collections.defaultdict(list)
        self.candidates = Candidates(session, download)

    # -- plumbing ---------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.reports.failed(task.exception())  # type: ignore[arg-type]

    def _emit(self, entry: Entry, outcome: BatchOutcome) -> None:
        self.slots.release(entry)
        self.reports.outcome(entry, outcome)

    def _end(self, entry: Entry, status: str, **fields: Any) -> None:
        """An outcome the journal does not keep (a rerun picks the entry up again)."""
        self._emit(entry, entry.outcome(status, **fields))

    async def _finish(self, entry: Entry, status: str, **fields: Any) -> None:
        """A final outcome: journal it first, then report it."""
        outcome = entry.outcome(status, **fields)
        await self._journal_outcome(entry, outcome)
        self._emit(entry, outcome)

    async def _journal_outcome(self, entry: Entry, outcome: BatchOutcome) -> None:
        if self.journal is not None:
            await self.journal.record_finished(entry.entry_id, journal_record(outcome))

    async def _conclude(self, entry: Entry, ending: Ending, **fields: Any) -> None:
        """End an entry whose submit or job raised (see `._endings`)."""
        if ending.refund:
            self.guard.refund(fields.get("precharge"))
        if ending.journal == "finish":
            await self._finish(entry, ending.status, error=ending.error, **fields)
            return
        if ending.journal == "forget":
            await self._forget(entry)
        if ending.stop:
            self.guard.stop(ending.error)
        self._end(entry, ending.status, error=ending.error, **fields)

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[BatchOutcome]:
        self.session.add_event_hook(self.reports.on_event)
        try:
            await self._plan()
            self._spawn(self._drive())
            for _ in self.entries:
                item = await self.reports.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.session.remove_event_hook(self.reports.on_event)
            # Candidates are followed under a shield (several lines may wait on one): stop
            # them here with the rest.
            tasks: list[asyncio.Future[Any]] = [*self.tasks, *self.candidates.futures()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _plan(self) -> None:
        """Sort entries: invalid, finished earlier, submitted earlier, lost intents, to submit."""
        records = await self.journal.entries() if self.journal is not None else {}
        self.guard.resume(records.values())
        for entry in self.entries:
            request = entry.request
            if request is None:
                self._end(entry, "invalid", error=entry.error)
                continue
            record = records.get(entry.entry_id)
            if record is None:
                self._queue(entry)
            else:
                await self._take_over(entry, record)

    def _queue(self, entry: Entry) -> None:
        """Queue the entry in its model's lane."""
        assert entry.request is not None  # noqa: S101  (invalid entries never queue)
        self.lanes[entry.request.model].append(entry)
        self.reports.update(entry, "queued")

    async def _take_over(self, entry: Entry, record: JournalEntry) -> None:
        """An entry the journal knows: report it, follow its run, or queue its lost intent."""
        assert entry.request is not None  # noqa: S101
        if record.state == "finished":
            outcome = outcome_from_journal(record, index=entry.index, line=entry.line)
            if outcome.status == "completed" and self.download is not None:
                self._spawn(self._deliver(entry, outcome))
            else:
                self._emit(entry, outcome)
        elif record.state == "submitted" and record.run_id is not None:
            await self._attach(entry, record.run_id, record.precharge)
        else:
            self.unresolved[entry.request.model].append((entry, record))

    async def _drive(self) -> None:
        await asyncio.gather(*(self._reconcile(m, lost) for m, lost in self.unresolved.items()))
        self.unresolved.clear()
        self.started = True
        for model, lane in list(self.lanes.items()):
            self.lanes[model] = collections.deque(sorted(lane, key=lambda e: e.index))
            self._start_lane(model)

    def _start_lane(self, model: str) -> None:
        if not self.started:
            return  # _drive starts every lane once the lost intents are reconciled
        task = self.lane_tasks.get(model)
        if task is None or task.done():
            self.lane_tasks[model] = self._spawn(self._lane(model))

    async def _reconcile(self, model: str, lost: list[tuple[Entry, JournalEntry]]) -> None:
        """Act on the verdicts on lost intents of ``model`` (see `._recovery`)."""
        assert self.journal is not None  # noqa: S101  (only journal entries are unresolved)
        try:
            verdicts = await reconcile(self.session, self.journal, model, lost, self.entries)
        except CannotCheck as exc:
            for entry, _record in lost:
                self._end(entry, "unfinished", error=str(exc))
            # Submitting more of this model could create runs a later check would mistake.
            lane = self.lanes.get(model, collections.deque())
            while lane:
                self._end(lane.popleft(), "skipped", error=str(exc))
            return
        for entry, verdict in verdicts:
            if verdict.run is not None:
                await self._attach(entry, verdict.run, None)
            elif verdict.created_nothing:
                self.lanes[model].append(entry)
                self._start_lane(model)
            else:
                listed_ids = ", ".join(verdict.candidates) or "none visible"
                error = (
                    "an earlier submit's answer was lost and recover cannot tell which run it "
                    f"created (candidates: {listed_ids}); not resubmitted"
                )
                self._spawn(self._ambiguous(entry, verdict.candidates, error))

    async def _ambiguous(self, entry: Entry, run_ids: Iterable[str], error: str) -> None:
        """Follow every run that may be the entry's to its end, then finish it as ambiguous."""
        assert entry.request is not None  # noqa: S101
        candidates = await self.candidates.follow(entry.request.model, run_ids)
        await self._finish(entry, "ambiguous", error=error, candidates=candidates)

    # -- submitting -------------------------------------------------------------------------

    async def _lane(self, model: str) -> None:
        """Submit one model's requests in order, together, as fast as the rate limit allows
        (the session matches lost answers to their runs; a journal records each intent right
        before its submit leaves). With a spend guard they go one at a time."""
        lane = self.lanes[model]
        journal = self.journal
        while lane:
            entry = lane.popleft()
            assert entry.request is not None  # noqa: S101  (invalid entries never queue)
            route = entry.request.route
            await self.slots.acquire(entry)
            if journal is not None and model not in self.snapshotted:
                self.snapshotted.add(model)
                await snapshot(self.session, journal, model)
            async with self.guard.turn():
                reason = self.guard.check(model)
                if reason is not None:
                    self._end(entry, "skipped", error=f"not submitted: {reason}")
                    continue
                self.reports.submitting[route].add(entry)  # until _submit ends
                if self.guard.active:
                    await self._submit(entry)
                else:
                    self._spawn(self._submit(entry))

    async def _submit(self, entry: Entry) -> None:
        request = entry.request
        assert request is not None  # noqa: S101
        journal = self.journal
        guard = self.guard
        self.reports.update(entry, "submitting")

        sent = False

        async def before_send() -> None:
            # Right before the submit leaves (the rate limiter has let it go): the intent's time
            # and sequence bound when its run can have been created.
            nonlocal sent
            if guard.stopped is not None:
                # The batch stopped (a 402, a spend guard) while this one waited for its slot.
                raise Stopped
            if journal is not None and not await journal.record_intent(
                entry.entry_id, request_key=request.key, model=request.model, position=entry.index
            ):
                raise HeldElsewhere
            sent = True

        sending = entry.sending(self.session._retries.tag_submits)
        # A journal other processes write too settles lost answers itself: it sees their
        # submits, which this session cannot.
        alone = journal is None or not journal.concurrent
        submitting = asyncio.ensure_future(
            self.session._submit_with(sending, before_send, reconcile=alone)
        )
        try:
            with guard.reserving(request.model):
                try:
                    job = await asyncio.shield(submitting)
                except asyncio.CancelledError:
                    if not sent:
                        submitting.cancel()
                        await asyncio.gather(submitting, return_exceptions=True)
                        raise
                    # Stopped (Ctrl-C) with the submit on the wire: its answer, not a guess
                    # after a rerun, says which run is this entry's. Wait for it, record it (and
                    # report its run and the balance it brought), then stop.
                    with contextlib.suppress(Exception):
                        answered = await submitting
                        try:
                            await self._record(entry, answered)
                        finally:
                            self.reports.update(
                                entry, answered.status.value, answered.run_id, balance=guard.balance
                            )
                    raise
        except Stopped:
            if sent:  # a resend after its first attempt created nothing: drop that intent
                await self._forget(entry)
            self._end(entry, "skipped", error=f"not submitted: {guard.stopped}")
            return
        except HeldElsewhere:
            # Another writer (a queue's task delivered twice) recorded it first: its next try
            # finds that intent or run in the journal.
            self._end(entry, "unfinished", error="not submitted: another writer has its intent")
            return
        except VideoExtendError as exc:
            if isinstance(exc, LeftToJournal) and journal is not None:
                # Its intent is in the journal: reconciled there, with every writer's intents.
                record = (await journal.entries([entry.entry_id])).get(entry.entry_id)
                if record is not None:
                    self.slots.release(entry)
                    self._spawn(self._reconcile(request.model, [(entry, record)]))
                    return
            if isinstance(exc, AmbiguousSubmitError) and exc.candidates:
                await self._ambiguous(entry, exc.candidates, str(exc))
                return
            ending = submit_failed(exc, request)
            if ending is None:
                await self._forget(entry)
                raise
            await self._conclude(entry, ending)
            return
        finally:
            self.reports.submitting[request.route].discard(entry)
        try:
            precharge = await self._record(entry, job)
        except asyncio.CancelledError:
            # Stopped while the answer was being recorded: still report its run and balance.
            self.reports.update(entry, job.status.value, job.run_id, balance=guard.balance)
            raise
        self._follow(entry, job, precharge, resumed=False)

    async def _record(self, entry: Entry, job: Job) -> float | None:
        """A submit's answer: into the spend and balance figures, and into the journal (the
        figures first: a Ctrl-C during the journal's write must not lose them)."""
        assert entry.request is not None  # noqa: S101
        submission = job.submission
        precharge = submission.cost if submission is not None else None
        balance = submission.remaining_balance if submission is not None else None
        self.guard.charged(entry.request.model, precharge, balance)
        if self.journal is not None:
            await self.journal.record_submitted(entry.entry_id, job.run_id, precharge)
        return precharge

    async def _forget(self, entry: Entry) -> None:
        if self.journal is not None:
            await self.journal.forget_intent(entry.entry_id)

    # -- following jobs ---------------------------------------------------------------------

    async def _attach(self, entry: Entry, run_id: str, precharge: float | None) -> None:
        """Follow a run the journal names as the entry's (submitted earlier, or elsewhere)."""
        assert entry.request is not None  # noqa: S101
        await self.slots.take(entry)
        job = self.session.job(run_id, entry.request.model)
        self._follow(entry, job, precharge, resumed=True)

    def _follow(self, entry: Entry, job: Job, precharge: float | None, *, resumed: bool) -> None:
        self.reports.by_run[job.run_id] = entry
        balance = None if resumed else self.guard.balance
        # A run submitted earlier (by an earlier run or another worker) is followed, not sent.
        detail = "from journal" if resumed else None
        self.reports.update(entry, job.status.value, job.run_id, detail, balance=balance)
        self._spawn(self._wait(entry, job, precharge, resumed=resumed))

    async def _wait(
        self, entry: Entry, job: Job, precharge: float | None, *, resumed: bool
    ) -> None:
        base: dict[str, Any] = {"run_id": job.run_id, "precharge": precharge, "resumed": resumed}
        try:
            result = await job.result()
        except VideoExtendError as exc:
            ending = job_failed(exc)
            if ending is None:
                raise
            await self._conclude(entry, ending, **base)
            return
        outcome = entry.outcome("completed", video_url=result.video_url, cost=result.cost, **base)
        await self._journal_outcome(entry, outcome)
        await self._deliver(entry, outcome)

    async def _deliver(self, entry: Entry, outcome: BatchOutcome) -> None:
        """Report a completed request, downloading its video first when asked to."""
        url, run_id = outcome.video_url, outcome.run_id
        if self.download is not None and url and run_id:
            self.reports.update(entry, "downloading", run_id)
            path, error = await save_video(self.session, self.download, url, run_id)
            outcome = attrs.evolve(outcome, path=path, error=error or outcome.error)
        self._emit(entry, outcome)
