"""Build small synthetic MP4/MOV files: just the boxes that ``mp4_duration`` reads."""

from __future__ import annotations

import struct

__all__ = ["TIMESCALE", "box", "large_box", "make_mp4", "mvhd"]

#: Ticks per second written into ``mvhd`` by :func:`make_mp4`.
TIMESCALE = 1000


def box(kind: bytes, payload: bytes = b"") -> bytes:
    """A box with a 32-bit size header."""
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def large_box(kind: bytes, payload: bytes = b"") -> bytes:
    """A box with ``size == 1`` and a 64-bit ``largesize`` after the type."""
    return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload


def mvhd(duration: int, timescale: int = TIMESCALE, *, version: int = 0) -> bytes:
    """A complete ``mvhd`` box (version 0: 32-bit times, version 1: 64-bit times)."""
    if version == 1:
        times = struct.pack(">QQIQ", 0, 0, timescale, duration)
    else:
        times = struct.pack(">IIII", 0, 0, timescale, duration)
    # rate, volume, reserved, unity matrix, pre_defined, next_track_ID: never read, but real.
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    rest = struct.pack(">IH10x", 0x10000, 0x100) + matrix + bytes(24) + struct.pack(">I", 2)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + rest)


def make_mp4(
    seconds: float, *, version: int = 0, payload: bytes = b"", moov_last: bool = False
) -> bytes:
    """A minimal MP4 of ``seconds`` (ftyp, moov/mvhd, and an mdat holding ``payload``).

    ``moov_last`` puts the movie header after the media data, as encoders that do not
    "fast start" do.
    """
    ftyp = box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")
    moov = box(b"moov", mvhd(round(seconds * TIMESCALE), version=version))
    mdat = box(b"mdat", payload)
    return ftyp + (mdat + moov if moov_last else moov + mdat)
