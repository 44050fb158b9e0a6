"""Scale-out on a task queue: three ``aiovideoextend worker --queue`` processes and one
``batch --queue`` against one emulator in strict sliding-window mode, 2 % of submit answers
dropped (the run is created, the answer lost), one worker SIGKILLed a few seconds in; then the
same with Redis (AOF on) restarted mid-run. The processes of tests/test_queue.py
(tests/queue_procs.py). Throughput of submits is counted as in bench/scaleout.py: the window
over the mean gap between request *i* and request *i - count*.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ratio_line, table
from scaleout import SUBMIT_COUNT, SUBMIT_SCALE, _emulator, efficiency, max_in_window

from aiovideoextend.testing import Fault
from tests.queue_procs import AofRedis, Queue, kill, orphans, restart_redis, run_queue
from tests.scaleout import NoRedisServerError, redis_executable

DEADLINE = 600.0


async def _run(lines: int, *, with_restart: bool) -> tuple[object, ...]:
    emu = _emulator(SUBMIT_SCALE)
    emu.faults.add(Fault("generate", "ambiguous", rate=0.02))
    started = time.perf_counter()
    kill_at: list[float] = []

    async def kill_first(queue: Queue) -> None:
        kill_at.append(time.perf_counter() - started)
        await kill(queue)

    actions = {40: ("kill", kill_first)}
    if with_restart:
        actions[lines // 2] = ("redis restart", restart_redis)
    async with emu:
        with tempfile.TemporaryDirectory() as tmp:
            redis = AofRedis(Path(tmp))
            redis.start()
            try:
                run = await asyncio.wait_for(
                    run_queue(
                        emu,
                        redis,
                        Path(tmp),
                        lines,
                        scale=SUBMIT_SCALE,
                        concurrency=4,
                        actions=actions,  # type: ignore[arg-type]
                    ),
                    DEADLINE,
                )
            finally:
                redis.stop()
        arrivals = [t for t, route in emu.stats.arrivals if route == "generate"]
        per_line: dict[int, int] = {}
        for record in run.records:
            per_line[record["line"]] = per_line.get(record["line"], 0) + 1
        one_each = sorted(per_line) == list(range(1, lines + 1)) and set(per_line.values()) == {1}
        ambiguous = sum(r["status"] == "ambiguous" for r in run.records)
        return (
            efficiency(arrivals, SUBMIT_COUNT, 60 / SUBMIT_SCALE),
            len(arrivals),
            sum(emu.stats.rate_limited.values()),
            max_in_window(arrivals, 60 / SUBMIT_SCALE),
            emu.duplicate_charges(),
            len(orphans(emu, run.records)),
            "yes" if one_each else "NO",
            ambiguous,
            f"{kill_at[0]:.1f} s" if kill_at else "-",
            "+".join(run.events),
        )


def main(quick: bool) -> list[str]:
    try:
        redis_executable()
        import taskiq_redis  # noqa: F401, PLC0415
    except (NoRedisServerError, ImportError) as exc:
        return [f"\n## Task queue: skipped ({exc})", "ratios queue: skipped"]
    lines, repeats = (200, 1) if quick else (400, 3)
    rows = []
    worst = 1.0
    for with_restart in (False, True):
        for _ in range(repeats):
            row = asyncio.run(_run(lines, with_restart=with_restart))
            worst = min(worst, float(row[0]))  # type: ignore[arg-type]
            rows.append((f"{lines} lines, 3 workers", *row))
    out = table(
        "Task queue: 3 workers + batch --queue, 2 % dropped answers, one worker SIGKILLed",
        [
            "run",
            "submits / limit",
            "submits",
            "429s",
            "most in a window",
            "dup. charges",
            "orphaned",
            "one result each",
            "ambiguous",
            "killed at",
            "events",
        ],
        rows,
    )
    return [out, ratio_line("queue", [("submits_of_limit", worst, ">= 0.95")])]


if __name__ == "__main__":
    print("\n".join(main(quick="--full" not in sys.argv)))
