"""1,000 jobs in flight: the total request rate (submits + polls) the server sees, and 429s.

The emulator's per-route submit limit is lifted (and ours raised to match) so that 1,000 jobs
get in flight within a minute; the overall 25 requests per second stays, and that is the limit
under test. Ours against the docs loop, same settings.
"""

from __future__ import annotations

import asyncio
import bisect

from _common import KEY, emulator, payloads, ratio_line, requests, run_docs, table

import aiovideoextend as ave

JOBS = 1000
SCALE = 10.0
LIMITS = {"generate": None}


def _max_per_second(times: list[float], scale: float) -> int:
    """Most arrivals in any window of one emulated second (sliding)."""
    times = sorted(times)
    width = 1.0 / scale
    return max(
        (bisect.bisect_right(times, t + width - 1e-12) - i for i, t in enumerate(times)), default=0
    )


async def _ours(seconds: float) -> tuple[int, int, int]:
    async with emulator(SCALE, limits=LIMITS, run_seconds=(600.0, 900.0)) as emu:
        limits = ave.Limits(generate=ave.Budget(100_000, 60.0))
        async with ave.Session(
            KEY,
            base_url=emu.base_url,
            time_scale=SCALE,
            limiter=ave.RateLimiter(limits.scaled(SCALE)),
        ) as s:

            async def one(request: ave.SourceExtend | ave.MidjourneyExtend) -> None:
                job = await s.submit(request)
                await job.result(timeout=None)

            tasks = [asyncio.create_task(one(r)) for r in requests(emu, "generate", JOBS)]
            await asyncio.sleep(seconds)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        stats = emu.stats
        times = [t for t, _ in stats.arrivals]
        return _max_per_second(times, SCALE), sum(stats.rate_limited.values()), len(emu.ledger)


async def _docs(seconds: float) -> tuple[int, int, int]:
    async with emulator(SCALE, limits=LIMITS, run_seconds=(600.0, 900.0)) as emu:
        task = asyncio.create_task(
            run_docs(emu, "generate", JOBS, SCALE, bodies=payloads(emu, "generate", JOBS))
        )
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        stats = emu.stats
        times = [t for t, _ in stats.arrivals]
        return _max_per_second(times, SCALE), sum(stats.rate_limited.values()), len(emu.ledger)


def main(quick: bool) -> list[str]:
    # 1,000 submits at 25/s take 40 emulated seconds; then all are in flight and polled.
    seconds = (60.0 if quick else 150.0) / SCALE
    rows = []
    results = {}
    for name, run in (("ours", _ours), ("docs", _docs)):
        peak, limited, submitted = asyncio.run(run(seconds))
        results[name] = (peak, limited)
        rows.append([name, submitted, peak, limited])
    out = table(
        f"{JOBS:,} jobs in flight: requests per emulated second (time scale {SCALE:g}, "
        f"{seconds * SCALE:g} emulated s)",
        ["client", "jobs submitted", "peak requests in any 1 s", "429s"],
        rows,
    )
    return [
        out,
        ratio_line(
            "rate",
            [
                ("ours_peak/25", results["ours"][0] / 25, "<= 1"),
                ("ours_429s", float(results["ours"][1]), "0"),
                ("docs_peak/25", results["docs"][0] / 25, "ref"),
            ],
        ),
    ]


if __name__ == "__main__":
    print("\n".join(main(quick=True)))
