"""One submit attempt's passage through the submit guard, and what is kept of a lost one."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import attrs

from ._attribution import Attempt
from .exceptions import AmbiguousSubmitError
from .models import RecoveredRun

__all__ = ["Gate", "LeftToJournal", "LostSubmit", "NotNow", "Ticket", "body_key"]


class LeftToJournal(AmbiguousSubmitError):  # noqa: N818  (a hand-over, not a failure)
    """A submit lost its answer and the caller asked the session not to resolve it: its intent,
    in a journal other processes write too, is reconciled there (the session cannot see the
    other processes' submits, so its own matching could hand one of their runs to this one)."""


class Gate(Protocol):
    """What a ticket needs of the guard it passes (``SubmitGuard``)."""

    def try_enter(self, ticket: Ticket) -> bool: ...

    def answered(self, run_id: str, sent_at: float, answered_at: float) -> None: ...

    def leave(self, ticket: Ticket) -> None: ...


@attrs.define(eq=False)
class LostSubmit:
    """One submit attempt whose answer never arrived (or could not be read)."""

    model: str
    body: str
    cause: str
    #: order stamp and our clock when the request left, our clock when the answer was lost
    sent_seq: int = 0
    sent_at: float = 0.0
    ended_at: float | None = None
    #: a run that is certainly not this submit's (the Midjourney run being extended)
    exclude: str | None = None
    #: the client gave up waiting: the server may create the run later still
    timed_out: bool = False
    #: the ``conversationUUID`` it sent (None: none)
    conversation: str | None = None
    run: RecoveredRun | None = None
    error: AmbiguousSubmitError | None = None
    resolved: bool = False

    def attempt(self) -> Attempt:
        exclude = frozenset((self.exclude,)) if self.exclude else frozenset()
        return Attempt(
            str(id(self)),
            self.sent_seq,
            self.sent_at,
            self.ended_at,
            self.body,
            exclude,
            self.conversation,
        )


class NotNow(Exception):  # noqa: N818  (a signal, not an error)
    """The guard holds this model's submits back for now; nothing was sent."""


@attrs.define(eq=False)
class Ticket:
    """One submit attempt's passage through the guard: :meth:`enter` right before it leaves
    (after the rate limiter), :meth:`leave` once its answer is handled."""

    guard: Gate
    model: str
    #: awaited once the submit may leave, right before it does (a batch records its intent)
    before_send: Callable[[], Awaitable[None]] | None = None
    #: the ``conversationUUID`` the submit carries (None: none)
    conversation: str | None = None
    entered: bool = False
    #: the request went out (``before_send`` let it), and its answer named its run
    left: bool = False
    answered_ok: bool = False
    #: order stamp and our clock when the request left
    sent_seq: int = 0
    sent_at: float = 0.0

    async def enter(self) -> None:
        """Called with the rate-limit slots held: never waits (a waiting submit holding slots
        could starve the very recover that would let it go). :class:`NotNow` makes the
        transport give the slots back unused; wait with :meth:`SubmitGuard.ready`, then retry."""
        if not self.guard.try_enter(self):
            raise NotNow
        self.entered = True
        if self.before_send is not None:
            await self.before_send()
        self.left = True

    def lost(
        self, payload: Any, cause: str, exclude: str | None, *, timed_out: bool = False
    ) -> LostSubmit:
        now = time.time()
        return LostSubmit(
            self.model,
            body_key(payload),  # only now: a payload may hold megabytes of video
            cause,
            sent_seq=self.sent_seq,
            sent_at=self.sent_at,
            ended_at=now,
            exclude=exclude,
            timed_out=timed_out,
            conversation=self.conversation,
        )

    def answered(self, run_id: str) -> None:
        """The answer named ``run_id``: remember the flight (it pins the server's clock)."""
        self.answered_ok = True
        self.guard.answered(run_id, self.sent_at, time.time())

    def leave(self) -> None:
        if self.entered:
            self.entered = False
            self.guard.leave(self)


def body_key(payload: Any) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))
