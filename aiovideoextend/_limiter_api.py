"""What a Session needs of a rate limiter, so that other backends than the in-process one fit.

:class:`~aiovideoextend.RateLimiter` (one process) and
:class:`~aiovideoextend.redis_limiter.RedisRateLimiter` (many processes and hosts) both satisfy
:class:`Limiter`. Only ``acquire`` is a coroutine: the transport releases slots in ``finally``
blocks and done-callbacks where it cannot await, so a remote backend sends those calls from
background tasks it tracks and awaits on close.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .exceptions import LimiterUnavailableError

__all__ = ["Limiter", "LimiterUnavailableError", "WaitHook", "Window"]

#: waiting callback: (budget name, seconds until a slot is expected)
WaitHook = Callable[[str, float], None]


class Window(Protocol):
    """One budget: at most N requests in any window, as the server sees them."""

    @property
    def name(self) -> str: ...

    @property
    def window(self) -> float:
        """Seconds a finished request keeps counting (the budget's period plus margins)."""
        ...

    async def acquire(self, on_wait: WaitHook | None = None) -> None:
        """Take a slot; pair it with exactly one :meth:`release` (or :meth:`cancel`)."""
        ...

    def release(self, end: float | None = None) -> None:
        """The request's response is back (or it failed): it counts one more window."""
        ...

    def cancel(self) -> None:
        """Give a slot back whose request was never sent."""
        ...

    def pause(self, seconds: float) -> None:
        """After a 429: send nothing on this budget for ``seconds``."""
        ...

    def delay(self) -> float:
        """Seconds until a slot is expected to be free (0 when one is free now)."""
        ...


class Limiter(Protocol):
    """The budgets of one account/IP: ``budget(name)`` per endpoint plus ``overall``."""

    @property
    def overall(self) -> Window: ...

    def budget(self, name: str) -> Window: ...
