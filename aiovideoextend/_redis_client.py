"""What the Redis limiter and the Redis journal share: their client and lease checks."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

__all__ = ["check_lease", "redis_client", "stop_background"]


def redis_client(redis: str | aioredis.Redis) -> tuple[aioredis.Redis, bool]:
    """A client for ``redis`` (a URL, or a client of the caller's) and whether we own it."""
    if isinstance(redis, str):
        client = aioredis.Redis.from_url(
            redis,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
            # A short retry: a Redis that stays away must turn into an error, not a hang.
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 3),
        )
        return client, True
    return redis, False


def check_lease(lease: object) -> float:
    """A lease in seconds, > 0 (a worker's slots and claims lapse that long after it dies)."""
    if isinstance(lease, bool) or not isinstance(lease, int | float) or not 0 < lease < 1e6:
        raise ValueError(f"lease must be a number of seconds > 0, got {lease!r}")
    return float(lease)


async def stop_background(
    renewer: asyncio.Task[None] | None, writes: Collection[asyncio.Task[object]]
) -> None:
    """Stop a lease renewer and let every background write reach Redis (they may add more)."""
    if renewer is not None:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
    while writes:
        await asyncio.gather(*writes, return_exceptions=True)
