"""One client against one fresh emulator ("a cell"), runnable in a worker process."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import attrs
from _common import CLIENTS, SOURCE_MODEL, Outcome, emulator, outcome


@attrs.frozen
class Cell:
    client: str
    flow: str
    n: int
    scale: float
    wait: bool = True
    envelope: str = "nested"
    algorithm: str = "sliding"
    seed: int = 1
    #: emulator options of a job-length profile (see ``_pollsim.PROFILES``)
    lengths: tuple[tuple[str, Any], ...] = ()
    models: tuple[str, ...] = (SOURCE_MODEL,)


async def _run(cell: Cell) -> Outcome:
    emu = emulator(
        cell.scale,
        envelope=cell.envelope,
        limit_algorithm=cell.algorithm,
        seed=cell.seed,
        **dict(cell.lengths),
    )
    async with emu:
        started = time.perf_counter()
        await CLIENTS[cell.client](
            emu, cell.flow, cell.n, cell.scale, wait=cell.wait, models=cell.models
        )
        wall = time.perf_counter() - started
        result = outcome(emu, cell.client, cell.flow, cell.n, cell.scale, waited=cell.wait)
    result.wall = wall
    return result


def run_cell(cell: Cell) -> dict[str, Any]:
    return attrs.asdict(asyncio.run(_run(cell)))


def run_cells(cells: list[Cell], workers: int) -> list[Outcome]:
    """Each cell in its own process (``workers`` at a time): no cell steals another's loop."""
    if workers <= 1:
        return [Outcome(**run_cell(cell)) for cell in cells]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [Outcome(**d) for d in pool.map(run_cell, cells)]
