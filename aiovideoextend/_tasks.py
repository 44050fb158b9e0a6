"""A set of background tasks: spawn, track, drain."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["TaskSet"]

_T = TypeVar("_T")


class TaskSet:
    """Tasks kept alive (the loop holds only weak references) until they end or are drained.

    ``on_done`` callbacks run after the task has left the set.
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Future[Any]]:
        return iter(list(self._tasks))

    def spawn(
        self,
        coro: Coroutine[Any, Any, _T],
        *,
        name: str | None = None,
        on_done: Callable[[asyncio.Future[_T]], object] | None = None,
    ) -> asyncio.Task[_T]:
        """Run ``coro`` as a task of this set."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.track(task, on_done)
        return task

    def track(
        self,
        task: asyncio.Future[_T],
        on_done: Callable[[asyncio.Future[_T]], object] | None = None,
    ) -> None:
        """Keep ``task`` (started elsewhere) in this set until it ends."""
        tasks = self._tasks
        tasks.add(task)
        if on_done is None:
            task.add_done_callback(tasks.discard)
            return

        def done(task: asyncio.Future[_T]) -> None:
            tasks.discard(task)
            on_done(task)

        task.add_done_callback(done)

    async def drain(self) -> None:
        """Cancel every task and wait until all have ended (their errors are dropped)."""
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks.difference_update(tasks)
