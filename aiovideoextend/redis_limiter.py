"""One rate-limit budget shared by many processes and hosts, kept in Redis (``[redis]`` extra).

``Session(limiter=RedisRateLimiter("redis://host:6379/0", limits))`` in every worker; see
``docs/scale-out.md``.

The guarantee is the in-process :class:`~aiovideoextend.SlidingWindow`'s: a slot is taken while
its request is in flight and counts until one window after the response, and a request is sent
only while fewer than ``count`` slots are taken. Every step is one Lua script, so it is atomic
across workers, and every time in it is the Redis server's ``TIME``: workers' clocks never enter.
The marks are conservative on both sides: a slot is granted (server time) before its request is
sent, and its end is stamped when the release reaches Redis, after the response came back.

Per budget, three keys share a hash tag (one cluster slot):

* ``{prefix:name}:inflight``, a sorted set of slot tokens scored by their lease expiry;
* ``{prefix:name}:ends``, a sorted set of finished slots scored by when they ended;
* ``{prefix:name}:pause``, the time until which a 429 paused the budget.

A worker that dies cannot release its slots, so each is leased. The limiter renews the leases of
the slots it holds every ``lease / 3`` seconds; a lease that runs out turns into an end stamped
at its expiry, so a dead worker's slot counts one more window and then frees. Times in Redis are
integer microseconds (exact in a double).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import uuid
import warnings
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Self

import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.core import AsyncScript

from ._config import Budget, Limits
from ._limiter_api import LimiterUnavailableError, WaitHook
from ._redis_client import check_lease, redis_client, stop_background

__all__ = ["LimiterUnavailableError", "RedisRateLimiter", "RedisWindow", "key_prefix"]

log = logging.getLogger("aiovideoextend")

_BUDGETS: Final = ("extend", "generate", "recover", "overall")
#: The longest a waiter sleeps before asking Redis again: a slot given back by ``cancel`` (never
#: sent, so it frees at once) is noticed within this, whatever the computed wait said.
_MAX_SLEEP: Final = 2.0
#: Jitter added to a computed wait: enough to spread workers, too little to cost throughput.
_MAX_JITTER: Final = 0.002
#: a waiter looks again after at most this share of the window (cancelled slots free at once)
_LOOK_AGAIN: Final = 0.1

# Shared prologue: the server's clock, then lapsed leases become ends stamped at their expiry
# and ends older than one window are forgotten. KEYS[1] inflight, KEYS[2] ends.
_PROLOGUE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function fmt(x) return string.format('%.0f', x) end
local window = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local ttl = math.ceil((lease + window) / 1000) + 1000
local lapsed = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', fmt(now), 'WITHSCORES')
for i = 1, #lapsed, 2 do
  redis.call('ZADD', KEYS[2], lapsed[i + 1], lapsed[i])
end
if #lapsed > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
  redis.call('PEXPIRE', KEYS[2], ttl)
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now - window))
"""

# ARGV: window, lease, count, token. Returns {1, 0} when granted, else {0, microseconds to wait}.
# KEYS[3] pause. With every slot in flight no slot can free sooner than one window from now
# (it must be released and then count a window), so that is the wait: no polling in between.
_ACQUIRE = (
    _PROLOGUE
    + """
local paused = tonumber(redis.call('GET', KEYS[3]) or '0')
if paused > now then
  return {0, paused - now}
end
local used = redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if used < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], fmt(now + lease), ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return {1, 0}
end
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #first > 0 then
  return {0, math.max(tonumber(first[2]) + window - now, 1)}
end
return {0, window}
"""
)

# ARGV: window, lease, token. The end overwrites a lapsed lease's (earlier) expiry stamp.
_RELEASE = (
    _PROLOGUE
    + """
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], fmt(now), ARGV[3])
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
"""
)

# ARGV: token. A slot never sent frees at once; one that already lapsed keeps its end.
_CANCEL = """
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# ARGV: lease, tokens... Returns how many of the tokens still had a lease.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local expiry = string.format('%.0f', now + tonumber(ARGV[1]))
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', expiry, ARGV[i])
end
return renewed
"""

