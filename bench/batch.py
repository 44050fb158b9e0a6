"""The journaled batch at the submit limit: ``run_batch`` and the ``batch`` command.

400 source-video lines against a strict sliding window at 60x with jittered latency. Submit
throughput over the documented limit (the definition of the ``limits`` benchmark) for:

* ``run_batch`` without a journal (the baseline: nothing to write, nothing to reconcile);
* ``run_batch`` with a SQLite journal (an intent committed right before each submit leaves);
* ``aiovideoextend batch`` in a subprocess (journal, results file, progress display).

Until 0.1 a journal made a model's submits go one at a time (0.87-0.93 of the limit).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from _common import KEY, SOURCE_MODEL, SOURCE_URL, emulator, outcome, ratio_line, table

import aiovideoextend as ave
from aiovideoextend.batch import run_batch

SCALE = 60.0


def _requests(n: int) -> list[ave.SourceExtend]:
    return [ave.SourceExtend(SOURCE_MODEL, f"line {i}", video_url=SOURCE_URL) for i in range(n)]


async def _library(n: int, *, journal: bool) -> tuple[float, int]:
    async with emulator(SCALE, limit_algorithm="sliding", failure_rate=0.0, nsfw_rate=0.0) as emu:
        async with ave.Session(KEY, base_url=emu.base_url, time_scale=SCALE) as session:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "bench.journal" if journal else None
                async for _ in run_batch(session, _requests(n), journal=path):
                    pass
        result = outcome(emu, "ours", "generate", n, SCALE, waited=True)
        return result.throughput, result.rate_limited


async def _command(n: int) -> tuple[float, int]:
    async with emulator(SCALE, limit_algorithm="sliding", failure_rate=0.0, nsfw_rate=0.0) as emu:
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "jobs.jsonl"
            manifest.write_text(
                "".join(
                    json.dumps({"model": r.model, "prompt": r.prompt, "video_url": SOURCE_URL})
                    + "\n"
                    for r in _requests(n)
                )
            )
            env = {**os.environ, "NANOGPT_BASE_URL": emu.base_url, "NANOGPT_API_KEY": KEY}
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "aiovideoextend",
                "batch",
                str(manifest),
                "--time-scale",
                str(SCALE),
                "--json",
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            code = await proc.wait()
            if code != 0:
                raise RuntimeError(f"the batch command exited {code}")
        result = outcome(emu, "ours", "generate", n, SCALE, waited=True)
        return result.throughput, result.rate_limited


def main(quick: bool) -> list[str]:
    n = 200 if quick else 400
    cases = [
        ("run_batch, no journal", lambda: _library(n, journal=False)),
        ("run_batch, journal", lambda: _library(n, journal=True)),
        ("batch command, journal", lambda: _command(n)),
    ]
    rows = []
    figures: dict[str, tuple[float, int]] = {}
    for name, run in cases:
        figures[name] = asyncio.run(run())
        rows.append([name, n, figures[name][0], figures[name][1]])
    out = [
        table(
            f"Journaled batch: submit throughput / limit ({n} source lines, sliding window, 60x)",
            ["client", "lines", "throughput / limit", "429s"],
            rows,
        )
    ]
    out.append(
        ratio_line(
            "batch",
            [
                ("command_journal", figures["batch command, journal"][0], ">= 0.97"),
                ("run_batch_journal", figures["run_batch, journal"][0], ">= 0.97"),
                ("run_batch_no_journal", figures["run_batch, no journal"][0], "ref"),
                ("429s", float(sum(f[1] for f in figures.values())), "0"),
            ],
        )
    )
    return out


if __name__ == "__main__":
    print("\n".join(main(quick="--quick" in sys.argv)))
