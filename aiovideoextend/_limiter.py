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
import threading
import time
import weakref
from collections import deque
from typing import Final

import attrs

from ._config import Budget, Limits
from ._limiter_api import WaitHook

__all__ = ["RateLimiter", "SlidingWindow", "shared_limiter"]


class _Waiter:
    """One queued :meth:`SlidingWindow.acquire`: its future, the loop it waits on, its fate."""

    __slots__ = ("first", "fut", "gone", "granted", "loop")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, fut: asyncio.Future[None], *, first: bool = False
    ) -> None:
        self.loop: Final = loop
        self.fut: Final = fut
        #: queued ahead of the others (a paid submit, not a poll)
        self.first: Final = first
        #: a slot was counted for it (its future is resolved, or about to be on its loop)
        self.granted = False
        #: it stopped waiting (cancelled): skip it
        self.gone = False


def _grant(fut: asyncio.Future[None]) -> None:
    # Runs on the waiter's own loop. A future cancelled meanwhile hands its slot on (acquire).
    if not fut.done():
        fut.set_result(None)


class SlidingWindow:
    """At most ``count`` requests in any window of ``period`` seconds, as the server sees them.

    FIFO-fair: waiters get slots in the order they asked. Thread-safe: tasks of several event
    loops (threads, or one ``asyncio.run`` after another) may share one window, provided their
    loops share a clock (asyncio's loops all count ``time.monotonic()``); each waiter is woken
    on its own loop.
    """

    __slots__ = (
        "_ends",
        "_in_flight",
        "_lock",
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
        self._waiters: deque[_Waiter] = deque()
        #: the wake-up timer and the loop it is set on
        self._timer: tuple[asyncio.AbstractEventLoop, asyncio.TimerHandle] | None = None
        self._lock: Final = threading.Lock()

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

    def idle(self, now: float) -> bool:
        """Nothing in flight, queued, paused or counting any more: forgetting it loses nothing."""
        with self._lock:
            return (
                not self._in_flight
                and not self._waiters
                and self._paused_until <= now
                and self._ready_at(now) <= now
                and not self._ends
            )

    def delay(self) -> float:
        """Seconds until a slot is free (0 when one is free now)."""
        now = asyncio.get_running_loop().time()
        with self._lock:
            if self._waiters:
                # Others are queued ahead; the caller will not get the next slot.
                return max(self._ready_at(now) - now, 1e-9)
            return max(self._ready_at(now) - now, 0.0)

    async def acquire(self, on_wait: WaitHook | None = None, *, first: bool = False) -> None:
        """Take a slot; pair it with exactly one :meth:`release` (or :meth:`cancel`).

        ``first``: wait ahead of the waiters that are not (in their order among themselves).
        The transport asks this for a submit's slot of the overall budget, which polls share:
        a paid submit waits for at most the slots of the submits queued before it."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        with self._lock:
            waiters = self._waiters
            if not waiters and self._ready_at(now) <= now:
                self._in_flight += 1
                return
            waiter = _Waiter(loop, loop.create_future(), first=first)
            if first and waiters and not waiters[-1].first:
                ahead = 0
                while ahead < len(waiters) and waiters[ahead].first:
                    ahead += 1
                waiters.insert(ahead, waiter)
            else:
                waiters.append(waiter)
            wait = max(self._ready_at(now) - now, 0.0)
            self._wake_locked(loop)
        if on_wait is not None:
            on_wait(self.name, wait)
        try:
            await waiter.fut
        except asyncio.CancelledError:
            with self._lock:
                waiter.gone = True
                if waiter.granted:
                    # The slot was granted as we were cancelled: hand it on.
                    self._in_flight -= 1
                self._wake_locked(loop)
            raise

    def release(self, end: float | None = None) -> None:
        """The request's response is back (or it failed): it counts until ``end + window``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._in_flight -= 1
            self._ends.append(loop.time() if end is None else end)
            self._wake_locked(loop)

    def cancel(self) -> None:
        """Give a slot back whose request was never sent."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._in_flight -= 1
            self._wake_locked(loop)

    def pause(self, seconds: float) -> None:
        """After a 429: send nothing on this budget for ``seconds``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self._paused_until = max(self._paused_until, loop.time() + seconds)
            self._wake_locked(loop)

    def _wake(self) -> None:
        """Timer callback (on some waiter's loop): serve whoever is due."""
        with self._lock:
            self._wake_locked(asyncio.get_running_loop())

    def _wake_locked(self, loop: asyncio.AbstractEventLoop) -> None:
        """Grant every slot that is free, in order; set a timer for the first that is not.

        ``loop`` is the running loop; waiters of other loops are woken through
        ``call_soon_threadsafe``. A timer left on another loop is not touched (its handle is not
        thread-safe): when it fires it finds nothing to do, or serves whoever is due then.
        """
        timer = self._timer
        if timer is not None and timer[0] is loop:
            timer[1].cancel()
            self._timer = None
        waiters = self._waiters
        if not waiters:
            return
        now = loop.time()
        while waiters:
            waiter = waiters[0]
            owner = waiter.loop
            if waiter.gone or owner.is_closed():
                waiters.popleft()
                continue
            at = self._ready_at(now)
            if at > now:
                if at == float("inf"):
                    return
                if owner is not loop:
                    # Its loop sets a timer of its own (a timer is not thread-safe to set)...
                    try:
                        owner.call_soon_threadsafe(self._wake)
                    except RuntimeError:  # closed since we looked
                        waiters.popleft()
                        continue
                # ...and ours stands in should that loop be closed without cancelling its tasks.
                self._timer = (loop, loop.call_at(at, self._wake))
                return
            waiters.popleft()
            if owner is loop:
                if waiter.fut.done():  # cancelled, its task not yet resumed
                    waiter.gone = True
                    continue
                waiter.fut.set_result(None)
            else:
                try:
                    owner.call_soon_threadsafe(_grant, waiter.fut)
                except RuntimeError:  # the loop closed since we looked
                    continue
            waiter.granted = True
            self._in_flight += 1


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

    def idle(self, now: float) -> bool:
        """No budget holds anything any more (see :meth:`SlidingWindow.idle`)."""
        return all(window.idle(now) for window in self.budgets.values())


# NanoGPT limits per IP, so every Session of a process talking to the same server shares one
# budget, whichever event loop or thread it runs on. Loops whose clock is not asyncio's monotonic
# one (a fake test clock such as looptime's) cannot share its timestamps: they get one per loop.
_SHARED: dict[tuple[str, Limits], RateLimiter] = {}
_PER_LOOP: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, Limits], RateLimiter]
] = weakref.WeakKeyDictionary()
_REGISTRY_LOCK: Final = threading.Lock()
#: a loop whose clock is within this many seconds of ``time.monotonic()`` counts on it
_SAME_CLOCK: Final = 0.25


def shares_process_clock(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` counts time on ``time.monotonic()``, like every asyncio loop does."""
    return abs(loop.time() - time.monotonic()) < _SAME_CLOCK


def shared_limiter(base_url: str, limits: Limits) -> RateLimiter:
    """The process-wide limiter for ``base_url`` and ``limits`` (created on first use).

    One for the whole process, across threads and successive event loops; a loop with a clock
    of its own (a fake test clock) gets one of its own.
    """
    loop = asyncio.get_running_loop()
    key = (base_url, limits)
    with _REGISTRY_LOCK:
        registry = _SHARED if shares_process_clock(loop) else _PER_LOOP.setdefault(loop, {})
        limiter = registry.get(key)
        if limiter is None:
            if registry is _SHARED:
                # Forget the limiters with nothing left to remember (bounded by busy servers).
                now = loop.time()
                for stale in [k for k, v in registry.items() if v.idle(now)]:
                    del registry[stale]
            limiter = registry[key] = RateLimiter(limits)
        return limiter
