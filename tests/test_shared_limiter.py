"""One rate budget per process: sessions on other threads and later event loops share it.

These tests run real event loops on real threads (a fake clock cannot span threads): the
emulator serves from a thread of its own, and each client thread runs its own ``asyncio.run``.
What they assert is counted (429s, arrivals per window), never timed.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

import aiovideoextend as ave
from aiovideoextend._limiter import SlidingWindow, shared_limiter
from aiovideoextend.testing import Emulator

from .conftest import FAST, SCALE
from .test_ratelimit import max_in_window

_T = TypeVar("_T")

#: A stricter generate budget than NanoGPT's, so that a few dozen submits span several windows.
COUNT = 10
PERIOD = 120.0  # emulated seconds: 0.2 s of real time at SCALE


class ServedEmulator:
    """An emulator on a loop of its own, in a thread of its own."""

    def __init__(self, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.emu = self.call(Emulator(**options).start())

    def call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def look(self, what: Callable[[Emulator], _T]) -> _T:
        """Read the emulator on its own loop (its clock is that loop's)."""

        async def read() -> _T:
            return what(self.emu)

        return self.call(read())

    def close(self) -> None:
        self.call(self.emu.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=60)
        self.loop.close()


@pytest.fixture
def served() -> Iterator[ServedEmulator]:
    server = ServedEmulator(
        time_scale=SCALE,
        failure_rate=0.0,
        nsfw_rate=0.0,
        limit_algorithm="sliding",  # strict: never more than N arrivals in any window
        limits={"generate": (COUNT, PERIOD)},
        **FAST,
    )
    yield server
    server.close()


def limits() -> ave.Limits:
    return ave.Limits(generate=ave.Budget(COUNT, PERIOD))


async def submit_and_wait(emu: Emulator, tag: str, jobs: int) -> list[str]:
    """What a user's thread does: its own Session (the default, shared limiter), its own loop."""
    async with ave.Session(
        emu.api_key, base_url=emu.base_url, time_scale=SCALE, limits=limits()
    ) as session:
        submitted = await asyncio.gather(
            *(
                session.extend(
                    "veo3-1-extend", f"{tag} {i}", video_url=f"https://example.com/{tag}/{i}.mp4"
                )
                for i in range(jobs)
            )
        )
        results = await asyncio.gather(*submitted)
        return [result.run_id for result in results]


def in_threads(*targets: Callable[[], _T]) -> list[_T]:
    outcomes: list[Any] = [None] * len(targets)

    def run(i: int) -> None:
        try:
            outcomes[i] = targets[i]()
        except BaseException as exc:  # handed to the test's thread below
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


def assert_within_budget(served: ServedEmulator) -> None:
    stats = served.look(lambda emu: emu.stats)
    assert sum(stats.rate_limited.values()) == 0, stats.rate_limited
    generate = [t for t, route in stats.arrivals if route == "generate"]
    assert max_in_window(generate, PERIOD / SCALE) <= COUNT
    # The overall budget (25 per emulated second) holds across the threads' polls too.
    assert max_in_window([t for t, _ in stats.arrivals], 1 / SCALE) <= 25


def test_two_threads_each_with_its_own_loop_share_one_budget(served: ServedEmulator) -> None:
    """Two threads, each ``asyncio.run`` with its own Session: one budget, no 429."""
    emu = served.emu
    jobs = 3 * COUNT  # per thread: six windows' worth together
    first, second = in_threads(
        lambda: asyncio.run(submit_and_wait(emu, "a", jobs)),
        lambda: asyncio.run(submit_and_wait(emu, "b", jobs)),
    )
    assert len(set(first) | set(second)) == 2 * jobs
    assert served.look(lambda emu: len(emu.ledger)) == 2 * jobs
    assert_within_budget(served)


def test_one_asyncio_run_after_another_shares_the_budget(served: ServedEmulator) -> None:
    """The second ``asyncio.run`` sees the first one's requests still counting: it waits for
    them instead of drawing 429s, and nothing of the first, dead loop gets in its way."""
    emu = served.emu

    async def fill_and_leave_a_waiter() -> None:
        await submit_and_wait(emu, "first", COUNT)
        window = shared_limiter(emu.base_url, limits().scaled(SCALE)).budget("generate")
        # A task still queued in the limiter when asyncio.run ends: cancelled with its loop.
        asyncio.get_running_loop().create_task(window.acquire())
        await asyncio.sleep(0)

    asyncio.run(fill_and_leave_a_waiter())
    second = asyncio.run(submit_and_wait(emu, "second", COUNT + 3))
    assert len(second) == COUNT + 3
    assert served.look(lambda emu: len(emu.ledger)) == 2 * COUNT + 3
    assert_within_budget(served)


def test_a_waiter_is_woken_on_its_own_loop() -> None:
    """A slot released on one thread's loop wakes the task waiting on another thread's loop."""
    window = SlidingWindow("x", ave.Budget(1, 0.001))
    taken = threading.Event()
    release = threading.Event()
    woken_on: list[asyncio.AbstractEventLoop] = []

    async def holder() -> None:
        await window.acquire()
        taken.set()
        await asyncio.to_thread(release.wait, 60)
        window.release()

    async def waiter() -> None:
        await asyncio.to_thread(taken.wait, 60)
        task = asyncio.ensure_future(window.acquire())
        await asyncio.sleep(0)
        assert not task.done()  # the one slot is held on the other loop
        release.set()
        await task
        woken_on.append(asyncio.get_running_loop())
        window.release()

    in_threads(lambda: asyncio.run(holder()), lambda: asyncio.run(waiter()))
    assert len(woken_on) == 1
    assert window._in_flight == 0
    assert not window._waiters
