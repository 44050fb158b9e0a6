"""run_batch's in-flight bound against the emulator, with several models' lanes at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiovideoextend as ave
from aiovideoextend.batch import run_batch

if TYPE_CHECKING:
    from pathlib import Path

    from aiovideoextend.testing import Emulator

MODELS = ("veo3-1-extend", "veo3-1-fast-extend", "wan-wavespeed-25-extend")


def most_at_once(emu: Emulator) -> int:
    """The most jobs that ran on the server at one time (created, not ended)."""
    edges = sorted(
        edge
        for entry in emu.ledger
        for edge in ((entry.created_at, 1), (emu.job(entry.run_id).run_end, -1))
    )
    running = peak = 0
    for _time, step in edges:  # an end sorts before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


async def test_lanes_of_several_models_keep_max_in_flight(session, emu: Emulator, tmp_path: Path):
    """Each model's lane looks up the runs that exist before its first submit (one recover
    call each, with a journal): while one waits for that answer, another must not take the
    same free slot. max_in_flight=1 means one job at a time across all models."""
    requests = [
        ave.SourceExtend(model, f"prompt {n}", video_url=f"https://example.com/{n}.mp4")
        for n in range(2)
        for model in MODELS
    ]
    outcomes = [
        o async for o in run_batch(session, requests, journal=tmp_path / "j", max_in_flight=1)
    ]
    assert sorted(o.status for o in outcomes) == ["completed"] * len(requests)
    assert len(emu.ledger) == len(requests)
    assert most_at_once(emu) == 1
