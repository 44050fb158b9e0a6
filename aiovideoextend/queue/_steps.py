"""The two steps of one manifest line, for any task queue: submit once, follow to the end.

``submit_step`` is the exactly-once submit: it runs the line through `run_batch` against the
line's journal entry and stops as soon as the run id is recorded. Run it again (the queue
delivered the task twice, its worker died mid-submit) and it does not pay again: a recorded
run id is returned as it is, and an intent without one is reconciled through ``recover``, by
the same rules as a local batch's rerun (``docs/reliability.md``).

``follow_step`` follows the recorded run for a bounded slice of time and returns its outcome,
or ``None`` when the slice ran out first: the task then enqueues itself again, so that no task
runs longer than the queue's redelivery timeout. Running it twice is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import attrs

from aiovideoextend.batch import BatchOutcome, BatchUpdate, JournalEntry, ManifestLine, run_batch
from aiovideoextend.exceptions import VideoExtendError

from ._private import snapshot, submit_with

if TYPE_CHECKING:
    from aiovideoextend import Session

    from ._store import LineJournal

__all__ = ["follow_step", "submit_step"]


#: states a batch reports with a run id once the run is the line's (recorded in the journal)
_RUNNING: Final = frozenset({"pending", "processing"})


def _generator(batch: AsyncIterator[BatchOutcome]) -> AsyncGenerator[BatchOutcome, None]:
    """`run_batch` is an async generator (typed as an iterator): closing it stops its tasks."""
    return cast("AsyncGenerator[BatchOutcome, None]", batch)


def _placed(outcome: BatchOutcome, line: ManifestLine) -> BatchOutcome:
    """The outcome of a one-line batch, placed at its line of the manifest."""
    return attrs.evolve(outcome, index=line.line - 1, line=line.line)


async def submit_step(
    session: Session, journal: LineJournal, line: ManifestLine
) -> str | BatchOutcome:
    """Submit ``line`` unless its journal entry says it was: the run id to follow, or the
    line's outcome when it ends here (invalid, refused, ambiguous, not submitted)."""
    record = await _settled(journal)
    if record is None and line.request is not None:
        fast = await _submit_fresh(session, journal, line)
        if fast is not None:
            return fast
        await _settled(journal)  # another execution may have recorded its intent first
    # Delivered again (an intent without a run id, a recorded run), or the fresh submit's
    # outcome is not a plain answer: the batch's own rules decide, reconciling through recover.
    await journal.take()
    recorded: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_update(update: BatchUpdate) -> None:
        if update.run_id is not None and update.state in _RUNNING and not recorded.done():
            recorded.set_result(update.run_id)

    batch = _generator(run_batch(session, [line], journal=journal, on_update=on_update))
    first = asyncio.ensure_future(anext(batch))
    racing: set[asyncio.Future[Any]] = {first, recorded}
    try:
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        if first.done():
            return _placed(first.result(), line)
        return recorded.result()
    finally:
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await first
        await batch.aclose()


async def _settled(journal: LineJournal) -> JournalEntry | None:
    """The line's entry, once no other execution's intent may still get its answer (the task
    ran elsewhere a moment ago, or runs there still): that answer is waited for, never
    reconciled around."""
    while True:
        record = (await journal.entries([journal.local_id])).get(journal.local_id)
        if record is None or not record.owner_alive or record.owner == journal.me:
            return record
        await asyncio.sleep(journal.poll_interval)


class _Taken(Exception):  # noqa: N818  (a signal, not an error)
    """Another execution of the line recorded its intent first."""


async def _submit_fresh(
    session: Session, journal: LineJournal, line: ManifestLine
) -> str | BatchOutcome | None:
    """A line never submitted: one snapshot of the model's runs per batch, the intent recorded
    right before the submit leaves, the run id right after. ``None``: anything else happened
    (the intent, if recorded, is left for `run_batch` to reconcile)."""
    request = line.request
    assert request is not None  # noqa: S101
    if await journal.store.first_look(request.model):
        # The runs that exist before the batch's first submit of the model can be no line's.
        # A server that refuses the look refuses the submit too, which says so.
        with contextlib.suppress(VideoExtendError):
            await snapshot(session, journal, request.model)

    async def before_send() -> None:
        if not await journal.record_intent(
            journal.local_id, request_key=request.key, model=request.model, position=line.line - 1
        ):
            raise _Taken

    try:
        job = await submit_with(session, request, before_send)
    except _Taken:
        return None
    except VideoExtendError:
        return None
    submission = job.submission
    precharge = submission.cost if submission is not None else None
    await journal.record_submitted(journal.local_id, job.run_id, precharge)
    return job.run_id


async def follow_step(
    session: Session,
    journal: LineJournal,
    line: ManifestLine,
    *,
    budget: float,
    download: str | Path | None = None,
) -> BatchOutcome | None:
    """Follow the line's recorded run for up to ``budget`` seconds (a download that started
    gets ``budget`` more): its outcome, or ``None`` if it has not ended yet."""
    record = (await journal.entries([journal.local_id])).get(journal.local_id)
    if record is None or record.state == "intent":
        # Following never submits: a line without a recorded run is the submit step's.
        state = "no journal entry" if record is None else "an intent without a run id"
        error = f"nothing to follow: the journal has {state} for this line"
        return BatchOutcome(line.line - 1, "unfinished", line=line.line, error=error)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(budget) as slice_:

            def on_update(update: BatchUpdate) -> None:
                if update.state == "downloading":
                    slice_.reschedule(loop.time() + budget)

            batch = _generator(
                run_batch(session, [line], journal=journal, on_update=on_update, download=download)
            )
            try:
                outcome = await anext(batch)
            finally:
                await batch.aclose()
    except TimeoutError:
        return None
    return _placed(outcome, line)
