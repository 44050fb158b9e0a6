"""Where ``RedisJournal`` was: one batch split over many workers through Redis.

``RedisJournal`` and ``aiovideoextend batch --redis`` (worker leases, claims, adoption, a watch
loop) were replaced by the task queue: ``aiovideoextend worker --queue URL`` on every host and
``aiovideoextend batch MANIFEST --queue URL`` once, or :func:`aiovideoextend.queue.submit_step`
and :func:`~aiovideoextend.queue.follow_step` from a queue of your own. The queue's journal,
:class:`~aiovideoextend.queue.QueueJournal` (and its per-line
:class:`~aiovideoextend.queue.LineJournal`), is re-exported here. See ``docs/scale-out.md``.
"""

from __future__ import annotations

from typing import NoReturn

from aiovideoextend.exceptions import JournalError
from aiovideoextend.queue import LineJournal, QueueJournal

__all__ = ["JournalError", "LineJournal", "QueueJournal"]

_REMOVED = (
    "aiovideoextend.redis_journal.RedisJournal was removed: one batch on many workers now runs "
    "on a task queue (`aiovideoextend worker --queue URL` on every host, `aiovideoextend batch "
    "MANIFEST --queue URL` once; aiovideoextend.queue.submit_step/follow_step for a queue of "
    "your own). See docs/scale-out.md."
)


def __getattr__(name: str) -> NoReturn:
    if name == "RedisJournal":
        # ImportError, not AttributeError: ``from ... import RedisJournal`` then shows this text.
        raise ImportError(_REMOVED, name=name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