# ARGV: seconds (microseconds). Only ever extends a pause.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local till = now + tonumber(ARGV[1])
if till > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%.0f', till), 'PX', math.ceil(ARGV[1] / 1000) + 1000)
end
return 1
"""


def _micros(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1_000_000))


class RedisWindow:
    """One budget of a :class:`RedisRateLimiter`: the same contract as ``SlidingWindow``.

    Tasks of this process queue FIFO behind one lock, so only the head of the line talks to
    Redis; it sleeps until the time the acquire script computed (plus a little jitter) instead of
    polling. ``release``, ``cancel`` and ``pause`` return at once and reach Redis from a
    background task; ``end`` is ignored because Redis stamps the end itself, later and so safer.
    """

    __slots__ = (
        "_held",
        "_keys",
        "_limiter",
        "_lock",
        "_paused_until",
        "_ready_at",
        "_waiting",
        "_window_us",
        "count",
        "name",
        "window",
    )

    def __init__(
        self, limiter: RedisRateLimiter, name: str, budget: Budget, limits: Limits
    ) -> None:
        self.name: Final = name
        self.count: Final = budget.count
        # The same widening as in-process: Redis's clock and the API server's drift apart too.
        self.window: Final = budget.period * (1 + limits.margin) + limits.slack
        self._window_us = _micros(self.window)
        tag = f"{{{limiter.prefix}:{name}}}"
        self._keys: Final = (f"{tag}:inflight", f"{tag}:ends", f"{tag}:pause")
        self._limiter = limiter
        self._lock = asyncio.Lock()
        #: tokens of the slots this process holds, renewed until released
        self._held: list[str] = []
        self._waiting = 0
        #: loop times: the last wait Redis announced, and a pause this process asked for
        self._ready_at = 0.0
        self._paused_until = 0.0

    def __repr__(self) -> str:
        return (
            f"<RedisWindow {self._keys[0]} {self.count}/{self.window:g}s "
            f"held={len(self._held)} waiting={self._waiting}>"
        )

    def delay(self) -> float:
        """Seconds until a slot is expected, from what Redis said last (no round trip)."""
        now = asyncio.get_running_loop().time()
        wait = max(self._ready_at - now, self._paused_until - now, 0.0)
        # Others of ours queue ahead: the caller will not get the next slot.
        return max(wait, 1e-9) if self._waiting else wait

    async def acquire(self, on_wait: WaitHook | None = None) -> None:
        """Take a slot; pair it with exactly one :meth:`release` (or :meth:`cancel`).

        Raises :class:`LimiterUnavailableError` when Redis cannot be reached.
        """
        limiter = self._limiter
        limiter._check_open()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        cancels = task.cancelling() if task is not None else 0
        self._waiting += 1
        try:
            async with self._lock:
                told = on_wait is None
                while True:
                    wait = self._paused_until - loop.time()
                    if wait <= 0:
                        token = limiter._token()
                        try:
                            granted, wait_us = await limiter._run(
                                limiter._acquire,
                                self._keys,
                                (self._window_us, limiter._lease_us, self.count, token),
                            )
                        except asyncio.CancelledError:
                            # The script may have run: give back what it may have granted.
                            limiter._spawn(self._cancel(token))
                            raise
                        except LimiterUnavailableError as exc:
                            cause = exc.__cause__
                            if isinstance(cause, redis.exceptions.TimeoutError):
                                limiter._spawn(self._cancel(token))
                            raise LimiterUnavailableError(f"{exc}; no request was sent") from cause
                        if task is not None and task.cancelling() > cancels:
                            # redis-py can swallow a cancel that lands while it reads a reply.
                            if granted:
                                limiter._spawn(self._cancel(token))
                            raise asyncio.CancelledError
                        if granted:
                            self._held.append(token)
                            limiter._renew_soon()
                            return
                        # A slot cancelled by any process (its request never left) frees at
                        # once, not when the script said: look again well before that.
                        wait = min(wait_us, self._window_us * _LOOK_AGAIN) / 1_000_000
                    self._ready_at = loop.time() + wait
                    if not told:
                        assert on_wait is not None  # noqa: S101  (told is False only then)
                        on_wait(self.name, wait)
                        told = True
                    # Waking a hair late costs little; waking early costs a round trip. The
                    # jitter keeps workers that computed the same time from arriving together.
                    jitter = min(wait * 0.02, _MAX_JITTER) * limiter._rng.random()
                    await asyncio.sleep(min(wait + jitter, _MAX_SLEEP))
        finally:
            self._waiting -= 1

    def release(self, end: float | None = None) -> None:  # noqa: ARG002  (Redis stamps the end)
        """The request's response is back (or it failed): it counts one more window from now."""
        token = self._pop()
        limiter = self._limiter
        limiter._spawn(
            limiter._run(
                limiter._release, self._keys[:2], (self._window_us, limiter._lease_us, token)
            )
        )

    def cancel(self) -> None:
        """Give a slot back whose request was never sent."""
        self._limiter._spawn(self._cancel(self._pop()))

    def pause(self, seconds: float) -> None:
        """After a 429: no worker sends on this budget for ``seconds`` (from Redis's clock)."""
        self._paused_until = max(self._paused_until, asyncio.get_running_loop().time() + seconds)
        limiter = self._limiter
        limiter._spawn(limiter._run(limiter._pause, self._keys[2:], (_micros(seconds),)))

    def _pop(self) -> str:
        if not self._held:
            raise RuntimeError(f"{self.name}: release or cancel without a slot held")
        return self._held.pop()

    async def _cancel(self, token: str) -> None:
        limiter = self._limiter
        await limiter._run(limiter._cancel, self._keys[:1], (token,))

    async def _renew(self) -> None:
        tokens = list(self._held)
        if not tokens:
            return
        limiter = self._limiter
        renewed = await limiter._run(limiter._renew, self._keys[:1], (limiter._lease_us, *tokens))
        if renewed < len(tokens):
            # The lease ran out (the loop stalled longer than it, or Redis lost the key): those
            # slots count as ended, so for a moment the budget may be overrun by up to that many.
            log.warning(
                "%s: %d in-flight slot(s) outlived their %.3gs lease; raise lease=",
                self.name,
                len(tokens) - renewed,
                limiter.lease,
            )


