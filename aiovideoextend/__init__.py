"""aiovideoextend: an asyncio client for NanoGPT's video extend API.

Submit paid extend jobs under the documented rate limits, await them, resume them.

``__all__`` is what users call, configure, catch or compare with. The protocols and hook
types you implement are in :mod:`aiovideoextend.typing`; the batch runner is
:mod:`aiovideoextend.batch`, the Redis limiter :mod:`aiovideoextend.redis_limiter`, the task queue
:mod:`aiovideoextend.queue`, the emulator :mod:`aiovideoextend.testing`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import exceptions
from ._config import Budget, Limits, PollPolicy, Retries, Timeouts
from ._job import USE_POLICY_DEFAULT, Job
from ._limiter import RateLimiter
from ._logs import setup_from_env as _setup_logging
from ._requests import (
    EXTEND_MODELS,
    MIDJOURNEY_MODEL,
    ExtendOptions,
    MidjourneyExtend,
    SourceExtend,
)
from ._session import DEFAULT_BASE_URL, LONGEST_RATE_LIMIT_WAIT, Session
from .exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    DownloadError,
    EndpointNotFoundError,
    InsufficientBalanceError,
    InvalidRequestError,
    JobCancelledError,
    JobError,
    JobFailedError,
    JobTimeoutError,
    JournalError,
    LimiterUnavailableError,
    ManifestError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    VideoExtendError,
)
from .models import (
    Event,
    EventKind,
    JobStatus,
    RecoveredRun,
    StatusUpdate,
    Submission,
    VideoResult,
)

_setup_logging()

try:
    __version__ = version("aiovideoextend")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "EXTEND_MODELS",
    "LONGEST_RATE_LIMIT_WAIT",
    "MIDJOURNEY_MODEL",
    "USE_POLICY_DEFAULT",
    "APIConnectionError",
    "APIError",
    "AmbiguousSubmitError",
    "AuthenticationError",
    "BadRequestError",
    "Budget",
    "ConflictError",
    "DownloadError",
    "EndpointNotFoundError",
    "Event",
    "EventKind",
    "ExtendOptions",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "Job",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobStatus",
    "JobTimeoutError",
    "JournalError",
    "LimiterUnavailableError",
    "Limits",
    "ManifestError",
    "MidjourneyExtend",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "PollPolicy",
    "RateLimitError",
    # An implementation, exported on purpose: ``Session(limiter=RateLimiter(limits))`` gives a
    # session a budget of its own instead of the one shared by the process (docs/limits.md).
    "RateLimiter",
    "RecoveredRun",
    "ResponseDecodeError",
    "Retries",
    "ServerError",
    "Session",
    "SourceExtend",
    "StatusUpdate",
    "Submission",
    "Timeouts",
    "TransportError",
    "VideoExtendError",
    "VideoResult",
    "__version__",
    "exceptions",
]
