"""What a session's jobs see of it: the ``JobHost`` its jobs are given."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from ._job import Job
from ._poll import PollScheduler
from .models import StatusUpdate

__all__ = ["Host"]


class Host:
    """The scheduler's verbs, and the few session callbacks a job uses (a :class:`JobHost`)."""

    __slots__ = (
        "absolute",
        "download",
        "enroll",
        "ensure",
        "estimate",
        "fetch_status",
        "status_changed",
        "time_scale",
        "timeout",
    )

    def __init__(
        self,
        scheduler: PollScheduler,
        *,
        fetch_status: Callable[[str], Awaitable[tuple[StatusUpdate, bool]]],
        status_changed: Callable[[Job], None],
        absolute: Callable[[str], str],
        download: Callable[..., Awaitable[Path]],
        time_scale: float,
        timeout: float | None,
    ) -> None:
        self.enroll: Final = scheduler.enroll
        self.ensure: Final = scheduler.ensure
        self.estimate: Final = scheduler.estimate
        self.fetch_status: Final = fetch_status
        self.status_changed: Final = status_changed
        self.absolute: Final = absolute
        self.download: Final = download
        self.time_scale: Final = time_scale
        self.timeout: Final = timeout
