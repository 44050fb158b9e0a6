"""Submits whose outcome is unknown: find the runs they created, without ever paying twice.

Submits of one model go out concurrently (a batch of up to the limit leaves at once). When one
of them loses its answer (a reset or timeout after the body left, a 5xx, an unreadable 2xx), the
guard closes that model's gate so that no new submit of it starts, waits for the ones already out
to come back, and then resolves every submit of that model whose outcome is unknown in one look at
``generate-video/recover``. Runs claimed by answered submits cannot be mistaken for lost ones, and
the lost ones are matched together:

- no new unclaimed run: nothing was created; each lost submit may be sent again;
- one lost submit and one new run: that run is its job;
- several lost submits with the same body and no more new runs than submits: any run serves any
  of them, the rest are sent again;
- anything else: :class:`AmbiguousSubmitError` for each, listing the candidates; nothing is
  adopted and nothing is resent. Money is at stake; a person decides.

After a lost answer the model's submits go one at a time for ``cooldown`` seconds: a server in
trouble tends to lose several answers in a row, and one at a time each is matched with its own
run. In good times they go out together, as fast as the rate limit allows.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any

import attrs

from .exceptions import AmbiguousSubmitError
from .models import RecoveredRun

__all__ = ["LostSubmit", "NotNow", "SubmitGuard", "Ticket"]


@attrs.define(eq=False)
class LostSubmit:
    """One submit attempt whose answer never arrived (or could not be read)."""

    model: str
    body: str
    #: wall-clock seconds (our clock) just before the request left
    started: float
    cause: str
    #: a run that is certainly not this submit's (the Midjourney run being extended)
    exclude: str | None = None
    run: RecoveredRun | None = None
    error: AmbiguousSubmitError | None = None
    resolved: bool = False


class NotNow(Exception):  # noqa: N818  (a signal, not an error)
    """The guard holds this model's submits back for now; nothing was sent."""


@attrs.define(eq=False)
class Ticket:
    """One submit attempt's passage through the guard: :meth:`enter` right before it leaves
    (after the rate limiter), :meth:`leave` once its answer is handled."""

    guard: SubmitGuard
    model: str
    entered: bool = False
    #: wall-clock seconds (our clock) when the request left
    started: float = 0.0

    async def enter(self) -> None:
        """Called with the rate-limit slots held: never waits (a waiting submit holding slots
        could starve the very recover that would let it go). :class:`NotNow` makes the
        transport give the slots back unused; wait with :meth:`SubmitGuard.ready`, then retry."""
        if not self.guard.try_enter(self.model):
            raise NotNow
        self.entered = True
        self.started = time.time()

    def leave(self) -> None:
        if self.entered:
            self.entered = False
            self.guard.leave(self.model)


