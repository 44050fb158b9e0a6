"""Fixtures for the emulator's own tests: emulators on 127.0.0.1 and a small HTTP helper."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import attrs
import pytest
from multidict import CIMultiDictProxy

from aiovideoextend.testing import Emulator
from aiovideoextend.testing import pytest_plugin as plugin

KEY = "sk-nano-test-0001"
OTHER = "sk-nano-test-0002"
GOOD = {
    "model": "wan-wavespeed-22-spicy-extend",
    "prompt": "the cat keeps walking",
    "videoUrl": "https://example.com/cat.mp4",
}
#: Short jobs and a high scale: a job ends within ~20 ms of real time.
FAST = {
    "time_scale": 6000.0,
    "queue_seconds": (1.0, 10.0),
    "run_seconds": (10.0, 60.0),
    "failure_rate": 0.0,
    "nsfw_rate": 0.0,
}


def pytest_configure(config: pytest.Config) -> None:
    # Installed, the package's pytest11 entry point registers the plugin; from a bare checkout
    # (or before `pip install -e .`) register it here, exactly once.
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, plugin.__name__)


@attrs.frozen
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


@attrs.define
class Api:
    """Raw HTTP against one emulator, answering (status, decoded body, headers)."""

    http: aiohttp.ClientSession
    emu: Emulator

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = KEY,
        body: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if key is not None:
            sent["x-api-key"] = key
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        # A stream, because aiohttp warns about large raw-bytes bodies (4 MB data URLs).
        payload = None if data is None else io.BytesIO(data)
        async with self.http.request(
            method, self.emu.base_url + path, data=payload, params=params, headers=sent
        ) as response:
            raw = await response.read()
            try:
                decoded: Any = json.loads(raw)
            except ValueError:
                decoded = raw
            return Reply(response.status, decoded, response.headers)

    async def submit(self, body: Any = None, key: str | None = KEY) -> Reply:
        return await self.call(
            "POST", "/generate-video", key=key, body=GOOD if body is None else body
        )

    async def extend(self, body: Any, key: str | None = KEY) -> Reply:
        return await self.call("POST", "/generate-video/extend", key=key, body=body)

    async def status(self, run_id: str, key: str | None = KEY) -> Reply:
        return await self.call("GET", "/video/status", key=key, params={"requestId": run_id})

    async def until_terminal(self, run_id: str, key: str = KEY) -> Reply:
        """Poll every 2 ms until the emulator reports the job finished (compressed time)."""
        for _ in range(2000):
            reply = await self.status(run_id, key)
            status = reply.body["data"]["status"] if "data" in reply.body else reply.body["status"]
            if status in ("COMPLETED", "FAILED", "CANCELED", "completed", "failed", "cancelled"):
                return reply
            await asyncio.sleep(0.002)
        raise AssertionError(f"{run_id} never finished")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """One client session for the test."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def make_api(
    http: aiohttp.ClientSession,
) -> AsyncIterator[Callable[..., Awaitable[Api]]]:
    """Start an emulator (FAST defaults, overridable) and wrap it; all closed after the test."""
    started: list[Emulator] = []

    async def make(**options: Any) -> Api:
        emu = await Emulator(**{**FAST, **options}).start()
        started.append(emu)
        return Api(http, emu)

    yield make
    for emu in started:
        await emu.close()


@pytest.fixture
async def api(make_api: Callable[..., Awaitable[Api]]) -> Api:
    """An emulator with two users, fast jobs and no random failures."""
    return await make_api(users={KEY: 100.0, OTHER: 100.0})
