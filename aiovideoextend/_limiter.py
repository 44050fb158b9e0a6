"""The shared rate limiter: a sliding window that counts a request until its response is back.

Why not a plain ``aiolimiter.AsyncLimiter(20, 60)``: it starts full and refills continuously, so
it admits about 40 requests in the first minute, which a server counting windows rejects.

The server counts a request when it *arrives*, somewhere between our send and its response. So a
slot stays taken while the request is in flight, and after the response it keeps counting for one
whole window. A new request is sent only while fewer than ``count`` requests are in flight or
ended within the last window. Then no window of the server's, wherever it falls, can see more than
``count`` arrivals: the last of any ``count + 1`` requests was sent at least a window after every
earlier one had arrived. This holds for fixed windows, sliding windows and token buckets alike,
whatever the network jitter, and still lets ``count`` requests leave at once.
"""

from __future__ import annotations

import asyncio
import weakref
from collections import deque
from collections.abc import Callable
from typing import Final

import attrs

from ._config import Budget, Limits

__all__ = ["RateLimiter", "SlidingWindow", "shared_limiter"]

#: waiting callback: (budget name, seconds until a slot is expected)
WaitHook = Callable[[str, float], None]


class SlidingWindow:
    """At most ``count`` requests in any window of ``period`` seconds, as the server sees them.

    FIFO-fair: waiters get slots in the order they asked. The loop is bound on first use.
    """

    __slots__ = (
        "_ends",
        "_in_flight",
        "_paused_until",
        "_timer",
        "_waiters",
        "count",
        "name",
        "window",
    )

    def __init__(
        self, name: str, budget: Budget, *, margin: float = 0.0, slack: float = 0.0
    ) -> None:
        self.name: Final = name
        self.count: Final = budget.count
        # Our clock and the server's disagree a little: count each request a bit longer.
        self.window: Final = budget.period * (1 + margin) + slack
        self._ends: deque[float] = deque()
        self._in_flight = 0
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return (
            f"<SlidingWindow {self.name} {self.count}/{self.window:g}s "
            f"in_flight={self._in_flight} recent={len(self._ends)} waiting={len(self._waiters)}>"
        )

    def _ready_at(self, now: float) -> float:
        """When the next slot frees up (``now`` if one is free now, inf if only a release can)."""
        ends = self._ends
        window = self.window
        # Same expression as the wake-up time below: floats must not disagree with themselves.
        while ends and ends[0] + window <= now:
            ends.popleft()
        at = (
            now
            if self._in_flight + len(ends) < self.count
            else (ends[0] + window if ends else float("inf"))
        )
        return max(at, self._paused_until)

    def delay(self) -> float:
        """Seconds until a slot is free (0 when one is free now)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._waiters:
            # Others are queued ahead; the caller will not get the next slot.
            return max(self._ready_at(now) - now, 1e-9)
        return max(self._ready_at(now) - now, 0.0)

    async def acquire(self, on_wait: WaitHook | None = None) -> None:
        """Take a slot; pair it with exactly one :meth:`release` (or :meth:`cancel`)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if not self._waiters and self._ready_at(now) <= now:
            self._in_flight += 1
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        if on_wait is not None:
            on_wait(self.name, max(self._ready_at(now) - now, 0.0))
        self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # The slot was granted as we were cancelled: hand it on.
                self.cancel()
            else:
                self._wake()
            raise

    def release(self, end: float | None = None) -> None:
        """The request's response is back (or it failed): it counts until ``end + window``."""
        self._in_flight -= 1
        self._ends.append(asyncio.get_running_loop().time() if end is None else end)
        self._wake()

    def cancel(self) -> None:
        """Give a slot back whose request was never sent."""
        self._in_flight -= 1
        self._wake()

    def pause(self, seconds: float) -> None:
        """After a 429: send nothing on this budget for ``seconds``."""
        until = asyncio.get_running_loop().time() + seconds
        self._paused_until = max(self._paused_until, until)
        self._wake()

    def _wake(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = self._waiters
        loop = asyncio.get_running_loop()
        now = loop.time()
        while waiters:
            if waiters[0].done():  # cancelled while waiting
                waiters.popleft()
                continue
            at = self._ready_at(now)
            if at > now:
                if at != float("inf"):
                    self._timer = loop.call_at(at, self._wake)
                return
            self._in_flight += 1
            waiters.popleft().set_result(None)


@attrs.define
class RateLimiter:
    """The budgets of one NanoGPT account/IP: one per endpoint plus the overall one."""

    limits: Limits
    budgets: dict[str, SlidingWindow] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        limits = self.limits
        self.budgets = {
            name: SlidingWindow(
                name, getattr(limits, name), margin=limits.margin, slack=limits.slack
            )
            for name in ("extend", "generate", "recover", "overall")
        }

    @property
    def overall(self) -> SlidingWindow:
        return self.budgets["overall"]

    def budget(self, name: str) -> SlidingWindow:
        return self.budgets[name]


# One limiter per event loop, base URL and limits: NanoGPT limits per IP, so every Session of a
# process talking to the same server shares one budget.
_REGISTRY: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, Limits], RateLimiter]
] = weakref.WeakKeyDictionary()


def shared_limiter(base_url: str, limits: Limits) -> RateLimiter:
    """The process-wide limiter for ``base_url`` (created on first use, per event loop)."""
    per_loop = _REGISTRY.setdefault(asyncio.get_running_loop(), {})
    key = (base_url, limits)
    limiter = per_loop.get(key)
    if limiter is None:
        limiter = per_loop[key] = RateLimiter(limits)
    return limiter
