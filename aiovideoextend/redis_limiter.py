"""One rate-limit budget shared by many processes and hosts, kept in Redis (``[redis]`` extra).

``Session(limiter=RedisRateLimiter("redis://host:6379/0", limits))`` in every worker, or
``Session(redis="redis://host:6379/0")``; see ``docs/scale-out.md``. The budgets count as the
in-process :class:`~aiovideoextend.RateLimiter`'s do, but on the Redis server's clock, across
every worker that uses the same prefix (:func:`key_prefix` of the API key).
"""

from __future__ import annotations

from ._redis.limiter import LimiterUnavailableError, RedisRateLimiter, RedisWindow, key_prefix

__all__ = ["LimiterUnavailableError", "RedisRateLimiter", "RedisWindow", "key_prefix"]
