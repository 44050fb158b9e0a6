"""Every wire-format rule in one place: camelCase names, both status envelopes, status spellings,
and the three error envelopes.

NanoGPT documents two status bodies for the same endpoint (REFERENCE 6a): the nested UPPERCASE
``{"data": {"status": "IN_PROGRESS", "output": {"video": {"url": ...}}}}`` and the OpenAPI's flat
lowercase ``{"status": "processing", "videoUrl": ..., "progress": ...}``. We read both, with the
lookup order real clients use. Anything that does not fit raises :class:`ResponseDecodeError`,
never a ``KeyError`` or a cattrs traceback.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Final, TypeVar, cast, get_args

import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._journal_api import JournalEntry, State
from .exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientBalanceError,
    JournalError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from .models import JobStatus, RecoveredRun, StatusUpdate, Submission

__all__ = [
    "converter",
    "parse_error",
    "parse_recover",
    "parse_status",
    "parse_submission",
    "status_from_wire",
    "structure_journal_entry",
]

log = logging.getLogger("aiovideoextend")

_S = JobStatus
#: Every status spelling the docs, the OpenAPI file and real clients use, upper-cased.
_STATUS: Final[Mapping[str, JobStatus]] = {
    "PENDING": _S.PENDING,
    "QUEUED": _S.PENDING,
    "IN_QUEUE": _S.PENDING,
    "SUBMITTED": _S.PENDING,
    "NOT_START": _S.PENDING,
    "WAITING": _S.PENDING,
    "STARTING": _S.PENDING,
    "PROCESSING": _S.PROCESSING,
    "IN_PROGRESS": _S.PROCESSING,
    "RUNNING": _S.PROCESSING,
    "GENERATING": _S.PROCESSING,
    "DELIVERING": _S.PROCESSING,
    "COMPLETED": _S.COMPLETED,
    "COMPLETE": _S.COMPLETED,
    "SUCCEEDED": _S.COMPLETED,
    "SUCCESS": _S.COMPLETED,
    "FAILED": _S.FAILED,
    "FAILURE": _S.FAILED,
    "ERROR": _S.FAILED,
    "CANCELED": _S.CANCELLED,
    "CANCELLED": _S.CANCELLED,
}
_unknown_logged: set[str] = set()
# A server that sends a fresh spelling every poll must not grow the set without end.
_MAX_LOGGED: Final = 256


def status_from_wire(raw: str) -> JobStatus | None:
    """The normalised status, or None for a spelling we do not know (the job keeps running)."""
    status = _STATUS.get(raw.strip().upper().replace("-", "_").replace(" ", "_"))
    if status is None and raw not in _unknown_logged and len(_unknown_logged) < _MAX_LOGGED:
        # Logged once per spelling: with thousands of jobs one line is enough.
        _unknown_logged.add(raw)
        log.warning("unknown job status %r: treating the job as still running", raw[:80])
    return status


def _number(value: Any) -> float | None:
    """A finite float from a JSON number or a numeric string like "50%"; else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None


def _text(value: Any) -> str | None:
    if value is None:  # the common case, before the slow Mapping check
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        # "Failed jobs include an `error` object" [GEN]: take its message.
        for key in ("message", "error", "detail"):
            if isinstance(value.get(key), str):
                return str(value[key])
    if value is None or isinstance(value, bool):
        return None
    try:
        return str(value)
    except ValueError:  # an int past sys.get_int_max_str_digits()
        return None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        # Decoded JSON is plain dicts and Nones: test those before the slow ABC check (hot path).
        if obj is None or (type(obj) is not dict and not isinstance(obj, Mapping)):
            return None
        obj = obj.get(key)
    return obj


def _first(key: str, *sources: Mapping[str, Any]) -> Any:
    """The first non-null ``key`` of ``sources``: an explicit null must not hide the other one."""
    for source in sources:
        value = source.get(key)
        if value is not None:
            return value
    return None


_URL_PATHS: Final = (
    ("data", "output", "video", "url"),
    ("data", "output", "url"),
    ("data", "video", "url"),
    ("output", "video", "url"),
    ("data", "videoUrl"),
    ("videoUrl",),
    ("data", "video_url"),
    ("video_url",),
)

_EMPTY: Final[Mapping[str, Any]] = {}
#: every key the paths above start from, in the body or in ``data``
_URL_KEYS: Final = frozenset({"output", "video", "videoUrl", "video_url"})


def parse_status(body: Any, run_id: str) -> tuple[StatusUpdate, bool]:
    """Normalise a status body of either envelope.

    Returns the update and whether its status spelling was known (an unknown one keeps the
    previous status: the caller decides).
    """
    # Decoded JSON is a plain dict: test that before the slower ABC check (every poll).
    if type(body) is not dict and not isinstance(body, Mapping):
        raise ResponseDecodeError(f"status body for {run_id} is not a JSON object")
    data = body.get("data")
    if type(data) is not dict and not isinstance(data, Mapping):
        data = _EMPTY
    raw = next(
        (s for s in (data.get("status"), body.get("status")) if isinstance(s, str) and s.strip()),
        None,
    )
    if raw is None:
        raise ResponseDecodeError(f"status body for {run_id} has no status")
    status = status_from_wire(raw)
    url: str | None = None
    # Most polls find a job still running, with no URL anywhere: one C-level key test skips the
    # eight path lookups below (the hot path of every poll).
    if _URL_KEYS.isdisjoint(body) and _URL_KEYS.isdisjoint(data):
        paths: tuple[tuple[str, ...], ...] = ()
    else:
        paths = _URL_PATHS
    for path in paths:
        candidate = _get(body, *path)
        if isinstance(candidate, str) and candidate:
            url = candidate
            break
    nsfw = _first("isNSFWError", data, body)
    error = _text(data.get("error")) or _text(body.get("error")) or None
    friendly = _text(data.get("userFriendlyError")) or _text(body.get("userFriendlyError")) or None
    model = _first("model", body, data)
    update = StatusUpdate(
        run_id=run_id,
        status=status or _S.PROCESSING,
        raw_status=raw,
        progress=_number(_first("progress", data, body)),
        eta=_number(_first("estimatedTimeRemaining", data, body)),
        video_url=url,
        cost=_number(_first("cost", data, body)),
        error=error,
        user_friendly_error=friendly,
        is_nsfw=nsfw is True,
        model=model if isinstance(model, str) else None,
        created_at=_text(_first("createdAt", body, data)),
        completed_at=_text(_first("completedAt", body, data)),
    )
    return update, status is not None


