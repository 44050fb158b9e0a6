"""The library against a server it cannot use: not reachable, not NanoGPT, a rejected key.

Each is a public, typed error raised quickly (a few tries, not minutes of backoff), and a batch
stops at its first sight of one instead of reporting every line the same way.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

import aiovideoextend as ave
from aiovideoextend._http import _unreachable
from aiovideoextend.batch import run_batch
from aiovideoextend.models import EventKind

if TYPE_CHECKING:
    from pathlib import Path

    from aiovideoextend.testing import Emulator

SCALE = 600.0
LINE = {"model": "veo3-1-extend", "prompt": "p", "video_url": "https://x/a.mp4"}


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


def retries_seen(events: list[ave.Event]) -> int:
    return sum(event.kind is EventKind.RETRYING for event in events)


async def test_submit_to_a_closed_port_raises_the_public_error_after_a_few_tries():
    """Connection refused: APIConnectionError (never the private kind), after connect_attempts
    tries in all, naming the URL; the submit is tried again only because nothing was sent."""
    base = refused_url()
    events: list[ave.Event] = []
    async with ave.Session("sk-x", base_url=base, time_scale=SCALE, on_event=events.append) as s:
        with pytest.raises(ave.APIConnectionError) as caught:
            await s.extend("veo3-1-extend", "p", video_url="https://x/a.mp4")
    error = caught.value
    assert type(error) is ave.APIConnectionError
    assert isinstance(error, ave.TransportError)
    assert error.url == f"{base}/generate-video"
    assert error.reason == "connection refused"
    assert str(error) == f"cannot connect to {base}/generate-video: connection refused"
    assert retries_seen(events) == ave.Retries().connect_attempts - 1


async def test_status_and_wait_on_a_closed_port_fail_fast():
    """Idempotent calls stop after connect_attempts too; a job whose server was never reached
    fails instead of polling until its deadline."""
    base = refused_url()
    events: list[ave.Event] = []
    retries = ave.Retries(connect_attempts=2)
    async with ave.Session(
        "sk-x", base_url=base, time_scale=SCALE, retries=retries, on_event=events.append
    ) as s:
        with pytest.raises(ave.APIConnectionError):
            await s.status("vid_a")
        assert retries_seen(events) == 1
        with pytest.raises(ave.APIConnectionError):
            await s.job("vid_a").result()


async def test_a_server_that_is_not_nanogpt(not_nanogpt: str):
    """A 501 to the submit is no 'maybe charged': EndpointNotFoundError naming the URL, sent
    once; an HTML 404 to a status poll is the same error, not 'no such job'."""
    async with ave.Session("sk-x", base_url=not_nanogpt, time_scale=SCALE) as s:
        with pytest.raises(ave.EndpointNotFoundError) as caught:
            await s.extend("veo3-1-extend", "p", video_url="https://x/a.mp4")
        assert caught.value.url == f"{not_nanogpt}/generate-video"
        assert caught.value.status_code == 501
        assert "is not NanoGPT's video API" in str(caught.value)
        with pytest.raises(ave.EndpointNotFoundError) as polled:
            await s.status("vid_a")
        assert polled.value.url == f"{not_nanogpt}/video/status"


async def test_nanogpt_404_for_an_unknown_run_is_still_not_found(emu: Emulator):
    """NanoGPT's own 404 (its error body) for an unknown run stays NotFoundError."""
    async with ave.Session(emu.api_key, base_url=emu.base_url, time_scale=SCALE) as s:
        with pytest.raises(ave.NotFoundError) as caught:
            await s.status("vid_nope")
    assert not isinstance(caught.value, ave.EndpointNotFoundError)


async def test_source_submit_404_means_no_such_route(emu: Emulator):
    """The emulator without /api: a 404 to the source-video submit names the route missing."""
    root = emu.base_url.removesuffix("/api")
    async with ave.Session(emu.api_key, base_url=root, time_scale=SCALE) as s:
        with pytest.raises(ave.EndpointNotFoundError, match="generate-video"):
            await s.extend("veo3-1-extend", "p", video_url="https://x/a.mp4")
    assert emu.ledger == []


async def collect(session: ave.Session, items: list[Any], **options: Any) -> list[Any]:
    return [outcome async for outcome in run_batch(session, items, **options)]


@pytest.mark.parametrize("journal", [False, True])
async def test_run_batch_stops_on_a_rejected_key(emu: Emulator, tmp_path: Path, journal: bool):
    """A 401 stops the whole batch: run_batch raises AuthenticationError, nothing is paid."""
    options = {"journal": tmp_path / "j.db"} if journal else {}
    async with ave.Session("sk-wrong", base_url=emu.base_url, time_scale=SCALE) as s:
        with pytest.raises(ave.AuthenticationError):
            await collect(s, [LINE] * 10, **options)
    assert emu.ledger == []


async def test_run_batch_stops_when_the_server_cannot_be_reached(tmp_path: Path):
    """Connection refused: run_batch raises APIConnectionError instead of N skipped lines."""
    async with ave.Session("sk-x", base_url=refused_url(), time_scale=SCALE) as s:
        with pytest.raises(ave.APIConnectionError):
            await collect(s, [LINE] * 10, journal=tmp_path / "j.db")


async def test_a_403_on_a_midjourney_extend_is_that_line_only(make_emulator: Any):
    """Extending another user's run is refused for that line; the batch goes on."""
    emu = await make_emulator(users={"sk-a": 100.0, "sk-b": 100.0}, midjourney_runs=1)
    (theirs,) = emu.midjourney_run_ids("sk-a")
    async with ave.Session("sk-b", base_url=emu.base_url, time_scale=SCALE) as s:
        outcomes = await collect(s, [{"run_id": theirs, "index": 0}, LINE])
    by_index = {o.index: o for o in outcomes}
    assert by_index[0].status == "failed"
    assert "403" in (by_index[0].error or "")
    assert by_index[1].status == "completed"


def test_unreachable_reasons_are_words():
    """Why no connection was made reads as words, not as asyncio's or a class's wording."""
    assert _unreachable(aiohttp.ConnectionTimeoutError("x")) == "connect timed out"
    refused = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)"),
    )
    assert _unreachable(refused) == "connection refused"
    unknown = aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None),
        OSError("Name or service not known"),
    )
    assert _unreachable(unknown) == "name or service not known"
