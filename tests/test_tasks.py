"""The task set: spawn, track, drain (pure asyncio, no server)."""

from __future__ import annotations

import asyncio

from aiovideoextend._tasks import TaskSet


async def test_a_spawned_task_leaves_the_set_when_it_ends() -> None:
    """A finished task is dropped, and its on_done runs after it left the set."""
    tasks = TaskSet()
    seen: list[tuple[int, int]] = []

    async def work() -> int:
        return 7

    task = tasks.spawn(work(), on_done=lambda t: seen.append((t.result(), len(tasks))))
    assert len(tasks) == 1
    assert await task == 7
    await asyncio.sleep(0)
    assert len(tasks) == 0
    assert seen == [(7, 0)]


async def test_drain_cancels_and_waits_for_every_task() -> None:
    """drain() cancels what runs, waits for all of them, and swallows their errors."""
    tasks = TaskSet()
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    async def boom() -> None:
        raise ValueError("dropped")

    for name in ("a", "b"):
        tasks.spawn(forever(name))
    failing = tasks.spawn(boom())
    outside = asyncio.ensure_future(forever("c"))
    tasks.track(outside)
    await asyncio.sleep(0)
    await tasks.drain()
    assert sorted(ended) == ["a", "b", "c"]
    assert len(tasks) == 0
    assert outside.cancelled()
    assert isinstance(failing.exception(), ValueError)


async def test_drain_of_an_empty_set_returns_at_once() -> None:
    """Nothing to drain: nothing happens."""
    tasks = TaskSet()
    await tasks.drain()
    assert list(tasks) == []
