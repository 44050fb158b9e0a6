"""The polling benchmark's figures (SVG, into ``docs/figures/``), drawn with matplotlib."""

from __future__ import annotations

import collections
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
from _common import Outcome

FIGURES = Path(__file__).resolve().parent.parent / "docs" / "figures"
OURS, DOCS = "#1f77b4", "#d62728"
#: the same run, the same bytes: no timestamp, a fixed id salt
mpl.rcParams["svg.hashsalt"] = "aiovideoextend"
mpl.rcParams["font.size"] = 9


def _save(fig: plt.Figure, name: str) -> None:
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGURES / name, format="svg", metadata={"Date": None})
    plt.close(fig)


def requests_per_window(ours: Outcome, docs: Outcome, limit: int) -> None:
    """Requests reaching the server in each 1-s window, against the overall limit."""
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    for outcome, label, color in ((docs, "docs loop", DOCS), (ours, "aiovideoextend", OURS)):
        counts = collections.Counter(int(t) for t in outcome.arrivals if t >= 0)
        end = max(counts) + 1
        ax.step(
            range(end),
            [counts.get(s, 0) for s in range(end)],
            where="post",
            lw=0.8,
            color=color,
            label=f"{label} ({outcome.rate_limited} x 429)",
        )
    ax.axhline(limit, color="black", ls="--", lw=1, label=f"limit: {limit} per second")
    ax.set_xlabel("emulated seconds since the first submit")
    ax.set_ylabel("requests in the 1-s window")
    ax.set_title("200 source-extend jobs, strict sliding window", loc="left")
    ax.legend(loc="upper right", frameon=False)
    _save(fig, "requests-per-window.svg")


def job_lives(ours: Outcome, docs: Outcome, title: str, count: int = 20) -> None:
    """The status polls over the lives of the same jobs, ours above the docs loop's."""
    fig, axes = plt.subplots(2, 1, figsize=(7.5, 6.0), sharex=True)
    for ax, outcome, label, color in (
        (axes[0], ours, "aiovideoextend", OURS),
        (axes[1], docs, "docs loop", DOCS),
    ):
        lives = sorted(outcome.lives[:count])
        polls = sum(len(p) for _, p in lives)
        for y, (length, times) in enumerate(lives):
            ax.plot([0, length], [y, y], color="0.75", lw=2, solid_capstyle="butt")
            ax.plot(times, [y] * len(times), "|", color=color, ms=7)
        ax.set_yticks([])
        ax.set_ylabel("job (shortest at the bottom)")
        ax.set_title(f"{label}: {polls} polls for these {len(lives)} jobs", loc="left")
    axes[1].set_xlabel(f"emulated seconds since the job's submit ({title}; grey: the job running)")
    _save(fig, "job-lives.svg")


def poll_ratios(summary: dict[str, tuple[float, float]], oracle: dict[str, float]) -> None:
    """Polls and median detection lag against the docs loop, per job-length profile."""
    names = list(summary)
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    xs = range(len(names))
    ax.bar(
        [x - 0.2 for x in xs],
        [summary[n][0] for n in names],
        0.4,
        color=OURS,
        label="status polls / docs loop",
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [summary[n][1] for n in names],
        0.4,
        color="#9ecae1",
        label="median detection lag / docs loop",
    )
    known = [(x, oracle[n]) for x, n in zip(xs, names, strict=True) if n in oracle]
    ax.plot(
        [x - 0.2 for x, _ in known],
        [v for _, v in known],
        "k_",
        ms=18,
        mew=2,
        label="polls of a 5-s loop knowing the shortest job",
    )
    ax.axhline(0.7, color="black", ls="--", lw=0.8)
    ax.axhline(1.0, color="black", ls=":", lw=0.8)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("ratio to the docs loop")
    ax.set_ylim(0, 1.3)
    ax.legend(loc="upper left", frameon=False, ncols=2, fontsize=8)
    _save(fig, "poll-ratio.svg")
