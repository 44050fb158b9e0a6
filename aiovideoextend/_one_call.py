"""Submit and wait in one call, losing nothing paid when the wait stops early."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ._job import Job, _Default
from ._tasks import TaskSet
from .exceptions import AmbiguousSubmitError, JobTimeoutError
from .models import VideoResult

__all__ = ["Kept"]

log = logging.getLogger("aiovideoextend")

#: a submit that awaits its argument right before each attempt leaves
Submit = Callable[[Callable[[], Awaitable[None]]], Awaitable[Job]]


def _interrupted_note(run_id: str) -> str:
    return (
        f"aiovideoextend: run {run_id} goes on on the server (paid); resume with "
        f"session.job({run_id!r}) or from session.interrupted_jobs"
    )


class Kept:
    """Runs whose one-call wait (run(), extend_and_wait()) was cancelled or timed out: held
    here so that they stay reachable, and the submits left on the wire. ``candidates`` gives
    the jobs of an :class:`AmbiguousSubmitError`'s runs."""

    def __init__(self, candidates: Callable[[AmbiguousSubmitError], list[Job]]) -> None:
        self._candidates = candidates
        self._jobs: dict[str, Job] = {}
        self._background = TaskSet()
        self._closed = False

    def jobs(self) -> tuple[Job, ...]:
        """The kept jobs that are not done."""
        return tuple(job for job in self._jobs.values() if not job.done())

    async def aclose(self) -> None:
        self._closed = True
        await self._background.drain()

    async def run(self, submit: Submit, timeout: float | _Default | None) -> VideoResult:
        """``submit`` then wait for the job's result (see ``Session.run``)."""
        on_wire = False

        async def leaving() -> None:
            nonlocal on_wire
            on_wire = True

        submitting = asyncio.ensure_future(submit(leaving))
        try:
            job = await asyncio.shield(submitting)
        except asyncio.CancelledError as exc:
            self._after_cancelled_submit(submitting, on_wire=on_wire, error=exc)
            raise
        try:
            return await job.result(timeout)
        except JobTimeoutError:
            self._jobs[job.run_id] = job
            raise
        except asyncio.CancelledError as exc:
            self._jobs[job.run_id] = job
            exc.add_note(_interrupted_note(job.run_id))
            log.warning("wait for %s cancelled; the run goes on", job.run_id)
            raise

    def _after_cancelled_submit(
        self, submit: asyncio.Future[Job], *, on_wire: bool, error: asyncio.CancelledError
    ) -> None:
        """The caller of ``run`` was cancelled while its submit was under way."""
        if submit.done():
            if not submit.cancelled() and submit.exception() is None:
                job = submit.result()
                self._jobs[job.run_id] = job
                error.add_note(_interrupted_note(job.run_id))
            return
        if not on_wire:
            submit.cancel()  # still queued: nothing was sent, nothing is paid
            return
        # On the wire: cancelling now would leave the outcome unknown. Let it end.
        error.add_note(
            "aiovideoextend: the submit was on the wire; its run, if created, will be listed "
            "in session.interrupted_jobs"
        )
        self._background.track(submit, self._background_submit_done)

    def _background_submit_done(self, submit: asyncio.Future[Job]) -> None:
        if submit.cancelled():
            return
        error = submit.exception()
        if error is not None:
            log.warning("a submit left running after a cancel failed: %s", error)
            if isinstance(error, AmbiguousSubmitError) and not self._closed:
                # Each candidate was paid for by someone: keep them all in reach.
                for job in self._candidates(error):
                    self._jobs[job.run_id] = job
            return
        job = submit.result()
        self._jobs[job.run_id] = job
        log.warning("submit finished after its caller was cancelled: %s", job.run_id)
