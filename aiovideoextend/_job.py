"""Job: the awaitable handle of one run, fed by the session's poll scheduler."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Generator
from pathlib import Path
from typing import Any, Final, Protocol

import attrs

from .exceptions import JobCancelledError, JobFailedError, JobTimeoutError, VideoExtendError
from .models import JobStatus, StatusUpdate, Submission, VideoResult

__all__ = ["USE_POLICY_DEFAULT", "Job", "JobHost"]

log = logging.getLogger("aiovideoextend")


class _Default(enum.Enum):
    USE_POLICY_DEFAULT = "USE_POLICY_DEFAULT"


#: ``result(timeout=USE_POLICY_DEFAULT)`` waits until the poll policy's deadline;
#: None waits forever.
USE_POLICY_DEFAULT: Final = _Default.USE_POLICY_DEFAULT


class JobHost(Protocol):
    """What a :class:`Job` needs of the session that follows it."""

    @property
    def time_scale(self) -> float: ...

    @property
    def timeout(self) -> float | None:
        """The policy's deadline per job (seconds from now; None: none)."""

    def enroll(self, job: Job, submission: Submission | None) -> Any:
        """The poll scheduler's record of a new job (kept on it, read by the scheduler only)."""

    def ensure(self, job: Job) -> None:
        """Somebody waits for ``job``: make sure it is polled."""

    def estimate(self, job: Job) -> tuple[float, float] | None:
        """(percent complete, seconds remaining) of ``job``, when known."""

    def fetch_status(self, run_id: str) -> Awaitable[tuple[StatusUpdate, bool]]:
        """One status of the run (retrying transient errors) and whether its spelling is known."""

    def status_changed(self, job: Job) -> None: ...

    def absolute(self, video_url: str) -> str:
        """A video URL taken against the API's origin."""

    def download(
        self,
        result: VideoResult,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool,
        max_bytes: int | None,
    ) -> Awaitable[Path]: ...