# --- cattrs: the flat records (submission, recover) ------------------------------------------

converter: Final = cattrs.Converter(forbid_extra_keys=False)


def _structure_status(value: Any, _type: type) -> JobStatus | None:
    return status_from_wire(value) if isinstance(value, str) else None


def _structure_opt_float(value: Any, _type: type) -> float | None:
    return _number(value)


def _structure_opt_str(value: Any, _type: type) -> str | None:
    return value if isinstance(value, str) else None


converter.register_structure_hook(JobStatus | None, _structure_status)
converter.register_structure_hook(JobStatus, _structure_status)
converter.register_structure_hook(float | None, _structure_opt_float)
converter.register_structure_hook(str | None, _structure_opt_str)
converter.register_structure_hook(
    Submission,
    make_dict_structure_fn(
        Submission,
        converter,
        run_id=override(rename="runId"),
        payment_source=override(rename="paymentSource"),
        remaining_balance=override(rename="remainingBalance"),
        precharge_label=override(rename="prechargeLabel"),
    ),
)
converter.register_structure_hook(
    RecoveredRun,
    make_dict_structure_fn(
        RecoveredRun,
        converter,
        run_id=override(rename="runId"),
        created_at=override(rename="createdAt"),
        conversation_uuid=override(rename="conversationUUID"),
    ),
)

_T = TypeVar("_T")
_ID_KEYS: Final = ("runId", "id", "requestId", "taskId")


def _with_run_id(record: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Copy ``record`` with ``runId`` filled from the documented fallbacks (id, requestId...)."""
    for key in _ID_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value:
            return {**record, "runId": value}
    raise ResponseDecodeError(f"{what} carries no run id (runId/id)")


def _structure(record: dict[str, Any], cls: type[_T], what: str) -> _T:
    try:
        return converter.structure(record, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise ResponseDecodeError(f"{what} does not match the documented shape: {exc}") from None


def parse_submission(body: Any, default_model: str) -> Submission:
    """The 202 body of a submit: ``runId`` (or ``id``), ``status``, ``model``, cost fields."""
    if not isinstance(body, Mapping):
        raise ResponseDecodeError("submit response is not a JSON object")
    record = _with_run_id(body, "submit response")
    if not isinstance(record.get("model"), str):
        record["model"] = default_model
    if _structure_status(record.get("status"), JobStatus) is None:
        record["status"] = "pending"
    return _structure(record, Submission, "submit response")


def parse_recover(body: Any) -> list[RecoveredRun]:
    """The ``data`` list of ``generate-video/recover`` (entries without an id are skipped)."""
    items = body.get("data") if isinstance(body, Mapping) else body
    if not isinstance(items, list):
        raise ResponseDecodeError("recover response has no data list")
    runs = []
    for item in items:
        if not isinstance(item, Mapping):
            continue
        try:
            record = _with_run_id(item, "recovered run")
        except ResponseDecodeError:
            continue
        runs.append(_structure(record, RecoveredRun, "recovered run"))
    return runs


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


# --- the batch journal's entries ----------------------------------------------------------------
# Not the API's wire but our journals': a SQLite row and a Redis hash (all text, "" for none) are
# decoded by this one rule, in a block of its own.


def _stored_state(value: Any, _type: type) -> State:
    if value not in get_args(State):
        raise ValueError(f"unknown state {value!r}")
    return cast("State", value)


def _stored_outcome(value: Any, _type: type) -> dict[str, Any] | None:
    outcome = json.loads(value) if isinstance(value, str | bytes) and value else value
    if outcome is None or outcome == "" or isinstance(outcome, dict):
        return outcome or None
    raise TypeError("the outcome is not a JSON object")


_text_or_none = override(struct_hook=lambda value, _: value or None)
_flag = override(struct_hook=lambda value, _: value in (True, 1, "1"))
converter.register_structure_hook(
    JournalEntry,
    make_dict_structure_fn(
        JournalEntry,
        converter,
        _cattrs_detailed_validation=False,  # a batch reads every entry often
        state=override(struct_hook=_stored_state),
        run_id=_text_or_none,
        owner=_text_or_none,
        submitted_seq=override(
            struct_hook=lambda value, _: None if value in (None, "") else int(value)
        ),
        outcome=override(struct_hook=_stored_outcome),
        owner_alive=_flag,
        adopted=_flag,
    ),
)


def structure_journal_entry(fields: Mapping[str, Any]) -> JournalEntry:
    """A journal entry from its stored fields (named as in :class:`JournalEntry`; others are
    ignored). Raises :class:`JournalError` for one that cannot be read."""
    try:
        return converter.structure(fields, JournalEntry)
    except KeyError as exc:
        why = f"no {exc.args[0]}"
    except (ValueError, TypeError) as exc:
        why = str(exc)
    raise JournalError(f"journal entry {fields.get('entry_id')} cannot be read: {why}")
