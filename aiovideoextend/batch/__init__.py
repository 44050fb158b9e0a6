"""Batch runs: many extend requests, bounded, journaled and resumable.

``run_batch(session, requests)`` submits every request under the session's rate limits, waits
for the jobs and yields one :class:`BatchOutcome` per request, in completion order. Nothing in a
batch raises for a single request: an invalid request, a failed job and a 402 are outcomes.

With a ``journal`` (a path or a :class:`Journal`) the batch survives a crash or Ctrl-C: run it
again with the same requests and finished requests come back from the journal, submitted ones
are attached to again, and an intent whose answer was lost is reconciled through
``generate-video/recover``, never blindly resubmitted. See ``docs/batch.md``.

A shared journal (:class:`~aiovideoextend.redis_journal.RedisJournal`, any
:class:`JournalStore` with ``shared`` true) lets several workers run one batch: each entry is
claimed by the worker that records its intent, the others watch it, and an entry whose worker's
lease lapsed is adopted by one of them (see ``docs/scale-out.md``).
"""

from . import _runner
from ._runner import (
    FINISHED_STATUSES,
    BatchItem,
    BatchOutcome,
    BatchUpdate,
    Candidate,
    DownloadError,
    Journal,
    JournalEntry,
    JournalError,
    JournalStore,
    ManifestError,
    ManifestLine,
    download_video,
    parse_manifest,
    run_batch,
)

__all__ = [
    "FINISHED_STATUSES",
    "BatchItem",
    "BatchOutcome",
    "BatchUpdate",
    "Candidate",
    "DownloadError",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalStore",
    "ManifestError",
    "ManifestLine",
    "download_video",
    "parse_manifest",
    "run_batch",
]

# Private names used elsewhere: the command names lines as the batch does, tests derive tags.
_items = _runner._items
_TAGS = _runner._TAGS
