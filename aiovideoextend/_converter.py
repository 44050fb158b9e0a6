"""Every wire-format rule in one place: the request bodies we send, camelCase names, both status
envelopes, status spellings, and the three error envelopes.

NanoGPT documents two status bodies for the same endpoint (REFERENCE 6a): the nested UPPERCASE
``{"data": {"status": "IN_PROGRESS", "output": {"video": {"url": ...}}}}`` and the OpenAPI's flat
lowercase ``{"status": "processing", "videoUrl": ..., "progress": ...}``. We read both, with the
lookup order real clients use. Anything that does not fit raises :class:`ResponseDecodeError`,
never a ``KeyError`` or a cattrs traceback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final, TypeVar, cast, get_args

import cattrs
from cattrs.gen import make_dict_structure_fn, override

from ._journal_api import JournalEntry, State
from ._wire_errors import parse_error, retry_after_seconds
from ._wire_values import number as _number
from ._wire_values import text as _text
from .exceptions import (
    JournalError,
    ResponseDecodeError,
)
from .models import JobStatus, RecoveredRun, StatusUpdate, Submission

__all__ = [
    "OPTION_WIRE_NAMES",
    "SOURCE_WIRE_NAMES",
    "converter",
    "make_converter",
    "midjourney_body",
    "parse_error",
    "parse_recover",
    "parse_status",
    "parse_submission",
    "retry_after_seconds",
    "source_body",
    "status_from_wire",
    "strict_converter",
    "structure_journal_entry",
]

log = logging.getLogger("aiovideoextend")

_S = JobStatus
#: Every status spelling the docs, the OpenAPI file and real clients use, upper-cased.
_STATUS: Final[Mapping[str, JobStatus]] = {
    spelling: status
    for status, spellings in (
        (_S.PENDING, "PENDING QUEUED IN_QUEUE SUBMITTED NOT_START WAITING STARTING"),
        (_S.PROCESSING, "PROCESSING IN_PROGRESS RUNNING GENERATING DELIVERING"),
        (_S.COMPLETED, "COMPLETED COMPLETE SUCCEEDED SUCCESS"),
        (_S.FAILED, "FAILED FAILURE ERROR"),
        (_S.CANCELLED, "CANCELED CANCELLED"),
    )
    for spelling in spellings.split()
}
_unknown_logged: set[str] = set()
# A server that sends a fresh spelling every poll must not grow the set without end.
_MAX_LOGGED: Final = 256


def status_from_wire(raw: str) -> JobStatus | None:
    """The normalised status, or None for a spelling we do not know (the job keeps running)."""
    # Most servers send one of the usual spellings as they are: one lookup (every poll).
    status = _STATUS.get(raw)
    if status is None:
        status = _STATUS.get(raw.strip().upper().replace("-", "_").replace(" ", "_"))
    if status is None and raw not in _unknown_logged and len(_unknown_logged) < _MAX_LOGGED:
        # Logged once per spelling: with thousands of jobs one line is enough.
        _unknown_logged.add(raw)
        log.warning("unknown job status %r: treating the job as still running", raw[:80])
    return status


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
    raw = data.get("status")
    if not (isinstance(raw, str) and raw.strip()):
        raw = body.get("status")
        if not (isinstance(raw, str) and raw.strip()):
            raw = None
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


# --- requests: the bodies we send (validated before, by the request classes) -----------------

#: The source of a source-video extend: Python name -> wire name (a file goes as a data URL).
SOURCE_WIRE_NAMES: Final[Mapping[str, str]] = {
    "video_url": "videoUrl",
    "video_file": "videoDataUrl",
    "video_data_url": "videoDataUrl",
    "video_attachment_id": "videoAttachmentId",
    "video": "video",
}
#: Documented optional fields of ``POST generate-video``: Python name -> wire name (the API
#: mixes snake_case and camelCase).
OPTION_WIRE_NAMES: Final[Mapping[str, str]] = {
    "duration": "duration",
    "resolution": "resolution",
    "seed": "seed",
    "negative_prompt": "negative_prompt",
    "aspect_ratio": "aspect_ratio",
    "conversation_uuid": "conversationUUID",
    "generate_audio": "generateAudio",
    "mode": "mode",
}


def midjourney_body(run_id: str, index: int) -> dict[str, Any]:
    """The body of ``POST generate-video/extend``."""
    # runId is what the docs prefer, taskId what the vendor's OpenAPI requires: send both.
    return {"runId": run_id, "taskId": run_id, "index": index}


def source_body(
    model: str, prompt: str, source: str, value: str, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The body of ``POST generate-video``: one source, and the options that are not None."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, SOURCE_WIRE_NAMES[source]: value}
    body.update((OPTION_WIRE_NAMES[k], v) for k, v in options.items() if v is not None)
    return body


# --- cattrs: the flat records (submission, recover) ------------------------------------------

#: Fields of submit and recover bodies that we know and do not keep: the run id's other names
#: (see _ID_KEYS) and the Midjourney extend's ``success``.
_KNOWN_UNKEPT: Final = frozenset({"id", "requestId", "taskId", "success"})


def _structure_status(value: Any, _type: type) -> JobStatus | None:
    return status_from_wire(value) if isinstance(value, str) else None


def _structure_opt_float(value: Any, _type: type) -> float | None:
    return _number(value)


def _structure_opt_str(value: Any, _type: type) -> str | None:
    return value if isinstance(value, str) else None


#: The records we read: Python name -> wire name, where they differ.
_RECORD_WIRE_NAMES: Final[Mapping[type, Mapping[str, str]]] = {
    Submission: {
        "run_id": "runId",
        "payment_source": "paymentSource",
        "remaining_balance": "remainingBalance",
        "precharge_label": "prechargeLabel",
    },
    RecoveredRun: {
        "run_id": "runId",
        "created_at": "createdAt",
        "conversation_uuid": "conversationUUID",
    },
}


def make_converter(*, strict: bool = False) -> cattrs.Converter:
    """The converter of the records we read. ``strict`` (for tests): any field we do not know
    fails, so a server that sends a new one shows up (ours lets it pass, as the API may grow)."""
    conv = cattrs.Converter(forbid_extra_keys=strict)
    conv.register_structure_hook(JobStatus | None, _structure_status)
    conv.register_structure_hook(JobStatus, _structure_status)
    conv.register_structure_hook(float | None, _structure_opt_float)
    conv.register_structure_hook(str | None, _structure_opt_str)
    for cls, wire_names in _RECORD_WIRE_NAMES.items():
        renames: dict[str, Any] = {n: override(rename=wire) for n, wire in wire_names.items()}
        conv.register_structure_hook(cls, make_dict_structure_fn(cls, conv, **renames))
    return conv


converter: Final = make_converter()
strict_converter: Final = make_converter(strict=True)

_T = TypeVar("_T")
_ID_KEYS: Final = ("runId", "id", "requestId", "taskId")


def _with_run_id(record: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Copy ``record`` with ``runId`` filled from the documented fallbacks (id, requestId...),
    without the fields we know and do not keep."""
    for key in _ID_KEYS:
        value = record.get(key)
        if isinstance(value, str) and value:
            kept = {k: v for k, v in record.items() if k not in _KNOWN_UNKEPT}
            return {**kept, "runId": value}
    raise ResponseDecodeError(f"{what} carries no run id (runId/id)")


def _structure(
    record: dict[str, Any], cls: type[_T], what: str, conv: cattrs.Converter = converter
) -> _T:
    try:
        return conv.structure(record, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise ResponseDecodeError(f"{what} does not match the documented shape: {exc}") from None


def parse_submission(
    body: Any, default_model: str, *, conv: cattrs.Converter = converter
) -> Submission:
    """The 202 body of a submit: ``runId`` (or ``id``), ``status``, ``model``, cost fields."""
    if not isinstance(body, Mapping):
        raise ResponseDecodeError("submit response is not a JSON object")
    record = _with_run_id(body, "submit response")
    if not isinstance(record.get("model"), str):
        record["model"] = default_model
    if _structure_status(record.get("status"), JobStatus) is None:
        record["status"] = "pending"
    return _structure(record, Submission, "submit response", conv)


def parse_recover(body: Any, *, conv: cattrs.Converter = converter) -> list[RecoveredRun]:
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
        runs.append(_structure(record, RecoveredRun, "recovered run", conv))
    return runs


# --- the batch journal's entries ----------------------------------------------------------------
# Not the API's wire but our journal's: a SQLite row (or its fields as text, "" for none) is
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
