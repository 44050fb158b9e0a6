"""A batch journal in Redis, shared by every worker of one batch (``[redis]`` extra).

``run_batch(session, requests, journal=RedisJournal(url, batch_id))`` in every worker (or
``aiovideoextend batch MANIFEST --redis URL`` on every host): the workers split the requests
between them, and when one dies the others finish its work, without paying twice. See
``docs/scale-out.md``.
"""

from __future__ import annotations

from ._redis.journal import JournalError, RedisJournal

__all__ = ["JournalError", "RedisJournal"]
