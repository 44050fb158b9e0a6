"""Batch runs: many extend requests, bounded, journaled and resumable.

``run_batch(session, requests)`` submits every request under the session's rate limits, waits
for the jobs and yields one :class:`BatchOutcome` per request, in completion order. Nothing in a
batch raises for a single request: an invalid request, a failed job and a 402 are outcomes.

With a ``journal`` (a path or a :class:`Journal`) the batch survives a crash or Ctrl-C: run it
again with the same requests and finished requests come back from the journal, submitted ones
are attached to again, and an intent whose answer was lost is reconciled through
``generate-video/recover``, never blindly resubmitted. See ``docs/batch.md``.

A shared journal (:class:`~aiovideoextend.redis_journal.RedisJournal`, any
:class:`JournalStore` with ``shared`` true) lets several workers run one batch: each entry is
claimed by the worker that records its intent, the others watch it, and an entry whose worker's
lease lapsed is adopted by one of them (see ``docs/scale-out.md``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from aiovideoextend._attribution import Attempt, Claim, attribute, offset_bounds, read_listing
from aiovideoextend._download import download_video
from aiovideoextend._journal import Journal, JournalEntry
from aiovideoextend._journal_api import JournalStore
from aiovideoextend._journal_store import LocalJournalStore
from aiovideoextend._manifest import ManifestLine, parse_manifest, request_from_fields
from aiovideoextend._reconcile import RECOVER_LIMIT
from aiovideoextend._requests import MidjourneyExtend, SourceExtend
from aiovideoextend._results import (
    FINISHED_STATUSES,
    BatchItem,
    BatchOutcome,
    BatchUpdate,
    Candidate,
)
from aiovideoextend.exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    APIError,
    AuthenticationError,
    DownloadError,
    EndpointNotFoundError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    JournalError,
    ManifestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TransportError,
    VideoExtendError,
)
from aiovideoextend.models import Event, EventKind

if TYPE_CHECKING:
    from aiovideoextend._job import Job
    from aiovideoextend._session import Session

__all__ = [
    "FINISHED_STATUSES",
    "BatchItem",
    "BatchOutcome",
    "BatchUpdate",
    "Candidate",
    "DownloadError",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalStore",
    "ManifestError",
    "ManifestLine",
    "download_video",
    "parse_manifest",
    "run_batch",
]

log = logging.getLogger("aiovideoextend")

ExtendRequest = MidjourneyExtend | SourceExtend
#: Errors every line would meet the same way (server unreachable, not NanoGPT, key rejected):
#: they stop the whole batch at once and ``run_batch`` raises them.
_STOPS_BATCH: Final = (APIConnectionError, EndpointNotFoundError, AuthenticationError)
#: shared journals: entries looked up at once before a lane submits them, and the most submits a
#: lane has queued at a time (so that a look is still fresh when their slots come)
_LOOK_AHEAD: Final = 31
_STORED: Final = ("status", "model", "run_id", "video_url", "error", "cost", "precharge")


@attrs.define(eq=False)
class _Entry:
    index: int
    line: int | None
    request: ExtendRequest | None
    error: str | None
    entry_id: str = ""
    holds_slot: bool = False
    #: the budget its submit was last reported waiting for (None: not waiting)
    waiting_on: str | None = None


def _items(requests: Iterable[Any]) -> list[_Entry]:
    entries = []
    seen: collections.Counter[str] = collections.Counter()
    for index, item in enumerate(requests):
        if isinstance(item, (MidjourneyExtend, SourceExtend)):
            item = BatchItem(item)  # noqa: PLW2901
        elif isinstance(item, ManifestLine):
            item = BatchItem(item.request, item.line, item.error)  # noqa: PLW2901
        elif isinstance(item, Mapping):
            try:
                item = BatchItem(request_from_fields(item))  # noqa: PLW2901
            except InvalidRequestError as exc:
                item = BatchItem(error=str(exc))  # noqa: PLW2901
        elif not isinstance(item, BatchItem):
            item = BatchItem(error=f"not a request: {type(item).__name__}")  # noqa: PLW2901
        entry = _Entry(index, item.line, item.request, item.error)
        if item.request is not None:
            # Identical requests are distinct entries: the n-th copy is the n-th submit.
            key = item.request.key
            entry.entry_id = f"{key}:{seen[key]}"
            seen[key] += 1
        elif entry.error is None:
            entry.error = "no request"
        entries.append(entry)
    return entries


def _open_live(
    records: Iterable[JournalEntry], model: str, exclude: Collection[str]
) -> dict[str, int]:
    """Intents of ``model`` whose live worker is still waiting for the answer, with their seq."""
    return {
        r.entry_id: r.intent_seq
        for r in records
        if r.state == "intent"
        and r.model == model
        and r.entry_id not in exclude
        and r.owner_alive
        and not r.adopted
    }


class _Stopped(Exception):  # noqa: N818  (a signal, not an error)
    """The batch stopped submitting while this submit waited for its slot: nothing was sent."""


class _HeldElsewhere(Exception):  # noqa: N818  (a signal, not an error)
    """Another worker of a shared journal claimed the entry first: nothing was sent."""


#: batch lines' conversationUUID tags (Retries.tag_submits) are uuid5 of their entry id in this
_TAGS: Final = uuid.UUID("6f1c9a52-0d4e-4c59-9a51-3b7e2f0c8d11")


def _conversation(entry: _Entry, tagging: bool) -> str | None:
    """The conversationUUID the entry's submits carry: its request's own, or with tagging on,
    one derived from the entry id (so that a rerun after a crash knows it)."""
    request = entry.request
    if not isinstance(request, SourceExtend):
        return None
    tag = request.options.get("conversation_uuid")
    if tag is not None:
        return tag if isinstance(tag, str) else None
    return str(uuid.uuid5(_TAGS, entry.entry_id)) if tagging else None


def _excluded(request: ExtendRequest | None) -> frozenset[str]:
    """The run a Midjourney extend extends: never its result."""
    if isinstance(request, MidjourneyExtend):
        return frozenset((request.run_id,))
    return frozenset()


class _Runner:
    def __init__(
        self,
        session: Session,
        entries: list[_Entry],
        *,
        journal: JournalStore | None,
        max_in_flight: int | None,
        max_cost: float | None,
        min_balance: float | None,
        on_update: Callable[[BatchUpdate], None] | None,
        download: Path | None,
    ) -> None:
        self.session = session
        self.entries = entries
        self.journal = journal
        self.max_in_flight = max_in_flight
        self.max_cost = max_cost
        self.min_balance = min_balance
        self.on_update = on_update
        self.download = download
        self.queue: asyncio.Queue[BatchOutcome | BaseException] = asyncio.Queue()
        self.tasks: set[asyncio.Task[None]] = set()
        self.in_flight = 0
        self.slot_freed = asyncio.Event()
        self.stop_reason: str | None = None
        self.spent = 0.0
        self.estimates: dict[str, float] = {}
        self.balance: float | None = None
        self.by_run: dict[str, _Entry] = {}
        self.submitting: dict[str, set[_Entry]] = collections.defaultdict(set)
        self.lanes: dict[str, collections.deque[_Entry]] = collections.defaultdict(
            collections.deque
        )
        self.lane_tasks: dict[str, asyncio.Task[None]] = {}
        self.snapshotted: set[str] = set()
        self.started = False
        #: shared journals: entries another live worker holds, by entry id
        self.watched: dict[str, _Entry] = {}
        self.watcher: asyncio.Task[None] | None = None
        self.unresolved: dict[str, list[tuple[_Entry, JournalEntry]]] = collections.defaultdict(
            list
        )
        #: estimated precharges of submits on their way (lanes run concurrently)
        self.reserved = 0.0
        self.guard_lock = asyncio.Lock()
        #: set whenever a submit ends (shared journals bound the submits queued at once)
        self.submit_done = asyncio.Event()
        #: runs that may be an ambiguous entry's, followed once however many entries name them
        self.candidates: dict[str, asyncio.Future[Candidate]] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.queue.put_nowait(task.exception())  # type: ignore[arg-type]

    def _update(
        self,
        entry: _Entry,
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

    def _emit(self, entry: _Entry, status: str, **fields: Any) -> BatchOutcome:
        request = entry.request
        if request is not None:
            fields.setdefault("model", request.model)
            fields.setdefault("key", request.key)
        outcome = BatchOutcome(entry.index, status, line=entry.line, **fields)
        if entry.holds_slot:
            entry.holds_slot = False
            self.in_flight -= 1
            self.slot_freed.set()
        self._update(entry, status, outcome.run_id, outcome.error)
        self.queue.put_nowait(outcome)
        return outcome

    async def _finish(self, entry: _Entry, status: str, **fields: Any) -> None:
        """A final outcome: journal it first, then report it."""
        if self.journal is not None:
            stored = {name: fields.get(name) for name in _STORED if name != "status"}
            stored["status"] = status
            stored["candidates"] = [c.to_dict() for c in fields.get("candidates", ())]
            stored["line"] = entry.line if entry.line is not None else entry.index + 1
            await self.journal.record_finished(entry.entry_id, stored)
        self._emit(entry, status, **fields)

    async def _release(self, entry: _Entry) -> None:
        """An unfinished entry this worker gives up on: another worker may adopt it now."""
        if self.journal is not None:
            await self.journal.release(entry.entry_id)

    def _on_event(self, event: Event) -> None:
        if event.kind is EventKind.STATUS_CHANGED and event.run_id in self.by_run:
            status = event.status.value if event.status is not None else "unknown"
            if event.status is None or not event.status.is_terminal:
                self._update(self.by_run[event.run_id], status, event.run_id)
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
                        self._update(entry, "waiting", detail=detail)
                        entry.waiting_on = budget

    # -- the run ----------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[BatchOutcome]:
        self.session.add_event_hook(self._on_event)
        try:
            await self._plan()
            self._spawn(self._drive())
            for _ in self.entries:
                item = await self.queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.session.remove_event_hook(self._on_event)
            # Candidates are followed under a shield (several lines may wait on one): stop
            # them here with the rest.
            tasks: list[asyncio.Future[Any]] = [*self.tasks, *self.candidates.values()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _plan(self) -> None:
        """Sort entries: invalid, finished earlier, submitted earlier, lost intents, to submit."""
        journal = self.journal
        records = await journal.entries() if journal is not None else {}
        if journal is not None:
            self.spent = sum(
                r.precharge or 0.0
                for r in records.values()
                if not (r.outcome and r.outcome.get("status") in ("failed", "cancelled"))
            )
            # What earlier runs were precharged is the estimate of the next submit of a model:
            # without it a rerun's first submit would pass the max_cost check at no cost.
            for r in records.values():
                if r.precharge is not None:
                    self.estimates[r.model] = max(r.precharge, self.estimates.get(r.model, 0.0))
        for entry in self.entries:
            request = entry.request
            if request is None:
                self._emit(entry, "invalid", error=entry.error)
                continue
            record = records.get(entry.entry_id)
            if record is None:
                self.lanes[request.model].append(entry)
                self._update(entry, "queued")
            else:
                await self._take_over(entry, record, self.unresolved)

    async def _take_over(
        self,
        entry: _Entry,
        record: JournalEntry,
        unresolved: dict[str, list[tuple[_Entry, JournalEntry]]],
    ) -> None:
        """An entry the journal knows: report it, follow its run, or queue its lost intent."""
        journal = self.journal
        assert journal is not None  # noqa: S101
        assert entry.request is not None  # noqa: S101
        if journal.shared and record.state != "finished":
            if record.owner_alive and record.owner != journal.worker_id:
                self._watch(entry)
                return
            # Its worker is gone (or let it go): take it over, unless another survivor did.
            adopted = await journal.adopt(entry.entry_id)
            if adopted is None:
                self._watch(entry)
                return
            record = adopted
        if record.state == "finished":
            stored = dict(record.outcome or {})
            status = stored.pop("status", "failed")
            stored["candidates"] = tuple(
                Candidate.from_stored(c) for c in stored.get("candidates") or ()
            )
            fields = {k: v for k, v in stored.items() if k in (*_STORED, "candidates")}
            if status == "completed" and self.download is not None:
                self._spawn(self._deliver(entry, resumed=True, **fields))
            else:
                self._emit(entry, status, resumed=True, **fields)
        elif record.state == "submitted" and record.run_id is not None:
            self._attach(entry, record.run_id, record.precharge, resumed=True)
        else:
            unresolved[entry.request.model].append((entry, record))

    def _watch(self, entry: _Entry) -> None:
        """Another live worker holds the entry: report it when it ends, adopt it if that worker
        goes away."""
        self.watched[entry.entry_id] = entry
        self._update(entry, "elsewhere")
        if self.watcher is None or self.watcher.done():
            self.watcher = self._spawn(self._watch_loop())

    async def _watch_loop(self) -> None:
        journal = self.journal
        assert journal is not None  # noqa: S101
        while self.watched:
            await asyncio.sleep(journal.poll_interval)
            records = await journal.entries(list(self.watched))
            unresolved: dict[str, list[tuple[_Entry, JournalEntry]]] = collections.defaultdict(list)
            for entry_id, entry in list(self.watched.items()):
                record = records.get(entry_id)
                if (
                    record is not None
                    and record.state != "finished"
                    and record.owner_alive
                    and record.owner != journal.worker_id
                ):
                    continue
                del self.watched[entry_id]
                if record is None:
                    # Its worker forgot the intent (the server refused it): unclaimed again.
                    assert entry.request is not None  # noqa: S101
                    self.lanes[entry.request.model].append(entry)
                    self._update(entry, "queued")
                    self._start_lane(entry.request.model)
                else:
                    await self._take_over(entry, record, unresolved)
            for model, items in unresolved.items():
                self._spawn(self._reconcile(model, items))

    async def _drive(self) -> None:
        await asyncio.gather(*(self._reconcile(m, items) for m, items in self.unresolved.items()))
        self.unresolved.clear()
        self.started = True
        journal = self.journal
        for model, lane in list(self.lanes.items()):
            ordered = collections.deque(sorted(lane, key=lambda e: e.index))
            if journal is not None and journal.shared and journal.worker_id and ordered:
                # Workers of one shared batch start at different places of each lane, so that
                # they seldom race for the same entry (a lost race costs a rate-limit slot's
                # round trips for nothing).
                digest = hashlib.sha256(f"{journal.worker_id}:{model}".encode()).digest()
                ordered.rotate(-(int.from_bytes(digest[:8], "big") % len(ordered)))
            self.lanes[model] = ordered
            self._start_lane(model)

    def _start_lane(self, model: str) -> None:
        if not self.started:
            return  # _drive starts every lane once the lost intents are reconciled
        task = self.lane_tasks.get(model)
        if task is None or task.done():
            self.lane_tasks[model] = self._spawn(self._lane(model))

    async def _reconcile(self, model: str, items: list[tuple[_Entry, JournalEntry]]) -> None:
        """Decide what happened to submits whose answer their worker never recorded, by the
        rules of `aiovideoextend._attribution` (see docs/reliability.md)."""
        journal = self.journal
        assert journal is not None  # noqa: S101  (only journal entries are unresolved)
        mine = {entry.entry_id for entry, _record in items}
        records = await journal.entries()
        # Submits of live workers (this one's included) that are on their way may have runs
        # that are not claimed yet: wait until each has its answer recorded (or its worker is
        # gone). Intents recorded later cannot have runs in the listing below.
        pending = _open_live(records.values(), model, mine)
        while pending:
            await asyncio.sleep(journal.poll_interval)
            now = await journal.entries(pending)
            pending = {
                k: seq
                for k, seq in _open_live(now.values(), model, mine).items()
                if pending.get(k) == seq
            }
        try:
            runs = await self.session.recover(model=model, limit=RECOVER_LIMIT)
        except (*_STOPS_BATCH, PermissionDeniedError):
            raise
        except VideoExtendError as exc:
            why = f"could not check for a lost submit through recover: {exc}"
            for entry, _record in items:
                self._emit(entry, "unfinished", error=why)
                await self._release(entry)
            # Submitting more of this model could create runs a later check would mistake.
            lane = self.lanes.get(model, collections.deque())
            while lane:
                self._emit(lane.popleft(), "skipped", error=why)
            return
        records = await journal.entries()
        known = await journal.known_runs(model)
        # A claimed run was seen when its answer was recorded, and its flight pins the clock.
        claims = {
            r.run_id: Claim(
                r.submitted_seq if r.submitted_at is not None else None,
                (r.intent_at, r.submitted_at) if r.submitted_at is not None else None,
            )
            for r in records.values()
            if r.run_id
        }
        listing = read_listing(runs, model, claims, known)
        # From now on every listed run is one no later intent can own.
        await journal.record_known_runs(
            model, [run.run_id for run in runs], complete=len(runs) < RECOVER_LIMIT
        )
        server = self.session._server_offset()
        skew = self.session._retries.reconcile_skew
        tagging = self.session._retries.tag_submits
        lost = [
            Attempt(
                entry.entry_id,
                record.intent_seq,
                record.intent_at or None,
                None,  # its worker is gone: when the answer was lost is unknown
                record.request_key,
                _excluded(entry.request),
                _conversation(entry, tagging),
            )
            for entry, record in items
        ]
        # Other lost intents of this model (their workers died, maybe being reconciled by
        # another worker) may own runs too.
        by_id = {entry.entry_id: entry for entry in self.entries}
        rival_records = [
            r
            for r in records.values()
            if r.state == "intent" and r.model == model and r.entry_id not in mine
        ]
        # A conversationUUID tag rules runs out only when every competing submit's tag is
        # known (see the rules); an intent of an entry this runner cannot see has none known.
        tagged = all(r.entry_id in by_id for r in rival_records)
        rivals = [
            Attempt(
                r.entry_id,
                r.intent_seq,
                r.intent_at or None,
                conversation=_conversation(by_id[r.entry_id], tagging) if tagged else None,
            )
            for r in rival_records
        ]
        if not tagged:
            lost = [attrs.evolve(attempt, conversation=None) for attempt in lost]
        matching = attribute(
            lost,
            listing.unclaimed,
            open_attempts=rivals,
            offset=offset_bounds(listing.anchors, (server - skew, server + skew)),
            margin=self.session._retries.reconcile_margin,
            listing_full=len(runs) >= RECOVER_LIMIT,
            reach=listing.claimed,
        )
        for run_id in matching.unattributed:
            if known.get(run_id) is None:
                log.warning(
                    "run %s of %s was created but no line of this batch can own it", run_id, model
                )
        for entry, _record in sorted(items, key=lambda item: item[1].intent_seq):
            verdict = matching.verdicts[entry.entry_id]
            if verdict.run is not None:
                log.info("line %s: adopting %s, created by a lost submit", entry.line, verdict.run)
                await journal.record_submitted(entry.entry_id, verdict.run, None, answered=False)
                self._attach(entry, verdict.run, None, resumed=True)
            elif verdict.created_nothing:
                log.info("line %s: the lost submit created no run; submitting it", entry.line)
                self.lanes[model].append(entry)
                self._start_lane(model)
            else:
                listed_ids = ", ".join(verdict.candidates) or "none visible"
                self._spawn(
                    self._ambiguous(
                        entry,
                        verdict.candidates,
                        "an earlier submit's answer was lost and recover cannot tell which run "
                        f"it created (candidates: {listed_ids}); not resubmitted",
                    )
                )

    async def _ambiguous(self, entry: _Entry, run_ids: Iterable[str], error: str) -> None:
        """Follow every run that may be the entry's to its end, then finish it as ambiguous."""
        candidates = await asyncio.gather(*(self._candidate(run_id, entry) for run_id in run_ids))
        await self._finish(entry, "ambiguous", error=error, candidates=tuple(candidates))

    def _candidate(self, run_id: str, entry: _Entry) -> asyncio.Future[Candidate]:
        task = self.candidates.get(run_id)
        if task is None:
            assert entry.request is not None  # noqa: S101
            task = asyncio.ensure_future(self._follow_candidate(run_id, entry.request.model))
            self.candidates[run_id] = task
        return asyncio.shield(task)

    async def _follow_candidate(self, run_id: str, model: str) -> Candidate:
        job = self.session.job(run_id, model)
        try:
            result = await job.result()
        except (JobFailedError, JobCancelledError) as exc:
            status = "failed" if isinstance(exc, JobFailedError) else "cancelled"
            return Candidate(run_id, status, error=str(exc))
        except VideoExtendError as exc:
            return Candidate(run_id, "unfinished", error=str(exc))
        path = None
        error = None
        if self.download is not None and result.video_url:
            try:
                saved = await download_video(
                    self.session.http, result.video_url, self.download, run_id=run_id
                )
            except DownloadError as exc:
                error = f"download failed: {exc}"
            else:
                path = str(saved)
        return Candidate(run_id, "completed", result.video_url, error, path)

    # -- submitting -------------------------------------------------------------------------

    def _guard(self, model: str) -> str | None:
        # A model not submitted yet is assumed to cost as much as the dearest one seen.
        estimate = self.estimates.get(model, max(self.estimates.values(), default=0.0))
        if self.max_cost is not None and self.spent + self.reserved + estimate > self.max_cost:
            # The journal's earlier runs count too: a rerun does not get a fresh budget.
            return (
                f"max cost ${self.max_cost:g} reached: this batch has precharged "
                f"${self.spent:.2f}, its earlier runs included"
            )
        if (
            self.min_balance is not None
            and self.balance is not None
            and self.balance - estimate < self.min_balance
        ):
            return f"balance {self.balance:.2f} is at the {self.min_balance:g} floor"
        return None

    async def _lane(self, model: str) -> None:
        """Submit one model's requests in order, together, as fast as the rate limit allows
        (the session matches lost answers to their runs; a journal records each intent right
        before its submit leaves). With a spend guard they go one at a time."""
        lane = self.lanes[model]
        shared = self.journal is not None and self.journal.shared
        #: entry id -> claimed by another live worker, from one look ahead (each serves once)
        looked: dict[str, bool] = {}
        while lane:
            entry = lane.popleft()
            assert entry.request is not None  # noqa: S101  (invalid entries never queue)
            route = entry.request.route
            if shared:
                # Few submits queue at a time, so that the look below is fresh when their slots
                # come (all of them queued at once would race the other workers for each).
                while len(self.submitting[route]) >= _LOOK_AHEAD:
                    self.submit_done.clear()
                    await self.submit_done.wait()
                if await self._held_elsewhere(entry, lane, looked):
                    self._watch(entry)
                    continue
            while self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
                self.slot_freed.clear()
                await self.slot_freed.wait()
            if self.journal is not None and model not in self.snapshotted:
                self.snapshotted.add(model)
                await self._snapshot(model)
            # With a spend guard, check-and-submit is one step across all lanes, so that two
            # lanes cannot both pass the check with the money for one.
            guarded = self.max_cost is not None or self.min_balance is not None
            async with self.guard_lock if guarded else contextlib.nullcontext():
                reason = self.stop_reason or self._guard(model)
                if reason is not None:
                    self.stop_reason = self.stop_reason or reason
                    self._emit(entry, "skipped", error=f"not submitted: {reason}")
                    continue
                self.in_flight += 1
                entry.holds_slot = True
                self.submitting[route].add(entry)  # until _submit ends
                if guarded:
                    await self._submit(entry)
                else:
                    self._spawn(self._submit(entry))

    async def _held_elsewhere(
        self, entry: _Entry, lane: Iterable[_Entry], looked: dict[str, bool]
    ) -> bool:
        """Whether another live worker of a shared journal claimed the entry already: it is then
        watched, not raced for (a lost race costs a rate-limit slot's round trips). One look
        covers the next few entries; an entry that comes back to the lane (its owner let it go)
        is looked at afresh."""
        held = looked.pop(entry.entry_id, None)
        if held is not None:
            return held
        journal = self.journal
        assert journal is not None  # noqa: S101
        ahead = [entry.entry_id, *(e.entry_id for e in itertools.islice(lane, _LOOK_AHEAD))]
        records = await journal.entries(ahead)
        for entry_id in ahead:
            record = records.get(entry_id)
            looked[entry_id] = (
                record is not None
                and record.owner is not None
                and record.owner != journal.worker_id
                and (record.owner_alive or record.state == "finished")
            )
        return looked.pop(entry.entry_id)

    async def _snapshot(self, model: str) -> None:
        """Remember the runs that exist before our first submit of ``model`` (for `_candidates`)."""
        assert self.journal is not None  # noqa: S101
        try:
            runs = await self.session.recover(model=model, limit=RECOVER_LIMIT)
        except (*_STOPS_BATCH, PermissionDeniedError):
            raise
        except VideoExtendError as exc:
            log.warning("recover failed (%s); a lost submit of %s may stay ambiguous", exc, model)
            return
        ids = [run.run_id for run in runs]
        await self.journal.record_known_runs(model, ids, complete=len(ids) < RECOVER_LIMIT)

    async def _submit(self, entry: _Entry) -> None:
        request = entry.request
        assert request is not None  # noqa: S101
        journal = self.journal
        self._update(entry, "submitting")

        sent = False

        async def before_send() -> None:
            # Right before the submit leaves (the rate limiter has let it go): an intent is a
            # claim, and its time and sequence bound when its run can have been created.
            nonlocal sent
            if self.stop_reason is not None:
                # The batch stopped (a 402, a spend guard) while this one waited for its slot.
                raise _Stopped
            if journal is not None and not await journal.record_intent(
                entry.entry_id, request_key=request.key, model=request.model, position=entry.index
            ):
                raise _HeldElsewhere
            sent = True

        reserve = self.estimates.get(request.model, 0.0)
        self.reserved += reserve
        sending = request
        tag = _conversation(entry, self.session._retries.tag_submits)
        if tag is not None and isinstance(request, SourceExtend):
            # The line's own tag, not a fresh one the session would pick: a rerun knows it.
            sending = attrs.evolve(request, options={**request.options, "conversation_uuid": tag})
        submitting = asyncio.ensure_future(self.session._submit_with(sending, before_send))
        try:
            try:
                job = await asyncio.shield(submitting)
            except asyncio.CancelledError:
                if not sent:
                    submitting.cancel()
                    await asyncio.gather(submitting, return_exceptions=True)
                    raise
                # Stopped (Ctrl-C) with the submit on the wire: its answer, not a guess after
                # a rerun, says which run is this entry's. Wait for it, record it (and report
                # its run and the balance it brought), then stop.
                with contextlib.suppress(Exception):
                    answered = await submitting
                    try:
                        await self._record(entry, answered)
                    finally:
                        self._update(
                            entry, answered.status.value, answered.run_id, balance=self.balance
                        )
                raise
        except _Stopped:
            if sent:  # a resend after its first attempt created nothing: drop that intent
                await self._forget(entry)
            self._emit(entry, "skipped", error=f"not submitted: {self.stop_reason}")
            return
        except _HeldElsewhere:
            # Another worker of a shared journal holds it (or finished it already).
            entry.holds_slot = False
            self.in_flight -= 1
            self.slot_freed.set()
            self._watch(entry)
            return
        except AmbiguousSubmitError as exc:
            if exc.candidates:
                await self._ambiguous(entry, exc.candidates, str(exc))
            else:
                # Recover could not be asked: a rerun reconciles the intent.
                self._emit(entry, "unfinished", error=f"submit outcome unknown: {exc}")
                await self._release(entry)
            return
        except _STOPS_BATCH:
            # Nothing was created; every other line would fail the same way.
            await self._forget(entry)
            raise
        except PermissionDeniedError as exc:
            if isinstance(request, MidjourneyExtend):
                # 403 on an extend: that run belongs to someone else (this line only).
                await self._finish(entry, "failed", error=str(exc))
                return
            await self._forget(entry)
            raise  # the key is not allowed here (origin): every line would be refused
        except InsufficientBalanceError as exc:
            await self._forget(entry)
            self.stop_reason = f"{exc}"
            self._emit(entry, "insufficient_balance", error=str(exc))
            return
        except (RateLimitError, TransportError) as exc:
            # The session retried these and knows no job was created: a rerun may try again.
            await self._forget(entry)
            self._emit(entry, "skipped", error=f"not submitted: {exc}")
            return
        except APIError as exc:
            await self._finish(entry, "failed", error=str(exc))
            return
        except VideoExtendError as exc:
            # Unknown whether a job exists: the intent stays for the next run (or another
            # worker of a shared journal) to reconcile.
            self._emit(entry, "unfinished", error=f"submit outcome unknown: {exc}")
            await self._release(entry)
            return
        finally:
            self.reserved -= reserve
            self.submitting[request.route].discard(entry)
            self.submit_done.set()
        try:
            precharge = await self._record(entry, job)
        except asyncio.CancelledError:
            # Stopped while the answer was being recorded: still report its run and balance.
            self._update(entry, job.status.value, job.run_id, balance=self.balance)
            raise
        self._follow(entry, job, precharge, resumed=False)

    async def _record(self, entry: _Entry, job: Job) -> float | None:
        """A submit's answer: into the spend and balance figures, and into the journal (the
        figures first: a Ctrl-C during the journal's write must not lose them)."""
        assert entry.request is not None  # noqa: S101
        submission = job.submission
        precharge = submission.cost if submission is not None else None
        if precharge is not None:
            self.spent += precharge
            self.estimates[entry.request.model] = precharge
        if submission is not None and submission.remaining_balance is not None:
            self.balance = submission.remaining_balance
        if self.journal is not None:
            await self.journal.record_submitted(entry.entry_id, job.run_id, precharge)
        return precharge

    async def _forget(self, entry: _Entry) -> None:
        if self.journal is not None:
            await self.journal.forget_intent(entry.entry_id)

    # -- following jobs ---------------------------------------------------------------------

    def _attach(
        self, entry: _Entry, run_id: str, precharge: float | None, *, resumed: bool
    ) -> None:
        assert entry.request is not None  # noqa: S101
        self.in_flight += 1
        entry.holds_slot = True
        job = self.session.job(run_id, entry.request.model)
        self._follow(entry, job, precharge, resumed=resumed)

    def _follow(self, entry: _Entry, job: Job, precharge: float | None, *, resumed: bool) -> None:
        self.by_run[job.run_id] = entry
        balance = None if resumed else self.balance
        # A run submitted earlier (by an earlier run or another worker) is followed, not sent.
        detail = "from journal" if resumed else None
        self._update(entry, job.status.value, job.run_id, detail, balance=balance)
        self._spawn(self._wait(entry, job, precharge, resumed=resumed))

    async def _wait(
        self, entry: _Entry, job: Job, precharge: float | None, *, resumed: bool
    ) -> None:
        base: dict[str, Any] = {"run_id": job.run_id, "precharge": precharge, "resumed": resumed}
        try:
            result = await job.result()
        except JobFailedError as exc:
            self._refund(precharge)
            error = exc.user_friendly_error or exc.error or str(exc)
            await self._finish(entry, "failed", error=error, **base)
        except JobCancelledError as exc:
            self._refund(precharge)
            await self._finish(entry, "cancelled", error=str(exc), **base)
        except JobTimeoutError as exc:
            self._emit(entry, "unfinished", error=f"{exc}; rerun to keep waiting", **base)
            await self._release(entry)
        except (NotFoundError, PermissionDeniedError) as exc:
            await self._finish(entry, "failed", error=str(exc), **base)
        except _STOPS_BATCH:
            raise
        except VideoExtendError as exc:
            self._emit(entry, "unfinished", error=f"{exc}; rerun to keep waiting", **base)
            await self._release(entry)
        else:
            fields = {**base, "video_url": result.video_url, "cost": result.cost}
            if self.journal is not None:
                stored = {name: fields.get(name) for name in _STORED}
                stored.update(status="completed", model=job.model, candidates=[])
                stored["line"] = entry.line if entry.line is not None else entry.index + 1
                await self.journal.record_finished(entry.entry_id, stored)
            await self._deliver(entry, **fields)

    def _refund(self, precharge: float | None) -> None:
        # Failed and cancelled jobs are refunded: they do not count against max_cost.
        self.spent -= precharge or 0.0

    async def _deliver(self, entry: _Entry, **fields: Any) -> None:
        """Report a completed request, downloading its video first when asked to."""
        url, run_id = fields.get("video_url"), fields.get("run_id")
        if self.download is not None and url and run_id:
            self._update(entry, "downloading", run_id)
            try:
                path = await download_video(self.session.http, url, self.download, run_id=run_id)
            except DownloadError as exc:
                fields["error"] = f"download failed: {exc}"
            else:
                fields["path"] = str(path)
        self._emit(entry, "completed", **fields)


