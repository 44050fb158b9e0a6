"""Submit-body rules for both extend routes (REFERENCE §3, §4, §9); each breach is an ApiError."""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._catalog import (
    ALL_SOURCE_FIELDS,
    COMMON_SOURCE_FIELDS,
    EXTEND_MODELS,
    VIDEO_FIELD_MODELS,
    duration_seconds,
    precharge_for,
)
from ._errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The guide's limit on an inline ``videoDataUrl``, decoded.
MAX_DATA_URL_BYTES: Final = 4 * 1024 * 1024
#: The longest source video the extend models take.
MAX_SOURCE_SECONDS: Final = 120.0

_DATA_URL = re.compile(r"data:(?P<mime>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)


def bad_request(message: str, code: str) -> ApiError:
    """A 400 with ``code``."""
    return ApiError(400, message, code)


@attrs.frozen
class GenerateRequest:
    """What the emulator keeps from a valid ``POST /api/generate-video`` body."""

    model: str
    precharge: float
    conversation_uuid: str | None
    #: Length of the finished video: the declared source length (else 5 s) plus the extension.
    output_seconds: float


@attrs.frozen
class ExtendRequest:
    """What the emulator keeps from a valid ``POST /api/generate-video/extend`` body."""

    run_id: str
    index: int


def _check_data_url(value: str, field: str) -> None:
    match = _DATA_URL.fullmatch(value)
    if match is None:
        raise bad_request(f"{field} must be a data: URL", "invalid_video_data_url")
    if "base64" not in match.group("params").lstrip(";").split(";"):
        raise bad_request(f"{field} must be base64-encoded", "invalid_video_data_url")
    mime = match.group("mime").lower()
    kind, _, subtype = mime.partition("/")
    if kind != "video" or not subtype:
        raise bad_request(f"{field} must carry a video/* MIME type", "invalid_video_mime_type")
    data = match.group("data")
    # Reject oversized payloads before decoding them; base64 is 4 characters per 3 bytes.
    if len(data) * 3 // 4 - data[-2:].count("=") > MAX_DATA_URL_BYTES:
        raise ApiError(
            413,
            f"{field} is larger than {MAX_DATA_URL_BYTES} bytes",
            "video_attachment_too_large",
        )
    try:
        base64.b64decode(data, validate=True)
    except binascii.Error:
        raise bad_request(f"{field} is not valid base64", "invalid_video_base64") from None


def _check_url(value: str, field: str, lengths: Mapping[str, float]) -> None:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise bad_request(f"{field} must be an http(s) URL", "invalid_video_url_scheme")
    seconds = lengths.get(value)
    if seconds is not None and seconds > MAX_SOURCE_SECONDS:
        raise bad_request(
            f"source video is {seconds:g} s long; the limit is {MAX_SOURCE_SECONDS:g} s",
            "video_too_long",
        )


def _check_source(model: str, body: Mapping[str, Any], lengths: Mapping[str, float]) -> None:
    present = [field for field in ALL_SOURCE_FIELDS if body.get(field) is not None]
    if "video" in present and model not in VIDEO_FIELD_MODELS:
        raise bad_request(f"{model} does not take the 'video' field", "video_input_not_supported")
    if not present:
        raise bad_request(
            "one of " + ", ".join(COMMON_SOURCE_FIELDS) + " is required", "missing_video_source"
        )
    if len(present) > 1:
        raise bad_request(
            "send exactly one source video field, got " + ", ".join(present),
            "multiple_video_sources",
        )
    field = present[0]
    value = body[field]
    if not isinstance(value, str) or not value.strip():
        raise bad_request(f"{field} must be a non-empty string", "invalid_video_source")
    if field == "videoDataUrl" or (field == "video" and value.startswith("data:")):
        _check_data_url(value, field)
    elif field in ("videoUrl", "video"):
        _check_url(value, field, lengths)


def _check_optional(body: Mapping[str, Any]) -> None:
    duration = body.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, str | int)):
        raise bad_request("duration must be a string or an integer", "invalid_duration")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise bad_request("seed must be an integer", "invalid_seed")
    for field in ("resolution", "negative_prompt", "aspect_ratio", "conversationUUID"):
        value = body.get(field)
        if value is not None and not isinstance(value, str):
            raise bad_request(f"{field} must be a string", f"invalid_{field.lower()}")


def validate_generate(body: Mapping[str, Any], lengths: Mapping[str, float]) -> GenerateRequest:
    """Check a source-video extend submit; ``lengths`` maps declared URLs to seconds."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("model is required", "model_not_found")
    if model not in EXTEND_MODELS:
        raise bad_request(f"model {model!r} not found or not an extend model", "model_not_found")
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("prompt must be a non-empty string", "missing_prompt")
    _check_source(model, body, lengths)
    _check_optional(body)
    source = body.get("videoUrl") or body.get("video")
    source_seconds = lengths.get(source, 5.0) if isinstance(source, str) else 5.0
    return GenerateRequest(
        model=model,
        precharge=precharge_for(model, body.get("duration")),
        conversation_uuid=body.get("conversationUUID"),
        output_seconds=source_seconds + duration_seconds(body.get("duration")),
    )


def validate_extend(body: Mapping[str, Any]) -> ExtendRequest:
    """Check a Midjourney task-based extend body (ownership is checked by the route)."""
    present = [field for field in ALL_SOURCE_FIELDS if field in body]
    if present:
        raise bad_request(
            "this endpoint extends a Midjourney run; it takes no " + ", ".join(present),
            "video_input_not_supported",
        )
    run_id, task_id = body.get("runId"), body.get("taskId")
    for name, value in (("runId", run_id), ("taskId", task_id)):
        if value is not None and (not isinstance(value, str) or not value):
            raise bad_request(f"{name} must be a non-empty string", "invalid_run_id")
    if run_id is not None and task_id is not None and run_id != task_id:
        raise bad_request("runId and taskId name different runs", "conflicting_run_id")
    chosen = run_id if run_id is not None else task_id
    if chosen is None:
        raise bad_request("runId (or taskId) is required", "missing_run_id")
    index = body.get("index")
    # bool is an int subclass in Python and JSON true must not pass as 1.
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 3:
        raise bad_request("index must be an integer from 0 to 3", "invalid_index")
    return ExtendRequest(run_id=chosen, index=index)
