"""Frozen configuration objects: rate limits, poll policy, timeouts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs

from ._backoff import exponential
from .exceptions import InvalidRequestError

if TYPE_CHECKING:
    from ._limiter_api import Limiter

__all__ = [
    "Budget",
    "Limits",
    "PollPolicy",
    "Retries",
    "Timeouts",
    "checked_key",
    "checked_redis",
    "checked_time_scale",
    "redis_limiter",
]


def _number(attribute: attrs.Attribute[Any], value: object) -> float:
    # bool is an int to Python, never a count or a duration to a user.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{attribute.name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be finite, got {value!r}")
    return value


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not _number(attribute, value) > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


def _positive_or_none(inst: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None:
        _positive(inst, attribute, value)


def _positive_int(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


def _non_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not _number(attribute, value) >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _fraction(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    # A jitter over 1 could make a delay negative.
    if not 0 <= _number(attribute, value) <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1, got {value!r}")


def _check_scale(time_scale: float) -> None:
    if isinstance(time_scale, bool) or not (
        isinstance(time_scale, int | float) and math.isfinite(time_scale) and time_scale > 0
    ):
        raise ValueError(f"time_scale must be a finite number > 0, got {time_scale!r}")


def checked_key(key: object) -> str:
    """The API key, stripped, or :class:`InvalidRequestError` (it never names the key)."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidRequestError("no API key: pass api_key= or set NANOGPT_API_KEY")
    return key.strip()


def checked_redis(redis: object, limiter: object) -> str | None:
    """A session's ``redis`` URL (None: not given), or :class:`InvalidRequestError`."""
    if redis is None:
        return None
    if limiter is not None:
        raise InvalidRequestError("give limiter= or redis=, not both")
    if not isinstance(redis, str) or not redis.startswith(("redis://", "rediss://", "unix://")):
        raise InvalidRequestError("redis must be a redis://, rediss:// or unix:// URL")
    return redis


def redis_limiter(url: str, limits: Limits, key: str) -> Limiter:
    """The Redis limiter of ``Session(redis=url)``; the Redis backend is imported only here."""
    try:
        from .redis_limiter import RedisRateLimiter, key_prefix  # noqa: PLC0415
    except ImportError:
        raise InvalidRequestError(
            "redis= needs redis-py: pip install 'aiovideoextend[redis]'"
        ) from None
    return RedisRateLimiter(url, limits, prefix=key_prefix(key))


def checked_time_scale(time_scale: object) -> float:
    """A session's ``time_scale``, or :class:`InvalidRequestError`."""
    if (
        isinstance(time_scale, bool)
        or not isinstance(time_scale, int | float)
        or not (math.isfinite(time_scale) and time_scale > 0)
    ):
        raise InvalidRequestError(f"time_scale must be a finite number > 0, got {time_scale!r:.40}")
    return float(time_scale)


@attrs.frozen
class Budget:
    """At most ``count`` requests in any ``period`` seconds."""

    count: int = attrs.field(validator=_positive_int)
    period: float = attrs.field(validator=_positive)

    def scaled(self, time_scale: float) -> Budget:
        _check_scale(time_scale)
        return Budget(self.count, self.period / time_scale)


@attrs.frozen
class Limits:
    """One budget per endpoint plus the overall budget every request shares.

    The defaults are NanoGPT's documented limits. ``margin`` widens every window by that fraction
    and ``slack`` by that many seconds: the server's clock and ours never agree exactly.
    """

    extend: Budget = Budget(20, 60.0)
    generate: Budget = Budget(50, 60.0)
    recover: Budget = Budget(20, 60.0)
    overall: Budget = Budget(25, 1.0)
    margin: float = attrs.field(default=0.005, validator=_non_negative)
    slack: float = attrs.field(default=0.005, validator=_non_negative)

    def scaled(self, time_scale: float) -> Limits:
        """The same limits for a server whose clock runs ``time_scale`` times faster."""
        _check_scale(time_scale)
        if time_scale == 1:
            return self
        return attrs.evolve(
            self,
            extend=self.extend.scaled(time_scale),
            generate=self.generate.scaled(time_scale),
            recover=self.recover.scaled(time_scale),
            overall=self.overall.scaled(time_scale),
            slack=self.slack / time_scale,
        )


