"""A local NanoGPT video API for tests, benchmarks and demos: see ``docs/testing.md``."""

from ._catalog import EXTEND_MODELS, MIDJOURNEY_MODEL
from ._emulator import Emulator
from ._faults import Fault, FaultSet
from ._state import Job, JobStatus, LedgerEntry, Stats

__all__ = [
    "EXTEND_MODELS",
    "MIDJOURNEY_MODEL",
    "Emulator",
    "Fault",
    "FaultSet",
    "Job",
    "JobStatus",
    "LedgerEntry",
    "Stats",
]
