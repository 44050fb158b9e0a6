"""Batch outcomes and their records: what a batch yields, and the JSON object of each.

:class:`BatchOutcome` and friends are re-exported from :mod:`aiovideoextend.batch`. The results
file that the command writes (``ResultsFile``) lives in the command line's package; it is
importable from here too, for code written before it moved.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._requests import ExtendRequest

if TYPE_CHECKING:
    from .cli._results import ResultsFile

__all__ = [
    "FINISHED_STATUSES",
    "BatchItem",
    "BatchOutcome",
    "BatchUpdate",
    "Candidate",
    "ResultsFile",
    "result_record",
    "write_atomically",
]

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


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` all at once: a temporary file beside it, fsynced, renamed
    over it, and the directory fsynced so that the rename survives a power cut."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    with contextlib.suppress(OSError):  # some file systems cannot open a directory
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        # The results file moved to the command line's package; its old import path stays.
        if name == "ResultsFile":
            from .cli._results import ResultsFile  # noqa: PLC0415

            return ResultsFile
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
