"""The shared rate limiter (public as :mod:`aiovideoextend.redis_limiter`).

The guarantee is the in-process sliding window's: a slot is taken while
its request is in flight and counts until one window after the response, and a request is sent
only while fewer than ``count`` slots are taken. Every step is one Lua script
(``lua/limiter_*.lua``), so it is atomic across workers, and every time in it is the Redis
server's ``TIME``: workers' clocks never enter.
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
import random
import uuid
import warnings
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Self

import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.core import AsyncScript

from aiovideoextend._config import Budget, Limits
from aiovideoextend._limiter_api import LimiterUnavailableError, WaitHook

from .client import (
    check_lease,
    check_name,
    micros,
    redis_client,
    renew_every,
    run_script,
    script,
    stop_background,
)

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
        self._window_us = micros(self.window)
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
        limiter._spawn(limiter._run(limiter._pause, self._keys[2:], (micros(seconds),)))

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
        check_name("prefix", prefix)
        lease = check_lease(lease)
        self._client, self._own_client = redis_client(redis)
        self.limits: Final = limits or Limits()
        self.prefix: Final = prefix
        self.lease: Final = lease
        self._lease_us = micros(lease)
        self._id = uuid.uuid4().hex[:16]
        self._seq = 0
        self._rng = random.Random()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False
        self._finished = False
        self._used = False
        client = self._client
        # The limiter's scripts (lua/limiter_*.lua) read the server's clock first (lua/now.lua).
        self._acquire: Final = script(client, "now", "limiter_prologue", "limiter_acquire")
        self._release: Final = script(client, "now", "limiter_prologue", "limiter_release")
        self._cancel: Final = script(client, "limiter_cancel")
        self._renew: Final = script(client, "now", "limiter_renew")
        self._pause: Final = script(client, "now", "limiter_pause")
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

    async def _run(self, lua: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one script; a Redis that cannot answer becomes :class:`LimiterUnavailableError`."""
        return await run_script(lua, keys, args, LimiterUnavailableError, "the shared rate limiter")

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
                renew_every(self, self.lease / 3, self._renew_all, LimiterUnavailableError),
                name="aiovideoextend-redis-lease",
            )

    async def _renew_all(self) -> bool:
        """Renew the leases of every slot held; whether any is still held (else stop)."""
        windows = self.budgets.values()
        failed: LimiterUnavailableError | None = None
        for window in windows:
            try:
                await window._renew()
            except LimiterUnavailableError as exc:
                failed = exc  # the other budgets' leases still get renewed
        if failed is not None:
            raise failed
        return any(window._held for window in windows)


def key_prefix(api_key: str, prefix: str = "aiovideoextend") -> str:
    """The Redis key prefix of one account's budget: every process using the same API key (and
    prefix) shares it. Only a hash of the key goes to Redis."""
    return f"{prefix}:limits:{hashlib.sha256(api_key.encode()).hexdigest()[:16]}"