class RedisRateLimiter:
    """The budgets of one NanoGPT account/IP, shared through Redis by every process using it.

    ``redis`` is a URL (``redis://host:6379/0``; the limiter owns and closes that client) or a
    ``redis.asyncio.Redis`` you own. Every process that passes the same ``prefix`` (and the same
    ``limits``) shares the budgets; use one prefix per API key. ``lease`` bounds how long the
    slots of a crashed worker stay taken; live workers renew theirs every ``lease / 3`` seconds,
    however long a request takes. Plug it in with ``Session(limiter=...)`` and close it with
    ``await limiter.aclose()`` (or ``async with``) after the sessions that use it.
    """

    def __init__(
        self,
        redis: str | aioredis.Redis,
        limits: Limits | None = None,
        *,
        prefix: str = "aiovideoextend",
        lease: float = 30.0,
    ) -> None:
        if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "{} \n"):
            raise ValueError(f"prefix must be a non-empty string without braces, got {prefix!r}")
        lease = check_lease(lease)
        self._client, self._own_client = redis_client(redis)
        self.limits: Final = limits or Limits()
        self.prefix: Final = prefix
        self.lease: Final = lease
        self._lease_us = _micros(lease)
        self._id = uuid.uuid4().hex[:16]
        self._seq = 0
        self._rng = random.Random()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False
        self._finished = False
        self._used = False
        client = self._client
        self._acquire: Final = client.register_script(_ACQUIRE)
        self._release: Final = client.register_script(_RELEASE)
        self._cancel: Final = client.register_script(_CANCEL)
        self._renew: Final = client.register_script(_RENEW)
        self._pause: Final = client.register_script(_PAUSE)
        self.budgets: Final = {
            name: RedisWindow(self, name, getattr(self.limits, name), self.limits)
            for name in _BUDGETS
        }

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RedisRateLimiter {self.prefix!r} {state}>"

    @property
    def overall(self) -> RedisWindow:
        return self.budgets["overall"]

    def budget(self, name: str) -> RedisWindow:
        return self.budgets[name]

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Send the pending releases, stop renewing and close an owned client. Idempotent.

        Slots still held (requests in flight) are not renewed any more: they expire after the
        lease, like a crashed worker's.
        """
        if self._closed:
            return
        self._closed = True
        await stop_background(self._renewer, self._tasks)
        self._finished = True
        if self._own_client:
            await self._client.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_used", False) and not self._closed:
            _warn(f"unclosed {self!r}: use 'async with' or aclose()", ResourceWarning, source=self)

    # --- plumbing used by the windows -----------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the RedisRateLimiter is closed")
        self._used = True

    def _token(self) -> str:
        self._seq += 1
        return f"{self._id}:{self._seq}"

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one script; a Redis that cannot answer becomes :class:`LimiterUnavailableError`."""
        try:
            return await script(keys=keys, args=args)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise LimiterUnavailableError(f"the shared rate limiter is unavailable: {exc}") from exc

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a release/cancel/pause in the background; :meth:`aclose` waits for it."""
        if self._finished:
            # Nothing will await it any more; the slot frees when its lease runs out.
            coro.close()
            log.warning("%r: a release came after close; the slot frees after its lease", self)
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._spawned_done)

    def _spawned_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # Safe to drop: a release that never arrives leaves the slot taken until its lease
            # runs out, which only ever makes the budget stricter.
            log.warning("%r: a slot frees only when its lease runs out: %s", self, exc)

    def _renew_soon(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew_loop(), name="aiovideoextend-redis-lease"
            )

    async def _renew_loop(self) -> None:
        windows = self.budgets.values()
        while any(window._held for window in windows):
            await asyncio.sleep(self.lease / 3)
            for window in windows:
                try:
                    await window._renew()
                except LimiterUnavailableError as exc:
                    log.warning("%r: cannot renew leases: %s", self, exc)


def key_prefix(api_key: str, prefix: str = "aiovideoextend") -> str:
    """The Redis key prefix of one account's budget: every process using the same API key (and
    prefix) shares it. Only a hash of the key goes to Redis."""
    return f"{prefix}:limits:{hashlib.sha256(api_key.encode()).hexdigest()[:16]}"
