"""Job: the awaitable handle of one run, fed by the session's poll scheduler."""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._poll_plan import JobPlan, next_delay
from .exceptions import JobCancelledError, JobFailedError, JobTimeoutError, VideoExtendError
from .models import JobStatus, StatusUpdate, Submission, VideoResult

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["USE_POLICY_DEFAULT", "Job"]

log = logging.getLogger("aiovideoextend")


class _Default(enum.Enum):
    USE_POLICY_DEFAULT = "USE_POLICY_DEFAULT"


#: ``result(timeout=USE_POLICY_DEFAULT)`` waits until the poll policy's deadline;
#: None waits forever.
USE_POLICY_DEFAULT: Final = _Default.USE_POLICY_DEFAULT


class Job:
    """One run on the server: ``await job`` gives its :class:`VideoResult` or raises.

    Any number of tasks may await the same job: they share one poll loop. Polling runs only
    while somebody waits (``await``, :meth:`result`, :meth:`updates`).
    """

    __slots__ = (
        "__weakref__",
        "_born",
        "_deadline",
        "_demand",
        "_due",
        "_error",
        "_event",
        "_interrupted",
        "_listeners",
        "_plan",
        "_polled",
        "_result",
        "_scheduled",
        "_seen_running",
        "_session",
        "_status",
        "last_update",
        "model",
        "run_id",
        "submission",
    )

    def __init__(
        self,
        session: Session,
        run_id: str,
        model: str | None = None,
        submission: Submission | None = None,
    ) -> None:
        self._session: Final = session
        self.run_id: Final = run_id
        self.model = model
        #: the 202 answer (None for a job attached with ``session.job()``)
        self.submission: Final = submission
        #: the latest status observation
        self.last_update: StatusUpdate | None = None
        self._status = JobStatus.PENDING
        self._result: VideoResult | None = None
        self._error: VideoExtendError | None = None
        self._event: asyncio.Event | None = None
        self._listeners: list[asyncio.Queue[StatusUpdate | None]] = []
        self._demand = 0
        self._scheduled = False
        self._interrupted = False
        self._polled = False
        policy = session._poll
        now = asyncio.get_running_loop().time()
        self._deadline = None if policy.timeout is None else now + policy.timeout
        # The age of a job we submitted is known; one attached by id may be of any age.
        self._born = now if submission is not None else None
        #: loop time of the last poll that found the job still running
        self._seen_running = now
        #: loop time the job is due in the scheduler's heap (older heap entries are stale)
        self._due = 0.0
        eta = submission.eta if submission is not None else None
        eta = None if eta is None else eta / session.time_scale
        self._plan = JobPlan(now, self._born, eta, policy.first)
        session._scheduler.born(self)

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
        if not self.done():
            loop = asyncio.get_running_loop()
            if timeout is USE_POLICY_DEFAULT:
                deadline = self._deadline
            else:
                deadline = None if timeout is None else loop.time() + timeout
            event = self._waiter()
            self._demand += 1
            self._session._scheduler.ensure(self)
            try:
                async with asyncio.timeout_at(deadline):
                    await event.wait()
            except TimeoutError:
                raise JobTimeoutError(
                    f"job {self.run_id} still {self._status.value} at the deadline",
                    run_id=self.run_id,
                ) from None
            finally:
                self._demand -= 1
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
        self._session._scheduler.ensure(self)
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
        update, known = await self._session._fetch_status(self.run_id)
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
        return await self._session.download(result, dest, overwrite=overwrite, max_bytes=max_bytes)

    # --- fed by the scheduler -------------------------------------------------------------

    def _waiter(self) -> asyncio.Event:
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

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
        if self._born is not None or update.status is JobStatus.COMPLETED:
            update = self._estimated(update)
        previous = self.last_update
        self.last_update = update
        self._polled = True
        changed = (
            previous is None
            or previous.status is not update.status
            or previous.progress != update.progress
            or previous.estimated_progress != update.estimated_progress
        )
        if update.status is not self._status:
            log.debug("job %s: %s -> %s", self.run_id, self._status.value, update.status.value)
            self._status = update.status
            self._session._status_changed(self)
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
        estimate = self._session._scheduler.estimate(self, asyncio.get_running_loop().time())
        if estimate is None:
            return update
        progress, remaining = estimate
        return attrs.evolve(
            update,
            estimated_progress=round(progress, 1),
            estimated_remaining=round(remaining * self._session.time_scale, 1),
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
                    video_url=self._session._absolute(update.video_url),
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
        if self._event is not None:
            self._event.set()

    def _next_delay(self, now: float) -> float:
        """Seconds until the next poll (see `next_delay`)."""
        session = self._session
        learned = session._scheduler.learned(self)
        update = self.last_update
        return next_delay(
            self._plan,
            update,
            policy=session._poll,
            learned=learned,
            now=now,
            rand=session._random,
            time_scale=session.time_scale,
        )


def _replace_status(update: StatusUpdate, status: JobStatus) -> StatusUpdate:
    return attrs.evolve(update, status=status)
