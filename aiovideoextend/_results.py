"""Batch outcomes and the results file: one JSON object per finished line, never two.

:class:`BatchOutcome` and friends are re-exported from :mod:`aiovideoextend.batch`.

The journal is written first and this file second, so after a crash the journal may know an
outcome the file lacks; the rerun writes it then. Lines already in the file are never written
again, and a torn last line (a crash mid-write) is cut off before appending.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Final, Self

import attrs

from ._requests import MidjourneyExtend, SourceExtend

__all__ = [
    "FINISHED_STATUSES",
    "BatchItem",
    "BatchOutcome",
    "BatchUpdate",
    "Candidate",
    "ResultsFile",
    "result_record",
]

ExtendRequest = MidjourneyExtend | SourceExtend

#: Statuses that end a request for good; a rerun skips them. The others (``skipped``,
#: ``insufficient_balance``, ``unfinished``) are picked up again by the next run.
FINISHED_STATUSES: Final = frozenset({"completed", "failed", "cancelled", "invalid", "ambiguous"})


@attrs.frozen
class BatchItem:
    """A request with its manifest line, or the reason it is invalid."""

    request: ExtendRequest | None = None
    line: int | None = None
    error: str | None = None


@attrs.frozen
class Candidate:
    """A run that may be an ``ambiguous`` request's, followed to its end like any job."""

    run_id: str
    #: completed, failed, cancelled, or unfinished (still running when the batch stopped)
    status: str = "unfinished"
    video_url: str | None = None
    error: str | None = None
    #: where its video was downloaded to
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_stored(cls, value: object) -> Candidate:
        """From a journal: a dict, or a bare run id (journals of 0.1 stored only those)."""
        if isinstance(value, dict) and isinstance(value.get("run_id"), str):
            fields = {k: v for k, v in value.items() if k in _CANDIDATE_FIELDS}
            return cls(**fields)
        return cls(str(value))


_CANDIDATE_FIELDS: Final = frozenset(a.name for a in attrs.fields(Candidate))


@attrs.frozen
class BatchOutcome:
    """How one request of a batch ended (or why it did not run)."""

    #: 0-based position in the requests given to :func:`run_batch`
    index: int
    #: completed, failed, cancelled, invalid, ambiguous (finished); skipped,
    #: insufficient_balance, unfinished (a rerun picks these up)
    status: str
    line: int | None = None
    key: str | None = None
    model: str | None = None
    run_id: str | None = None
    video_url: str | None = None
    error: str | None = None
    #: the final cost when the server reported it, else the precharge
    cost: float | None = None
    precharge: float | None = None
    #: where the video was downloaded to
    path: str | None = None
    #: the outcome came from the journal (an earlier run, or another worker of a shared batch)
    resumed: bool = False
    #: for ``ambiguous``: the runs that might be this request's, each followed to its end
    candidates: tuple[Candidate, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["candidates"] = [candidate.to_dict() for candidate in self.candidates]
        return data


@attrs.frozen
class BatchUpdate:
    """A request changed state: queued, waiting (for the rate limit), submitting, pending,
    processing, downloading, or a final status."""

    index: int
    line: int | None
    state: str
    run_id: str | None = None
    detail: str | None = None
    #: the account balance the server reported with a submit
    balance: float | None = None


def result_record(outcome: BatchOutcome) -> dict[str, Any]:
    """The JSON object written for an outcome (``line`` first, ``index`` dropped)."""
    data = outcome.to_dict()
    line = data.pop("line")
    data.pop("index")
    return {"line": line if line is not None else outcome.index + 1, **data}


class ResultsFile:
    """Append-only JSONL of finished outcomes, keyed by manifest line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.done: set[int] = set()
        self._load()
        self._file = self.path.open("a", encoding="utf-8")

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            # A crash cut the last write short: drop the fragment, the journal still has it.
            with self.path.open("r+b") as f:
                f.truncate(keep)
        for raw in data[:keep].splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("line"), int):
                self.done.add(record["line"])

    def write(self, outcome: BatchOutcome) -> bool:
        """Append a finished outcome unless its line is in the file already."""
        record = result_record(outcome)
        line = record["line"]
        if not outcome.finished or line in self.done:
            return False
        # Flushed, not fsynced: the journal is the record that must survive a power cut, and a
        # rerun writes whatever lines the file lost. One fsync per line would hold the event
        # loop (and the next submits) up for milliseconds each.
        self._file.write(json.dumps(record, sort_keys=False) + "\n")
        self._file.flush()
        self.done.add(line)
        return True

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
