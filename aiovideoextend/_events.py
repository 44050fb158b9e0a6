"""The event hooks of a session: every hook sees every event; one that fails is logged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .models import Event, EventKind

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["EventHook", "Hooks"]

log = logging.getLogger("aiovideoextend")

EventHook = Callable[[Event], None]


class Hooks:
    """``emit`` calls every hook; the other methods build an event only when someone listens."""

    __slots__ = ("_hooks",)

    def __init__(self, first: EventHook | None = None) -> None:
        self._hooks: list[EventHook] = [first] if first is not None else []

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def add(self, hook: EventHook) -> None:
        self._hooks.append(hook)

    def remove(self, hook: EventHook) -> None:
        self._hooks.remove(hook)

    def emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                log.exception("event hook %r failed", hook)

    def on_wait(self, budget: str, delay: float) -> None:
        if self._hooks:
            self.emit(Event(EventKind.WAITING_FOR_RATE_LIMIT, budget=budget, delay=delay))

    def status_changed(self, job: Job) -> None:
        if self._hooks:
            self.emit(Event(EventKind.STATUS_CHANGED, run_id=job.run_id, status=job.status))
