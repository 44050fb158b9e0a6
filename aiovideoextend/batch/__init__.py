"""Batch runs: many extend requests, bounded, journaled and resumable.

``run_batch(session, requests)`` submits every request under the session's rate limits, waits
for the jobs and yields one :class:`BatchOutcome` per request, in completion order. Nothing in a
batch raises for a single request: an invalid request, a failed job and a 402 are outcomes.

With a ``journal`` (a path or a :class:`Journal`) the batch survives a crash or Ctrl-C: run it
again with the same requests and finished requests come back from the journal, submitted ones
are attached to again, and an intent whose answer was lost is reconciled through
``generate-video/recover``, never blindly resubmitted. See ``docs/batch.md``.

One batch on many workers runs on a task queue (:mod:`aiovideoextend.queue`): each line's task
runs it here, as a one-line batch against the line's entry of a journal in Redis (see
``docs/scale-out.md``).

The package: ``_runner`` (lanes, submits, the in-flight bound, following jobs), ``_guard`` (the
spend guard), ``_recovery`` (lost intents, through ``_attribution``), ``_records`` (outcome
records, written and read one way), ``_report`` (outcomes and updates to the caller),
``_entries`` (one entry per request).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiovideoextend._download import download_video
from aiovideoextend._journal import Journal
from aiovideoextend._journal_api import JournalEntry, JournalStore
from aiovideoextend._journal_store import LocalJournalStore
from aiovideoextend._manifest import ManifestLine, parse_manifest
from aiovideoextend._requests import ExtendRequest
from aiovideoextend.exceptions import DownloadError, JournalError, ManifestError

from . import _entries
from ._entries import items
from ._guard import SpendGuard
from ._records import FINISHED_STATUSES, BatchItem, BatchOutcome, BatchUpdate, Candidate
from ._runner import Runner

if TYPE_CHECKING:
    from aiovideoextend._session import Session

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


async def run_batch(
    session: Session,
    requests: Iterable[ExtendRequest | BatchItem | ManifestLine | Mapping[str, Any]],
    *,
    journal: Journal | JournalStore | str | Path | None = None,
    max_in_flight: int | None = None,
    max_cost: float | None = None,
    min_balance: float | None = None,
    on_update: Callable[[BatchUpdate], None] | None = None,
    download: str | Path | None = None,
) -> AsyncIterator[BatchOutcome]:
    """Run every request; yield one :class:`BatchOutcome` per request as each one ends.

    ``requests``: request objects, :class:`BatchItem`/:class:`ManifestLine` (with a line number
    or an error) or dicts of manifest fields. ``journal``: a path or an open :class:`Journal`
    that makes the batch resumable, or any other :class:`JournalStore` (such as a queue's
    :class:`~aiovideoextend.queue.LineJournal`). ``max_in_flight`` bounds the jobs submitted
    and not yet finished; ``max_cost`` stops submitting once the precharges would pass it (failed
    jobs are refunded and do not count; with a journal, the precharges of its earlier runs count
    too, so a rerun does not start a fresh budget); ``min_balance`` stops before the account
    balance the server reports would drop below it. ``download``: a directory to stream completed
    videos into.

    Cancel the iterating task to stop at once: the journal stays consistent, and running the
    same batch again resumes it. What every request would meet alike stops the batch and is
    raised: :class:`APIConnectionError`, :class:`EndpointNotFoundError`,
    :class:`AuthenticationError` (and :class:`PermissionDeniedError` for the key itself).
    """
    if max_in_flight is not None and max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    if max_cost is not None and not max_cost >= 0:
        raise ValueError(f"max_cost must be 0 or more, got {max_cost}")
    entries = items(requests)
    own = isinstance(journal, (str, Path))
    opened = Journal(journal) if isinstance(journal, (str, Path)) else journal
    store = LocalJournalStore(opened) if isinstance(opened, Journal) else opened
    try:
        runner = Runner(
            session,
            entries,
            journal=store,
            max_in_flight=max_in_flight,
            guard=SpendGuard(max_cost, min_balance),
            on_update=on_update,
            download=None if download is None else Path(download),
        )
        async for outcome in runner.run():
            yield outcome
    finally:
        if isinstance(store, LocalJournalStore) and store is not journal:
            await store.aclose()
        if own and isinstance(opened, Journal):
            opened.close()


# Private names used elsewhere: the command names lines as the batch does, tests derive tags.
_items = _entries.items
_TAGS = _entries.TAGS
