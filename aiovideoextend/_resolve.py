"""Settling an ``ambiguous`` batch line by hand: a person names the run that is its own.

A line ends ``ambiguous`` when a submit's answer was lost and the runs that may be its own
cannot be told apart; every candidate was followed to its end and stored with its result in
the journal. :func:`resolve_line` makes one of them the line's result: in the journal (a rerun
reports it) and in the results file (the line's record is replaced, never duplicated).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs

from ._atomic import write_atomically
from ._journal import Journal
from .batch._records import journal_record, outcome_from_journal, result_record
from .exceptions import JournalError

__all__ = ["resolve_line"]

#: candidate statuses a line can end with
_FINAL = frozenset({"completed", "failed", "cancelled"})


def resolve_line(
    journal: Journal, line: int, run_id: str, results: Path | None = None
) -> dict[str, Any]:
    """Make ``run_id`` (a candidate of ambiguous ``line``) the line's result; return it.

    Raises :class:`JournalError` (nothing written) when the line is not ambiguous, the run is
    not one of its candidates or is already another line's result, or the candidate did not
    end yet.
    """
    entries = journal.entries()
    found = [
        e
        for e in entries.values()
        if e.state == "finished" and e.outcome is not None and e.outcome.get("line") == line
    ]
    if not found:
        raise JournalError(f"line {line} has no finished outcome in {journal.path}")
    entry = found[0]
    outcome = outcome_from_journal(entry, index=entry.position, line=line)
    if outcome.status != "ambiguous":
        raise JournalError(f"line {line} is {outcome.status}, not ambiguous")
    chosen = next((c for c in outcome.candidates if c.run_id == run_id), None)
    if chosen is None:
        names = ", ".join(c.run_id for c in outcome.candidates) or "none"
        raise JournalError(f"{run_id} is not a candidate of line {line} (candidates: {names})")
    for other in entries.values():
        taken = other.run_id or (other.outcome or {}).get("run_id")
        if other.entry_id != entry.entry_id and taken == run_id:
            other_line = (other.outcome or {}).get("line", other.position + 1)
            raise JournalError(f"{run_id} is already the result of line {other_line}")
    if chosen.status not in _FINAL:
        raise JournalError(
            f"{run_id} had not ended when the batch stopped ({chosen.status}); rerun the batch "
            "to follow it, then resolve the line"
        )
    resolved = attrs.evolve(
        outcome,
        status=chosen.status,
        run_id=run_id,
        video_url=chosen.video_url,
        error=chosen.error,
        path=chosen.path,
    )
    # Settled by hand: the results file and the journal say so.
    record = {**result_record(resolved), "resolved": True}
    journal.record_finished(
        entry.entry_id, {**journal_record(resolved), "path": chosen.path, "resolved": True}
    )
    if results is not None:
        _replace_record(results, record)
    return record


def _replace_record(path: Path, new: dict[str, Any]) -> None:
    """Swap the line's record in the results file (atomically), or append it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    records: list[str] = []
    replaced = False
    for raw in text.splitlines():
        try:
            record = json.loads(raw)
        except ValueError:
            records.append(raw)
            continue
        if (
            isinstance(record, dict)
            and record.get("line") == new["line"]
            and record.get("in_manifest") is not False
        ):
            for name in ("status", "run_id", "video_url", "error", "path", "resolved"):
                record[name] = new[name]
            raw = json.dumps(record)  # noqa: PLW2901
            replaced = True
        records.append(raw)
    if not replaced:
        records.append(json.dumps(new))
    write_atomically(path, "".join(record + "\n" for record in records))
