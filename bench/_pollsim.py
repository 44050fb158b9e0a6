"""A discrete-time simulation of the poll plan: seconds, not minutes, to compare spacings.

It runs the client's pure plan (``aiovideoextend._plan``) over job lengths drawn by the
emulator's own distributions (``aiovideoextend.testing._lengths``), with the scheduler's rules
around it (scouts, learning when a poll finds a job ended, bringing the waiting jobs forward once
a model is learned), and the docs loop (a poll every 5 s from the submit) beside it. No network,
no rate limit, no latency: ``python bench/_pollsim.py`` prints the table of ratios.
"""

from __future__ import annotations

import heapq
import math
import random
import statistics
import sys
from pathlib import Path
from typing import Any

import attrs

sys.path.insert(0, str(Path(__file__).parent))

from aiovideoextend import PollPolicy
from aiovideoextend._plan import Durations, JobPlan, earliest_end, next_delay
from aiovideoextend.testing._lengths import draw

DOCS_INTERVAL = 5.0

#: the job-length profiles the polling benchmark runs: emulator options, flow and models
PROFILES: dict[str, dict[str, Any]] = {
    "uniform": {"job_lengths": "uniform", "flow": "generate", "n": 100},
    "narrow": {"job_lengths": "narrow", "flow": "generate", "n": 100},
    "lognormal": {"job_lengths": "lognormal", "flow": "generate", "n": 100},
    "stand-in": {
        "job_lengths": "uniform",
        "queue_seconds": (2.0, 15.0),
        "run_seconds": (45.0, 150.0),
        "eta": False,
        "flow": "extend",
        "n": 120,
    },
    "bimodal": {
        "job_lengths": "bimodal",
        "flow": "generate",
        "n": 100,
        "models": ("veo3-1-fast-extend", "veo3-1-extend"),
    },
}
UNIMODAL = ("uniform", "narrow", "lognormal", "stand-in")
#: submits per minute the documented limit allows, per flow
RATE = {"extend": 20, "generate": 50}


@attrs.define
class SimResult:
    polls: float  # per job
    lag: float  # median, s
    lag_mean: float
    lag_p90: float


def lengths(profile: str, seed: int) -> list[tuple[str, float, float]]:
    """(model, birth, length) of every job of ``profile``, births paced by the flow's limit."""
    p = PROFILES[profile]
    rng = random.Random(f"{seed}:jobs")
    models = p.get("models", ("m",))
    count = RATE[p["flow"]]
    out = []
    for k in range(p["n"]):
        model = models[k % len(models)]
        q, r = draw(
            p["job_lengths"],
            model,
            p.get("queue_seconds", (5.0, 60.0)),
            p.get("run_seconds", (60.0, 240.0)),
            rng,
        )
        out.append((model, (k // count) * 60.0 + (k % count) * 0.05, q + r))
    return out


def docs(jobs: list[tuple[str, float, float]]) -> SimResult:
    polls = [max(1, math.ceil(t / DOCS_INTERVAL)) for _, _, t in jobs]
    lags = [n * DOCS_INTERVAL - t for n, (_, _, t) in zip(polls, jobs, strict=True)]
    return _result(polls, lags)


def oracle_min(jobs: list[tuple[str, float, float]]) -> SimResult:
    """A poller that knows each model's shortest job in advance, then polls every 5 s."""
    low: dict[str, float] = {}
    for model, _, t in jobs:
        low[model] = min(low.get(model, math.inf), t)
    polls = [1 + math.ceil((t - low[m]) / DOCS_INTERVAL) for m, _, t in jobs]
    lags = [low[m] + (n - 1) * DOCS_INTERVAL - t for n, (m, _, t) in zip(polls, jobs, strict=True)]
    return _result(polls, lags)


def ours(
    jobs: list[tuple[str, float, float]], seed: int, policy: PollPolicy | None = None
) -> SimResult:
    policy = policy or PollPolicy()
    rng = random.Random(f"{seed}:client")
    learned: dict[str, Durations] = {}
    plans: list[JobPlan] = []
    seen_running: list[float] = []
    due: list[float] = []
    heap: list[tuple[float, int]] = []
    polls = [0] * len(jobs)
    lags = [0.0] * len(jobs)
    done = [False] * len(jobs)
    births = sorted(range(len(jobs)), key=lambda i: jobs[i][1])
    nb = 0
    while nb < len(births) or heap:
        if nb < len(births) and (not heap or jobs[births[nb]][1] <= heap[0][0]):
            i = births[nb]
            nb += 1
            model, born, _ = jobs[i]
            learned.setdefault(model, Durations()).born(born)
            while len(plans) <= i:
                plans.append(JobPlan(0.0, None, None, 0.0))
                seen_running.append(0.0)
                due.append(0.0)
            plans[i] = JobPlan(born, born, None, policy.first)
            seen_running[i] = born
            at = born + next_delay(
                plans[i], None, policy=policy, learned=learned[model], now=born, rand=rng.random
            )
            due[i] = at
            heapq.heappush(heap, (at, i))
            continue
        now, i = heapq.heappop(heap)
        if now != due[i]:
            continue
        model, born, length = jobs[i]
        polls[i] += 1
        durations = learned[model]
        if born + length <= now:
            lags[i] = now - born - length
            done[i] = True
            if durations.ended((seen_running[i] + now) / 2 - born):
                for j, plan in enumerate(plans):
                    if jobs[j][0] != model or done[j] or due[j] <= now + policy.interval:
                        continue
                    end = earliest_end(plan.born, durations, now)
                    if end is not None and end <= now and due[j] > now:
                        due[j] = now + policy.interval * rng.random()
                        heapq.heappush(heap, (due[j], j))
            continue
        seen_running[i] = now
        at = now + next_delay(
            plans[i], None, policy=policy, learned=durations, now=now, rand=rng.random
        )
        due[i] = at
        heapq.heappush(heap, (at, i))
    return _result(polls, lags)


def _result(polls: list[int], lags: list[float]) -> SimResult:
    q = statistics.quantiles(lags, n=10)
    return SimResult(statistics.mean(polls), statistics.median(lags), statistics.mean(lags), q[-1])


@attrs.frozen
class SimRow:
    """One profile's figures, averaged over seeds: ours and two floors, against the docs loop."""

    profile: str
    polls: float  # ours / docs
    lag: float  # median lag, ours / docs
    mean_ours: float  # mean lag, s
    mean_docs: float
    oracle: float  # polls of a 5-s loop from each model's shortest job / docs
    oracle_mixed: float  # the same knowing only the shortest job of all models
    floor: float  # one poll per job (knowing every job's end) / docs


def table(seeds: range = range(1, 21)) -> list[SimRow]:
    rows = []
    for profile in PROFILES:
        r = []
        for seed in seeds:
            jobs = lengths(profile, seed)
            o, d, m = ours(jobs, seed), docs(jobs), oracle_min(jobs)
            mixed = oracle_min([("all", b, t) for _, b, t in jobs])
            r.append((o.polls / d.polls, o.lag / d.lag, o.lag_mean, d.lag_mean, m.polls / d.polls))
            r[-1] += (mixed.polls / d.polls, 1 / d.polls)
        rows.append(SimRow(profile, *(statistics.mean(c) for c in zip(*r, strict=True))))
    return rows


if __name__ == "__main__":
    print("profile    polls/docs lag/docs mean-lag-ours docs  oracle-min  mixed-min  floor")
    for row in table():
        print(f"{row.profile:<11}" + "  ".join(f"{v:8.3f}" for v in attrs.astuple(row)[1:]))
