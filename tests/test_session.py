"""Session: lifecycle, both extend flows, validation before I/O, error mapping."""

from __future__ import annotations

import gc
import logging
import subprocess
import sys

import pytest

import aiovideoextend as ave
from aiovideoextend.testing import Emulator

from .conftest import SCALE

MP4_URL = "https://example.com/source.mp4"


async def test_both_flows_return_typed_results(emu: Emulator, session: ave.Session):
    """A Midjourney extend and a source-video extend both end in a VideoResult."""
    mj = emu.midjourney_run_ids(emu.api_key)[0]
    job = await session.extend_midjourney(mj, index=2)
    other = await session.extend("veo3-1-extend", "the camera keeps rising", video_url=MP4_URL)
    assert job.model == "midjourney-video"
    assert job.submission is not None
    assert job.submission.cost is not None
    assert job.submission.payment_source == "USD"
    assert job.submission.remaining_balance is not None
    result = await job
    assert isinstance(result, ave.VideoResult)
    assert result.run_id == job.run_id
    assert result.video_url.endswith(f"{job.run_id}.mp4")
    assert result.cost == emu.job(job.run_id).planned_cost
    assert (await other.result()).model == "veo3-1-extend"
    assert job.done()
    assert job.status is ave.JobStatus.COMPLETED


async def test_midjourney_body_carries_run_id_and_task_id(emu: Emulator, session: ave.Session):
    """The Midjourney extend sends the id as runId and taskId, plus index."""
    mj = emu.midjourney_run_ids(emu.api_key)[1]
    job = await session.extend_midjourney(mj, index=3)
    (entry,) = [e for e in emu.ledger if e.run_id == job.run_id]
    assert entry.payload == {"runId": mj, "taskId": mj, "index": 3}
    assert entry.route == "extend"


async def test_source_extend_sends_options_by_wire_name(emu: Emulator, session: ave.Session):
    """Optional fields go out under their documented wire names."""
    job = await session.extend(
        "wan-wavespeed-25-extend",
        "more",
        video="https://example.com/v.mp4",
        duration=5,
        resolution="720p",
        seed=7,
        negative_prompt="blur",
        aspect_ratio="16:9",
    )
    (entry,) = [e for e in emu.ledger if e.run_id == job.run_id]
    assert entry.payload == {
        "model": "wan-wavespeed-25-extend",
        "prompt": "more",
        "video": "https://example.com/v.mp4",
        "duration": 5,
        "resolution": "720p",
        "seed": 7,
        "negative_prompt": "blur",
        "aspect_ratio": "16:9",
    }


async def test_video_file_is_sent_as_a_data_url(emu: Emulator, session: ave.Session, tmp_path):
    """video_file is read, checked and sent as videoDataUrl."""
    from .mp4util import make_mp4

    path = tmp_path / "clip.mp4"
    path.write_bytes(make_mp4(8.0, payload=b"x" * 1000))
    job = await session.extend("veo3-1-extend", "go on", video_file=path)
    (entry,) = [e for e in emu.ledger if e.run_id == job.run_id]
    assert entry.payload["videoDataUrl"].startswith("data:video/mp4;base64,")
    await job


@pytest.mark.parametrize(
    ("call", "kwargs"),
    [
        ("extend_midjourney", {"run_id": "vid_x", "index": 4}),
        ("extend_midjourney", {"run_id": "vid_x", "index": True}),
        ("extend_midjourney", {"run_id": "", "index": 0}),
        ("extend", {"model": "veo3-1-extend", "prompt": "p"}),
        (
            "extend",
            {"model": "veo3-1-extend", "prompt": "p", "video_url": MP4_URL, "video": MP4_URL},
        ),
        ("extend", {"model": "wan-wavespeed-22-spicy-extend", "prompt": "p", "video": MP4_URL}),
        ("extend", {"model": "veo3-1-extend", "prompt": "p", "video_url": "ftp://x/y.mp4"}),
        ("extend", {"model": "veo3-1-extend", "prompt": "p", "video_url": MP4_URL, "fps": 3}),
        ("extend", {"model": "veo3-1-extend", "prompt": "", "video_url": MP4_URL}),
    ],
)
async def test_invalid_arguments_fail_before_any_request(emu, session, call, kwargs):
    """Invalid arguments raise InvalidRequestError and nothing reaches the server."""
    with pytest.raises(ave.InvalidRequestError):
        await getattr(session, call)(**kwargs)
    assert sum(emu.stats.requests.values()) == 0
    assert emu.ledger == []


