"""The results file: one JSON object per manifest line, never two.

The journal is written first and this file second, so after a crash the journal may know an
outcome the file lacks; the rerun writes it then. A line's record is written again only when
the line's request or run changed (it is then replaced, atomically), a paid run is never
dropped, and a torn last line (a crash mid-write) is cut off before appending.
"""

from __future__ import annotations

import collections
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

from aiovideoextend._atomic import write_atomically
from aiovideoextend.batch._records import result_record

if TYPE_CHECKING:
    from aiovideoextend.batch import BatchOutcome

__all__ = ["REWRITE_EVERY", "ResultsFile"]

#: seconds between two rewrites of a results file whose records are being replaced
REWRITE_EVERY: Final = 1.0


def _paid(record: Mapping[str, Any]) -> bool:
    """The record names a run that was (or may have been) paid for."""
    return bool(record.get("run_id") or record.get("candidates"))


def _same(record: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Two records of one line tell the same thing (a rerun need not write it again)."""
    if (record.get("key"), record.get("run_id")) != (new.get("key"), new.get("run_id")):
        return False
    if record.get("resolved"):
        return True  # settled by hand (`aiovideoextend resolve`); the journal agrees
    if record.get("status") != new.get("status"):
        return False
    # A line without a run (invalid, a refused submit) is the same only with the same reason.
    return bool(new.get("run_id")) or record.get("error") == new.get("error")


class ResultsFile:
    """JSONL of outcomes: one record per manifest line, matched to the line's request.

    Each record carries the request's ``key`` (a hash of its content) beside its ``line``. Given
    the manifest's ``(line, key)`` pairs (``expected``), opening the file brings it in line with
    the manifest: a record whose request moved (a line inserted above it) moves with it, a
    record of a line whose request changed (a bad line fixed) is dropped so that the new
    outcome takes its place, and a paid run whose request is no longer in the manifest stays,
    marked ``"in_manifest": false``. Records are appended as outcomes arrive; a replaced record
    (a skipped line that ran, an unfinished one that ended) rewrites the file atomically.
    """

    def __init__(
        self, path: str | Path, expected: Iterable[tuple[int, str | None]] | None = None
    ) -> None:
        self.path = Path(path)
        #: the current record of each line
        self.records: dict[int, dict[str, Any]] = {}
        #: paid runs whose request is not in the manifest (``"in_manifest": false``)
        self.stale: list[dict[str, Any]] = []
        #: lines of the file that are not JSON objects, kept as they are
        self._other: list[str] = []
        self._dirty = False
        self._rewritten = -REWRITE_EVERY
        changed = self._load(None if expected is None else dict(expected))
        if changed:
            self._rewrite()
        self._file = self.path.open("a", encoding="utf-8")

    @property
    def done(self) -> set[int]:
        """Lines that have their record."""
        return set(self.records)

    def _load(self, expected: dict[int, str | None] | None) -> bool:
        """Read the file; True when it must be rewritten to match ``expected``."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            # A crash cut the last write short: drop the fragment, the journal still has it.
            with self.path.open("r+b") as f:
                f.truncate(keep)
        loaded: list[dict[str, Any]] = []
        for raw in data[:keep].decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            if isinstance(record, dict) and isinstance(record.get("line"), int):
                loaded.append(record)
            elif raw.strip():
                self._other.append(raw)
        if expected is None:
            for record in loaded:
                if record.get("in_manifest") is False:
                    self.stale.append(record)
                else:
                    self.records.setdefault(record["line"], record)
            return False
        return self._match(loaded, expected)

    def _match(self, loaded: list[dict[str, Any]], expected: dict[int, str | None]) -> bool:
        changed = False
        unmatched = []
        for record in loaded:
            line = record["line"]
            if (
                line in expected
                and line not in self.records
                and record.get("key") == expected[line]
            ):
                if record.pop("in_manifest", True) is False:
                    changed = True  # its request is back at its line
                self.records[line] = record
            else:
                unmatched.append(record)
        # Requests that moved (lines inserted or removed above them) take their record along;
        # identical requests keep their order.
        free: dict[str | None, list[int]] = collections.defaultdict(list)
        for line, key in sorted(expected.items()):
            if line not in self.records and key is not None:
                free[key].append(line)
        current = {r.get("run_id") for r in self.records.values()} - {None}
        for record in sorted(unmatched, key=lambda r: r["line"]):
            lines = free.get(record.get("key"))
            if record.get("run_id") in current:
                changed = True  # a second record of a run that has its line
            elif lines:
                record["line"] = lines.pop(0)
                record.pop("in_manifest", None)
                self.records[record["line"]] = record
                changed = True
            elif _paid(record):
                changed = changed or record.get("in_manifest") is not False
                record["in_manifest"] = False
                self.stale.append(record)
            else:
                changed = True
            # else: nothing was paid for a line that changed (invalid, refused): its new
            # outcome replaces it.
        return changed

    def _rewrite(self) -> None:
        records = [*self.stale, *(self.records[line] for line in sorted(self.records))]
        text = "".join(raw + "\n" for raw in self._other)
        text += "".join(json.dumps(record) + "\n" for record in records)
        write_atomically(self.path, text)

    def write(self, outcome: BatchOutcome) -> bool:
        """Write an outcome unless its line's record says the same already; a record of
        another request, run or status at that line is replaced. Unfinished outcomes
        (``skipped``, ``unfinished``...) are written too: the next run replaces them."""
        return self.put(result_record(outcome))

    def put(self, record: dict[str, Any]) -> bool:
        """Write one record (see :meth:`write`)."""
        line = record["line"]
        old = self.records.get(line)
        if old is not None and _same(old, record):
            return False
        replace = old is not None
        if old is not None and _paid(old) and old.get("run_id") != record.get("run_id"):
            # Never drop a paid run: it stays, marked (a person may still want its video).
            self.stale.append({**old, "in_manifest": False})
        run_id = record.get("run_id")
        if run_id and any(r.get("run_id") == run_id for r in self.stale):
            self.stale = [r for r in self.stale if r.get("run_id") != run_id]
            replace = True
        self.records[line] = record
        if replace or self._dirty:
            # The file is rewritten whole, at most every REWRITE_EVERY seconds while a batch
            # runs (and at close): the journal holds what a crash in between loses.
            self._dirty = True
            if time.monotonic() - self._rewritten >= REWRITE_EVERY:
                self._flush_rewrite()
        else:
            # Flushed, not fsynced: the journal is the record that must survive a power cut,
            # and a rerun writes whatever lines the file lost. One fsync per line would hold the
            # event loop (and the next submits) up for milliseconds each.
            self._file.write(json.dumps(record, sort_keys=False) + "\n")
            self._file.flush()
        return True

    def _flush_rewrite(self) -> None:
        self._file.close()
        self._rewrite()
        self._file = self.path.open("a", encoding="utf-8")
        self._dirty = False
        self._rewritten = time.monotonic()

    def keep_stale(self, record: dict[str, Any]) -> bool:
        """Keep a paid run whose request is not in the manifest (from the journal), marked
        ``"in_manifest": false``, unless the file names its run already."""
        run_id = record.get("run_id")
        named = [*self.records.values(), *self.stale]
        if not run_id or any(r.get("run_id") == run_id for r in named):
            return False
        self.stale.append({**record, "in_manifest": False})
        if self._dirty:
            self._flush_rewrite()
        else:
            self._file.write(json.dumps(self.stale[-1]) + "\n")
            self._file.flush()
        return True

    def close(self) -> None:
        if self._dirty and not self._file.closed:
            self._flush_rewrite()
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