class Job:
    """One run on the server: ``await job`` gives its :class:`VideoResult` or raises.

    Any number of tasks may await the same job: they share one poll loop. Polling runs only
    while somebody waits (``await``, :meth:`result`, :meth:`updates`).
    """

    __slots__ = (
        "__weakref__",
        "_deadline",
        "_demand",
        "_error",
        "_host",
        "_interrupted",
        "_listeners",
        "_result",
        "_status",
        "_track",
        "_waiters",
        "last_update",
        "model",
        "run_id",
        "submission",
    )

    def __init__(
        self,
        host: JobHost,
        run_id: str,
        model: str | None = None,
        submission: Submission | None = None,
    ) -> None:
        self._host: Final = host
        self.run_id: Final = run_id
        self.model = model
        #: the 202 answer (None for a job attached with ``session.job()``)
        self.submission: Final = submission
        #: the latest status observation
        self.last_update: StatusUpdate | None = None
        self._status = JobStatus.PENDING
        self._result: VideoResult | None = None
        self._error: VideoExtendError | None = None
        #: one future per waiting result() call (an Event costs a coroutine frame per waiter)
        self._waiters: list[asyncio.Future[None]] | None = None
        self._listeners: list[asyncio.Queue[StatusUpdate | None]] = []
        #: how many wait for it (``result()``, ``updates()``): polled while any do
        self._demand = 0
        self._interrupted = False
        timeout = host.timeout
        now = asyncio.get_running_loop().time()
        self._deadline = None if timeout is None else now + timeout
        #: the poll scheduler's record (owned and written by the scheduler)
        self._track: Any = host.enroll(self, submission)

    def __repr__(self) -> str:
        return f"<Job {self.run_id} {self.model or '?'} {self._status.value}>"

    @property
    def status(self) -> JobStatus:
        return self._status

    def done(self) -> bool:
        """True once the job reached a terminal state (or polling hit a permanent error)."""
        return self._result is not None or self._error is not None

    # --- waiting --------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, VideoResult]:
        return self.result().__await__()

    async def result(self, timeout: float | _Default | None = USE_POLICY_DEFAULT) -> VideoResult:
        """Wait for the job and return its video, or raise its error.

        ``timeout`` in seconds; the default is the poll policy's deadline counted from the
        submit, and None waits forever. A :class:`JobTimeoutError` leaves the job running on
        the server: wait again, or attach later with ``session.job(run_id)``.
        """
        if not self.done() and not self._interrupted:
            loop = asyncio.get_running_loop()
            if timeout is USE_POLICY_DEFAULT:
                deadline = self._deadline
            else:
                deadline = None if timeout is None else loop.time() + timeout
            waiter: asyncio.Future[None] = loop.create_future()
            waiters = self._waiters
            if waiters is None:
                waiters = self._waiters = []
            waiters.append(waiter)
            self._demand += 1
            self._host.ensure(self)
            try:
                if deadline is None:
                    await waiter
                else:
                    async with asyncio.timeout_at(deadline):
                        await waiter
            except TimeoutError:
                raise JobTimeoutError(
                    f"job {self.run_id} still {self._status.value} at the deadline",
                    run_id=self.run_id,
                ) from None
            finally:
                self._demand -= 1
                waiters.remove(waiter)
        return self._outcome()

    async def updates(self) -> AsyncIterator[StatusUpdate]:
        """Yield a :class:`StatusUpdate` on every change, ending with the terminal one.

        Starts with the latest known state, if any. Raises :class:`JobTimeoutError` at the
        policy deadline.
        """
        if self.last_update is not None:
            yield self.last_update
            if self.done():
                return
        elif self.done():
            return
        queue: asyncio.Queue[StatusUpdate | None] = asyncio.Queue()
        self._listeners.append(queue)
        self._demand += 1
        self._host.ensure(self)
        try:
            while True:
                try:
                    async with asyncio.timeout_at(self._deadline):
                        update = await queue.get()
                except TimeoutError:
                    raise JobTimeoutError(
                        f"job {self.run_id} still {self._status.value} at the deadline",
                        run_id=self.run_id,
                    ) from None
                if update is None:
                    self._outcome()  # raises: the job ended without a status or was interrupted
                    return
                yield update
                if update.status.is_terminal:
                    return
        finally:
            self._demand -= 1
            self._listeners.remove(queue)

    async def refresh(self) -> StatusUpdate:
        """Poll once now (through the rate limiter) and return what the server said (with
        this session's estimates, see :attr:`StatusUpdate.estimated_progress`)."""
        update, known = await self._host.fetch_status(self.run_id)
        ended = self.done()
        self._apply(update, known=known)
        latest = self.last_update
        if not ended and latest is not None and latest.estimated_progress is not None:
            update = attrs.evolve(
                update,
                estimated_progress=latest.estimated_progress,
                estimated_remaining=latest.estimated_remaining,
            )
        return update

    async def download(
        self,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        max_bytes: int | None = None,
    ) -> Path:
        """Wait for the video, then stream it to ``dest`` (a file, or a directory to put
        ``<run_id>.mp4`` in) atomically. The name never comes from the server; a video over
        ``max_bytes`` is refused."""
        result = await self.result()
        return await self._host.download(result, dest, overwrite=overwrite, max_bytes=max_bytes)

    # --- fed by the scheduler -------------------------------------------------------------

    def _outcome(self) -> VideoResult:
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        if self._interrupted:
            raise RuntimeError(
                f"the session was closed while waiting for job {self.run_id}; "
                "attach again later with session.job(run_id)"
            )
        raise RuntimeError(f"job {self.run_id} is not done")  # pragma: no cover

    def _apply(self, update: StatusUpdate, *, known: bool = True) -> None:
        """Take one observation. A status spelling we do not know keeps the previous status."""
        if self.done():
            return
        if not known:
            update = _replace_status(update, self._status)
        if update.model and not self.model:
            self.model = update.model
        update = self._estimated(update)
        previous = self.last_update
        self.last_update = update
        changed = (
            previous is None
            or previous.status is not update.status
            or previous.progress != update.progress
            or previous.estimated_progress != update.estimated_progress
        )
        if update.status is not self._status:
            log.debug("job %s: %s -> %s", self.run_id, self._status.value, update.status.value)
            self._status = update.status
            self._host.status_changed(self)
        if update.status.is_terminal:
            self._finish(update)
        if changed:
            for queue in self._listeners:
                queue.put_nowait(update)

    def _estimated(self, update: StatusUpdate) -> StatusUpdate:
        """``update`` with the estimated progress and time remaining filled in, when known."""
        status = update.status
        if status is JobStatus.COMPLETED:
            return attrs.evolve(update, estimated_progress=100.0, estimated_remaining=0.0)
        if status is not JobStatus.PROCESSING and status is not JobStatus.PENDING:
            return update
        estimate = self._host.estimate(self)
        if estimate is None:
            return update
        progress, remaining = estimate
        return attrs.evolve(
            update,
            estimated_progress=round(progress, 1),
            estimated_remaining=round(remaining * self._host.time_scale, 1),
        )

    def _finish(self, update: StatusUpdate) -> None:
        run_id = self.run_id
        if update.status is JobStatus.COMPLETED:
            if update.video_url:
                cost = update.cost
                if cost is None and self.submission is not None:
                    cost = self.submission.cost
                self._result = VideoResult(
                    run_id=run_id,
                    video_url=self._host.absolute(update.video_url),
                    model=self.model,
                    cost=cost,
                    completed_at=update.completed_at,
                )
            else:
                self._error = JobFailedError(
                    f"job {run_id} completed without a video URL", run_id=run_id
                )
        elif update.status is JobStatus.CANCELLED:
            self._error = JobCancelledError(f"job {run_id} was cancelled", run_id=run_id)
        else:
            reason = update.user_friendly_error or update.error or "no reason given"
            self._error = JobFailedError(
                f"job {run_id} failed: {reason}",
                run_id=run_id,
                error=update.error,
                user_friendly_error=update.user_friendly_error,
                is_nsfw=update.is_nsfw,
            )
        self._wake()

    def _fail(self, error: VideoExtendError) -> None:
        """Polling hit an error that retrying cannot fix (401, 403, 404)."""
        if not self.done():
            self._error = error
            self._wake()
            for queue in self._listeners:
                queue.put_nowait(None)

    def _interrupt(self) -> None:
        """The session is closing: release every waiter."""
        if not self.done():
            self._interrupted = True
            self._wake()
            for queue in self._listeners:
                queue.put_nowait(None)

    def _wake(self) -> None:
        for waiter in self._waiters or ():
            if not waiter.done():
                waiter.set_result(None)


def _replace_status(update: StatusUpdate, status: JobStatus) -> StatusUpdate:
    return attrs.evolve(update, status=status)
