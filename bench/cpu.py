"""Client CPU per status poll: our whole poll path against a bare aiohttp GET + json() loop.

The server runs in another process, so ``time.process_time`` here counts the client only. Both
clients keep the same number of polls in flight for the same wall time; CPU / polls served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
from _common import ratio_line, table
from _server import served, static_server

import aiovideoextend as ave

CONCURRENCY = 50


async def _measure(base: str, seconds: float, body: Any) -> tuple[float, int]:
    before = await served(base)
    cpu = time.process_time()
    await body(seconds)
    cpu = time.process_time() - cpu
    return cpu, await served(base) - before


async def _bare(base: str, seconds: float) -> None:
    url = f"{base}/api/video/status"

    async def loop(http: aiohttp.ClientSession, i: int) -> None:
        while True:
            async with http.get(url, params={"requestId": f"vid_{i}"}) as resp:
                await resp.json()

    async with aiohttp.ClientSession(headers={"x-api-key": "k"}) as http:
        tasks = [asyncio.create_task(loop(http, i)) for i in range(CONCURRENCY)]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _ours(base: str, seconds: float) -> None:
    # A huge time scale makes every poll wait and every limit window ~0: the poll path runs flat
    # out, scheduler, limiter, converter and all, as with thousands of real jobs.
    async with ave.Session("k", base_url=f"{base}/api", time_scale=1e6) as s:
        jobs = [s.job(f"vid_{i}", "wan-wavespeed-25-extend") for i in range(CONCURRENCY)]
        tasks = [asyncio.create_task(job.result(timeout=None)) for job in jobs]
        await asyncio.sleep(seconds)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)


async def _run(seconds: float, rounds: int) -> dict[str, tuple[float, int]]:
    totals = {"bare aiohttp": (0.0, 0), "ours": (0.0, 0)}
    with static_server() as base:
        for _ in range(rounds):  # interleaved, so that a noisy neighbour hits both alike
            for name, body in (("bare aiohttp", _bare), ("ours", _ours)):
                cpu, n = await _measure(base, seconds, lambda s, b=body: b(base, s))
                totals[name] = (totals[name][0] + cpu, totals[name][1] + n)
    return totals


def main(quick: bool) -> list[str]:
    totals = asyncio.run(_run(1.0 if quick else 3.0, 2 if quick else 3))
    rows = [[name, n, cpu, cpu / n * 1e6, n / cpu] for name, (cpu, n) in totals.items()]
    per = {name: cpu / n for name, (cpu, n) in totals.items()}
    ratio = per["ours"] / per["bare aiohttp"]
    out = table(
        f"CPU per status poll ({CONCURRENCY} in flight, server in another process)",
        ["client", "polls", "CPU s", "CPU us/poll", "polls per CPU s"],
        rows,
    )
    return [out, ratio_line("cpu", [("cpu_per_poll/bare", ratio, "<= 1.15")])]


if __name__ == "__main__":
    print("\n".join(main(quick=True)))
