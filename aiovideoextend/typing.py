"""The types you implement or pass in: protocols for your own backends, and hook signatures.

* :class:`Limiter` and :class:`Window`: a rate limiter for ``Session(limiter=...)``.
  :class:`~aiovideoextend.RateLimiter` (one process) and
  :class:`~aiovideoextend.redis_limiter.RedisRateLimiter` (many processes and hosts) are two.
* :class:`JournalStore`: a batch journal for ``run_batch(..., journal=...)``, as
  :class:`~aiovideoextend.queue.LineJournal` is one (``run_batch`` also takes a
  SQLite :class:`aiovideoextend.batch.Journal`); its entries are
  :class:`aiovideoextend.batch.JournalEntry`.
* :data:`ExtendRequest`: either kind of request, for ``Session.submit`` and ``run_batch``.
* :data:`EventHook`: ``Session(on_event=...)`` and ``Session.add_event_hook``.
* :data:`WaitHook`: ``Window.acquire(on_wait=...)``, told when a request has to wait for a slot.
* :data:`BatchUpdateHook`: ``run_batch(..., on_update=...)``.

Everything here is for annotations and ``isinstance`` checks (:class:`JournalStore` is
runtime-checkable); it is stable API, like the rest of the package's ``__all__``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from ._events import EventHook
from ._journal_api import JournalStore
from ._limiter_api import Limiter, WaitHook, Window
from ._requests import ExtendRequest
from .batch import BatchUpdate

__all__ = [
    "BatchUpdateHook",
    "EventHook",
    "ExtendRequest",
    "JournalStore",
    "Limiter",
    "WaitHook",
    "Window",
]

#: The hook of ``run_batch(on_update=...)``, told every time a request of the batch changes state.
BatchUpdateHook: TypeAlias = Callable[[BatchUpdate], None]
