"""Shared pieces of the benchmarks: emulator set-up, the three clients, metrics and tables.

Clients compared on the same emulator settings:

* ``ours``: ``aiovideoextend.Session`` with its defaults;
* ``docs``: the loop NanoGPT's docs show, in plain aiohttp: submit everything, poll each job every
  5 s, and after a 429 sleep ``Retry-After`` and try again;
* ``naive``: the same loop with ``aiolimiter.AsyncLimiter(count, period)`` around the submits.

All durations reported are *emulated* seconds (loop seconds times the time scale).
"""

from __future__ import annotations

import asyncio
import math
import statistics
from collections.abc import Sequence
from typing import Any

import aiohttp
import aiolimiter
import attrs

import aiovideoextend as ave
from aiovideoextend.testing import Emulator

KEY = "sk-bench-0001"
#: documented limit per flow: (route, budget name in ave.Limits, count, period)
FLOWS = {
    "extend": ("extend", 20, 60.0),
    "generate": ("generate", 50, 60.0),
}
SOURCE_MODEL = "wan-wavespeed-25-extend"
SOURCE_URL = "https://example.com/source.mp4"
#: the spacing of the docs loop's polls, emulated seconds
DOCS_INTERVAL = 5.0
#: jittered server latency, emulated seconds (divided by the time scale for the emulator)
LATENCY = (0.1, 0.5)
#: jobs whose polls an `Outcome` keeps, for the figures
SAMPLED = 40
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELED", "CANCELLED", "ERROR"})


def emulator(scale: float, **options: Any) -> Emulator:
    lo, hi = options.pop("latency", LATENCY)
    defaults: dict[str, Any] = {
        "users": {KEY: 1e9},
        "time_scale": scale,
        "latency": (lo / scale, hi / scale),
        "midjourney_runs": 4,
    }
    return Emulator(**{**defaults, **options})


def payloads(
    emu: Emulator, flow: str, n: int, models: Sequence[str] = (SOURCE_MODEL,)
) -> list[dict[str, Any]]:
    """Wire bodies of ``n`` submits of ``flow`` (the same ones every client sends); the
    source-extend flow takes ``models`` in turn."""
    if flow == "extend":
        parents = emu.midjourney_run_ids(KEY)
        return [
            {
                "runId": parents[i % len(parents)],
                "taskId": parents[i % len(parents)],
                "index": i % 4,
            }
            for i in range(n)
        ]
    return [
        {"model": models[i % len(models)], "prompt": f"shot {i}", "videoUrl": SOURCE_URL}
        for i in range(n)
    ]


def requests(
    emu: Emulator, flow: str, n: int, models: Sequence[str] = (SOURCE_MODEL,)
) -> list[ave.MidjourneyExtend | ave.SourceExtend]:
    bodies = payloads(emu, flow, n, models)
    if flow == "extend":
        return [ave.MidjourneyExtend(p["runId"], p["index"]) for p in bodies]
    return [ave.SourceExtend(p["model"], p["prompt"], video_url=SOURCE_URL) for p in bodies]


# --- the clients --------------------------------------------------------------------------------


def session(emu: Emulator, scale: float, **options: Any) -> ave.Session:
    limits = options.pop("limits", ave.Limits())
    return ave.Session(
        KEY,
        base_url=emu.base_url,
        time_scale=scale,
        limiter=ave.RateLimiter(limits.scaled(scale)),
        **options,
    )


async def run_ours(
    emu: Emulator,
    flow: str,
    n: int,
    scale: float,
    *,
    wait: bool = True,
    models: Sequence[str] = (SOURCE_MODEL,),
) -> None:
    async def one(s: ave.Session, request: ave.MidjourneyExtend | ave.SourceExtend) -> None:
        job = await s.submit(request)
        if wait:
            await job.result()

    async with session(emu, scale) as s:
        await asyncio.gather(
            *(one(s, r) for r in requests(emu, flow, n, models)), return_exceptions=True
        )


async def _retry_after(resp: aiohttp.ClientResponse) -> None:
    await resp.read()
    await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))


async def run_docs(
    emu: Emulator,
    flow: str,
    n: int,
    scale: float,
    *,
    wait: bool = True,
    limiter: aiolimiter.AsyncLimiter | None = None,
    bodies: Sequence[dict[str, Any]] | None = None,
    models: Sequence[str] = (SOURCE_MODEL,),
) -> None:
    """The documented loop (with ``limiter`` around submits: the naive baseline)."""
    route = "generate-video/extend" if flow == "extend" else "generate-video"
    base = emu.base_url
    interval = DOCS_INTERVAL / scale
    bodies = payloads(emu, flow, n, models) if bodies is None else bodies

    async def one(http: aiohttp.ClientSession, body: dict[str, Any]) -> None:
        while True:
            if limiter is not None:
                await limiter.acquire()
            async with http.post(f"{base}/{route}", json=body) as resp:
                if resp.status == 429:
                    await _retry_after(resp)
                    continue
                run_id = (await resp.json())["runId"]
                break
        if not wait:
            return
        await asyncio.sleep(interval)
        while True:
            async with http.get(f"{base}/video/status", params={"requestId": run_id}) as resp:
                if resp.status == 429:
                    await _retry_after(resp)
                    continue
                reply = await resp.json()
            status = (reply.get("data") or reply)["status"]
            if status.upper() in TERMINAL:
                return
            await asyncio.sleep(interval)

    async with aiohttp.ClientSession(headers={"x-api-key": KEY}) as http:
        await asyncio.gather(*(one(http, body) for body in bodies))


