"""100,000 jobs in flight in one process: memory per job (tracemalloc) and event-loop lag.

Jobs are adopted as if just submitted (the submit path is the limits benchmark's business) and
each has a task awaiting it, as a user's ``gather`` would. The static status server runs in
another process, so its memory is not counted.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import tracemalloc

from _common import ratio_line, table
from _server import static_server

import aiovideoextend as ave

JOBS = 100_000
SCALE = 10.0  # 25 polls per emulated second = 250 real polls per second


async def _lag_probe(stop: asyncio.Event, lags: list[float], tick: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(tick)
        lags.append(loop.time() - start - tick)


async def _run(seconds: float) -> dict[str, float]:
    with static_server() as base:
        async with ave.Session("k", base_url=f"{base}/api", time_scale=SCALE) as s:
            await s.status("warm-up")  # connection pool, lazy imports, limiter registry
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            jobs = [
                s._adopt(ave.Submission(f"vid_{i:08d}", "wan-wavespeed-25-extend"))
                for i in range(JOBS)
            ]
            waiters = [asyncio.create_task(job.result(timeout=None)) for job in jobs]
            await asyncio.sleep(0.05)  # every waiter is parked, every job is in the heap
            per_job = (tracemalloc.get_traced_memory()[0] - before) / JOBS
            tracemalloc.stop()
            stop = asyncio.Event()
            lags: list[float] = []
            probe = asyncio.create_task(_lag_probe(stop, lags))
            polls_before = time.perf_counter()
            await asyncio.sleep(seconds)
            stop.set()
            await probe
            elapsed = time.perf_counter() - polls_before
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
    lags.sort()
    return {
        "per_job": per_job,
        "p50": statistics.median(lags),
        "p99": lags[int(0.99 * (len(lags) - 1))],
        "max": lags[-1],
        "seconds": elapsed,
    }


def main(quick: bool) -> list[str]:
    r = asyncio.run(_run(3.0 if quick else 10.0))
    out = table(
        f"{JOBS:,} jobs in flight in one process (time scale {SCALE:g}, polls at the 25/s cap)",
        ["metric", "value", "target"],
        [
            ["extra memory per job (KB, tracemalloc)", r["per_job"] / 1024, "<= 4"],
            ["event-loop lag p50 (ms)", r["p50"] * 1e3, ""],
            ["event-loop lag p99 (ms)", r["p99"] * 1e3, "<= 20"],
            ["event-loop lag max (ms)", r["max"] * 1e3, ""],
        ],
    )
    return [
        out,
        ratio_line(
            "memory",
            [
                ("KB_per_job/4KB", r["per_job"] / 1024 / 4, "<= 1"),
                ("lag_p99/20ms", r["p99"] / 0.02, "<= 1"),
            ],
        ),
    ]


if __name__ == "__main__":
    print("\n".join(main(quick=True)))
