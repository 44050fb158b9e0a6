"""Submits whose outcome is unknown: find the runs they created, without ever paying twice.

Submits of one model go out concurrently (a batch of up to the limit leaves at once). When one
of them loses its answer (a reset or timeout after the body left, a 500, an unreadable 2xx), the
guard closes that model's gate so that no new submit of it starts, waits for the ones already
out to come back, and then resolves every lost submit of that model in one look at
``generate-video/recover``, by the rules of :mod:`._attribution`: what the session saw before
each submit left (a snapshot of the model's runs is taken before its first submit), the
``createdAt`` of each run against each submit's flight, on a clock offset pinned by the
submits that did get their answer. A run goes to a lost submit only when no other explanation
is possible; a lost submit that created nothing may be sent again; the rest raise
:class:`AmbiguousSubmitError` naming the candidates, which the session keeps following (see
``Session.unresolved``). Runs nobody may have created are kept in ``Session.unattributed``.

After a submit of a model fails in any way (a lost answer, a 5xx, a 429, a refused
connection), that model's untagged submits go one at a time (a *careful spell*) until
``CALM`` of them in a row got their answer: each later loss is then resolved before the next
submit leaves, and told apart by the snapshot rule alone, with or without ``createdAt``.
``pace=True`` makes every spell last for ever.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Final

import attrs

from ._attribution import Attempt, Claim, attribute, offset_bounds, parse_created_at, read_listing
from ._tasks import TaskSet
from ._ticket import LostSubmit, Ticket
from .exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    AuthenticationError,
    EndpointNotFoundError,
)
from .models import RecoveredRun

__all__ = ["CALM", "RECOVER_LIMIT", "SubmitGuard"]

log = logging.getLogger("aiovideoextend")

#: the most runs recover lists at once
RECOVER_LIMIT = 50
#: a careful spell ends after this many submits of the model in a row got their answer
CALM: Final = 100
#: answered submits remembered to pin the server's clock (most recent first)
_FLIGHTS = 2000


class SubmitGuard:
    """Per session: counts submits in flight per model and resolves the lost ones together."""

    def __init__(
        self,
        recover: Callable[[str], Awaitable[list[RecoveredRun]]],
        snapshot: Callable[[str], Awaitable[list[RecoveredRun]]],
        claimed: Collection[str],
        *,
        clock_offset: Callable[[], float],
        skew: float,
        margin: float,
        settle_timeout: float | None,
        cooldown: float,
        pace: bool = False,
    ) -> None:
        self._recover = recover
        self._list_before = snapshot
        self._claimed = claimed
        self._clock_offset = clock_offset
        self._skew = skew
        self._margin = margin
        self._settle_timeout = settle_timeout
        self._cooldown = cooldown
        #: untagged submits of a model always go one at a time (a spell without end)
        self.pacing: Final = pace
        self._stamps = itertools.count(1)
        #: the order stamp at which each run was first seen (listings and answers)
        self._seen: dict[str, int] = {}
        #: answered submits: run id -> (our clock when sent, when answered)
        self._flights: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()
        #: per model in a careful spell: its submits answered in a row since it began
        self._calm: dict[str, int] = {}
        self._in_flight: dict[str, set[Ticket]] = collections.defaultdict(set)
        self._idle: dict[str, asyncio.Event] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._lost: dict[str, list[LostSubmit]] = collections.defaultdict(list)
        #: timed-out submits found to have created nothing, and the loop time until which a
        #: late creation of theirs is feared: they compete for new runs until then
        self._released: dict[str, list[tuple[Attempt, float]]] = collections.defaultdict(list)
        self._snapshots: dict[str, asyncio.Future[None]] = {}
        #: the stamp of each model's first submit, and our clock then
        self._first: dict[str, tuple[int, float]] = {}
        #: runs no submit of ours may have created (late creations, someone else's)
        self.unattributed: list[RecoveredRun] = []
        self._reported: set[str] = set()
        self._tasks = TaskSet()

    # -- what the session saw ---------------------------------------------------------------

    def stamp(self) -> int:
        return next(self._stamps)

    def saw(self, run_ids: Collection[str]) -> None:
        """Runs seen in a listing or an answer: no submit sent from now on can own them."""
        stamp = self.stamp()
        for run_id in run_ids:
            self._seen.setdefault(run_id, stamp)

    def answered(self, run_id: str, sent_at: float, answered_at: float) -> None:
        self.saw((run_id,))
        self._flights[run_id] = (sent_at, answered_at)
        if len(self._flights) > _FLIGHTS:
            self._flights.popitem(last=False)

    async def snapshot(self, model: str) -> None:
        """Before the first submit of ``model``: list its runs, so none of them can ever be
        taken for a run of ours (one look per model; a failed look is not fatal)."""
        task = self._snapshots.get(model)
        if task is None:
            task = self._snapshots[model] = asyncio.ensure_future(self._take_snapshot(model))
        if not task.done():  # every later submit of the model finds it done
            await asyncio.shield(task)

    def listed(self, model: str) -> None:
        """A full listing of ``model`` was seen: it serves as the snapshot before its submits."""
        if model not in self._snapshots:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            self._snapshots[model] = done

    async def aclose(self) -> None:
        """Stop snapshots and late looks still under way (the session is going away)."""
        tasks = [task for task in (*self._snapshots.values(), *self._tasks) if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _take_snapshot(self, model: str) -> None:
        try:
            runs = await self._list_before(model)
        except Exception as exc:
            # Unreachable or refused: the submit that follows fails the same way and says so.
            quiet = isinstance(
                exc, (APIConnectionError, AuthenticationError, EndpointNotFoundError)
            )
            (log.debug if quiet else log.warning)(
                "recover before the first submit of %s failed: %s", model, exc
            )
            return
        self.saw([run.run_id for run in runs])

    # -- the gate ---------------------------------------------------------------------------

    def _event(self, table: dict[str, asyncio.Event], model: str) -> asyncio.Event:
        event = table.get(model)
        if event is None:
            event = table[model] = asyncio.Event()
            event.set()
        return event

    def _careful(self, model: str) -> bool:
        return self.pacing or model in self._calm

    async def ready(self, model: str) -> None:
        """Wait until a submit of ``model`` may leave: no reconciliation of it under way, and in
        a careful spell, no other submit of it on the wire (a tagged one only waits for the
        gate, but this does not know which it is: it waits for both)."""
        while True:
            gate = self._event(self._gates, model)
            if not gate.is_set():
                await gate.wait()
                continue
            if self._careful(model) and self._in_flight[model]:
                await self._event(self._idle, model).wait()
                continue
            return

    def try_enter(self, ticket: Ticket) -> bool:
        """Let a submit leave now (True), or not yet (False: wait with :meth:`ready`)."""
        model = ticket.model
        if not self._event(self._gates, model).is_set():
            return False
        if ticket.conversation is None and self._careful(model) and self._in_flight[model]:
            # Tagged submits are told apart by their tags and need no spell.
            return False
        ticket.sent_seq = self.stamp()
        ticket.sent_at = time.time()
        self._first.setdefault(model, (ticket.sent_seq, ticket.sent_at))
        self._in_flight[model].add(ticket)
        self._event(self._idle, model).clear()
        return True

    def lost(self, submit: LostSubmit) -> None:
        """Record a lost answer; call before :meth:`leave` so that a reconciliation sees it."""
        self._lost[submit.model].append(submit)

    def leave(self, ticket: Ticket) -> None:
        model = ticket.model
        if not ticket.left:
            pass  # held back by its own hook (a batch that stopped, an intent taken): no news
        elif not ticket.answered_ok:
            # Lost, refused, a 5xx: the server is in trouble, and the next losses should be
            # told apart by what is listed before each send.
            self._calm[model] = 0
        elif model in self._calm:
            self._calm[model] += 1
            if self._calm[model] >= CALM:
                del self._calm[model]
        flying = self._in_flight[model]
        flying.discard(ticket)
        if not flying:
            del self._in_flight[model]
            self._event(self._idle, model).set()

    # -- resolving --------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _quiet(self, model: str) -> AsyncIterator[None]:
        """Hold ``model``'s submits back and wait for the ones on the wire to come back (their
        runs are then claimed); those still out after the settle timeout compete for the runs.
        Call with the model's lock held."""
        gate = self._event(self._gates, model)
        gate.clear()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settle_timeout):
                    await self._event(self._idle, model).wait()
            yield
        finally:
            gate.set()

    def _lock(self, model: str) -> asyncio.Lock:
        return self._locks.setdefault(model, asyncio.Lock())

    async def resolve(self, submit: LostSubmit) -> RecoveredRun | None:
        """The run ``submit`` created, or None if it created none (then it may be resent)."""
        model = submit.model
        async with self._lock(model):
            # Already resolved when a sibling's reconciliation took this one along.
            if not submit.resolved:
                try:
                    async with self._quiet(model):
                        await self._reconcile(model)
                except BaseException:
                    # This caller gives up (recover failed, or it was cancelled): its submit
                    # must not weigh on how the others are matched.
                    pending = self._lost.get(model, [])
                    if submit in pending:
                        pending.remove(submit)
                    raise
        if submit.error is not None:
            raise submit.error
        return submit.run

    async def _reconcile(self, model: str) -> None:
        lost = self._lost.pop(model, [])
        if not lost:
            return
        try:
            runs = await self._recover(model)
        except BaseException:
            # Not resolved: a later call tries again (the lost submits stay lost).
            self._lost[model][:0] = lost
            raise
        listing_full = len(runs) >= RECOVER_LIMIT
        by_id = {run.run_id: run for run in runs if run.model in (None, model)}
        claims = {
            run_id: Claim(self._seen.get(run_id), self._flights.get(run_id))
            for run_id in by_id
            if run_id in self._claimed
        }
        listing = read_listing(by_id.values(), model, claims, self._seen)
        self.saw(list(by_id))
        server = self._clock_offset()
        offset = offset_bounds(listing.anchors, (server - self._skew, server + self._skew))
        now = asyncio.get_running_loop().time()
        released = [(a, until) for a, until in self._released[model] if until > now]
        self._released[model] = released
        flying = [
            Attempt(f"open-{id(t)}", t.sent_seq, t.sent_at, conversation=t.conversation)
            for t in self._in_flight[model]
        ]
        matching = attribute(
            [submit.attempt() for submit in lost],
            listing.unclaimed,
            open_attempts=[*flying, *(attempt for attempt, _ in released)],
            offset=offset,
            margin=self._margin,
            listing_full=listing_full,
            reach=listing.claimed,
        )
        self._report(model, matching.unattributed, by_id)
        for submit in lost:
            submit.resolved = True
            verdict = matching.verdicts[submit.attempt().key]
            if verdict.run is not None:
                submit.run = by_id[verdict.run]
            elif verdict.created_nothing:
                if submit.timed_out:
                    # It may still be created, late: for a while it competes for new runs (its
                    # flight has no end), so that a late run is never handed to another.
                    late = attrs.evolve(submit.attempt(), ended_at=None)
                    self._released[model].append((late, now + self._cooldown))
                    self._tasks.spawn(self._late_look(model, late, now + self._cooldown))
            else:
                ids = list(verdict.candidates)
                self._reported.update(ids)  # named as candidates: not unattributed
                listed_ids = ", ".join(ids) or "none visible"
                submit.error = AmbiguousSubmitError(
                    f"submit of {submit.model} failed ({submit.cause}) and the runs that may be "
                    f"its job cannot be told apart: {listed_ids}; none was adopted and nothing "
                    "was resubmitted",
                    model=submit.model,
                    candidates=ids,
                    cause=submit.cause,
                )

    async def _late_look(self, model: str, attempt: Attempt, until: float) -> None:
        """A timed-out submit found to have created nothing may still create its run late: look
        once more when its window closes, and name any run that appeared unclaimed since it
        left (it was paid for; nobody adopts it, everybody can see it)."""
        await asyncio.sleep(max(0.0, until - asyncio.get_running_loop().time()))
        try:
            async with self._lock(model), self._quiet(model):
                runs = await self._recover(model)
        except Exception as exc:
            log.warning("the late look for a timed-out submit of %s failed: %s", model, exc)
            return
        late = [
            run.run_id
            for run in runs
            if run.model in (None, model)
            and run.run_id not in self._claimed
            and self._seen.get(run.run_id, attempt.sent_seq + 1) > attempt.sent_seq
        ]
        self._report(model, late, {run.run_id: run for run in runs})
        self.saw([run.run_id for run in runs])

    def _report(self, model: str, run_ids: Collection[str], by_id: dict[str, RecoveredRun]) -> None:
        """Keep the runs nobody may own that appeared since our first submit of ``model``."""
        first = self._first.get(model)
        if first is None:
            return
        first_seq, first_at = first
        for run_id in run_ids:
            if run_id in self._reported:
                continue
            seen = self._seen.get(run_id)
            created, _ = parse_created_at(by_id[run_id].created_at)
            if seen is not None and seen < first_seq:
                continue  # it was there before we submitted anything
            if created is not None and created < first_at + self._clock_offset() - self._skew:
                continue
            self._reported.add(run_id)
            self.unattributed.append(by_id[run_id])
            log.warning(
                "run %s of %s was created but no submit of this session can own it", run_id, model
            )
