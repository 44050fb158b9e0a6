"""Whole flows at 60x: 429s, throughput, polls per job, detection lag and makespan.

Part 1 is the closing note's line: 200 jobs of each flow against a strict sliding window.
Part 2 compares status polls per job with the docs loop when the server gives no hint (nested
envelope) and when it gives progress and time remaining (flat envelope), on the source-extend
flow (its submit carries no eta) with 100 jobs, few enough that the docs loop is not itself
rate limited into polling less.
"""

from __future__ import annotations

import statistics

from _cells import Cell, run_cells
from _common import ratio_line, table

SCALE = 60.0


def main(quick: bool, workers: int) -> list[str]:
    clients = ("ours", "docs") if quick else ("ours", "docs", "naive")
    seeds = (1,) if quick else (1, 2, 3)
    part1 = [Cell(c, flow, 200, SCALE) for flow in ("extend", "generate") for c in clients]
    part2 = [
        Cell(c, "generate", 100, SCALE, envelope=env, seed=seed)
        for env in ("nested", "flat")
        for seed in seeds
        for c in ("ours", "docs")
    ]
    results = run_cells(part1 + part2, workers)
    r1, r2 = results[: len(part1)], results[len(part1) :]
    rows = [
        [
            cell.flow,
            r.client,
            r.n,
            r.rate_limited,
            r.throughput,
            r.polls_per_job,
            r.lag_median,
            r.makespan,
            r.lower_bound,
            r.makespan_ratio,
        ]
        for cell, r in zip(part1, r1, strict=True)
    ]
    out = [
        table(
            "200 jobs of each flow, strict sliding window, nested envelope, 60x "
            "(times in emulated s)",
            [
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
            ],
            rows,
        )
    ]
    rows2 = []
    summary: dict[str, tuple[float, float, float]] = {}
    for env in ("nested", "flat"):
        picked = [(c, r) for c, r in zip(part2, r2, strict=True) if c.envelope == env]
        ours = [r for c, r in picked if c.client == "ours"]
        docs = [r for c, r in picked if c.client == "docs"]
        for c, r in picked:
            rows2.append(
                [
                    env,
                    c.seed,
                    r.client,
                    r.polls_per_job,
                    r.admitted_polls,
                    r.lag_median,
                    r.rate_limited,
                ]
            )
        ratio = statistics.mean(
            o.polls_per_job / d.polls_per_job for o, d in zip(ours, docs, strict=True)
        )
        lag_o = statistics.mean(o.lag_median for o in ours)
        lag_d = statistics.mean(d.lag_median for d in docs)
        summary[env] = (ratio, lag_o, lag_d)
    out.append(
        table(
            "Status polls per job vs the docs loop (source extend, 100 jobs, 60x)",
            [
                "envelope",
                "seed",
                "client",
                "status requests / job",
                "answered / job",
                "median lag s",
                "429s",
            ],
            rows2,
        )
    )
    ours1 = [r for r in r1 if r.client == "ours"]
    out.append(
        ratio_line(
            "polling",
            [
                ("nested_polls/docs", summary["nested"][0], "<= 0.7"),
                ("nested_lag/docs", summary["nested"][1] / summary["nested"][2], "<= 1"),
                ("flat_polls/docs", summary["flat"][0], "<= 0.3"),
                ("flat_lag/docs", summary["flat"][1] / summary["flat"][2], "<= 1"),
                ("makespan/bound_max", max(r.makespan_ratio for r in ours1), "<= 1.05"),
                ("ours_429s", float(sum(r.rate_limited for r in ours1)), "0"),
            ],
        )
    )
    return out


if __name__ == "__main__":
    print("\n".join(main(quick=True, workers=2)))
