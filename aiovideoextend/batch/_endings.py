"""How an entry ends when its submit or its job raises: a pure table, one rule per error.

Money rules decide it. An error that proves nothing was created drops the intent (a rerun may
submit again); one that leaves it unknown whether a job exists keeps the intent or run for the
next run (or another worker) to reconcile, never resubmitted blindly; a refused request or a
failed job is final, and a failed or cancelled job's precharge is refunded. What every line
would meet alike stops the whole batch.
"""

from __future__ import annotations

from typing import Final, Literal

import attrs

from aiovideoextend._requests import MidjourneyExtend, SourceExtend
from aiovideoextend.exceptions import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    EndpointNotFoundError,
    InsufficientBalanceError,
    JobCancelledError,
    JobFailedError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    TransportError,
    VideoExtendError,
)

__all__ = ["STOPS_BATCH", "Ending", "HeldElsewhere", "Stopped", "job_failed", "submit_failed"]

#: Errors every line would meet the same way (server unreachable, not NanoGPT, key rejected):
#: they stop the whole batch at once and ``run_batch`` raises them.
STOPS_BATCH: Final = (APIConnectionError, EndpointNotFoundError, AuthenticationError)


class Stopped(Exception):  # noqa: N818  (a signal, not an error)
    """The batch stopped submitting while this submit waited for its slot: nothing was sent."""


class HeldElsewhere(Exception):  # noqa: N818  (a signal, not an error)
    """Another writer of the journal (a queue's task delivered twice) recorded the entry's
    intent or run first: nothing was sent."""


@attrs.frozen
class Ending:
    """What becomes of an entry whose submit or job raised."""

    status: str
    error: str
    #: ``finish``: the outcome is final, journal it; ``forget``: nothing was created, drop the
    #: intent; ``release``: keep the intent or run for a rerun (or the queue's next try)
    journal: Literal["finish", "forget", "release"]
    #: the job's precharge no longer counts against max_cost
    refund: bool = False
    #: stop submitting the rest of the batch (``error`` says why)
    stop: bool = False


def submit_failed(exc: VideoExtendError, request: MidjourneyExtend | SourceExtend) -> Ending | None:
    """How an entry ends when its submit raised ``exc`` (not an ambiguous submit with
    candidates: those are followed). None: drop the intent and stop the batch with ``exc``."""
    if isinstance(exc, STOPS_BATCH):
        return None  # nothing was created; every other line would fail the same way
    if isinstance(exc, PermissionDeniedError):
        if isinstance(request, MidjourneyExtend):
            # 403 on an extend: that run belongs to someone else (this line only).
            return Ending("failed", str(exc), "finish")
        return None  # the key is not allowed here (origin): every line would be refused
    if isinstance(exc, InsufficientBalanceError):
        return Ending("insufficient_balance", str(exc), "forget", stop=True)
    if isinstance(exc, RateLimitError | TransportError):
        # The session retried these and knows no job was created: a rerun may try again.
        return Ending("skipped", f"not submitted: {exc}", "forget")
    if isinstance(exc, APIError):
        return Ending("failed", str(exc), "finish")
    # Unknown whether a job exists (an ambiguous submit recover could not be asked about, a
    # journal that failed): the intent stays for the next run to reconcile.
    return Ending("unfinished", f"submit outcome unknown: {exc}", "release")


def job_failed(exc: VideoExtendError) -> Ending | None:
    """How an entry ends when following its job raised ``exc``. None: stop the batch."""
    if isinstance(exc, JobFailedError):
        error = exc.user_friendly_error or exc.error or str(exc)
        return Ending("failed", error, "finish", refund=True)
    if isinstance(exc, JobCancelledError):
        return Ending("cancelled", str(exc), "finish", refund=True)
    if isinstance(exc, NotFoundError | PermissionDeniedError):
        return Ending("failed", str(exc), "finish")
    if isinstance(exc, STOPS_BATCH):
        return None
    # Timed out, or the server could not be asked: the job runs on; a rerun keeps waiting.
    return Ending("unfinished", f"{exc}; rerun to keep waiting", "release")
