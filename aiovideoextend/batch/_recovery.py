"""Journal recovery: what happened to submits whose answer their worker never recorded.

An intent without a run id is the crash window between a submit leaving and its answer being
committed. :func:`reconcile` decides each one by the rules of :mod:`aiovideoextend._attribution`
(see docs/reliability.md), from a ``generate-video/recover`` listing and what the journal knows:
the run is the entry's, the submit created nothing (resubmit it), or the runs that may be its own
cannot be told apart (:class:`Candidates` follows each of them to its end). Nothing here resubmits
blindly, and :func:`snapshot` records the runs that exist before a model's first submit, so that
a later listing can tell them apart from the batch's own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from aiovideoextend._attribution import (
    Attempt,
    Claim,
    Verdict,
    attribute,
    offset_bounds,
    read_listing,
)
from aiovideoextend._download import download_video
from aiovideoextend._reconcile import RECOVER_LIMIT
from aiovideoextend.exceptions import (
    DownloadError,
    JobCancelledError,
    JobFailedError,
    PermissionDeniedError,
    VideoExtendError,
)

from ._endings import STOPS_BATCH
from ._entries import Entry, conversation, excluded
from ._records import Candidate

if TYPE_CHECKING:
    from aiovideoextend._journal_api import JournalEntry, JournalStore
    from aiovideoextend._session import Session

__all__ = ["Candidates", "CannotCheck", "reconcile", "save_video", "snapshot"]

log = logging.getLogger("aiovideoextend")


class CannotCheck(Exception):  # noqa: N818  (a verdict, not a failure of ours)
    """Recover could not be asked: a lost submit of the model cannot be told apart from a run
    a later submit would create."""


def open_live(
    records: Iterable[JournalEntry], model: str, exclude: Collection[str]
) -> dict[str, int]:
    """Intents of ``model`` whose answer may still come (their writer is waiting for it), with
    their seq."""
    return {
        r.entry_id: r.intent_seq
        for r in records
        if r.state == "intent" and r.model == model and r.entry_id not in exclude and r.owner_alive
    }


async def snapshot(session: Session, journal: JournalStore, model: str) -> None:
    """Remember the runs that exist before our first submit of ``model``."""
    try:
        runs = await session.recover(model=model, limit=RECOVER_LIMIT)
    except (*STOPS_BATCH, PermissionDeniedError):
        raise
    except VideoExtendError as exc:
        log.warning("recover failed (%s); a lost submit of %s may stay ambiguous", exc, model)
        return
    ids = [run.run_id for run in runs]
    await journal.record_known_runs(model, ids, complete=len(ids) < RECOVER_LIMIT)


async def reconcile(
    session: Session,
    journal: JournalStore,
    model: str,
    items: list[tuple[Entry, JournalEntry]],
    entries: Iterable[Entry],
) -> list[tuple[Entry, Verdict]]:
    """The verdict on each lost intent of ``model`` (``items``, oldest first). A run found to
    be an entry's is recorded as its own in the journal. ``entries``: every entry of the batch
    (their tags tell runs apart). Raises :class:`CannotCheck` when recover fails."""
    mine = {entry.entry_id for entry, _record in items}
    records = await journal.entries()
    # Submits of live workers (this one's included) that are on their way may have runs that
    # are not claimed yet: wait until each has its answer recorded (or its worker is gone).
    # Intents recorded later cannot have runs in the listing below.
    pending = open_live(records.values(), model, mine)
    while pending:
        await asyncio.sleep(journal.poll_interval)
        now = await journal.entries(pending)
        pending = {
            k: seq
            for k, seq in open_live(now.values(), model, mine).items()
            if pending.get(k) == seq
        }
    try:
        runs = await session.recover(model=model, limit=RECOVER_LIMIT)
    except (*STOPS_BATCH, PermissionDeniedError):
        raise
    except VideoExtendError as exc:
        raise CannotCheck(f"could not check for a lost submit through recover: {exc}") from None
    records = await journal.entries()
    known = await journal.known_runs(model)
    # A claimed run was seen when its answer was recorded, and its flight pins the clock.
    claims = {
        r.run_id: Claim(
            r.submitted_seq if r.submitted_at is not None else None,
            (r.intent_at, r.submitted_at) if r.submitted_at is not None else None,
        )
        for r in records.values()
        if r.run_id
    }
    listing = read_listing(runs, model, claims, known)
    # From now on every listed run is one no later intent can own.
    await journal.record_known_runs(
        model, [run.run_id for run in runs], complete=len(runs) < RECOVER_LIMIT
    )
    server = session._server_offset()
    retries = session._retries
    tagging = retries.tag_submits
    lost = [
        Attempt(
            entry.entry_id,
            record.intent_seq,
            record.intent_at or None,
            None,  # its worker is gone: when the answer was lost is unknown
            record.request_key,
            excluded(entry.request),
            conversation(entry, tagging),
        )
        for entry, record in items
    ]
    # Other lost intents of this model (their workers died, maybe being reconciled by another
    # worker) may own runs too.
    by_id = {entry.entry_id: entry for entry in entries}
    rival_records = [
        r
        for r in records.values()
        if r.state == "intent" and r.model == model and r.entry_id not in mine
    ]
    # A conversationUUID tag rules runs out only when every competing submit's tag is known
    # (see the rules); an intent of an entry this runner cannot see has none known.
    tagged = all(r.entry_id in by_id for r in rival_records)
    rivals = [
        Attempt(
            r.entry_id,
            r.intent_seq,
            r.intent_at or None,
            conversation=conversation(by_id[r.entry_id], tagging) if tagged else None,
        )
        for r in rival_records
    ]
    if not tagged:
        lost = [attrs.evolve(attempt, conversation=None) for attempt in lost]
    skew = retries.reconcile_skew
    matching = attribute(
        lost,
        listing.unclaimed,
        open_attempts=rivals,
        offset=offset_bounds(listing.anchors, (server - skew, server + skew)),
        margin=retries.reconcile_margin,
        listing_full=len(runs) >= RECOVER_LIMIT,
        reach=listing.claimed,
    )
    for run_id in matching.unattributed:
        if known.get(run_id) is None:
            log.warning(
                "run %s of %s was created but no line of this batch can own it", run_id, model
            )
    verdicts = []
    for entry, _record in sorted(items, key=lambda item: item[1].intent_seq):
        verdict = matching.verdicts[entry.entry_id]
        if verdict.run is not None:
            log.info("line %s: adopting %s, created by a lost submit", entry.line, verdict.run)
            await journal.record_submitted(entry.entry_id, verdict.run, None, answered=False)
        elif verdict.created_nothing:
            log.info("line %s: the lost submit created no run; submitting it", entry.line)
        verdicts.append((entry, verdict))
    return verdicts


class Candidates:
    """Runs that may be an ambiguous entry's, each followed once to its end however many
    entries name it (and its video downloaded, when the batch downloads)."""

    def __init__(self, session: Session, download: Path | None) -> None:
        self.session = session
        self.download = download
        self._followed: dict[str, asyncio.Future[Candidate]] = {}

    async def follow(self, model: str, run_ids: Iterable[str]) -> tuple[Candidate, ...]:
        """Every run of ``run_ids`` at its end."""
        return tuple(await asyncio.gather(*(self._one(run_id, model) for run_id in run_ids)))

    def _one(self, run_id: str, model: str) -> asyncio.Future[Candidate]:
        task = self._followed.get(run_id)
        if task is None:
            task = asyncio.ensure_future(self._follow(run_id, model))
            self._followed[run_id] = task
        # Several entries may wait on one run: cancelling one of them does not stop it.
        return asyncio.shield(task)

    def futures(self) -> list[asyncio.Future[Candidate]]:
        """What the runner stops with the rest of its tasks."""
        return list(self._followed.values())

    async def _follow(self, run_id: str, model: str) -> Candidate:
        job = self.session.job(run_id, model)
        try:
            result = await job.result()
        except (JobFailedError, JobCancelledError) as exc:
            status = "failed" if isinstance(exc, JobFailedError) else "cancelled"
            return Candidate(run_id, status, error=str(exc))
        except VideoExtendError as exc:
            return Candidate(run_id, "unfinished", error=str(exc))
        path = error = None
        if self.download is not None and result.video_url:
            path, error = await save_video(self.session, self.download, result.video_url, run_id)
        return Candidate(run_id, "completed", result.video_url, error, path)


async def save_video(
    session: Session, directory: Path, url: str, run_id: str
) -> tuple[str | None, str | None]:
    """Download a completed run's video: (its path, None), or (None, why it could not be)."""
    try:
        saved = await download_video(session.http, url, directory, run_id=run_id)
    except DownloadError as exc:
        return None, f"download failed: {exc}"
    return str(saved), None