async def run_batch(
    session: Session,
    requests: Iterable[ExtendRequest | BatchItem | ManifestLine | Mapping[str, Any]],
    *,
    journal: Journal | JournalStore | str | Path | None = None,
    max_in_flight: int | None = None,
    max_cost: float | None = None,
    min_balance: float | None = None,
    on_update: Callable[[BatchUpdate], None] | None = None,
    download: str | Path | None = None,
) -> AsyncIterator[BatchOutcome]:
    """Run every request; yield one :class:`BatchOutcome` per request as each one ends.

    ``requests``: request objects, :class:`BatchItem`/:class:`ManifestLine` (with a line number
    or an error) or dicts of manifest fields. ``journal``: a path or an open :class:`Journal`
    that makes the batch resumable, or a shared :class:`JournalStore` (such as
    :class:`~aiovideoextend.redis_journal.RedisJournal`) that splits it across workers: each
    worker still yields one outcome per request, ``resumed`` for those another one ran.
    ``max_in_flight`` bounds the jobs submitted and not yet
    finished; ``max_cost`` stops submitting once the precharges would pass it (failed jobs are
    refunded and do not count; with a journal, the precharges of its earlier runs count too, so
    a rerun does not start a fresh budget); ``min_balance`` stops before the account balance the
    server reports would drop below it. ``download``: a directory to stream completed videos into.

    Cancel the iterating task to stop at once: the journal stays consistent, and running the
    same batch again resumes it. What every request would meet alike stops the batch and is
    raised: :class:`APIConnectionError`, :class:`EndpointNotFoundError`,
    :class:`AuthenticationError` (and :class:`PermissionDeniedError` for the key itself).
    """
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    if max_cost is not None and not max_cost >= 0:
        raise ValueError(f"max_cost must be 0 or more, got {max_cost}")
    entries = _items(requests)
    own = isinstance(journal, (str, Path))
    opened = Journal(journal) if isinstance(journal, (str, Path)) else journal
    store = LocalJournalStore(opened) if isinstance(opened, Journal) else opened
    try:
        runner = _Runner(
            session,
            entries,
            journal=store,
            max_in_flight=max_in_flight,
            max_cost=max_cost,
            min_balance=min_balance,
            on_update=on_update,
            download=None if download is None else Path(download),
        )
        async for outcome in runner.run():
            yield outcome
    finally:
        if isinstance(store, LocalJournalStore) and store is not journal:
            await store.aclose()
        if own and isinstance(opened, Journal):
            opened.close()