async def test_too_long_local_file_is_rejected_before_sending(emu, session, tmp_path):
    """A local file longer than 120 s is refused by reading its MP4 header."""
    from .mp4util import make_mp4

    path = tmp_path / "long.mp4"
    path.write_bytes(make_mp4(121.0))
    with pytest.raises(ave.InvalidRequestError, match="120"):
        await session.extend("veo3-1-extend", "p", video_file=path)
    assert sum(emu.stats.requests.values()) == 0


async def test_key_and_base_url_from_environment(emu: Emulator, monkeypatch):
    """NANOGPT_API_KEY and NANOGPT_BASE_URL configure a Session with no arguments."""
    monkeypatch.setenv("NANOGPT_API_KEY", emu.api_key)
    monkeypatch.setenv("NANOGPT_BASE_URL", emu.base_url)
    async with ave.Session(time_scale=SCALE) as session:
        assert session.base_url == emu.base_url
        update = await session.status(emu.midjourney_run_ids(emu.api_key)[0])
    assert update.status is ave.JobStatus.COMPLETED


def test_missing_key_is_a_clear_error(monkeypatch):
    """Without a key the constructor says how to give one."""
    monkeypatch.delenv("NANOGPT_API_KEY", raising=False)
    with pytest.raises(ave.InvalidRequestError, match="NANOGPT_API_KEY"):
        ave.Session()


def test_default_base_url(monkeypatch):
    """The default server is NanoGPT's API."""
    monkeypatch.delenv("NANOGPT_BASE_URL", raising=False)
    assert ave.Session("k").base_url == "https://nano-gpt.com/api"


@pytest.mark.parametrize("url", ["http://example.com/api", "ftp://x/api", "nonsense"])
def test_key_never_goes_over_plain_http_to_a_remote_host(url):
    """Plain http is refused unless the host is loopback; other schemes too."""
    with pytest.raises(ave.InvalidRequestError):
        ave.Session("k", base_url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:1/api", "http://localhost/api", "http://[::1]/api"]
)
def test_plain_http_to_loopback_is_allowed(url):
    """Loopback hosts (the emulator) may use plain http."""
    assert ave.Session("k", base_url=url).base_url == url


def test_time_scale_must_be_positive():
    """A zero or negative time scale is refused."""
    with pytest.raises(ave.InvalidRequestError):
        ave.Session("k", time_scale=0)


def test_disabling_tls_verification_warns():
    """verify_ssl=False works only with a warning."""
    with pytest.warns(UserWarning, match="TLS"):
        ave.Session("k", verify_ssl=False)


async def test_repr_and_errors_never_show_the_key(make_session, emu: Emulator, caplog):
    """The key is in no repr, log line (DEBUG included) or error message."""
    caplog.set_level(logging.DEBUG, logger="aiovideoextend")
    secret = emu.api_key
    async with make_session(api_key="sk-nano-unknown-secret-key") as bad:
        assert "secret" not in repr(bad)
        with pytest.raises(ave.AuthenticationError) as info:
            await bad.extend("veo3-1-extend", "p", video_url=MP4_URL)
    assert "sk-nano-unknown-secret-key" not in str(info.value)
    assert "sk-nano-unknown-secret-key" not in repr(info.value.body)
    async with make_session() as good:
        assert secret not in repr(good)
        await (await good.extend("veo3-1-extend", "p", video_url=MP4_URL))
    assert secret not in caplog.text
    assert "sk-nano-unknown-secret-key" not in caplog.text


async def test_lifecycle_misuse_raises_runtime_error(make_session):
    """A session cannot be entered twice or used after close; aclose is idempotent."""
    session = make_session()
    async with session:
        with pytest.raises(RuntimeError, match="already open"):
            await session.__aenter__()
    await session.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await session.status("vid_x")
    with pytest.raises(RuntimeError, match="reopened"):
        async with session:
            pass


async def test_session_opens_lazily_without_context_manager(make_session, emu):
    """Using a session without 'async with' opens it; aclose closes it."""
    session = make_session()
    update = await session.status(emu.midjourney_run_ids(emu.api_key)[0])
    assert update.status is ave.JobStatus.COMPLETED
    await session.aclose()


async def test_dropping_an_open_session_warns(emu: Emulator):
    """A session garbage-collected while open emits a ResourceWarning."""
    session = ave.Session(emu.api_key, base_url=emu.base_url)
    async with session:
        http = session.http
    # A second session that is opened and dropped without closing:
    leaked = ave.Session(emu.api_key, base_url=emu.base_url)
    await leaked.status(emu.midjourney_run_ids(emu.api_key)[0])
    leaked_http = leaked.http
    del leaked
    with pytest.warns(ResourceWarning, match="unclosed"):
        gc.collect()
    await leaked_http.close()
    assert http.closed