@attrs.frozen
class PollPolicy:
    """How the scheduler spaces status polls of one job.

    With a hint from the server (the submit's ``eta``, a status's time remaining, or a progress
    rate) the next poll goes where the job should be done, never further than ``max_interval``.
    Without one, the session learns how long jobs of each model take (from three ended jobs on):
    it skips polling while a job is younger than the shortest duration it has seen for that
    model (less a margin for the few samples), then spaces polls densest where the model's jobs
    end, on the scale of ``interval`` seconds. Before that, only a model's oldest jobs (scouts)
    poll, from ``first`` seconds backing off by ``backoff`` up to ``max_interval``; the others
    wait for the model to be learned. With
    ``learn=False`` every job polls like a scout. Every wait is clamped
    to [``min_interval``, ``max_interval``] whatever the server says, and ``jitter`` spreads
    polls of many jobs. ``timeout`` is the default overall deadline per job (None: wait forever).
    """

    first: float = attrs.field(default=5.0, validator=_positive)
    min_interval: float = attrs.field(default=1.0, validator=_positive)
    max_interval: float = attrs.field(default=60.0, validator=_positive)
    backoff: float = attrs.field(default=1.3, validator=_positive)
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    timeout: float | None = attrs.field(default=1800.0, validator=_positive_or_none)
    interval: float = attrs.field(default=4.5, validator=_positive)
    learn: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.min_interval > self.max_interval:
            raise ValueError("min_interval must not exceed max_interval")

    def scaled(self, time_scale: float) -> PollPolicy:
        _check_scale(time_scale)
        if time_scale == 1:
            return self
        return attrs.evolve(
            self,
            first=self.first / time_scale,
            min_interval=self.min_interval / time_scale,
            max_interval=self.max_interval / time_scale,
            interval=self.interval / time_scale,
            timeout=None if self.timeout is None else self.timeout / time_scale,
        )


@attrs.frozen
class Timeouts:
    """Per-request network timeouts in seconds (None: no limit).

    ``connect`` bounds making the connection (TCP and TLS), 5 s like openai-python and httpx: a
    host that drops packets fails with :class:`~aiovideoextend.APIConnectionError` after
    ``Retries.connect_attempts`` such waits, not minutes.
    """

    connect: float | None = attrs.field(default=5.0, validator=_positive_or_none)
    total: float | None = attrs.field(default=60.0, validator=_positive_or_none)

    def client_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=self.total, sock_connect=self.connect)


@attrs.frozen
class Retries:
    """How requests that are safe to repeat (status polls, recover) are retried.

    Retried: 429 (after ``Retry-After`` when given), 408, 5xx, timeouts and connection errors,
    with exponential backoff from ``base`` doubling up to ``cap`` seconds, ``jitter`` spreading
    them. A submit is repeated only when it provably created no job (429, connection refused).
    A server that cannot be reached at all (connection refused, unknown host, connect timeout)
    is tried ``connect_attempts`` times in all, so a wrong base URL or a server that is down
    fails within seconds with :class:`~aiovideoextend.APIConnectionError`.
    ``reconcile_skew`` bounds (seconds) how far the server's clock may be off the one its Date
    headers show, until answered submits pin it down; ``reconcile_margin`` (seconds, never
    scaled) widens each lost submit's flight for clock reads and drift when matching its run
    by ``createdAt`` (see ``docs/reliability.md``). ``tag_submits`` sends a fresh
    ``conversationUUID`` with every source-video submit that has none, so that the run of a
    lost answer is known by its tag where recover echoes it (off by default: the tag files the
    run under a conversation of that id on NanoGPT's side). After a submit of a model fails
    (a lost answer, a 5xx, a 429, a refused connection) the model's untagged submits go one at
    a time until 100 in a row got their answer (a careful spell), so that each later lost
    answer is resolved before the next submit leaves; ``pace_submits`` makes them go one at a
    time always, so that even the first burst's lost answers are told apart (off by default:
    a burst then takes one round trip per submit to leave).
    """

    attempts: int = attrs.field(default=6, validator=_positive_int)
    base: float = attrs.field(default=1.0, validator=_positive)
    cap: float = attrs.field(default=30.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_fraction)
    reconcile_skew: float = attrs.field(default=5.0, validator=_non_negative)
    reconcile_margin: float = attrs.field(default=0.005, validator=_non_negative)
    tag_submits: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    pace_submits: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    connect_attempts: int = attrs.field(default=3, validator=_positive_int)

    def scaled(self, time_scale: float) -> Retries:
        _check_scale(time_scale)
        if time_scale == 1:
            return self
        return attrs.evolve(self, base=self.base / time_scale, cap=self.cap / time_scale)

    def delay(self, attempt: int, rand: float) -> float:
        """Backoff before retry number ``attempt`` (1-based); ``rand`` is uniform in [0, 1).

        The result lies in ``[raw * (1 - jitter), raw * (1 + jitter)]`` where ``raw`` is
        ``base * 2 ** (attempt - 1)`` capped at ``cap``.
        """
        return exponential(attempt, base=self.base, cap=self.cap, jitter=self.jitter, rand=rand)