async def run_naive(emu: Emulator, flow: str, n: int, scale: float, **options: Any) -> None:
    """The docs loop (``options``: its own) with ``aiolimiter`` around the submits."""
    _, count, period = FLOWS[flow]
    limiter = aiolimiter.AsyncLimiter(count, period / scale)
    await run_docs(emu, flow, n, scale, limiter=limiter, **options)


CLIENTS = {"ours": run_ours, "docs": run_docs, "naive": run_naive}


# --- metrics ------------------------------------------------------------------------------------


@attrs.define
class Outcome:
    """What one client did against one emulator, in emulated seconds."""

    client: str
    n: int
    rate_limited: int
    throughput: float  # steady submit rate / documented rate
    first_window: bool  # the first min(n, count) submits were all admitted within one window
    polls_per_job: float = math.nan  # status requests sent (429s included) per job
    admitted_polls: float = math.nan  # status requests the server answered, per job
    #: polls per job of a 5-s loop that keeps its schedule (no 429, no CPU starvation), from
    #: the jobs' lengths: the docs loop's count when nothing slows it down
    ideal_polls: float = math.nan
    lag_median: float = math.nan
    lag_mean: float = math.nan
    lag_p90: float = math.nan
    makespan: float = math.nan
    lower_bound: float = math.nan
    wall: float = math.nan
    #: emulated seconds since the first admitted submit of every request that reached the
    #: limiter; the first ``SAMPLED`` jobs' lengths and status polls, in seconds since submit
    arrivals: list[float] = attrs.field(factory=list)
    lives: list[tuple[float, list[float]]] = attrs.field(factory=list)

    @property
    def makespan_ratio(self) -> float:
        return self.makespan / self.lower_bound


def outcome(
    emu: Emulator, client: str, flow: str, n: int, scale: float, *, waited: bool
) -> Outcome:
    route, count, period = FLOWS[flow]
    stats = emu.stats
    admitted = sorted(t for t, name in stats.admitted if name == route)
    t0 = admitted[0]
    times = [(t - t0) * scale for t in admitted]
    if n > count:
        # the documented limit allows count at once, then count per period
        ideal = (math.ceil(n / count) - 1) * period
        throughput = ideal / times[-1]
    else:
        throughput = math.nan
    first = times[: min(n, count)]
    result = Outcome(
        client=client,
        n=n,
        rate_limited=sum(stats.rate_limited.values()),
        throughput=throughput,
        first_window=first[-1] < period,
    )
    if not waited:
        return result
    runs = [entry.run_id for entry in emu.ledger]
    completed = stats.completed_at
    seen = stats.first_seen_terminal
    result.polls_per_job = stats.requests["status"] / n
    result.admitted_polls = sum(stats.polls[r] for r in runs) / n
    lags = [(seen[r] - completed[r]) * scale for r in runs]
    result.lag_median = statistics.median(lags)
    result.lag_mean = statistics.mean(lags)
    result.lag_p90 = statistics.quantiles(lags, n=10)[-1]
    result.arrivals = [(t - t0) * scale for t, _ in stats.arrivals]
    ideal = [max(1, math.ceil(length / DOCS_INTERVAL)) for length in _lengths(emu, runs)]
    result.ideal_polls = statistics.mean(ideal)
    result.lives = []
    for r in runs[:SAMPLED]:
        job = emu.job(r)
        length = job.run_end - job.created_at
        born = completed[r] - length / scale  # loop time of the submit
        result.lives.append((length, [(t - born) * scale for t in stats.poll_times[r]]))
    result.makespan = (max(seen[r] for r in runs) - t0) * scale
    # Physical bound: the k-th job created can at best be created at slot k of the documented
    # limit (count at once, then count per period), and then takes its own duration.
    durations = _lengths(emu, runs)
    result.lower_bound = max((k // count) * period + d for k, d in enumerate(durations))
    return result


def _lengths(emu: Emulator, runs: Sequence[str]) -> list[float]:
    return [emu.job(r).run_end - emu.job(r).created_at for r in runs]


# --- tables -------------------------------------------------------------------------------------


def fmt(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(header), *[[fmt(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [f"\n## {title}", ""]
    for i, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def ratio_line(name: str, pairs: Sequence[tuple[str, float, str]]) -> str:
    """``ratios <bench>: metric=value (target) ...``: the one line each benchmark ends with."""
    return f"ratios {name}: " + "  ".join(f"{k}={fmt(v)} [{t}]" for k, v, t in pairs)
