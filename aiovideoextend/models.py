"""Plain models: what the library hands to its users.

They are snake_case attrs classes. The wire format (camelCase, the two status envelopes, every
status spelling) is read and written by the library's converter, never by these classes.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "Event",
    "EventKind",
    "JobStatus",
    "RecoveredRun",
    "StatusUpdate",
    "Submission",
    "VideoResult",
]


class JobStatus(enum.Enum):
    """The normalised life cycle of a job."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


@attrs.frozen
class Submission:
    """What the server said when it accepted a job (the 202 response)."""

    run_id: str
    model: str
    status: JobStatus = JobStatus.PENDING
    cost: float | None = None
    payment_source: str | None = None
    remaining_balance: float | None = None
    precharge_label: str | None = None
    #: the server's estimate until completion, in the server's seconds (Midjourney extend only)
    eta: float | None = None
    message: str | None = None


@attrs.frozen
class StatusUpdate:
    """One observation of a job's state, normalised from either status envelope."""

    run_id: str
    status: JobStatus
    #: the status string exactly as the server sent it
    raw_status: str | None = None
    #: percent complete, 0-100, when the server says
    progress: float | None = None
    #: seconds remaining according to the server (unclamped, in the server's seconds)
    eta: float | None = None
    video_url: str | None = None
    cost: float | None = None
    error: str | None = None
    user_friendly_error: str | None = None
    is_nsfw: bool = False
    model: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    #: ESTIMATED percent complete (0-100), from how long this session's finished jobs of the
    #: same model took: not the server's word. None until one of them ended (or for a job
    #: attached by run id, whose age is unknown); 100 once completed.
    estimated_progress: float | None = None
    #: ESTIMATED seconds remaining (in the server's seconds, like ``eta``), from the same
    #: learned durations; 0 past the typical duration; None when unknown.
    estimated_remaining: float | None = None


@attrs.frozen
class VideoResult:
    """A completed job."""

    run_id: str
    video_url: str
    model: str | None = None
    #: the final cost when the server reported it, else the precharge when known
    cost: float | None = None
    completed_at: str | None = None


@attrs.frozen
class RecoveredRun:
    """One entry of ``GET generate-video/recover``."""

    run_id: str
    model: str | None = None
    status: JobStatus | None = None
    created_at: str | None = None
    conversation_uuid: str | None = None


class EventKind(enum.Enum):
    """What an :class:`Event` reports."""

    SUBMITTED = "submitted"
    STATUS_CHANGED = "status_changed"
    RETRYING = "retrying"
    WAITING_FOR_RATE_LIMIT = "waiting_for_rate_limit"
    RATE_LIMITED = "rate_limited"
    RECONCILED = "reconciled"


@attrs.frozen
class Event:
    """Passed to ``Session(on_event=...)`` hooks: progress displays and metrics hang off these."""

    kind: EventKind
    run_id: str | None = None
    #: the budget ("extend", "generate", "recover", "overall") for limiter events, else None
    budget: str | None = None
    status: JobStatus | None = None
    #: seconds the client will wait (rate-limit waits and retries)
    delay: float | None = None
    detail: str | None = None
