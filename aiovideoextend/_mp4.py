"""Read a video's duration from its MP4/MOV header (``moov/mvhd``), without ffmpeg."""

from __future__ import annotations

import struct
from typing import BinaryIO

__all__ = ["mp4_duration"]

_HEADER = struct.Struct(">I4s")
# A header that claims more boxes than this is garbage; stop rather than loop for long.
_MAX_BOXES = 10_000


def _boxes(f: BinaryIO, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, payload offset, payload end) of the boxes between start and end."""
    out: list[tuple[bytes, int, int]] = []
    pos = start
    while pos + 8 <= end and len(out) < _MAX_BOXES:
        # ``end`` never lies past the end of the file, so these reads are complete.
        f.seek(pos)
        size, kind = _HEADER.unpack(f.read(8))
        payload = pos + 8
        if size == 1:
            if pos + 16 > end:
                break
            size = struct.unpack(">Q", f.read(8))[0]
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < payload - pos:
            break
        out.append((kind, payload, min(pos + size, end)))
        pos += size
    return out


def mp4_duration(f: BinaryIO) -> float | None:
    """Seconds of the movie in an MP4/MOV file, or None when the header cannot be read."""
    f.seek(0, 2)
    size = f.tell()
    for kind, start, end in _boxes(f, 0, size):
        if kind != b"moov":
            continue
        for sub, sub_start, sub_end in _boxes(f, start, end):
            if sub != b"mvhd":
                continue
            f.seek(sub_start)
            version = f.read(4)[:1]
            # Version 1 has 64-bit creation/modification times and duration, version 0 32-bit.
            if version == b"\x01":
                fmt, skip, unknown = ">IQ", 16, 0xFFFF_FFFF_FFFF_FFFF
            elif version == b"\x00":
                fmt, skip, unknown = ">II", 8, 0xFFFF_FFFF
            else:
                return None
            need = skip + struct.calcsize(fmt)
            # A box too short for its fields would make us read the next box's bytes. (The
            # box end never lies past the end of the file, so the read below is complete.)
            if sub_end - sub_start < 4 + need:
                return None
            timescale, duration = struct.unpack(fmt, f.read(need)[skip:])
            # All ones means "duration unknown" (ISO/IEC 14496-12), not 136 years.
            if timescale == 0 or duration == unknown:
                return None
            return float(duration) / float(timescale)
    return None
