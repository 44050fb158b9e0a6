"""The three error envelopes NanoGPT answers with, and ``Retry-After``: read into the
library's typed errors (re-exported by the converter, the home of every wire rule)."""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any, Final

from ._wire_values import number as _number
from ._wire_values import text as _text
from .exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientBalanceError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)

__all__ = ["parse_error", "retry_after_seconds"]

# --- errors -----------------------------------------------------------------------------------

_ERRORS: Final[Mapping[int, type[APIError]]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientBalanceError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: ServerError,
    409: ConflictError,
    413: PayloadTooLargeError,
    429: RateLimitError,
}


_BY_TYPE: Final[Mapping[str, type[APIError]]] = {
    "RATE_LIMITED": RateLimitError,
    "INSUFFICIENT_BALANCE": InsufficientBalanceError,
}


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` in seconds: delta-seconds, or an HTTP date counted from ``now``.

    ``now`` is a Unix time (default: the wall clock). Anything unreadable gives None.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": an HTTP date is always UTC
            when = when.replace(tzinfo=dt.UTC)
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_error(
    status: int, body: Any, *, reason: str, request_id: str | None, retry_after: str | None
) -> APIError:
    """Map an error response in any of the three documented envelopes to our error class.

    guide: ``{"error": {"message", "type"}}``; simple: ``{"error": "msg", "status": 402}``;
    OpenAPI: ``{"error": 400, "message": "msg"}``.
    """
    message = error_type = code = None
    required_balance = None
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            message = _text(err.get("message"))
            error_type = _text(err.get("type"))
            code = _text(err.get("code"))
            required_balance = _number(err.get("requiredBalance"))
        elif isinstance(err, str):
            message = err
        if message is None:
            message = _text(body.get("message")) or _text(body.get("detail"))
        code = code or _text(body.get("code"))
        if required_balance is None:
            required_balance = _number(body.get("requiredBalance"))
    elif isinstance(body, str) and body.strip() and len(body) < 300 and "<" not in body:
        message = body.strip()
    message = message or reason or f"HTTP {status}"
    cls = _ERRORS.get(status) or (ServerError if status >= 500 else APIError)
    if 400 <= status < 500:
        # The video guide's own client checks the type as well as the status: a rate limit or
        # an empty balance reported under another 4xx is still that (and a 429 retry is safe).
        cls = _BY_TYPE.get((error_type or "").upper(), cls)
    kw: dict[str, Any] = {
        "status_code": status,
        "error_type": error_type,
        "code": code,
        "request_id": request_id,
        "body": body,
    }
    if cls is InsufficientBalanceError:
        return InsufficientBalanceError(message, required_balance=required_balance, **kw)
    if cls is RateLimitError:
        return RateLimitError(message, retry_after=retry_after_seconds(retry_after), **kw)
    return cls(message, **kw)
