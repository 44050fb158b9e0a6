"""Job-length distributions: how long a job queues and runs, drawn when it is created.

``queue_seconds`` and ``run_seconds`` (the emulator's options) set the scale; the distribution
sets the shape:

- ``uniform``: queue and run each uniform over their ranges (the default);
- ``narrow``: uniform with a short spread, each within 10 % of its range's midpoint;
- ``lognormal``: queue uniform; run lognormal, its median the run range's midpoint, sigma 0.4
  (a long tail both ways, cut at 10x the median);
- ``bimodal``: a fast model beside slow ones: jobs of `FAST_MODELS` queue and run a quarter as
  long as the uniform ranges say, the others as ``uniform``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    import random

JobLengths = Literal["uniform", "narrow", "lognormal", "bimodal"]
JOB_LENGTHS: Final = ("uniform", "narrow", "lognormal", "bimodal")

#: the models that are fast under ``bimodal``
FAST_MODELS: Final = frozenset({"veo3-1-fast-extend"})
#: how much shorter a fast model's jobs are under ``bimodal``
FAST_FACTOR: Final = 0.25
#: lognormal sigma of the run time under ``lognormal``
SIGMA: Final = 0.4


def draw(
    kind: str,
    model: str,
    queue_seconds: tuple[float, float],
    run_seconds: tuple[float, float],
    rng: random.Random,
) -> tuple[float, float]:
    """(seconds queued, seconds running) of one new job of ``model``."""
    if kind == "narrow":
        return _near_middle(queue_seconds, rng), _near_middle(run_seconds, rng)
    queued = rng.uniform(*queue_seconds)
    if kind == "lognormal":
        median = (run_seconds[0] + run_seconds[1]) / 2
        return queued, min(median * math.exp(rng.gauss(0.0, SIGMA)), 10 * median)
    running = rng.uniform(*run_seconds)
    if kind == "bimodal" and model in FAST_MODELS:
        return queued * FAST_FACTOR, running * FAST_FACTOR
    return queued, running


def _near_middle(bounds: tuple[float, float], rng: random.Random) -> float:
    middle = (bounds[0] + bounds[1]) / 2
    return rng.uniform(0.9 * middle, 1.1 * middle)