async def test_user_supplied_http_session_is_not_closed(emu: Emulator):
    """A ClientSession passed in stays open after the Session closes."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        async with ave.Session(emu.api_key, base_url=emu.base_url, http_session=http) as s:
            await s.status(emu.midjourney_run_ids(emu.api_key)[0])
        assert not http.closed


@pytest.mark.parametrize("shape", ["guide", "simple", "oas", "mixed"])
async def test_error_shapes_map_to_typed_errors(make_emulator, shape):
    """401, 402, 403, 404 and 400 come out typed, with the message, in every error shape."""
    emu = await make_emulator(error_shape=shape, users={"sk-nano-a": 1000.0, "sk-nano-b": 0.01})
    async with ave.Session("sk-nano-a", base_url=emu.base_url, time_scale=SCALE) as a:
        with pytest.raises(ave.NotFoundError) as nf:
            await a.status("vid_doesnotexist")
        assert nf.value.status_code == 404
        assert nf.value.message
        with pytest.raises(ave.PermissionDeniedError):
            await a.status(emu.midjourney_run_ids("sk-nano-b")[0])
        with pytest.raises(ave.PermissionDeniedError):
            await a.extend_midjourney(emu.midjourney_run_ids("sk-nano-b")[0])
        with pytest.raises(ave.BadRequestError):
            await a.extend("no-such-model-extend", "p", video_url=MP4_URL)
    async with ave.Session("sk-nano-b", base_url=emu.base_url, time_scale=SCALE) as b:
        with pytest.raises(ave.InsufficientBalanceError) as poor:
            await b.extend("veo3-1-extend", "p", video_url=MP4_URL)
        assert poor.value.status_code == 402
        if shape != "oas":
            assert poor.value.required_balance is not None
    async with ave.Session("sk-nano-c", base_url=emu.base_url, time_scale=SCALE) as c:
        with pytest.raises(ave.AuthenticationError):
            await c.recover()


async def test_payload_too_large_is_typed(emu: Emulator, session: ave.Session):
    """A 413 from the server is a PayloadTooLargeError (the client's own check is 4 MiB)."""
    import base64

    from aiovideoextend._requests import MAX_DATA_URL_BYTES

    data = base64.b64encode(b"\0" * (MAX_DATA_URL_BYTES - 10)).decode()
    job = await session.extend("veo3-1-extend", "p", video_data_url=f"data:video/mp4;base64,{data}")
    assert job.run_id.startswith("vid_")


async def test_source_longer_than_120s_is_a_bad_request(emu: Emulator, session: ave.Session):
    """The server's 120 s rule for URLs comes back as BadRequestError."""
    emu.set_video_length("https://example.com/long.mp4", 150)
    with pytest.raises(ave.BadRequestError):
        await session.extend("veo3-1-extend", "p", video_url="https://example.com/long.mp4")
    assert emu.ledger == []


async def test_recover_lists_newest_first(emu: Emulator, session: ave.Session):
    """recover() returns typed runs, newest first, filtered by model."""
    first = await session.extend("veo3-1-extend", "a", video_url=MP4_URL)
    second = await session.extend("veo3-1-extend", "b", video_url=MP4_URL)
    runs = await session.recover(model="veo3-1-extend", limit=5)
    assert [r.run_id for r in runs] == [second.run_id, first.run_id]
    assert all(isinstance(r, ave.RecoveredRun) for r in runs)
    with pytest.raises(ave.InvalidRequestError):
        await session.recover(limit=51)


async def test_attach_to_existing_run(emu: Emulator, make_session):
    """session.job(run_id) resumes a run submitted by another session."""
    async with make_session() as first:
        run_id = (await first.extend("veo3-1-extend", "a", video_url=MP4_URL)).run_id
    async with make_session() as second:
        job = second.job(run_id)
        assert second.job(run_id) is job
        assert job.submission is None
        result = await job
    assert result.run_id == run_id
    assert result.model == "veo3-1-extend"


def test_the_core_does_not_load_the_redis_backend() -> None:
    """Importing the package and opening a Session without redis= loads no Redis module."""
    code = (
        "import asyncio, sys\n"
        "import aiovideoextend as ave\n"
        "async def main():\n"
        "    async with ave.Session('k', base_url='http://127.0.0.1:9/api') as s:\n"
        "        s.http\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if 'redis' in m))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
