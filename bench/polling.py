"""Whole flows at 60x: 429s, throughput, polls per job, detection lag and makespan.

Part 1 is the closing note's line: 200 jobs of each flow against a strict sliding window.
Part 2 compares status polls per job and the median detection lag with the docs loop on each
job-length profile (``_pollsim.PROFILES``: uniform, narrow, lognormal, the independent stand-in,
a bimodal mix of a fast and a slow model) when the server gives no hint (nested envelope), and
on the uniform one when it gives progress and time remaining (flat envelope). Part 3 is the same
plan in the pure simulation, over more seeds, beside the floors no plan can beat. The figures
go to ``docs/figures/`` (needs matplotlib: the ``bench`` extra).
"""

from __future__ import annotations

import statistics

import _pollsim
import attrs
from _cells import Cell, run_cells
from _common import Outcome, ratio_line, table

SCALE = 60.0
#: part 2's time scale: at 60x the docs loop of 100 jobs wants ~1,200 requests per real second,
#: more than a busy two-core machine gives it, and then it polls less than its own schedule
PROFILE_SCALE = 20.0
PART1 = (
    "flow",
    "client",
    "jobs",
    "429s",
    "throughput / limit",
    "status requests / job",
    "median lag s",
    "makespan s",
    "lower bound s",
    "makespan / bound",
)
PART2 = (
    "profile",
    "seed",
    "client",
    "status requests / job",
    "5-s loop on schedule / job",
    "median lag s",
    "mean lag s",
    "p90 lag s",
    "429s",
)
SIM = (
    "profile",
    "polls / docs",
    "median lag / docs",
    "mean lag s, ours",
    "mean lag s, docs",
    "polls of a 5-s loop from each model's shortest job / docs",
    "the same, knowing only the shortest of all / docs",
    "one poll per job / docs",
)


def _cells(profile: str, seeds: tuple[int, ...], envelope: str = "nested") -> list[Cell]:
    options = dict(_pollsim.PROFILES[profile])
    flow, n = options.pop("flow"), options.pop("n")
    models = options.pop("models", None)
    extra = {} if models is None else {"models": models}
    return [
        Cell(
            client,
            flow,
            n,
            PROFILE_SCALE,
            envelope=envelope,
            seed=seed,
            lengths=tuple(sorted(options.items())),
            **extra,
        )
        for seed in seeds
        for client in ("ours", "docs")
    ]


def main(quick: bool, workers: int) -> list[str]:
    clients = ("ours", "docs") if quick else ("ours", "docs", "naive")
    seeds = (1,) if quick else (1, 2, 3)
    part1 = [Cell(c, flow, 200, SCALE) for flow in ("extend", "generate") for c in clients]
    runs = [(p, "nested") for p in _pollsim.PROFILES] + [("uniform", "flat")]
    part2 = [cell for p, env in runs for cell in _cells(p, seeds, env)]
    results = run_cells(part1 + part2, workers)
    r1, r2 = results[: len(part1)], results[len(part1) :]
    out = [_part1(part1, r1)]
    rows2 = []
    summary: dict[str, tuple[float, float]] = {}
    scheduled: dict[str, float] = {}
    per = 2 * len(seeds)
    for k, (profile, env) in enumerate(runs):
        cells, outs = part2[k * per : (k + 1) * per], r2[k * per : (k + 1) * per]
        ours = [r for c, r in zip(cells, outs, strict=True) if c.client == "ours"]
        docs = [r for c, r in zip(cells, outs, strict=True) if c.client == "docs"]
        name = profile if env == "nested" else f"{profile}, flat"
        polls = statistics.mean(
            o.polls_per_job / d.polls_per_job for o, d in zip(ours, docs, strict=True)
        )
        lag = statistics.mean(o.lag_median for o in ours) / statistics.mean(
            d.lag_median for d in docs
        )
        summary[name] = (polls, lag)
        scheduled[name] = statistics.mean(o.polls_per_job / o.ideal_polls for o in ours)
        rows2 += [
            [name, c.seed, r.client, r.polls_per_job, r.ideal_polls, *_lags(r), r.rate_limited]
            for c, r in zip(cells, outs, strict=True)
        ]
    out.append(
        table(
            f"Status polls per job vs the docs loop, per job-length profile ({PROFILE_SCALE:g}x)",
            PART2,
            rows2,
        )
    )
    sim = _pollsim.table()
    out.append(
        table(
            "The same plan in the pure simulation (20 seeds, no latency, no rate limit)",
            SIM,
            [attrs.astuple(row) for row in sim],
        )
    )
    _figures(r1=r1, part1=part1, part2=part2, r2=r2, summary=summary, sim=sim)
    pairs = []
    for name, (polls, lag) in summary.items():
        key = name.replace(", ", "_")
        if name in _pollsim.UNIMODAL:
            pairs += [(f"{key}_polls/docs", polls, "<= 0.7"), (f"{key}_lag/docs", lag, "<= 1")]
            pairs.append((f"{key}_polls/5s_schedule", scheduled[name], "ref"))
        elif name == "uniform, flat":
            pairs += [(f"{key}_polls/docs", polls, "<= 0.3"), (f"{key}_lag/docs", lag, "<= 1")]
        else:
            pairs += [(f"{key}_polls/docs", polls, "ref"), (f"{key}_lag/docs", lag, "ref")]
    ours1 = [r for r in r1 if r.client == "ours"]
    pairs += [
        ("makespan/bound_max", max(r.makespan_ratio for r in ours1), "<= 1.05"),
        ("ours_429s", float(sum(r.rate_limited for r in ours1)), "0"),
    ]
    out.append(ratio_line("polling", pairs))
    return out


def _lags(r: Outcome) -> tuple[float, float, float]:
    return r.lag_median, r.lag_mean, r.lag_p90


def _part1(cells: list[Cell], results: list[Outcome]) -> str:
    rows = [
        [cell.flow, r.client, r.n, r.rate_limited, r.throughput, r.polls_per_job, r.lag_median]
        for cell, r in zip(cells, results, strict=True)
    ]
    for row, r in zip(rows, results, strict=True):
        row += [r.makespan, r.lower_bound, r.makespan_ratio]
    return table(
        "200 jobs of each flow, strict sliding window, nested envelope, 60x (times in emulated s)",
        PART1,
        rows,
    )


def _figures(
    *,
    r1: list[Outcome],
    part1: list[Cell],
    part2: list[Cell],
    r2: list[Outcome],
    summary: dict[str, tuple[float, float]],
    sim: list[_pollsim.SimRow],
) -> None:
    try:
        import _plots  # noqa: PLC0415  (matplotlib: the bench extra)
    except ImportError as exc:
        print(f"(figures skipped: {exc}; pip install -e '.[bench]')")
        return
    window = {c.client: r for c, r in zip(part1, r1, strict=True) if c.flow == "generate"}
    _plots.requests_per_window(window["ours"], window["docs"], limit=25)
    lives = {
        c.client: r
        for c, r in zip(part2, r2, strict=True)
        if c.seed == 1 and c.envelope == "nested" and c.flow == "extend"
    }
    _plots.job_lives(lives["ours"], lives["docs"], "stand-in profile")
    _plots.poll_ratios(summary, {row.profile: row.oracle for row in sim})


if __name__ == "__main__":
    print("\n".join(main(quick=True, workers=2)))
