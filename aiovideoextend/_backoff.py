"""Exponential backoff with jitter: the one formula every retry of the client waits by."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .models import Event, EventKind

__all__ = ["Backoff", "exponential"]

log = logging.getLogger("aiovideoextend")


def exponential(attempt: int, *, base: float, cap: float, jitter: float, rand: float) -> float:
    """Seconds to wait before retry number ``attempt`` (1-based); ``rand`` is uniform in [0, 1).

    The result lies in ``[raw * (1 - jitter), raw * (1 + jitter)]`` where ``raw`` is
    ``base * 2 ** (attempt - 1)`` capped at ``cap``.
    """
    # 2.0 ** 1024 raises OverflowError; any exponent past this is over the cap anyway.
    exponent = min(max(attempt - 1, 0), 1000)
    raw = min(cap, base * 2.0**exponent)
    return raw * (1 + jitter * (2 * rand - 1))


class Backoff:
    """The waits of one session's retries: drawn from its random source, announced as events."""

    __slots__ = ("_delay", "_emit", "_rand")

    def __init__(
        self,
        delay: Callable[[int, float], float],
        rand: Callable[[], float],
        emit: Callable[[Event], None],
    ) -> None:
        self._delay = delay
        self._rand = rand
        self._emit = emit

    def next(
        self,
        attempt: int,
        why: str,
        *,
        run_id: str | None = None,
        retry_after: float | None = None,
    ) -> float:
        """The wait before retry ``attempt`` (at least ``retry_after``), announced."""
        delay = self._delay(attempt, self._rand())
        if retry_after is not None:
            delay = max(delay, retry_after)
        self._emit(Event(EventKind.RETRYING, run_id=run_id, delay=delay, detail=why))
        if run_id is None:
            log.debug("retrying in %.3fs after: %s", delay, why)
        else:
            log.debug("poll of %s failed (%s); retrying in %.3fs", run_id, why, delay)
        return delay
