"""Run the benchmarks: ``python bench/run.py [--quick] [--only NAME ...] [--workers N]``.

Each benchmark prints a table (markdown) and ends with one ``ratios`` line; the last block
repeats every ratios line. ``--quick`` takes about three minutes on two cores.
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import batch
import cpu
import limits
import memory
import polling
import rate
import scaleout
import taskqueue

BENCHMARKS = ("limits", "polling", "rate", "batch", "scaleout", "queue", "cpu", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short version (one seed)")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS))
    parser.add_argument(
        "--workers", type=int, default=2, help="processes for independent runs (default 2)"
    )
    args = parser.parse_args(argv)
    # A baseline cancelled mid-request makes aiohttp's server log a traceback: not news here.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    print(
        f"# aiovideoextend benchmarks ({'quick' if args.quick else 'full'}): Python "
        f"{platform.python_version()}, {platform.machine()}, {_cores()} cores"
    )
    ratios: list[str] = []
    started = time.perf_counter()
    for name in args.only:
        t = time.perf_counter()
        if name == "limits":
            lines = limits.main(args.quick, args.workers)
        elif name == "polling":
            lines = polling.main(args.quick, args.workers)
        elif name == "rate":
            lines = rate.main(args.quick)
        elif name == "batch":
            lines = batch.main(args.quick)
        elif name == "scaleout":
            lines = scaleout.main(args.quick)
        elif name == "queue":
            lines = taskqueue.main(args.quick)
        elif name == "cpu":
            lines = cpu.main(args.quick)
        else:
            lines = memory.main(args.quick)
        print("\n".join(lines))
        print(f"({name}: {time.perf_counter() - t:.0f} s)", flush=True)
        ratios.append(lines[-1])
    print(f"\n## All ratios ({time.perf_counter() - started:.0f} s)\n")
    print("\n".join(ratios))
    return 0


def _cores() -> int:
    import os  # noqa: PLC0415

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
