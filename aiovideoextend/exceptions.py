"""The errors aiovideoextend raises.

Every error the library raises on purpose derives from :class:`VideoExtendError`::

    VideoExtendError
    ├── InvalidRequestError (also ValueError)    bad arguments; nothing was sent
    ├── APIError                                 the server answered with an error status
    │   ├── BadRequestError                      400
    │   ├── AuthenticationError                  401
    │   ├── InsufficientBalanceError             402 (required_balance)
    │   ├── PermissionDeniedError                403
    │   ├── NotFoundError                        404
    │   ├── ConflictError                        409
    │   ├── PayloadTooLargeError                 413
    │   ├── RateLimitError                       429 (retry_after)
    │   ├── ServerError                          5xx, 408
    │   └── EndpointNotFoundError                404/501 not from NanoGPT: wrong base URL
    ├── TransportError                           connection failed, reset or timed out
    │   └── APIConnectionError                   the server cannot be reached; nothing sent
    ├── ResponseDecodeError                      the body is not what the API documents
    ├── AmbiguousSubmitError                     a submit may have created a job; see candidates
    ├── DownloadError                            a video could not be downloaded
    ├── JournalError                             a batch journal is corrupt, newer, or in use
    ├── ManifestError                            a batch manifest cannot be read at all
    ├── LimiterUnavailableError                  the shared (Redis) limiter is down; nothing sent
    └── JobError                                 a job ended badly (carries run_id)
        ├── JobFailedError                       FAILED (error, user_friendly_error, is_nsfw)
        ├── JobCancelledError                    CANCELLED
        └── JobTimeoutError (also TimeoutError)  no terminal state before the deadline

Messages never contain the API key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "APIConnectionError",
    "APIError",
    "AmbiguousSubmitError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "DownloadError",
    "EndpointNotFoundError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobTimeoutError",
    "JournalError",
    "LimiterUnavailableError",
    "ManifestError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "TransportError",
    "VideoExtendError",
]


def _restore(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class VideoExtendError(Exception):
    """Base class of every error raised by aiovideoextend."""

    def __reduce__(self) -> tuple[Any, ...]:
        # The default re-calls ``cls(*args)``, which fails on our required keyword arguments:
        # without this, pickle (multiprocessing, concurrent.futures) and copy.copy break.
        return _restore, (type(self), self.args, self.__dict__)


class InvalidRequestError(VideoExtendError, ValueError):
    """The arguments can never make a valid request; nothing was sent or charged."""


class APIError(VideoExtendError):
    """The server answered with an error status.

    ``message`` comes from whichever of the three documented error envelopes the server used.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error_type: str | None = None,
        code: str | None = None,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_type = error_type
        self.code = code
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        parts = [f"{self.status_code}: {self.message}"]
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class BadRequestError(APIError):
    """400: validation error or safety filter."""


class AuthenticationError(APIError):
    """401: missing, invalid, revoked or expired API key."""


class InsufficientBalanceError(APIError):
    """402: the balance does not cover the precharge."""

    def __init__(self, message: str, *, required_balance: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.required_balance = required_balance


class PermissionDeniedError(APIError):
    """403: the job belongs to another user, or the key's origin is not allowed."""


class NotFoundError(APIError):
    """404: no such job."""


class ConflictError(APIError):
    """409: conflict."""


class PayloadTooLargeError(APIError):
    """413: the request body (usually a ``videoDataUrl``) is too large."""


class RateLimitError(APIError):
    """429: rate limited; ``retry_after`` is the server's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx (or 408): the server failed; the request may be retried when it is idempotent."""


class EndpointNotFoundError(APIError):
    """The base URL does not serve NanoGPT's API: a route the API has answered 404 or 501
    without NanoGPT's error body (a wrong ``base_url``, ``/api`` missing, another server).

    Nothing was created or charged. ``url`` is the URL that was tried.
    """

    def __init__(self, message: str, *, url: str, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.url = url

    def __str__(self) -> str:
        return self.message


class TransportError(VideoExtendError):
    """The connection failed, was reset, or timed out before a full response arrived.

    ``timed_out``: the client gave up waiting; the server may still be working on it.
    """

    timed_out: bool = False


class APIConnectionError(TransportError):
    """The server cannot be reached (connection refused, unknown host, connect timeout).

    No connection was made, so the request provably never reached the server: nothing was
    created or charged. ``url`` is the URL that was tried, ``reason`` why it failed.
    """

    def __init__(self, message: str, *, url: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


class ResponseDecodeError(VideoExtendError):
    """The server's answer is not JSON or lacks what the API documents."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AmbiguousSubmitError(VideoExtendError):
    """A submit's outcome is unknown and reconciliation found no single matching run.

    ``candidates`` lists the run ids that might be the job; none was adopted and nothing was
    resubmitted, so no double charge can happen. ``cause`` is the failure that made it unknown.
    """

    def __init__(
        self, message: str, *, model: str, candidates: Sequence[str] = (), cause: str = ""
    ) -> None:
        super().__init__(message)
        self.model = model
        self.candidates = tuple(candidates)
        self.cause = cause


class JobError(VideoExtendError):
    """A job did not produce a video."""

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message)
        self.run_id = run_id


class JobFailedError(JobError):
    """The job ended FAILED."""

    def __init__(
        self,
        message: str,
        *,
        run_id: str,
        error: str | None = None,
        user_friendly_error: str | None = None,
        is_nsfw: bool = False,
    ) -> None:
        super().__init__(message, run_id=run_id)
        self.error = error
        self.user_friendly_error = user_friendly_error
        self.is_nsfw = is_nsfw


class JobCancelledError(JobError):
    """The job ended CANCELLED."""


class JobTimeoutError(JobError, TimeoutError):
    """The job was still running when the deadline passed; it may still finish server-side."""


class DownloadError(VideoExtendError):
    """A video could not be downloaded (bad URL, HTTP error, size limit, disk error)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class JournalError(VideoExtendError):
    """The journal cannot be used: corrupt, written by a newer version, or in use elsewhere."""


class ManifestError(VideoExtendError):
    """The manifest as a whole cannot be read (missing, unreadable, no CSV header)."""


class LimiterUnavailableError(VideoExtendError):
    """The shared limiter (Redis) cannot be reached, so no request was sent.

    Never retried silently: without the shared budget, sending could overrun the server's limit.
    Slots already taken expire on their own after the limiter's lease.
    """
