"""Outcome records: how each request of a batch ended, written one way and read back one way.

An outcome is turned into a dict by one rule (:meth:`BatchOutcome.to_dict`, the package's cattrs
converter): the results file and the JSON progress stream write :func:`result_record` of it, the
journal keeps :func:`journal_record` of it (a subset), and :func:`outcome_from_journal` reads it
back for a rerun, a queue's next try, or ``aiovideoextend resolve``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from aiovideoextend._converter import converter
from aiovideoextend._journal_api import JournalEntry
from aiovideoextend._requests import ExtendRequest

__all__ = [
    "FINISHED_STATUSES",
    "BatchItem",
    "BatchOutcome",
    "BatchUpdate",
    "Candidate",
    "journal_record",
    "outcome_from_journal",
    "result_record",
]


#: Statuses that end a request for good; a rerun skips them. The others (``skipped``,
#: ``insufficient_balance``, ``unfinished``) are picked up again by the next run.
FINISHED_STATUSES: Final = frozenset({"completed", "failed", "cancelled", "invalid", "ambiguous"})
#: what the journal keeps of a finished outcome (the rest is the request's, or this run's)
_JOURNALED: Final = (
    "status",
    "model",
    "run_id",
    "video_url",
    "error",
    "cost",
    "precharge",
    "candidates",
    "line",
)


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
        data: dict[str, Any] = converter.unstructure(self)
        return data

    @classmethod
    def from_stored(cls, value: object) -> Candidate:
        """From a journal: a dict, or a bare run id (journals of 0.1 stored only those)."""
        return converter.structure(_stored_candidate(value), cls)


def _stored_candidate(value: object) -> Mapping[str, Any]:
    if isinstance(value, Mapping) and isinstance(value.get("run_id"), str):
        return value
    return {"run_id": str(value)}


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
    #: the outcome came from the journal (an earlier run, or a queue's earlier try)
    resumed: bool = False
    #: for ``ambiguous``: the runs that might be this request's, each followed to its end
    candidates: tuple[Candidate, ...] = ()

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-able (candidates as a list of dicts)."""
        data: dict[str, Any] = converter.unstructure(self)
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


def journal_record(outcome: BatchOutcome) -> dict[str, Any]:
    """What the journal keeps of a finished outcome."""
    record = result_record(outcome)
    return {name: record[name] for name in _JOURNALED}


def outcome_from_journal(entry: JournalEntry, *, index: int, line: int | None) -> BatchOutcome:
    """A finished entry's outcome, ``resumed``, as request ``index`` at ``line``. What the
    journal does not keep is the request's (key, model) or empty."""
    stored = entry.outcome or {}
    fields = {name: stored[name] for name in _JOURNALED if stored.get(name) is not None}
    fields["candidates"] = [_stored_candidate(c) for c in stored.get("candidates") or ()]
    fields.setdefault("status", "failed")
    fields.setdefault("model", entry.model)
    fields.update(index=index, line=line, key=entry.request_key, resumed=True)
    return converter.structure(fields, BatchOutcome)
