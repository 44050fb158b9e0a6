"""Manifests fuzzed: whatever a line holds, it becomes a request or that line's error.

tests/test_manifest.py covers each documented rule once; here Hypothesis writes whole files of
broken lines, wrong types, unknown fields, huge lines and undecodable bytes, and a batch over
such a file runs its good lines.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiovideoextend as ave
from aiovideoextend._manifest import ManifestLine, parse_manifest
from aiovideoextend.batch import run_batch
from aiovideoextend.testing import Emulator

FIELDS = [
    "run_id",
    "index",
    "model",
    "prompt",
    "video_url",
    "video_file",
    "video_data_url",
    "video_attachment_id",
    "video",
    "options",
    "duration",
    "resolution",
    "seed",
    "negative_prompt",
    "aspect_ratio",
    "conversation_uuid",
    "generate_audio",
    "mode",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["veo3-1-extend", "https://example.com/a.mp4", "vid_a", "5", "true"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
field_dicts = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(min_size=1, max_size=12), values, max_size=8
)
HUGE = "x" * (2 * 1024 * 1024)
#: a plausible line of each flow, so that valid requests are common too
good_lines = st.one_of(
    st.builds(
        lambda run, index: {"run_id": run, "index": index},
        st.sampled_from(["vid_a", "vid_b"]),
        st.integers(-1, 4),
    ),
    st.builds(
        lambda model, prompt, extra: {
            "model": model,
            "prompt": prompt,
            "video_url": "https://example.com/a.mp4",
            **extra,
        },
        st.sampled_from(sorted(ave.EXTEND_MODELS)),
        st.text(max_size=20),
        st.dictionaries(st.sampled_from(FIELDS[10:]), values, max_size=2),
    ),
)
jsonl_lines = st.one_of(
    good_lines.map(json.dumps),
    field_dicts.map(lambda d: json.dumps(d, default=str)),
    values.map(lambda v: json.dumps(v, default=str)),
    st.text(max_size=40).filter(lambda t: "\n" not in t),
    st.just('{"run_id": "vid_\u2028\x85", "index": 1}'),
    st.just('{"run_id": "vid_a", "index": '),
    st.just("\x00\x01{}"),
    st.just(""),
    st.just("# comment"),
)


@pytest.fixture
async def emu(make_emulator: Any) -> Emulator:
    emulator: Emulator = await make_emulator(users={"sk-nano-fuzz": 1e6})
    return emulator


async def test_a_batch_of_a_broken_manifest_runs_the_good_lines(emu: Emulator, tmp_path):
    """Every line gets one outcome: invalid lines are outcomes, the valid ones complete."""
    mj = emu.midjourney_run_ids("sk-nano-fuzz")
    rows = [
        json.dumps({"run_id": mj[0], "index": 0}),
        "{broken",
        json.dumps({"run_id": mj[0], "index": "1"}),
        json.dumps({"model": "veo3-1-extend", "prompt": "p", "video_url": "https://x/a.mp4"}),
        json.dumps({"model": "veo3-1-extend", "prompt": ["p"], "video_url": "https://x/a.mp4"}),
        json.dumps(
            {"model": "veo3-1-extend", "prompt": "q", "video_url": "https://x/b.mp4", "fps": 9}
        ),
        json.dumps(
            {"model": "veo3-1-extend", "prompt": "r", "video_url": "https://x/c.mp4", "seed": "7"}
        ),
        json.dumps(
            {"model": "veo3-1-extend", "prompt": "s", "video_url": "https://x/d.mp4", "options": []}
        ),
        json.dumps([1, 2]),
        json.dumps({"run_id": mj[1], "index": 3, "prompt": HUGE}),
        json.dumps({"run_id": mj[1], "index": 2}),
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(rows) + "\n")
    lines = parse_manifest(path)
    async with ave.Session(
        "sk-nano-fuzz",
        base_url=emu.base_url,
        time_scale=emu.time_scale,
        limiter=ave.RateLimiter(ave.Limits().scaled(emu.time_scale)),
    ) as session:
        outcomes = [o async for o in run_batch(session, lines, journal=tmp_path / "j")]
    by_line = {o.line: o.status for o in outcomes}
    assert len(outcomes) == len(rows)
    assert sorted(by_line) == list(range(1, len(rows) + 1))
    completed = {n for n, status in by_line.items() if status == "completed"}
    assert {1, 4, 11} <= completed
    assert {2, 3, 5, 6, 7, 8, 9} <= {n for n, s in by_line.items() if s == "invalid"}
    assert len(emu.ledger) == len(completed) + (by_line[10] == "failed")


def counted(text: str) -> list[int]:
    """The line numbers parse_manifest must report on (not blank, not comments).

    Only "\n" ends a line: U+2028 or U+0085 inside a JSON string must not shift the numbers.
    """
    return [
        n
        for n, raw in enumerate(text.split("\n"), start=1)
        if raw.strip() and not raw.strip().startswith("#")
    ]


def check(lines: list[ManifestLine], numbers: list[int] | None = None) -> None:
    for line in lines:
        assert (line.request is None) != (line.error is None), line
        if line.error is not None:
            assert line.error.strip()
            assert "Traceback" not in line.error
    if numbers is not None:
        assert [line.line for line in lines] == numbers


@settings(max_examples=150, deadline=None)
@given(st.lists(jsonl_lines, min_size=1, max_size=12))
def test_jsonl_every_line_is_a_request_or_its_error(lines):
    """Any JSONL file: one result per counted line, in order, or a ManifestError if none."""
    text = "\n".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.jsonl"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        numbers = counted(text)
        if not numbers:
            with pytest.raises(ave.ManifestError):
                parse_manifest(path)
            return
        check(parse_manifest(path), numbers)


csv_cells = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["veo3-1-extend", "https://example.com/a.mp4", "vid_a", "3", "yes", "5s"]),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.sampled_from(FIELDS) | st.text(min_size=1, max_size=6), min_size=1, max_size=6),
    st.lists(st.lists(csv_cells, max_size=8), min_size=1, max_size=8),
)
def test_csv_every_row_is_a_request_or_its_error(header, rows):
    """Any CSV with a usable header: each non-blank row is a request or that row's error."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.csv"
        path.write_text(buffer.getvalue(), encoding="utf-8", errors="surrogatepass")
        try:
            lines = parse_manifest(path)
        except ave.ManifestError as exc:
            problem = str(exc)
        else:
            check(lines)
            return
    # Only a broken header or a file without any row is the whole manifest's problem.
    assert "header" in problem or "no requests" in problem


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_huge_lines_and_bad_bytes_stay_on_their_line(tmp_path, suffix):
    """A 2 MB cell, a line of invalid UTF-8 and a NUL byte fail alone; the other lines parse."""
    path = tmp_path / f"m{suffix}"
    good = {"run_id": "vid_a", "index": 1}
    if suffix == ".jsonl":
        rows = [
            json.dumps(good).encode(),
            json.dumps({"model": "veo3-1-extend", "prompt": HUGE, "video_url": 7}).encode(),
            b'{"run_id": "vid_\xff\xfe", "index": 2}',
            b'{"run_id": "vid_\x00", "index": 3}',
            json.dumps({"run_id": "vid_b", "index": 0}).encode(),
        ]
    else:
        rows = [
            b"run_id,index,prompt",
            b"vid_a,1,",
            b"vid_a,2," + HUGE.encode(),
            b"vid_\xff\xfe,3,",
            b"vid_\x00,0,",
            b"vid_b,0,",
        ]
    path.write_bytes(b"\n".join(rows) + b"\n")
    lines = parse_manifest(path)
    check(lines)
    requests = [line.request for line in lines if line.request is not None]
    assert ave.MidjourneyExtend("vid_a", 1) in requests
    assert ave.MidjourneyExtend("vid_b", 0) in requests
    assert len(lines) == 5
    bad = [line for line in lines if line.error is not None]
    assert len(bad) >= 2
    assert all(len(line.error or "") < 1000 for line in bad)
