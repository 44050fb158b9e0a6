"""The API key stays secret; the client refuses to leak it over plain http, redirects or logs.

A distinctive key is used everywhere, and every place it could leak is searched for it: log
records at DEBUG (ours and aiohttp's), reprs, events, exception messages, args, bodies and
chains, the batch journal and results files, downloaded files, and the CLI's output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

import aiovideoextend as ave
from aiovideoextend.batch import run_batch
from aiovideoextend.testing import Emulator, Fault

from .conftest import FAST, SCALE

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

KEY = "sk-nano-S3CRET-7f3a9c1e5b2d"
MP4_URL = "https://example.com/source.mp4"


def leaks(*texts: object) -> list[str]:
    """The texts (str, bytes, anything with a repr) that contain the key."""
    found = []
    for text in texts:
        blob = text if isinstance(text, str | bytes) else repr(text)
        needle = KEY.encode() if isinstance(blob, bytes) else KEY
        if needle in blob:
            found.append(repr(blob)[:200])
    return found


def error_texts(error: BaseException) -> list[object]:
    """Everything a user or a log handler could print of an error, its causes included."""
    texts: list[object] = []
    seen: BaseException | None = error
    while seen is not None:
        texts += [str(seen), repr(seen), seen.args, vars(seen), pickle.dumps(seen)]
        seen = seen.__cause__ or seen.__context__
    return texts


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record at DEBUG, from the root logger down (aiohttp's included)."""
    caplog.set_level(logging.DEBUG)
    for name in ("aiovideoextend", "aiohttp", "aiohttp.client", "aiohttp.server", "asyncio"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def log_texts(caplog: pytest.LogCaptureFixture) -> list[object]:
    return [caplog.text, *((r.getMessage(), r.args, r.exc_text) for r in caplog.records)]


@pytest.fixture
async def secret_emu(make_emulator: Callable[..., Any]) -> Emulator:
    emu: Emulator = await make_emulator(users={KEY: 1000.0}, failure_rate=0.2)
    return emu


def secret_session(emu: Emulator | str, **options: Any) -> ave.Session:
    base_url = emu if isinstance(emu, str) else emu.base_url
    options.setdefault("limiter", ave.RateLimiter(ave.Limits().scaled(SCALE)))
    return ave.Session(KEY, base_url=base_url, time_scale=SCALE, **options)


# --- the key in the library's own output ------------------------------------------------------


async def test_key_absent_everywhere_in_a_faulty_run(secret_emu: Emulator, debug_logs, tmp_path):
    """Both flows under faults, a batch with journal, results and downloads: no trace of the key."""
    emu = secret_emu
    for route, kind in (
        ("generate", "ambiguous"),
        ("extend", "malformed_json"),
        ("status", "server_error"),
        ("status", "bad_gateway_html"),
        ("*", "rate_limit"),
        ("status", "unknown_status"),
    ):
        emu.faults.add(Fault(route, kind, count=2))
    events: list[ave.Event] = []
    errors: list[BaseException] = []
    texts: list[object] = []
    async with secret_session(emu, on_event=events.append) as session:
        texts += [session, session._transport, session._limiter]
        mj = emu.midjourney_run_ids(KEY)
        jobs = [
            await session.extend_midjourney(mj[0], index=1),
            await session.extend("veo3-1-extend", "p", video_url=MP4_URL),
        ]
        for job in jobs:
            try:
                result = await job
            except ave.VideoExtendError as exc:
                errors.append(exc)
            else:
                texts += [result, await job.download(tmp_path / "one")]
            texts += [job, job.last_update, job.submission]
        for bad in (session.status("vid_nosuch"), session.extend_midjourney(mj[0], index=9)):
            with pytest.raises(ave.VideoExtendError) as info:
                await bad
            errors.append(info.value)
        journal = tmp_path / "batch.journal"
        requests = [ave.SourceExtend("veo3-1-extend", f"b{n}", video_url=MP4_URL) for n in range(4)]
        outcomes = [
            o
            async for o in run_batch(
                session, requests, journal=journal, download=tmp_path / "videos"
            )
        ]
        texts += outcomes
    texts += events + [e for error in errors for e in error_texts(error)]
    texts += [p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()]
    assert len(list(tmp_path.rglob("*.mp4"))) >= 2
    assert any(p.name.startswith("batch.journal") for p in tmp_path.iterdir())
    assert leaks(*texts, *log_texts(debug_logs)) == []


@pytest.fixture
async def echo_server() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A hostile or buggy API that echoes the key it received everywhere it can."""
    config: dict[str, Any] = {"status": 400, "html": False}

    async def echo(request: web.Request) -> web.Response:
        key = request.headers.get("x-api-key", "")
        headers = {"X-Request-ID": f"req-{key}", "Retry-After": "0"}
        if config["html"]:
            html = f"<html><body>bad gateway for {key}</body></html>"
            return web.Response(status=config["status"], text=html, headers=headers)
        body = {"error": {"message": f"bad key {key}", "type": key, "code": key}, "key": key}
        return web.json_response(body, status=config["status"], headers=headers)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}/api", config
    await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "html", "error"),
    [
        (400, False, ave.BadRequestError),
        (401, False, ave.AuthenticationError),
        (429, False, ave.RateLimitError),
        (500, False, ave.ServerError),
        (502, True, ave.ServerError),
        (200, True, ave.ResponseDecodeError),
    ],
)
@pytest.mark.parametrize("call", ["status", "submit"])
async def test_a_server_echoing_the_key_does_not_make_us_leak_it(  # noqa: PLR0917
    echo_server, debug_logs, status, html, error, call
):
    """Messages, codes, request ids, bodies and logs of every error are scrubbed of the key."""
    url, config = echo_server
    config.update(status=status, html=html)
    async with secret_session(url, retries=ave.Retries(attempts=2)) as session:
        if call == "status":
            attempt = session.status("vid_a")
        else:
            attempt = session.extend("veo3-1-extend", "p", video_url=MP4_URL)
        with pytest.raises(ave.VideoExtendError) as info:
            await attempt
    if call == "status":
        assert isinstance(info.value, error)
    assert leaks(*error_texts(info.value), *log_texts(debug_logs)) == []


# --- where the key may be sent ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com/api",
        "http://127.0.0.1.nip.io/api",
        "http://localhost.example.com/api",
        "http://10.0.0.1/api",
        "http://0.0.0.0/api",
        "ws://127.0.0.1/api",
        "file:///etc/passwd",
    ],
)
def test_plain_http_to_a_remote_host_is_refused_from_arguments_and_environment(url, monkeypatch):
    """The key is never put on plain http to a non-loopback host, however the URL arrives."""
    with pytest.raises(ave.InvalidRequestError):
        ave.Session(KEY, base_url=url)
    monkeypatch.setenv("NANOGPT_BASE_URL", url)
    with pytest.raises(ave.InvalidRequestError):
        ave.Session(KEY)


def test_cli_refuses_plain_http_to_a_remote_host(tmp_path, monkeypatch, capsys):
    """The command exits 2 with the reason; nothing is sent."""
    from aiovideoextend.cli import main

    (tmp_path / "m.jsonl").write_text('{"run_id": "vid_a", "index": 0}\n')
    monkeypatch.setenv("NANOGPT_API_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    code = main(["batch", "m.jsonl", "--base-url", "http://api.example.com/api"])
    captured = capsys.readouterr()
    assert code == 2
    assert "plain http" in captured.err
    assert leaks(captured.out, captured.err) == []
    assert not list(tmp_path.glob("m.jsonl.journal*"))


@pytest.fixture
async def redirect_pair() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    """App A answers everything with 307 to app B on another port; B records what it sees."""
    seen: list[dict[str, str]] = []

    async def target(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"data": []})

    app_b = web.Application()
    app_b.router.add_route("*", "/{tail:.*}", target)
    runner_b = web.AppRunner(app_b)
    await runner_b.setup()
    await web.TCPSite(runner_b, "127.0.0.1", 0).start()
    b_host, b_port = runner_b.addresses[0][:2]

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://{b_host}:{b_port}{request.path_qs}")

    app_a = web.Application()
    app_a.router.add_route("*", "/{tail:.*}", redirect)
    runner_a = web.AppRunner(app_a)
    await runner_a.setup()
    await web.TCPSite(runner_a, "127.0.0.1", 0).start()
    a_host, a_port = runner_a.addresses[0][:2]
    yield f"http://{a_host}:{a_port}/api", seen
    await runner_a.cleanup()
    await runner_b.cleanup()


async def test_api_calls_do_not_follow_redirects(redirect_pair):
    """A 307 on any API route is an error; the other host never sees the x-api-key header."""
    url, seen = redirect_pair
    async with secret_session(url, retries=ave.Retries(attempts=1)) as session:
        calls = [
            session.status("vid_a"),
            session.recover(),
            session.extend("veo3-1-extend", "p", video_url=MP4_URL),
            session.extend_midjourney("vid_a", 1),
        ]
        for call in calls:
            with pytest.raises(ave.APIError) as info:
                await call
            assert info.value.status_code == 307
    assert seen == []


async def test_downloads_follow_redirects_without_the_key(redirect_pair, tmp_path):
    """A CDN redirect on a download is followed, and the key is not among its headers."""
    url, seen = redirect_pair
    async with secret_session(url) as session:
        result = ave.VideoResult(run_id="vid_a", video_url=f"{url}/files/vid_a.mp4")
        await session.download(result, tmp_path)
    assert len(seen) == 1
    assert "x-api-key" not in {name.lower() for name in seen[0]}
    assert leaks(*seen[0].values()) == []


# --- downloads -------------------------------------------------------------------------------


@pytest.fixture
async def file_server() -> AsyncIterator[str]:
    """Serves 64 KiB of video under any name, with a hostile Content-Disposition."""

    async def video(request: web.Request) -> web.Response:
        headers = {"Content-Disposition": 'attachment; filename="../../evil.sh"'}
        return web.Response(body=b"\0" * 65536, content_type="video/mp4", headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", video)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_download_names_come_from_the_run_id_only(file_server, tmp_path, emu):
    """Content-Disposition and path tricks in the URL cannot choose the file name or directory."""
    async with secret_session(emu) as session:
        url = f"{file_server}/a/..%2F..%2Fevil.mp4?name=../../x"
        path = await session.download(ave.VideoResult("vid_a", url), tmp_path / "out")
    assert path == tmp_path / "out" / "vid_a.mp4"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "vid_a.mp4"]


@pytest.mark.parametrize("url", ["file:///etc/passwd", "data:video/mp4;base64,AAAA", "ftp://x/a"])
async def test_session_downloads_only_http(url, tmp_path, emu):
    """A video URL of another scheme is refused before anything is fetched or written."""
    async with secret_session(emu) as session:
        with pytest.raises(ave.DownloadError, match="http"):
            await session.download(ave.VideoResult("vid_a", url), tmp_path)
    assert list(tmp_path.iterdir()) == []


async def test_download_size_cap(file_server, tmp_path, emu):
    """max_bytes refuses a video that is too large and leaves nothing behind."""
    async with secret_session(emu) as session:
        result = ave.VideoResult("vid_a", f"{file_server}/v.mp4")
        with pytest.raises(ave.DownloadError, match="limit"):
            await session.download(result, tmp_path, max_bytes=1000)
        assert list(tmp_path.iterdir()) == []
        assert (await session.download(result, tmp_path, max_bytes=65536)).stat().st_size == 65536


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (not trusted by anything)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
async def tls_emu(certificate) -> AsyncIterator[Emulator]:
    """The emulator's app served over https with the self-signed certificate."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    emu = Emulator(users={KEY: 100.0}, time_scale=SCALE, failure_rate=0.0, **FAST)
    runner = web.AppRunner(emu.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    host, port = runner.addresses[0][:2]
    emu._base_url = f"https://{host}:{port}/api"
    yield emu
    await runner.cleanup()


async def test_tls_is_verified_by_default(tls_emu: Emulator):
    """An untrusted certificate fails the connection, so the key is never sent to it."""
    async with secret_session(tls_emu, retries=ave.Retries(attempts=1)) as session:
        assert session._transport is not None
        assert session._transport.ssl is True
        with pytest.raises(ave.TransportError, match="cannot connect"):
            await session.recover()
    assert tls_emu.stats.requests["recover"] == 0


async def test_verify_ssl_false_warns_and_is_what_the_transport_uses(tls_emu: Emulator):
    """verify_ssl=False must be asked for, warns, and only then does the request go through."""
    with pytest.warns(UserWarning, match="TLS certificate verification is off"):
        session = secret_session(tls_emu, verify_ssl=False)
    async with session:
        assert session._transport is not None
        assert session._transport.ssl is False
        assert [run.model for run in await session.recover()] == ["midjourney-video"] * 2
    assert tls_emu.stats.requests["recover"] == 1


# --- the command line ------------------------------------------------------------------------


async def cli(emu: Emulator, cwd: Path, *args: str) -> tuple[int, str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NANOGPT_")},
        "NANOGPT_API_KEY": KEY,
        "NANOGPT_BASE_URL": emu.base_url,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aiovideoextend",
        *args,
        "--time-scale",
        str(SCALE),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, (out + err).decode()


async def test_cli_output_and_every_file_it_writes_are_free_of_the_key(
    secret_emu: Emulator, tmp_path
):
    """batch (plain and --json, with downloads and failures), extend, status: grep it all."""
    emu = secret_emu
    emu.faults.add(Fault("*", "server_error", rate=0.1))
    mj = emu.midjourney_run_ids(KEY)
    lines = [f'{{"run_id": "{mj[0]}", "index": {n}}}' for n in range(3)]
    lines += [
        f'{{"model": "veo3-1-extend", "prompt": "p{n}", "video_url": "{MP4_URL}"}}'
        for n in range(4)
    ]
    lines.append('{"run_id": "vid_nosuch", "index": 0}')
    lines.append("{broken")
    (tmp_path / "jobs.jsonl").write_text("\n".join(lines) + "\n")
    outputs = []
    for extra in ([], ["--json"]):
        code, output = await cli(
            emu, tmp_path, "batch", "jobs.jsonl", "--download", "videos", *extra
        )
        assert code in (1, 2), output
        outputs.append(output)
    code, output = await cli(emu, tmp_path, "extend", "--run-id", mj[1], "--index", "0", "--json")
    outputs.append(output)
    run_id = next(e.run_id for e in emu.ledger if e.payload.get("runId") == mj[1])
    for command in (["status", run_id], ["status", "vid_nosuch"], ["download", run_id, "dl"]):
        outputs.append((await cli(emu, tmp_path, *command))[1])  # noqa: PERF401
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"jobs.jsonl.journal", "jobs.jsonl.results.jsonl"} <= {p.name for p in files}
    assert len([p for p in files if p.suffix == ".mp4"]) >= 2
    assert leaks(*outputs, *(p.read_bytes() for p in files)) == []
