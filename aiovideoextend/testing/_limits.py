"""Rate-limit algorithms: strict sliding log, aligned fixed windows and a token bucket.

All times are emulated seconds; a budget answers how long until it would admit one more request.
"""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, Final, Literal, Protocol

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

LimitAlgorithm = Literal["sliding", "fixed", "token"]
LIMIT_ALGORITHMS: Final = ("sliding", "fixed", "token")

#: (count, window in emulated seconds); "overall" applies to every limited route at once.
DEFAULT_LIMITS: Final[dict[str, tuple[int, float] | None]] = {
    "extend": (20, 60.0),
    "generate": (50, 60.0),
    "recover": (20, 60.0),
    "overall": (25, 1.0),
}

#: Routes the limiter sees; file downloads and the admin view stand outside NanoGPT's API.
LIMITED_ROUTES: Final = frozenset({"extend", "generate", "legacy_status", "recover", "status"})


class Budget(Protocol):
    def wait(self, now: float) -> float:
        """Seconds until one more request would be admitted (0 when it would be now)."""

    def take(self, now: float, /) -> None:
        """Consume one request; only called right after `wait` returned 0."""


@attrs.define
class SlidingLog:
    """Never more than ``count`` arrivals in any half-open window ``(t - window, t]``."""

    count: int
    window: float
    _log: collections.deque[float] = attrs.field(factory=collections.deque, init=False)

    def wait(self, now: float) -> float:
        edge = now - self.window
        while self._log and self._log[0] <= edge:
            self._log.popleft()
        if len(self._log) < self.count:
            return 0.0
        return self._log[-self.count] + self.window - now

    def take(self, now: float, /) -> None:
        self._log.append(now)


@attrs.define
class FixedWindow:
    """At most ``count`` arrivals per aligned window ``[k * window, (k + 1) * window)``."""

    count: int
    window: float
    _index: int = attrs.field(default=-1, init=False)
    _used: int = attrs.field(default=0, init=False)

    def wait(self, now: float) -> float:
        index = math.floor(now / self.window)
        if index != self._index:
            self._index, self._used = index, 0
        if self._used < self.count:
            return 0.0
        return (index + 1) * self.window - now

    def take(self, _now: float, /) -> None:
        self._used += 1


@attrs.define
class TokenBucket:
    """Capacity ``count``, refilled continuously at ``count / window`` tokens per second."""

    count: int
    window: float
    _tokens: float = attrs.field(default=-1.0, init=False)
    _last: float = attrs.field(default=0.0, init=False)

    def wait(self, now: float) -> float:
        if self._tokens < 0:
            # A new client starts with a full bucket.
            self._tokens, self._last = float(self.count), now
        rate = self.count / self.window
        self._tokens = min(float(self.count), self._tokens + (now - self._last) * rate)
        self._last = now
        if self._tokens >= 1.0:
            return 0.0
        return (1.0 - self._tokens) / rate

    def take(self, _now: float, /) -> None:
        self._tokens -= 1.0


_ALGORITHMS: Final[dict[str, type[SlidingLog | FixedWindow | TokenBucket]]] = {
    "sliding": SlidingLog,
    "fixed": FixedWindow,
    "token": TokenBucket,
}


@attrs.define
class RateLimiter:
    """Per-client budgets for each route plus one overall budget, all-or-nothing."""

    algorithm: LimitAlgorithm
    limits: Mapping[str, tuple[int, float] | None]
    _budgets: dict[tuple[str, str], Budget] = attrs.field(factory=dict, init=False)

    def _budget(self, client: str, name: str) -> Budget | None:
        budget = self._budgets.get((client, name))
        if budget is None:
            limit = self.limits.get(name)
            if limit is None:
                return None
            budget = _ALGORITHMS[self.algorithm](*limit)
            self._budgets[client, name] = budget
        return budget

    def hit(self, client: str, route: str, now: float) -> float:
        """Admit and count one request (returns 0) or reject it (returns emulated seconds to wait).

        A rejected request consumes nothing, so a polite client that waits gets in.
        """
        budgets = [
            budget
            for name in (route, "overall")
            if (budget := self._budget(client, name)) is not None
        ]
        wait = max((budget.wait(now) for budget in budgets), default=0.0)
        if wait > 0:
            return wait
        for budget in budgets:
            budget.take(now)
        return 0.0


def format_retry_after(real_seconds: float, fractional: bool) -> str:
    """A ``Retry-After`` value: whole seconds (at least 1), or milliseconds below one second.

    Real NanoGPT sends whole seconds, and so does the emulator unless ``fractional``: with
    compressed time most waits are far below a second, and rounding them up to one would make
    clients wait hundreds of emulated seconds.
    """
    if real_seconds >= 1.0 or not fractional:
        return str(max(1, math.ceil(real_seconds)))
    millis = max(1, math.ceil(real_seconds * 1000))
    if millis >= 1000:
        return "1"
    return f"{millis / 1000:.3f}".rstrip("0").rstrip(".")
