"""Shared fixtures: a real emulator on 127.0.0.1 and sessions that talk to it.

A test marked ``fast_forward`` runs, fixtures and all, on a looptime event loop: its clock moves
only when every task waits for a timer, and then jumps straight to the next one. The emulator and
the client share that loop and count compressed time on it, so what such a test sees of time
(which status a poll finds, how many polls a job costs) is exact however slow the machine is.
Only for tests whose every peer lives in the loop: a subprocess or a Redis server keeps real time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import looptime
import pytest
from aiohttp import web

import aiovideoextend as ave
from aiovideoextend.testing import Emulator

#: Emulated time runs this much faster than real time in the core tests.
SCALE = 600.0
#: Short jobs (emulated seconds) so that a test waits milliseconds for a job.
FAST = {"queue_seconds": (1.0, 5.0), "run_seconds": (5.0, 20.0)}


#: looptime's clock counts whole microseconds.
_TICKS = 1_000_000


class FastForwardLoop(looptime.LoopTimeEventLoop, asyncio.SelectorEventLoop):
    """looptime's loop, with every timer put on the clock's microsecond grid, rounded up.

    The clock jumps to a timer rounded to its microsecond, and asyncio runs a timer up to a
    nanosecond early: a timer set a hair after a tick would run before its time, find the time
    not reached, set itself again, and so on forever, since this clock moves only when nothing is
    ready to run. Rounded up, a timer runs a fraction of a microsecond late instead.
    """

    def call_at(
        self, when: float, callback: Callable[..., object], *args: Any, context: Any = None
    ) -> asyncio.TimerHandle:
        tick = round(when * _TICKS)
        if tick / _TICKS < when:
            tick += 1
        return super().call_at(tick / _TICKS, callback, *args, context=context)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """A looptime loop for tests marked ``fast_forward``, asyncio's own loop for the others."""
    if item.get_closest_marker("fast_forward") is not None:
        return {"fast_forward": lambda: FastForwardLoop(start=0.0)}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture
async def make_emulator() -> AsyncIterator[Callable[..., Any]]:
    """Start emulators with any options; all are closed at the end of the test."""
    started: list[Emulator] = []

    async def make(**options: Any) -> Emulator:
        options = {"time_scale": SCALE, "failure_rate": 0.0, "nsfw_rate": 0.0, **FAST, **options}
        emu = await Emulator(**options).start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        await emu.close()


@pytest.fixture
async def emu(make_emulator: Callable[..., Any]) -> Emulator:
    """An emulator with no random failures and short jobs."""
    emulator: Emulator = await make_emulator()
    return emulator


@pytest.fixture
async def make_session(emu: Emulator) -> AsyncIterator[Callable[..., ave.Session]]:
    """Sessions bound to the `emu` fixture (own limiter each, so tests do not share budgets)."""
    sessions: list[ave.Session] = []

    def make(**options: Any) -> ave.Session:
        options.setdefault("base_url", emu.base_url)
        options.setdefault("time_scale", SCALE)
        limits = options.pop("limits", ave.Limits())
        options.setdefault("limiter", ave.RateLimiter(limits.scaled(options["time_scale"])))
        session = ave.Session(options.pop("api_key", emu.api_key), **options)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        await session.aclose()


@pytest.fixture
async def session(make_session: Callable[..., ave.Session]) -> AsyncIterator[ave.Session]:
    """An open session on the `emu` fixture."""
    async with make_session() as s:
        yield s


@pytest.fixture
async def not_nanogpt() -> AsyncIterator[str]:
    """A web server that is not NanoGPT: 501 for POST, 404 pages for GET (python -m http.server)."""

    async def page(request: web.Request) -> web.Response:
        if request.method == "POST":
            return web.Response(status=501, text="<html>Unsupported method ('POST')</html>")
        return web.Response(status=404, text="<html>File not found</html>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
