"""Arguments of every kind through the public Session API, fuzzed with Hypothesis.

tests/test_requests.py checks each validation rule of the request classes, and
tests/test_converter.py fuzzes server bodies at the parser. Here whole calls go through
``Session`` against the emulator: the answer is a job, the server's own verdict on what the
client cannot know (an unknown model or run), or an :class:`InvalidRequestError` raised before
any byte left, never a ``TypeError``, ``AttributeError`` or ``KeyError``.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import aiovideoextend as ave
from aiovideoextend._requests import OPTION_FIELDS
from aiovideoextend.testing import Emulator

from .conftest import SCALE
from .mp4util import make_mp4

KEY = "sk-nano-fuzz-0001"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
SOURCES = ("video_url", "video_file", "video_data_url", "video_attachment_id", "video")
#: what the server may still refuse on a request the client found valid (it cannot know them)
SERVER_ONLY = {"model_not_found", "not_found", "forbidden", "video_input_not_supported"}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.floats(),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.text(max_size=12),
    st.sampled_from(["", "   ", "\x00", "\u2028", "x" * 5000]),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = junk) -> Any:
    """``good`` three times in four, else ``bad`` (one_of would weigh every branch of junk)."""
    return st.integers(0, 3).flatmap(lambda n: good if n else bad)


@pytest.fixture
async def fuzz(make_emulator: Any, tmp_path: Path) -> tuple[Emulator, Any, Path]:
    """The emulator, a maker of sessions (one per example, one limiter for all), an MP4 file."""
    emu: Emulator = await make_emulator(users={KEY: 1e9})
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(make_mp4(6.0, payload=b"x" * 200))
    limiter = ave.RateLimiter(ave.Limits().scaled(SCALE))

    def make() -> ave.Session:
        return ave.Session(
            KEY,
            base_url=emu.base_url,
            time_scale=SCALE,
            limiter=limiter,
            retries=ave.Retries(attempts=2),
        )

    return emu, make, clip


def seen(emu: Emulator) -> tuple[int, int]:
    return sum(emu.stats.requests.values()), len(emu.ledger)


async def outcome_of(emu: Emulator, call: Any) -> str:
    """Run ``call`` and check the rules; returns what happened, for the statistics."""
    before = seen(emu)
    invalid: ave.InvalidRequestError | None = None
    refused: ave.APIError | None = None
    job = None
    try:
        job = await call
    except ave.InvalidRequestError as exc:
        invalid = exc
    except ave.APIError as exc:
        refused = exc
    if invalid is not None:
        assert seen(emu) == before, f"sent although invalid: {invalid}"
        assert str(invalid)
        return "invalid"
    if refused is not None:
        assert 400 <= refused.status_code < 500, refused
        assert refused.code in SERVER_ONLY, refused
        return f"server said {refused.code}"
    if isinstance(job, ave.Job):
        assert job.run_id in {entry.run_id for entry in emu.ledger}
        return "submitted"
    return "answered"


valid_source = st.sampled_from(
    [
        {"video_url": "https://example.com/a.mp4"},
        {"video_file": "CLIP"},
        {"video_data_url": "DATA"},
        {"video_attachment_id": "att_1"},
        {"video": "https://example.com/a.mp4"},
    ]
)
any_sources = st.dictionaries(
    st.sampled_from(SOURCES),
    st.one_of(
        junk,
        st.sampled_from(
            [
                "https://example.com/a.mp4",
                "HTTP://EXAMPLE.COM/a.mp4",
                "http://[::1]:8/a.mp4",
                "ftp://example.com/a.mp4",
                "https://",
                "https://exa mple.com/a.mp4",
                "http://[::1/a.mp4",
                "data:video/mp4;base64,AAAA",
                "data:image/png;base64,AAAA",
                "data:video/mp4;base64,!!!!",
                "data:video/mp4;base64,",
                "att_123",
                "/nonexistent/clip.mp4",
                "CLIP",
                "DATA",
            ]
        ),
    ),
    max_size=2,
)
valid_options = st.fixed_dictionaries(
    {},
    optional={
        "duration": st.sampled_from([5, "5", 10]),
        "resolution": st.just("720p"),
        "seed": st.integers(0, 2**31),
        "negative_prompt": st.text(max_size=10),
        "aspect_ratio": st.just("16:9"),
        "generate_audio": st.booleans(),
    },
)
any_options = st.dictionaries(
    st.sampled_from(sorted(OPTION_FIELDS)) | st.text(min_size=1, max_size=8),
    st.one_of(junk, st.sampled_from([5, "5", "720p", "16:9", True, 7, "fast"])),
    max_size=3,
)


@FUZZ
@given(
    model=mostly(st.sampled_from(sorted(ave.EXTEND_MODELS)), junk | st.just("midjourney-video")),
    prompt=mostly(st.text(min_size=1, max_size=30).filter(str.strip)),
    source=mostly(valid_source, any_sources),
    extra=mostly(valid_options, any_options),
)
async def test_extend_arguments(fuzz, model, prompt, source, extra):
    """Any arguments to Session.extend: a job, the server's verdict, or invalid before I/O."""
    emu, make, clip = fuzz
    mp4 = base64.b64encode(clip.read_bytes()).decode()
    named = {"CLIP": clip, "DATA": f"data:video/mp4;base64,{mp4}"}
    source = {k: named.get(v, v) if isinstance(v, str) else v for k, v in source.items()}
    async with make() as session:
        event(await outcome_of(emu, session.extend(model, prompt, **source, **extra)))


