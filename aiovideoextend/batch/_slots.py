"""The ``max_in_flight`` bound of a batch: jobs submitted and not ended yet."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._entries import Entry

__all__ = ["Slots"]


class Slots:
    """The ``max_in_flight`` bound: submits wait for a slot of a semaphore. A run taken over
    from the journal takes one at once, past the bound if need be (it runs anyway): slots it
    took past the bound are given back first."""

    def __init__(self, size: int | None) -> None:
        self._free = None if size is None else asyncio.Semaphore(size)
        self._over = 0

    async def acquire(self, entry: Entry) -> None:
        """Wait for a slot for the entry's submit."""
        if self._free is not None:
            await self._free.acquire()
        entry.holds_slot = True

    async def take(self, entry: Entry) -> None:
        """A slot for the entry's run, at once."""
        if self._free is not None:
            # locked(): no slot free, or one is on its way to a woken submit (that one's).
            if self._free.locked():
                self._over += 1
            else:
                await self._free.acquire()  # a slot is free: this returns at once
        entry.holds_slot = True

    def release(self, entry: Entry) -> None:
        """Give back the entry's slot, if it holds one."""
        if not entry.holds_slot:
            return
        entry.holds_slot = False
        if self._free is None:
            return
        if self._over:
            self._over -= 1
        else:
            self._free.release()
