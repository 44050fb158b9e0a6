"""The Redis limiter's plumbing: the client, argument checks, the Lua scripts, the mapping of
Redis failures to our errors, the lease renewal and the shutdown."""

from __future__ import annotations

import asyncio
import functools
import importlib.resources
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

__all__ = [
    "check_lease",
    "check_name",
    "micros",
    "redis_client",
    "renew_every",
    "run_script",
    "script",
    "stop_background",
    "unavailable",
]

log = logging.getLogger("aiovideoextend")


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


def check_name(what: str, value: object) -> str:
    """A key part (prefix, batch id): braces would move the keys out of their hash tag."""
    if not isinstance(value, str) or not value or any(c in value for c in "{} \n\r\t"):
        raise ValueError(f"{what} must be a non-empty string without braces, got {value!r}")
    return value


def micros(seconds: float) -> int:
    """Seconds as the integer microseconds the scripts count in (at least 1)."""
    return max(1, math.ceil(seconds * 1_000_000))


@functools.cache
def _lua(name: str) -> str:
    return importlib.resources.files(__package__).joinpath("lua", f"{name}.lua").read_text()


def script(client: aioredis.Redis, *parts: str) -> AsyncScript:
    """Register the script made of the ``lua/<part>.lua`` files, in order (prologues first)."""
    return client.register_script("".join(_lua(part) for part in parts))


@contextmanager
def unavailable(error: Callable[[str], Exception], what: str) -> Iterator[None]:
    """A Redis that cannot answer becomes ``error("<what> is unavailable: ...")``."""
    try:
        yield
    except (redis.exceptions.RedisError, OSError) as exc:
        raise error(f"{what} is unavailable: {exc}") from exc


async def run_script(
    script: AsyncScript,
    keys: Sequence[str],
    args: Sequence[Any],
    error: Callable[[str], Exception],
    what: str,
) -> Any:
    """Run one script; a Redis that cannot answer becomes ``error`` (see :func:`unavailable`)."""
    with unavailable(error, what):
        return await script(keys=keys, args=args)


async def renew_every(
    owner: object,
    period: float,
    renew: Callable[[], Awaitable[bool]],
    error: type[Exception],
) -> None:
    """Call ``renew`` every ``period`` seconds until it returns False. An ``error`` it raises
    (Redis away for a moment) is logged, and the next period tries again."""
    while True:
        await asyncio.sleep(period)
        try:
            if not await renew():
                return
        except error as exc:
            log.warning("%r: cannot renew leases: %s", owner, exc)


async def stop_background(
    renewer: asyncio.Task[None] | None, writes: Collection[asyncio.Task[Any]]
) -> None:
    """Stop a lease renewer and let every background write reach Redis (they may add more)."""
    if renewer is not None:
        renewer.cancel()
        await asyncio.gather(renewer, return_exceptions=True)
    while writes:
        await asyncio.gather(*writes, return_exceptions=True)
