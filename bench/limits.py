"""Submit throughput against the documented limit, under three server-side limit algorithms.

Submits only (nobody waits for the jobs): what counts is how close to the documented rate the
submits are admitted, and how many 429s that took.
"""

from __future__ import annotations

from _cells import Cell, run_cells
from _common import FLOWS, ratio_line, table

ALGORITHMS = ("sliding", "fixed", "token")


def main(quick: bool, workers: int) -> list[str]:
    # Above ~60x the CPU time of a burst of submits (client and emulator share a core) starts
    # to count against the window; the quick run keeps 60x and only the faster flow.
    scale = 60.0
    n = 200 if quick else 400
    flows = ("generate",) if quick else ("extend", "generate")
    clients = ("ours", "docs", "naive")
    cells = [
        Cell(client, flow, n, scale, wait=False, algorithm=alg)
        for alg in ALGORITHMS
        for flow in flows
        for client in clients
    ]
    # jobs <= N: the whole batch should leave in the first window
    small = [
        Cell(client, flow, FLOWS[flow][1], 300.0, wait=False, algorithm=alg)
        for alg in ALGORITHMS
        for flow in ("extend", "generate")
        for client in ("ours",)
    ]
    results = run_cells(cells + small, workers)
    big, first = results[: len(cells)], results[len(cells) :]
    rows = []
    for cell, r in zip(cells, big, strict=True):
        rows.append([cell.algorithm, cell.flow, r.client, r.n, r.throughput, r.rate_limited])
    out = [
        table(
            f"Submit throughput / documented limit ({n} jobs, time scale {scale:g})",
            ["server limit", "flow", "client", "jobs", "throughput / limit", "429s"],
            rows,
        )
    ]
    first_rows = [
        [cell.algorithm, cell.flow, r.n, r.first_window, r.rate_limited]
        for cell, r in zip(small, first, strict=True)
    ]
    out.append(
        table(
            "Jobs <= N all submitted in the first window (ours)",
            ["server limit", "flow", "jobs", "all in first window", "429s"],
            first_rows,
        )
    )
    ours = [r for r in big if r.client == "ours"]
    docs = [r for r in big if r.client == "docs"]
    out.append(
        ratio_line(
            "limits",
            [
                ("ours_throughput_min", min(r.throughput for r in ours), ">= 0.97"),
                ("ours_429s", float(sum(r.rate_limited for r in ours)), "0"),
                ("docs_429s", float(sum(r.rate_limited for r in docs)), "ref"),
                ("first_window", float(all(r.first_window for r in first)), "1"),
            ],
        )
    )
    return out


if __name__ == "__main__":
    print("\n".join(main(quick=True, workers=2)))
