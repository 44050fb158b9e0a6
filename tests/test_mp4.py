"""mp4_duration: the movie length from ``moov/mvhd``, or None for anything it cannot trust."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiovideoextend._mp4 import _MAX_BOXES, mp4_duration

from .mp4util import TIMESCALE, box, large_box, make_mp4, mvhd

FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2")


def duration(data: bytes) -> float | None:
    return mp4_duration(io.BytesIO(data))


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("moov_last", [False, True])
def test_make_mp4_round_trip(version: int, moov_last: bool) -> None:
    """A file from make_mp4 reads back as its length, for both mvhd versions and box orders."""
    data = make_mp4(12.5, version=version, payload=b"\x00" * 1000, moov_last=moov_last)
    assert duration(data) == 12.5


@settings(max_examples=200, deadline=None)
@given(
    seconds=st.integers(min_value=0, max_value=10**6).map(lambda ms: ms / TIMESCALE),
    version=st.sampled_from([0, 1]),
    payload=st.binary(max_size=64),
    moov_last=st.booleans(),
)
def test_round_trip_property(seconds: float, version: int, payload: bytes, moov_last: bool) -> None:
    """Any length survives make_mp4 -> mp4_duration exactly (millisecond precision)."""
    data = make_mp4(seconds, version=version, payload=payload, moov_last=moov_last)
    assert duration(data) == seconds


def test_version_1_reads_64_bit_duration() -> None:
    """A version-1 mvhd with a duration past 2**32 ticks is read in full."""
    ticks = 2**33 + 7
    assert duration(FTYP + box(b"moov", mvhd(ticks, 90_000, version=1))) == ticks / 90_000


def test_other_timescale() -> None:
    """The duration is divided by the file's own timescale, not a fixed one."""
    assert duration(FTYP + box(b"moov", mvhd(900, 600))) == 1.5


def test_largesize_boxes() -> None:
    """64-bit ``largesize`` headers (size == 1) are followed, at top level and inside moov."""
    mdat = large_box(b"mdat", b"\x01" * 100)
    moov = large_box(b"moov", large_box(b"free", b"xx") + mvhd(30_000))
    assert duration(FTYP + mdat + moov) == 30.0


def test_size_zero_box_runs_to_end_of_file() -> None:
    """A box with size 0 extends to the end of the file (a moov written last)."""
    moov_payload = mvhd(7_000)
    moov = struct.pack(">I4s", 0, b"moov") + moov_payload
    assert duration(FTYP + box(b"mdat", b"x" * 10) + moov) == 7.0


def test_size_zero_mdat_hides_a_later_moov() -> None:
    """A size-0 mdat swallows the rest of the file, so nothing after it is a box."""
    data = FTYP + struct.pack(">I4s", 0, b"mdat") + box(b"moov", mvhd(1000))
    assert duration(data) is None


def test_boxes_before_mvhd_are_skipped() -> None:
    """Other boxes inside moov (free, trak...) before mvhd are skipped."""
    moov = box(b"moov", box(b"free", b"....") + box(b"trak", box(b"tkhd")) + mvhd(4_000))
    assert duration(FTYP + moov) == 4.0


def test_quicktime_without_ftyp() -> None:
    """Old QuickTime files start straight with wide/mdat/moov: still read."""
    data = box(b"wide") + box(b"mdat", b"\x00" * 32) + box(b"moov", mvhd(2_500))
    assert duration(data) == 2.5


def test_zero_duration_is_zero() -> None:
    """A header that says 0 s (fragmented MP4s do) is 0.0, not None."""
    assert duration(make_mp4(0)) == 0.0


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00" * 7, id="shorter-than-a-header"),
        pytest.param(FTYP, id="no-moov"),
        pytest.param(FTYP + box(b"moov"), id="empty-moov"),
        pytest.param(FTYP + box(b"moov", box(b"trak")), id="moov-without-mvhd"),
        pytest.param(b"<!DOCTYPE html><html>not a video</html>", id="html"),
        pytest.param(bytes(range(256)) * 4, id="garbage"),
        pytest.param(make_mp4(10)[:60], id="truncated-in-mvhd-duration"),
        pytest.param(make_mp4(10, moov_last=True)[:70], id="truncated-moov-last"),
        pytest.param(make_mp4(10)[:44], id="truncated-in-mvhd-header"),
        pytest.param(FTYP + struct.pack(">I4s", 4, b"moov") + mvhd(1), id="size-below-header"),
        pytest.param(
            FTYP + struct.pack(">I4sQ", 1, b"moov", 8) + mvhd(1), id="largesize-too-small"
        ),
        pytest.param(FTYP + struct.pack(">I4s", 1, b"moov") + b"\x00\x00", id="largesize-cut-off"),
        pytest.param(
            FTYP + box(b"moov", box(b"mvhd", b"\x00\x00\x00\x00" + b"\x00" * 8)), id="mvhd-v0-short"
        ),
        pytest.param(
            FTYP + box(b"moov", box(b"mvhd", b"\x01\x00\x00\x00" + b"\x00" * 20)),
            id="mvhd-v1-short",
        ),
        pytest.param(FTYP + box(b"moov", box(b"mvhd")), id="mvhd-empty"),
        pytest.param(
            FTYP + box(b"moov", box(b"mvhd", b"\x02" + b"\x00" * 99)), id="mvhd-version-2"
        ),
        pytest.param(FTYP + box(b"moov", mvhd(5_000, 0)), id="zero-timescale-v0"),
        pytest.param(FTYP + box(b"moov", mvhd(5_000, 0, version=1)), id="zero-timescale-v1"),
        pytest.param(FTYP + box(b"moov", mvhd(0xFFFF_FFFF)), id="unknown-duration-v0"),
        pytest.param(
            FTYP + box(b"moov", mvhd(0xFFFF_FFFF_FFFF_FFFF, version=1)), id="unknown-duration-v1"
        ),
    ],
)
def test_unreadable_files_give_none(data: bytes) -> None:
    """Truncated, garbage or meaningless headers give None instead of a wrong length."""
    assert duration(data) is None


def test_short_mvhd_does_not_read_the_next_box() -> None:
    """An mvhd box too short for its fields is rejected, even when bytes follow it in moov."""
    short = box(b"mvhd", b"\x00\x00\x00\x00" + b"\x00" * 4)
    following = box(b"free", struct.pack(">IIII", 0, 0, 1000, 3000) + b"\x00" * 80)
    assert duration(FTYP + box(b"moov", short + following)) is None


def test_truncated_after_the_duration_still_reads() -> None:
    """A file cut after mvhd's duration field (a partial download) still gives its length."""
    assert duration(make_mp4(10, payload=b"x" * 50)[:80]) == 10.0


def test_box_count_is_bounded() -> None:
    """A file of countless tiny boxes is given up on rather than walked for ever."""
    data = box(b"free") * (_MAX_BOXES + 1) + box(b"moov", mvhd(1000))
    assert duration(data) is None


def test_reads_from_any_position() -> None:
    """The file position before the call does not matter."""
    f = io.BytesIO(make_mp4(3))
    f.seek(17)
    assert mp4_duration(f) == 3.0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    """Any bytes give a finite, non-negative float or None, never an exception."""
    result = duration(data)
    assert result is None or 0 <= result < float("inf")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.binary(max_size=16))
def test_corrupted_tail_never_raises(cut: int, tail: bytes) -> None:
    """A real header cut anywhere and followed by junk never raises."""
    data = make_mp4(42, moov_last=True)
    result = duration(data[: len(data) - cut] + tail)
    assert result is None or result >= 0