@FUZZ
@given(
    run=mostly(st.integers(0, 1), junk | st.just("vid_nosuchrun")),
    index=mostly(st.integers(-1, 4)),
)
async def test_extend_midjourney_arguments(fuzz, run, index):
    """Any run id and index: a job, 404/403 from the server, or invalid before any I/O."""
    emu, make, _ = fuzz
    if isinstance(run, int) and not isinstance(run, bool) and run in (0, 1):
        run = emu.midjourney_run_ids(KEY)[run]
    async with make() as session:
        event(await outcome_of(emu, session.extend_midjourney(run, index)))


@FUZZ
@given(
    run=st.one_of(junk, st.just("vid_nosuchrun"), st.just(0)),
    model=st.one_of(st.none(), junk),
    limit=st.one_of(st.integers(-3, 60), junk),
)
async def test_status_job_and_recover_arguments(fuzz, run, model, limit):
    """status(), job() and recover() take any arguments without a stray TypeError."""
    emu, make, _ = fuzz
    if run == 0 and not isinstance(run, bool):
        run = emu.midjourney_run_ids(KEY)[0]
    async with make() as session:
        event(await outcome_of(emu, session.status(run)))
        before = seen(emu)
        try:
            job = session.job(run, model)
        except ave.InvalidRequestError:
            assert seen(emu) == before
        else:
            assert job.run_id == run
        model = model if model is None or isinstance(model, str) else None
        await outcome_of(emu, session.recover(model=model, limit=limit))


@FUZZ
@given(
    key=st.one_of(st.just(KEY), junk),
    base_url=st.one_of(st.none(), st.just("http://127.0.0.1:1/api"), junk),
    time_scale=st.one_of(st.just(1.0), junk),
)
def test_session_constructor_arguments(key, base_url, time_scale):
    """The constructor makes a Session or raises InvalidRequestError, whatever it is given."""
    try:
        session = ave.Session(key, base_url=base_url, time_scale=time_scale)
    except ave.InvalidRequestError as exc:
        problem: str | None = str(exc)
    else:
        problem = None
        assert isinstance(time_scale, float | int)
        assert math.isfinite(session.time_scale)
        assert session.time_scale > 0
        assert isinstance(key, str)
    assert problem is None or problem
