"""Shared fixtures: a real emulator on 127.0.0.1 and sessions that talk to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import aiovideoextend as ave
from aiovideoextend.testing import Emulator

#: Emulated time runs this much faster than real time in the core tests.
SCALE = 600.0
#: Short jobs (emulated seconds) so that a test waits milliseconds for a job.
FAST = {"queue_seconds": (1.0, 5.0), "run_seconds": (5.0, 20.0)}


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