def body_key(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


class SubmitGuard:
    """Per session: counts submits in flight per model and resolves the lost ones together."""

    def __init__(
        self,
        recover: Callable[[str], Awaitable[list[RecoveredRun]]],
        claimed: Collection[str],
        *,
        since: Callable[[float], float],
        settle_timeout: float | None,
        cooldown: float,
    ) -> None:
        self._recover = recover
        self._claimed = claimed
        self._since = since
        self._settle_timeout = settle_timeout
        self._cooldown = cooldown
        #: loop time until which a model's submits go one at a time
        self._careful_until: dict[str, float] = {}
        self._in_flight: collections.Counter[str] = collections.Counter()
        self._idle: dict[str, asyncio.Event] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._lost: dict[str, list[LostSubmit]] = collections.defaultdict(list)

    def _event(self, table: dict[str, asyncio.Event], model: str) -> asyncio.Event:
        event = table.get(model)
        if event is None:
            event = table[model] = asyncio.Event()
            event.set()
        return event

    def _careful(self, model: str) -> bool:
        until = self._careful_until.get(model)
        if until is None:
            return False
        if asyncio.get_running_loop().time() < until:
            return True
        del self._careful_until[model]
        return False

    async def ready(self, model: str) -> None:
        """Wait until a submit of ``model`` may leave: no reconciliation of it under way, and in
        a careful spell, no other submit of it on the wire."""
        while True:
            gate = self._event(self._gates, model)
            if not gate.is_set():
                await gate.wait()
                continue
            if self._careful(model) and self._in_flight[model]:
                await self._event(self._idle, model).wait()
                continue
            return

    def try_enter(self, model: str) -> bool:
        """Let a submit leave now (True), or not yet (False: wait with :meth:`ready`)."""
        if not self._event(self._gates, model).is_set():
            return False
        if self._careful(model) and self._in_flight[model]:
            return False
        self._in_flight[model] += 1
        self._event(self._idle, model).clear()
        return True

    def lost(self, submit: LostSubmit) -> None:
        """Record a lost answer; call before :meth:`leave` so that a reconciliation sees it."""
        self._lost[submit.model].append(submit)
        until = asyncio.get_running_loop().time() + self._cooldown
        self._careful_until[submit.model] = until

    def leave(self, model: str) -> None:
        self._in_flight[model] -= 1
        if not self._in_flight[model]:
            del self._in_flight[model]
            self._event(self._idle, model).set()

    async def resolve(self, submit: LostSubmit) -> RecoveredRun | None:
        """The run ``submit`` created, or None if it created none (then it may be resent)."""
        model = submit.model
        lock = self._locks.setdefault(model, asyncio.Lock())
        async with lock:
            if not submit.resolved:
                gate = self._event(self._gates, model)
                gate.clear()
                try:
                    await self._reconcile(model)
                except BaseException:
                    # This caller gives up (recover failed, or it was cancelled): its submit
                    # must not weigh on how the others are matched.
                    pending = self._lost.get(model, [])
                    if submit in pending:
                        pending.remove(submit)
                    raise
                finally:
                    gate.set()
        if submit.error is not None:
            raise submit.error
        return submit.run

    async def _reconcile(self, model: str) -> None:
        settled = True
        idle = self._event(self._idle, model)
        if not idle.is_set():
            try:
                async with asyncio.timeout(self._settle_timeout):
                    await idle.wait()
            except TimeoutError:
                settled = False
        lost = self._lost.pop(model, [])
        if not lost:
            return
        try:
            runs = await self._recover(model)
        except BaseException:
            # Not resolved: a later call tries again (the lost submits stay lost).
            self._lost[model][:0] = lost
            raise
        since = self._since(min(s.started for s in lost))
        excluded = {s.exclude for s in lost}
        candidates = [
            run
            for run in runs
            if run.model in (None, model)
            and run.run_id not in self._claimed
            and run.run_id not in excluded
            and _created_after(run.created_at, since)
        ]
        self._assign(lost, candidates, settled=settled)

    @staticmethod
    def _assign(lost: list[LostSubmit], candidates: list[RecoveredRun], *, settled: bool) -> None:
        for submit in lost:
            submit.resolved = True
        if not candidates:
            return  # nothing was created: each may be sent again
        one_body = len({s.body for s in lost}) == 1
        if settled and len(candidates) <= len(lost) and (len(lost) == 1 or one_body):
            # Oldest run to the oldest submit: with one body any match is right.
            ordered = sorted(lost, key=lambda s: s.started)
            for submit, run in zip(ordered, reversed(candidates), strict=False):
                submit.run = run
            return
        ids = [run.run_id for run in candidates]
        for submit in lost:
            submit.error = AmbiguousSubmitError(
                f"submit of {submit.model} failed ({submit.cause}) and the runs that may be "
                f"its job cannot be told apart: {', '.join(ids)}; none was adopted and nothing "
                "was resubmitted",
                model=submit.model,
                candidates=ids,
                cause=submit.cause,
            )


def _created_after(created_at: str | None, since: float) -> bool:
    """Whether a run was created at or after ``since`` (an undatable run counts: it may be ours)."""
    if not created_at:
        return True
    try:
        stamp = datetime.fromisoformat(created_at)
    except ValueError:
        return True
    if stamp.tzinfo is None:
        return True
    return stamp.timestamp() >= since
