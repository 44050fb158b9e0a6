"""Downloads: atomic, named from the run id, skipped when complete, retried when transient."""

from __future__ import annotations

import os
import stat
from typing import TYPE_CHECKING

import aiohttp
import pytest
from aiohttp import web

from aiovideoextend._download import download_video, video_filename
from aiovideoextend.exceptions import DownloadError

if TYPE_CHECKING:
    from pathlib import Path

BODY = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40


@pytest.fixture
async def server():
    """A file server whose first N answers can be made to fail."""
    state = {"fail": 0, "status": 503, "hits": 0, "short": False}

    async def video(request: web.Request) -> web.StreamResponse:
        state["hits"] += 1
        if state["fail"] > 0:
            state["fail"] -= 1
            return web.Response(status=state["status"])
        if state["short"]:
            state["short"] = False
            response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
            await response.prepare(request)
            await response.write(BODY[:100])
            # A connection dropped mid-body, as a flaky CDN does.
            assert request.transport is not None
            request.transport.close()
            return response
        return web.Response(body=BODY, content_type="video/mp4")

    app = web.Application()
    app.router.add_get("/files/{name}", video)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as http:
        yield http, f"http://{host}:{port}/files/x.mp4", state
    await runner.cleanup()


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".part"))


async def test_downloads_into_a_directory_under_the_run_id(server, tmp_path):
    """The file is <run_id>.mp4 in the directory, complete, with no temporary file left."""
    http, url, _ = server
    path = await download_video(http, url, tmp_path / "videos", run_id="vid_abc")
    assert path == tmp_path / "videos" / "vid_abc.mp4"
    assert path.read_bytes() == BODY
    assert _leftovers(path.parent) == []


async def test_existing_file_is_skipped(server, tmp_path):
    """A finished file is not downloaded again unless overwrite is asked for."""
    http, url, state = server
    (tmp_path / "vid_abc.mp4").write_bytes(b"done")
    path = await download_video(http, url, tmp_path, run_id="vid_abc")
    assert path.read_bytes() == b"done"
    assert state["hits"] == 0
    await download_video(http, url, tmp_path, run_id="vid_abc", overwrite=True)
    assert path.read_bytes() == BODY


async def test_transient_errors_are_retried(server, tmp_path):
    """503s and a body cut short are retried; the result is complete."""
    http, url, state = server
    state["fail"] = 2
    path = await download_video(http, url, tmp_path, run_id="r1", backoff=0.001)
    assert path.read_bytes() == BODY
    state["short"] = True
    path = await download_video(http, url, tmp_path, run_id="r2", backoff=0.001)
    assert path.read_bytes() == BODY
    assert _leftovers(tmp_path) == []


async def test_permanent_errors_raise_and_clean_up(server, tmp_path):
    """A 404 is not retried; retries run out on a dead server; no partial file remains."""
    http, url, state = server
    state["fail"], state["status"] = 1, 404
    with pytest.raises(DownloadError, match="404"):
        await download_video(http, url, tmp_path, run_id="r", backoff=0.001)
    assert state["hits"] == 1
    state["fail"], state["status"] = 10, 500
    with pytest.raises(DownloadError, match="500"):
        await download_video(http, url, tmp_path, run_id="r", retries=2, backoff=0.001)
    assert not (tmp_path / "r.mp4").exists()
    assert _leftovers(tmp_path) == []


async def test_size_limit(server, tmp_path):
    """A video over max_bytes is refused and not kept."""
    http, url, _ = server
    with pytest.raises(DownloadError, match="limit"):
        await download_video(http, url, tmp_path, run_id="r", max_bytes=100)
    assert list(tmp_path.iterdir()) == []


async def test_only_http_urls(tmp_path):
    """file:, data: and relative URLs are refused before any request."""
    async with aiohttp.ClientSession() as http:
        for url in ("file:///etc/passwd", "data:video/mp4;base64,AAAA", "/files/x.mp4"):
            with pytest.raises(DownloadError, match="http"):
                await download_video(http, url, tmp_path, run_id="r")


def test_names_never_come_from_the_server():
    """Path tricks in the run id or the URL cannot leave the directory."""
    assert video_filename("../../etc/passwd") == "etc_passwd.mp4"
    assert video_filename("vid_a", "https://x/evil/../../a.webm") == "vid_a.webm"
    assert video_filename("vid_a", "https://x/a.exe") == "vid_a.mp4"
    with pytest.raises(DownloadError):
        video_filename("../..")


async def test_connection_refused_is_retried_then_raises(tmp_path):
    """A server that is not there fails after the retries with a DownloadError."""
    async with aiohttp.ClientSession() as http:
        with pytest.raises(DownloadError, match="failed"):
            await download_video(
                http, "http://127.0.0.1:9/x.mp4", tmp_path, run_id="r", retries=1, backoff=0.001
            )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
async def test_video_follows_the_umask(server, tmp_path, umask):
    """A downloaded video is created like any file a tool writes: 0666 less the umask (0644
    under 022), not 0600; the rename into place keeps the write atomic."""
    http, url, _ = server
    old = os.umask(umask)
    try:
        path = await download_video(http, url, tmp_path / "videos", run_id="vid_mode")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert path.read_bytes() == BODY
    assert _leftovers(tmp_path / "videos") == []
