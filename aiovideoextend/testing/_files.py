"""The bytes behind a completed job's video URL: a small, deterministic fake MP4."""

from __future__ import annotations

import hashlib
import struct

#: ``ftyp`` box: ISO base media, compatible with isom/iso2/mp41, so sniffers say "video/mp4".
_FTYP = struct.pack(">I4s4sI", 28, b"ftyp", b"isom", 0x200) + b"isomiso2mp41"
_TIMESCALE = 1000


def _moov(seconds: float) -> bytes:
    """A ``moov`` box holding only ``mvhd`` (version 0), enough for a duration reader."""
    mvhd = struct.pack(
        ">4xIIII4s2s10x36s24sI",
        0,  # creation time
        0,  # modification time
        _TIMESCALE,
        round(seconds * _TIMESCALE),
        b"\x00\x01\x00\x00",  # rate 1.0
        b"\x01\x00",  # volume 1.0
        struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000),  # unity matrix
        b"",
        2,  # next track id
    )
    mvhd_box = struct.pack(">I4s", 8 + len(mvhd), b"mvhd") + mvhd
    return struct.pack(">I4s", 8 + len(mvhd_box), b"moov") + mvhd_box


def fake_mp4(run_id: str, size: int, seconds: float = 5.0) -> bytes:
    """About ``size`` bytes that parse as an MP4 of ``seconds`` seconds and vary per run."""
    head = _FTYP + _moov(seconds)
    payload_size = max(0, size - len(head) - 8)
    blocks = -(-payload_size // 32)
    digests = (hashlib.sha256(f"{run_id}:{n}".encode()).digest() for n in range(blocks))
    payload = b"".join(digests)[:payload_size]
    return head + struct.pack(">I4s", 8 + payload_size, b"mdat") + payload
