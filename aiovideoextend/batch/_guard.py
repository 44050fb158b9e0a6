"""The spend guard: a batch stops submitting before its precharges would pass ``max_cost``, or
before the balance the server reports would drop under ``min_balance``.

Pure bookkeeping (no I/O): the runner tells it what each submit was precharged, what failed and
cancelled jobs gave back, and what balance the server reported; it answers whether the next
submit of a model may leave. Once it says no (or the server answered 402), it keeps saying no:
a batch that stopped submitting does not start again because a refund came in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from aiovideoextend._journal_api import JournalEntry

__all__ = ["SpendGuard"]


@attrs.define
class SpendGuard:
    max_cost: float | None = None
    min_balance: float | None = None
    #: what this batch was precharged (its journal's earlier runs included), less refunds
    spent: float = 0.0
    #: estimated precharges of submits on their way
    reserved: float = 0.0
    #: the account balance the server last reported
    balance: float | None = None
    #: each model's last precharge: the estimate of its next submit
    estimates: dict[str, float] = attrs.field(factory=dict)
    #: why the batch stopped submitting (None: it did not)
    stopped: str | None = None
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False, repr=False)

    @property
    def active(self) -> bool:
        """A limit is set: every submit is checked, and checked-and-sent one at a time."""
        return self.max_cost is not None or self.min_balance is not None

    def resume(self, records: Iterable[JournalEntry]) -> None:
        """Count what the journal's earlier runs were precharged (a rerun gets no fresh
        budget); their precharges are the estimates of the next submits of their models."""
        for record in records:
            if record.precharge is None:
                continue
            status = record.outcome.get("status") if record.outcome else None
            if status not in ("failed", "cancelled"):  # refunded
                self.spent += record.precharge
            # Without it a rerun's first submit would pass the max_cost check at no cost.
            self.estimates[record.model] = max(
                record.precharge, self.estimates.get(record.model, 0.0)
            )

    def check(self, model: str) -> str | None:
        """Why the next submit of ``model`` must not leave (None: it may). A no is kept."""
        if self.stopped is None:
            self.stopped = self._limit(model)
        return self.stopped

    def _limit(self, model: str) -> str | None:
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

    def stop(self, reason: str) -> None:
        """Stop submitting for a reason of the server's (a 402)."""
        self.stopped = reason

    def turn(self) -> AbstractAsyncContextManager[object]:
        """Hold while checking and sending a submit: with a limit set, two lanes cannot both
        pass the check with the money for one."""
        return self._lock if self.active else contextlib.nullcontext()

    @contextlib.contextmanager
    def reserving(self, model: str) -> Iterator[None]:
        """While a submit of ``model`` is on its way, its estimate counts as spent."""
        amount = self.estimates.get(model, 0.0)
        self.reserved += amount
        try:
            yield
        finally:
            self.reserved -= amount

    def charged(self, model: str, precharge: float | None, balance: float | None) -> None:
        """A submit's answer: what it was precharged, and the balance the server reported."""
        if precharge is not None:
            self.spent += precharge
            self.estimates[model] = precharge
        if balance is not None:
            self.balance = balance

    def refund(self, precharge: float | None) -> None:
        """A failed or cancelled job: its precharge no longer counts against max_cost."""
        self.spent -= precharge or 0.0
