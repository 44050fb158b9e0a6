"""The wire-format rules: both status envelopes, every status spelling, submit/recover bodies
and the three error envelopes (REFERENCE §4-6a, §9, §10)."""

from __future__ import annotations

import logging
import math
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiovideoextend import _converter
from aiovideoextend._converter import (
    _number,
    _structure,
    _text,
    parse_error,
    parse_recover,
    parse_status,
    parse_submission,
    retry_after_seconds,
    status_from_wire,
    strict_converter,
)
from aiovideoextend.exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InsufficientBalanceError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
)
from aiovideoextend.models import JobStatus, RecoveredRun, StatusUpdate, Submission
from aiovideoextend.testing import Emulator

S = JobStatus
RUN = "vid_m1abc123def456"
URL = "https://d1q70pf5vjeyhc.cloudfront.net/predictions/abc/0.mp4"

#: The spelling the emulator (and the docs it follows) uses for each status, per envelope.
NESTED = {
    S.PENDING: "IN_QUEUE",
    S.PROCESSING: "IN_PROGRESS",
    S.COMPLETED: "COMPLETED",
    S.FAILED: "FAILED",
    S.CANCELLED: "CANCELED",
}
FLAT = {
    S.PENDING: "queued",
    S.PROCESSING: "processing",
    S.COMPLETED: "completed",
    S.FAILED: "failed",
    S.CANCELLED: "cancelled",
}
RECOVER = {
    S.PENDING: "pending",
    S.PROCESSING: "processing",
    S.COMPLETED: "completed",
    S.FAILED: "failed",
    S.CANCELLED: "cancelled",
}

#: Every spelling in the docs, the OpenAPI file and the third-party clients REFERENCE cites.
SPELLINGS = {
    "IN_QUEUE": S.PENDING,
    "queued": S.PENDING,
    "QUEUED": S.PENDING,
    "pending": S.PENDING,
    "PENDING": S.PENDING,
    "submitted": S.PENDING,
    "NOT_START": S.PENDING,
    "waiting": S.PENDING,
    "starting": S.PENDING,
    "IN_PROGRESS": S.PROCESSING,
    "in-progress": S.PROCESSING,
    "in progress": S.PROCESSING,
    "processing": S.PROCESSING,
    "RUNNING": S.PROCESSING,
    "generating": S.PROCESSING,
    "delivering": S.PROCESSING,
    "COMPLETED": S.COMPLETED,
    "completed": S.COMPLETED,
    "complete": S.COMPLETED,
    "succeeded": S.COMPLETED,
    "SUCCESS": S.COMPLETED,
    "FAILED": S.FAILED,
    "failed": S.FAILED,
    "failure": S.FAILED,
    "ERROR": S.FAILED,
    "CANCELED": S.CANCELLED,
    "canceled": S.CANCELLED,
    "CANCELLED": S.CANCELLED,
    "cancelled": S.CANCELLED,
    "  Completed\n": S.COMPLETED,
}


@pytest.fixture(autouse=True)
def _fresh_unknown_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees unknown spellings as new (the once-per-spelling log is global)."""
    monkeypatch.setattr(_converter, "_unknown_logged", set())


def nested(status: str, **data: Any) -> dict[str, Any]:
    """Shape A: {"requestId", "model", "data": {"status", "requestId", ...}}."""
    return {
        "requestId": RUN,
        "model": "veo3-1-extend",
        "data": {"status": status, "requestId": RUN, **data},
    }


def flat(status: str, **fields: Any) -> dict[str, Any]:
    """Shape B (OpenAPI): every required field present, nullable ones null."""
    body: dict[str, Any] = {
        "requestId": RUN,
        "status": status,
        "progress": None,
        "estimatedTimeRemaining": None,
        "videoUrl": None,
        "error": None,
        "createdAt": None,
        "completedAt": None,
    }
    body.update(fields)
    return body


def legacy(status: str, **data: Any) -> dict[str, Any]:
    """The deprecated generate-video/status body: only ``data`` with a snake_case request_id."""
    return {"data": {"status": status, "request_id": RUN, **data}}


def status_of(body: Any) -> StatusUpdate:
    update, known = parse_status(body, RUN)
    assert known
    return update


# --- status spellings -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), SPELLINGS.items())
def test_status_spellings(raw: str, expected: JobStatus) -> None:
    """Every documented spelling maps to its normalised status, whatever the case or separator."""
    assert status_from_wire(raw) is expected


@pytest.mark.parametrize("raw", ["unknown", "WARMING_UP", "", "   "])
def test_unknown_spelling_is_none(raw: str) -> None:
    """An unknown spelling (the OpenAPI's own "unknown" included) is None: keep polling."""
    assert status_from_wire(raw) is None


def test_unknown_spelling_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """An unknown spelling is logged once per spelling, not once per poll."""
    with caplog.at_level(logging.WARNING, logger="aiovideoextend"):
        for _ in range(3):
            status_from_wire("WARMING_UP")
        status_from_wire("COOLING_DOWN")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "'WARMING_UP'" in messages[0]
    assert "'COOLING_DOWN'" in messages[1]


def test_unknown_log_memory_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    """A server inventing a new spelling per poll cannot grow the log-once set without end."""
    with caplog.at_level(logging.WARNING, logger="aiovideoextend"):
        for n in range(_converter._MAX_LOGGED + 50):
            status_from_wire(f"STATE_{n}")
    assert len(_converter._unknown_logged) == _converter._MAX_LOGGED
    assert len(caplog.records) == _converter._MAX_LOGGED


# --- parse_status: the envelopes ---------------------------------------------------------------


def test_nested_in_progress() -> None:
    """Shape A in progress: PROCESSING, model from the top level, nothing else invented."""
    update = status_of(nested("IN_PROGRESS", details="Video is being generated"))
    assert update == StatusUpdate(
        run_id=RUN, status=S.PROCESSING, raw_status="IN_PROGRESS", model="veo3-1-extend"
    )


def test_nested_completed() -> None:
    """Shape A completed: URL from data.output.video.url and the final cost from data.cost."""
    update = status_of(nested("COMPLETED", output={"video": {"url": URL}}, cost=0.35))
    assert (update.status, update.video_url, update.cost) == (S.COMPLETED, URL, 0.35)
    assert update.status.is_terminal


def test_nested_failed() -> None:
    """Shape A failed: error, userFriendlyError and isNSFWError are all kept."""
    update = status_of(
        nested(
            "FAILED",
            error="Content policy violation",
            isNSFWError=True,
            userFriendlyError="Content flagged by the provider's safety filter.",
        )
    )
    assert update.status is S.FAILED
    assert update.error == "Content policy violation"
    assert update.user_friendly_error == "Content flagged by the provider's safety filter."
    assert update.is_nsfw is True


def test_nested_canceled_single_l() -> None:
    """Shape A spells it CANCELED; it is CANCELLED, terminal."""
    update = status_of(nested("CANCELED", error="Job was cancelled"))
    assert update.status is S.CANCELLED
    assert update.status.is_terminal


def test_flat_processing_with_progress() -> None:
    """Shape B keeps progress, estimatedTimeRemaining and createdAt."""
    update = status_of(
        flat(
            "processing", progress=42, estimatedTimeRemaining=33.5, createdAt="2026-01-01T00:00:00Z"
        )
    )
    assert (update.status, update.progress, update.eta) == (S.PROCESSING, 42.0, 33.5)
    assert update.created_at == "2026-01-01T00:00:00Z"
    assert (update.video_url, update.error, update.completed_at, update.model) == (None,) * 4


def test_flat_completed() -> None:
    """Shape B completed: the flat videoUrl and completedAt."""
    update = status_of(
        flat("completed", progress=100, videoUrl=URL, completedAt="2026-01-01T00:01:00Z")
    )
    assert (update.status, update.video_url) == (S.COMPLETED, URL)
    assert update.completed_at == "2026-01-01T00:01:00Z"


def test_flat_cancelled_double_l() -> None:
    """Shape B spells it cancelled; it is CANCELLED too."""
    assert status_of(flat("cancelled")).status is S.CANCELLED


def test_flat_unknown_status_is_not_known() -> None:
    """Shape B "unknown" parses, reports known=False, and does not claim a terminal state."""
    update, known = parse_status(flat("unknown", progress=10), RUN)
    assert not known
    assert update.raw_status == "unknown"
    assert not update.status.is_terminal
    assert update.progress == 10


def test_legacy_data_only_envelope() -> None:
    """The deprecated endpoint's {"data": {..., "request_id"}} body parses like shape A."""
    update = status_of(legacy("COMPLETED", output={"video": {"url": URL}}, cost=1.25))
    assert (update.run_id, update.status, update.video_url, update.cost) == (
        RUN,
        S.COMPLETED,
        URL,
        1.25,
    )
    assert update.model is None


def test_run_id_comes_from_the_caller() -> None:
    """The update is for the job that was polled, whatever id the body echoes."""
    update, _ = parse_status(nested("IN_QUEUE") | {"requestId": "fal-request-abc"}, "vid_x")
    assert update.run_id == "vid_x"


def test_nested_status_wins_over_top_level() -> None:
    """data.status is read before a top-level status (the real clients' ``data.status ?? status``)."""
    body = nested("COMPLETED", output={"video": {"url": URL}}) | {"status": "processing"}
    assert status_of(body).status is S.COMPLETED


@pytest.mark.parametrize("inner", [None, "", "  ", 3, {"x": 1}])
def test_unusable_nested_status_falls_back_to_top_level(inner: Any) -> None:
    """A null, empty or non-string data.status does not hide a usable top-level status."""
    body = {"status": "completed", "videoUrl": URL, "data": {"status": inner}}
    assert status_of(body).status is S.COMPLETED


@pytest.mark.parametrize("data", [None, "x", [1, 2], 5])
def test_non_object_data_is_ignored(data: Any) -> None:
    """A ``data`` that is not an object is ignored; the flat fields still count."""
    assert status_of({"status": "queued", "data": data}).status is S.PENDING


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "COMPLETED",
        42,
        {},
        {"data": {}},
        {"status": None},
        {"status": ""},
        {"status": 3},
        {"status": ["COMPLETED"]},
        {"data": {"status": True}},
    ],
)
def test_status_body_without_status(body: Any) -> None:
    """A body without a usable status is a ResponseDecodeError naming the run."""
    with pytest.raises(ResponseDecodeError, match=RUN):
        parse_status(body, RUN)


# --- parse_status: URL lookup order --------------------------------------------------------------

URL_PATHS = [
    ("data", "output", "video", "url"),
    ("data", "output", "url"),
    ("data", "video", "url"),
    ("output", "video", "url"),
    ("data", "videoUrl"),
    ("videoUrl",),
    ("data", "video_url"),
    ("video_url",),
]


def _put(body: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = body
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


@pytest.mark.parametrize("path", URL_PATHS, ids=".".join)
def test_each_url_location(path: tuple[str, ...]) -> None:
    """The video URL is found at every location the real clients look."""
    body: dict[str, Any] = {"status": "COMPLETED"}
    _put(body, path, URL)
    assert status_of(body).video_url == URL


@pytest.mark.parametrize("winner", range(len(URL_PATHS)))
def test_url_lookup_order(winner: int) -> None:
    """With URLs in several places, the earliest location in the documented order wins."""
    body: dict[str, Any] = {"status": "COMPLETED"}
    for index in range(winner, len(URL_PATHS)):
        _put(body, URL_PATHS[index], f"https://x/{index}.mp4")
    assert status_of(body).video_url == f"https://x/{winner}.mp4"


@pytest.mark.parametrize("bad", [None, "", 5, {"url": "https://x"}, ["https://x"]])
def test_unusable_url_falls_through(bad: Any) -> None:
    """An empty or non-string candidate does not stop the lookup."""
    body = {"status": "COMPLETED", "videoUrl": URL, "data": {"output": {"video": {"url": bad}}}}
    assert status_of(body).video_url == URL


def test_url_path_through_non_object() -> None:
    """A path that meets a non-object (``output: "x"``) is skipped, not an error."""
    body = {"data": {"status": "COMPLETED", "output": "x", "video": [1]}, "videoUrl": URL}
    assert status_of(body).video_url == URL


def test_relative_url_is_kept() -> None:
    """A relative URL (seen in the wild) is passed on; the session makes it absolute."""
    assert status_of(nested("COMPLETED", output={"video": {"url": "/files/a.mp4"}})).video_url == (
        "/files/a.mp4"
    )


def test_completed_without_url_has_no_url() -> None:
    """COMPLETED without a URL parses with video_url None (the job turns it into a failure)."""
    update = status_of(nested("COMPLETED"))
    assert (update.status, update.video_url) == (S.COMPLETED, None)


# --- parse_status: errors, numbers, other fields ------------------------------------------------


def test_error_precedence() -> None:
    """data.error wins over the top-level error; both texts are kept apart from the friendly one."""
    body = {
        "status": "failed",
        "error": "top",
        "userFriendlyError": "top friendly",
        "data": {"status": "FAILED", "error": "inner", "userFriendlyError": "inner friendly"},
    }
    update = status_of(body)
    assert (update.error, update.user_friendly_error) == ("inner", "inner friendly")


@pytest.mark.parametrize("inner", [None, "", False])
def test_error_falls_back_to_top_level(inner: Any) -> None:
    """A missing, null or empty data.error falls back to the top-level error."""
    body = {
        "error": "top",
        "userFriendlyError": "friendly",
        "data": {"status": "FAILED", "error": inner},
    }
    update = status_of(body)
    assert (update.error, update.user_friendly_error) == ("top", "friendly")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "from object"}, "from object"),
        ({"error": "nested error"}, "nested error"),
        ({"detail": "detail text"}, "detail text"),
        ({"message": 5, "error": "second"}, "second"),
        ({"code": "x"}, "{'code': 'x'}"),
        (500, "500"),
        (True, None),
        (None, None),
    ],
)
def test_error_object(error: Any, expected: str | None) -> None:
    """An ``error`` object ([GEN]) gives its message; other scalars their text; bool/null none."""
    assert status_of({"status": "failed", "error": error}).error == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (50, 50.0),
        (12.5, 12.5),
        ("50%", 50.0),
        (" 75 % ", 75.0),
        ("33.3", 33.3),
        ("0", 0.0),
        (None, None),
        (True, None),
        (False, None),
        ("", None),
        ("half", None),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-Infinity", None),
        ("1e400", None),
        (math.nan, None),
        (math.inf, None),
        (10**400, None),
        ([50], None),
        ({"value": 50}, None),
    ],
)
def test_number_parsing(value: Any, expected: float | None) -> None:
    """Progress, ETA and cost accept numbers and "50%" strings; NaN, inf, bool and junk are None."""
    assert _number(value) == expected
    update = status_of(
        {"status": "processing", "progress": value, "estimatedTimeRemaining": value, "cost": value}
    )
    assert (update.progress, update.eta, update.cost) == (expected, expected, expected)


def test_nested_numbers_win() -> None:
    """Numbers inside data win over top-level ones; a null inside data does not hide them."""
    body = {
        "status": "processing",
        "progress": 10,
        "estimatedTimeRemaining": 99,
        "cost": 1.0,
        "data": {"status": "IN_PROGRESS", "progress": 60, "estimatedTimeRemaining": None},
    }
    update = status_of(body)
    assert (update.progress, update.eta, update.cost) == (60.0, 99.0, 1.0)


@pytest.mark.parametrize(
    ("flag", "expected"), [(True, True), (False, False), ("true", False), (1, False)]
)
def test_nsfw_flag_only_when_true(flag: Any, expected: bool) -> None:
    """is_nsfw is set only by a JSON true, never by truthy look-alikes."""
    assert status_of(nested("FAILED", isNSFWError=flag)).is_nsfw is expected


def test_nsfw_flag_top_level_and_null() -> None:
    """A top-level isNSFWError counts, and a null inside data does not hide it."""
    body = {"isNSFWError": True, "data": {"status": "FAILED", "isNSFWError": None}}
    assert status_of(body).is_nsfw is True


def test_model_lookup() -> None:
    """The model comes from the top level, else from data; a non-string is ignored."""
    assert status_of({"status": "queued", "data": {"model": "m2"}}).model == "m2"
    assert status_of({"status": "queued", "model": None, "data": {"model": "m2"}}).model == "m2"
    assert status_of({"status": "queued", "model": "m1", "data": {"model": "m2"}}).model == "m1"
    assert status_of({"status": "queued", "model": 7}).model is None


def test_timestamps_lookup() -> None:
    """createdAt/completedAt come from the top level, else from data."""
    body = {
        "data": {"status": "COMPLETED", "createdAt": "c", "completedAt": "d"},
        "completedAt": "top",
    }
    update = status_of(body)
    assert (update.created_at, update.completed_at) == ("c", "top")


def test_text_of_huge_int() -> None:
    """An int too long to print is no text rather than a ValueError."""
    assert _text(10**5000) is None
    assert _text(12) == "12"
    assert _text([1]) == "[1]"


# --- status round trip (Hypothesis) -----------------------------------------------------------

urls = st.one_of(
    st.just(URL), st.from_regex(r"\Ahttps://[a-z]{1,10}\.example/[a-z0-9]{1,12}\.mp4\Z")
)
optional_numbers = st.none() | st.integers(0, 100) | st.floats(0, 1e6, allow_nan=False)


def build(envelope: str, status: JobStatus, case: str, **extra: Any) -> dict[str, Any]:
    """A status body with the emulator's spelling for ``status``, in ``envelope``."""
    spelling = (NESTED if envelope in ("nested", "legacy") else FLAT)[status]
    spelling = {"upper": spelling.upper(), "lower": spelling.lower(), "as-is": spelling}[case]
    if envelope == "flat":
        fields = {"progress": extra.get("progress"), "error": extra.get("error")}
        if status is S.COMPLETED:
            fields["videoUrl"] = extra["url"]
        return flat(spelling, **fields)
    data: dict[str, Any] = {}
    if extra.get("progress") is not None:
        data["progress"] = extra["progress"]
    if extra.get("error") is not None:
        data["error"] = extra["error"]
    if status is S.COMPLETED:
        data["output"] = {"video": {"url": extra["url"]}}
        data["cost"] = extra.get("cost")
    return (nested if envelope == "nested" else legacy)(spelling, **data)


@settings(max_examples=200, deadline=None)
@given(
    status=st.sampled_from(JobStatus),
    envelope=st.sampled_from(["nested", "flat", "legacy"]),
    case=st.sampled_from(["upper", "lower", "as-is"]),
    url=urls,
    progress=optional_numbers,
    cost=optional_numbers,
    error=st.none() | st.text(min_size=1, max_size=40),
)
def test_status_round_trip(
    *,
    status: JobStatus,
    envelope: str,
    case: str,
    url: str,
    progress: float | None,
    cost: float | None,
    error: str | None,
) -> None:
    """For every status and envelope, the emulator's spelling parses back to that status."""
    body = build(envelope, status, case, url=url, progress=progress, cost=cost, error=error)
    update, known = parse_status(body, RUN)
    assert known
    assert update.status is status
    assert update.run_id == RUN
    assert update.progress == (None if progress is None else float(progress))
    assert update.error == (error or None)
    if status is S.COMPLETED:
        assert update.video_url == url
        if envelope != "flat":
            assert update.cost == (None if cost is None else float(cost))
    else:
        assert update.video_url is None


@pytest.mark.parametrize("status", JobStatus)
def test_recover_round_trip(status: JobStatus) -> None:
    """The recover endpoint's lowercase spelling of every status parses back."""
    (run,) = parse_recover({"data": [{"runId": RUN, "status": RECOVER[status]}]})
    assert run.status is status


# --- parse_submission --------------------------------------------------------------------------


DOCUMENTED_SUBMIT = {
    "runId": RUN,
    "id": RUN,
    "status": "pending",
    "model": "veo2-video",
    "cost": 0.35,
    "paymentSource": "XNO",
    "remainingBalance": 12.5,
    "prechargeLabel": "string",
}
MIDJOURNEY_SUBMIT = {
    "success": True,
    "runId": RUN,
    "id": RUN,
    "taskId": RUN,
    "status": "pending",
    "model": "midjourney-video",
    "message": "Extending video 1 by 5 seconds...",
    "eta": 60,
}
DOCUMENTED_RUN = {
    "runId": RUN,
    "id": RUN,
    "model": "veo3-1-extend",
    "status": "completed",
    "createdAt": "2026-02-05T22:41:58Z",
    "conversationUUID": "conv-1",
}


def test_submission_documented_example() -> None:
    """The documented 202 body maps every field to its snake_case name."""
    body = DOCUMENTED_SUBMIT
    assert parse_submission(body, "other") == Submission(
        run_id=RUN,
        model="veo2-video",
        status=S.PENDING,
        cost=0.35,
        payment_source="XNO",
        remaining_balance=12.5,
        precharge_label="string",
    )


def test_submission_midjourney_extend_example() -> None:
    """The Midjourney extend body's eta and message are kept; success/taskId are ignored."""
    body = MIDJOURNEY_SUBMIT
    sub = parse_submission(body, "midjourney-video")
    assert (sub.run_id, sub.eta, sub.message) == (RUN, 60.0, "Extending video 1 by 5 seconds...")


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        ({"runId": "r", "id": "i", "requestId": "q", "taskId": "t"}, "r"),
        ({"id": "i", "requestId": "q", "taskId": "t"}, "i"),
        ({"requestId": "q", "taskId": "t"}, "q"),
        ({"taskId": "t"}, "t"),
        ({"runId": "", "id": "i"}, "i"),
        ({"runId": None, "id": "i"}, "i"),
        ({"runId": 12, "requestId": "q"}, "q"),
    ],
)
def test_submission_run_id_fallbacks(ids: dict[str, Any], expected: str) -> None:
    """The run id falls back runId -> id -> requestId -> taskId, skipping empty or non-strings."""
    assert parse_submission({**ids, "status": "pending", "model": "m"}, "m").run_id == expected


@pytest.mark.parametrize("ids", [{}, {"runId": ""}, {"id": 5}, {"runId": None, "taskId": ["x"]}])
def test_submission_without_run_id(ids: dict[str, Any]) -> None:
    """No usable run id is a ResponseDecodeError, never a KeyError."""
    with pytest.raises(ResponseDecodeError, match="run id"):
        parse_submission({**ids, "status": "pending", "model": "m"}, "m")


@pytest.mark.parametrize("model", [None, 5, ["m"], {"id": "m"}])
def test_submission_missing_model_uses_default(model: Any) -> None:
    """A missing or non-string model is the model that was submitted."""
    body: dict[str, Any] = {"runId": RUN}
    if model is not None:
        body["model"] = model
    assert parse_submission(body, "veo3-1-extend").model == "veo3-1-extend"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, S.PENDING),
        ("WHATEVER", S.PENDING),
        (3, S.PENDING),
        ("processing", S.PROCESSING),
        ("COMPLETED", S.COMPLETED),
    ],
)
def test_submission_status(status: Any, expected: JobStatus) -> None:
    """A missing or unknown submit status is pending; a known one is kept."""
    body = {"runId": RUN, "model": "m", "status": status}
    assert parse_submission(body, "m").status is expected


def test_submission_bad_field_types_are_dropped() -> None:
    """Wrongly typed optional fields become None instead of failing the submit."""
    body = {
        "runId": RUN,
        "model": "m",
        "cost": "0.35",
        "paymentSource": 5,
        "remainingBalance": True,
        "prechargeLabel": None,
        "eta": "NaN",
        "message": {"text": "x"},
    }
    sub = parse_submission(body, "m")
    assert sub == Submission(run_id=RUN, model="m", cost=0.35)


@pytest.mark.parametrize("body", [None, [], "accepted", 202, [{"runId": RUN}]])
def test_submission_not_an_object(body: Any) -> None:
    """A submit body that is not a JSON object is a ResponseDecodeError."""
    with pytest.raises(ResponseDecodeError, match="not a JSON object"):
        parse_submission(body, "m")


def test_submission_does_not_mutate_the_body() -> None:
    """Parsing a body leaves the caller's dict alone."""
    body = {"id": RUN, "status": "bogus"}
    parse_submission(body, "m")
    assert body == {"id": RUN, "status": "bogus"}


def test_structure_failures_are_decode_errors() -> None:
    """Whatever cattrs rejects surfaces as ResponseDecodeError, not a cattrs exception."""
    with pytest.raises(ResponseDecodeError, match="widget does not match"):
        _structure({"model": "m"}, Submission, "widget")


# --- parse_recover -----------------------------------------------------------------------------


def test_recover_documented_shape() -> None:
    """The recover list maps runId, model, the lowercase status, createdAt and conversationUUID."""
    body = {"data": [DOCUMENTED_RUN]}
    assert parse_recover(body) == [
        RecoveredRun(
            run_id=RUN,
            model="veo3-1-extend",
            status=S.COMPLETED,
            created_at="2026-02-05T22:41:58Z",
            conversation_uuid="conv-1",
        )
    ]


def test_recover_bare_list_and_fallbacks() -> None:
    """A bare list is accepted; ids fall back like submits; junk entries are skipped."""
    body = [
        {"id": "fal-request-abc123xyz"},
        "not an object",
        None,
        {"model": "no id"},
        {"runId": "", "requestId": "q1", "status": "WEIRD", "model": 5, "createdAt": 12},
    ]
    runs = parse_recover(body)
    assert runs == [
        RecoveredRun(run_id="fal-request-abc123xyz"),
        RecoveredRun(run_id="q1", status=None, model=None, created_at=None),
    ]


def test_recover_empty() -> None:
    """An empty data list is no runs."""
    assert parse_recover({"data": []}) == []


@pytest.mark.parametrize("body", [None, {}, {"data": None}, {"data": {"runId": RUN}}, "x", 3])
def test_recover_without_a_list(body: Any) -> None:
    """A body without a data list is a ResponseDecodeError."""
    with pytest.raises(ResponseDecodeError, match="data list"):
        parse_recover(body)


# --- the strict converter (a server field the client does not know fails) ----------------------


@pytest.mark.parametrize("body", [DOCUMENTED_SUBMIT, MIDJOURNEY_SUBMIT])
def test_strict_converter_knows_every_documented_submit_field(body: dict[str, Any]) -> None:
    """Every field of the documented submit bodies is one the client reads or knows it skips."""
    strict = parse_submission(body, "m", conv=strict_converter)
    assert strict == parse_submission(body, "m")


def test_strict_converter_knows_every_documented_recover_field() -> None:
    """Every field of the documented recover entry is one the client reads or knows it skips."""
    assert parse_recover({"data": [DOCUMENTED_RUN]}, conv=strict_converter) == parse_recover(
        {"data": [DOCUMENTED_RUN]}
    )


@pytest.mark.parametrize(
    ("parse", "body"),
    [
        (lambda body, **kw: parse_submission(body, "m", **kw), {**DOCUMENTED_SUBMIT, "fps": 24}),
        (lambda body, **kw: parse_recover({"data": [body]}, **kw), {**DOCUMENTED_RUN, "x": 1}),
    ],
)
def test_strict_converter_fails_on_an_unknown_field(parse: Any, body: dict[str, Any]) -> None:
    """A field the client does not know fails the strict converter; the client's ignores it."""
    parse(body)
    with pytest.raises(ResponseDecodeError, match="does not match"):
        parse(body, conv=strict_converter)


async def test_strict_converter_knows_every_field_the_emulator_sends(emu: Emulator) -> None:
    """A submit's 202 body and the recover list, as the emulator sends them, hold no field the
    client does not know."""
    url, headers = emu.base_url, {"x-api-key": emu.api_key}
    body = {"model": "veo3-1-extend", "prompt": "p", "videoUrl": "https://e.com/a.mp4"}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(f"{url}/generate-video", json=body) as response:
            assert response.status == 202
            submitted = parse_submission(await response.json(), "m", conv=strict_converter)
        async with http.get(f"{url}/generate-video/recover") as response:
            runs = parse_recover(await response.json(), conv=strict_converter)
    assert submitted.run_id in {run.run_id for run in runs}


# --- errors ------------------------------------------------------------------------------------


def error_for(
    status: int, body: Any, *, reason: str = "Reason", retry_after: str | None = None
) -> APIError:
    return parse_error(status, body, reason=reason, request_id="req-1", retry_after=retry_after)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, InsufficientBalanceError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (408, ServerError),
        (409, ConflictError),
        (413, PayloadTooLargeError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (405, APIError),
        (418, APIError),
        (422, APIError),
        (451, APIError),
    ],
)
def test_status_to_class(status: int, cls: type[APIError]) -> None:
    """Each documented status has its class; other 5xx are ServerError, other 4xx plain APIError."""
    error = error_for(status, {"error": "x"})
    assert type(error) is cls
    assert error.status_code == status
    assert error.request_id == "req-1"


def test_guide_envelope() -> None:
    """The guide envelope gives message, type and code; the body is kept as received."""
    body = {
        "error": {
            "message": "Content flagged",
            "type": "CONTENT_POLICY_VIOLATION",
            "code": "content_policy_violation",
        },
        "refundMessage": "You were not charged.",
    }
    error = error_for(400, body)
    assert isinstance(error, BadRequestError)
    assert (error.message, error.error_type, error.code) == (
        "Content flagged",
        "CONTENT_POLICY_VIOLATION",
        "content_policy_violation",
    )
    assert error.body is body
    assert str(error) == "400: Content flagged code=content_policy_violation request_id=req-1"


def test_daily_limit_429() -> None:
    """The daily-limit 429 keeps its code and type and reads Retry-After."""
    body = {
        "error": {
            "message": "Daily request limit exceeded (1000/1000). Resets at midnight UTC.",
            "code": "daily_rpd_limit_exceeded",
            "type": "rate_limit_error",
        }
    }
    error = error_for(429, body, retry_after="3600")
    assert isinstance(error, RateLimitError)
    assert (error.code, error.error_type, error.retry_after) == (
        "daily_rpd_limit_exceeded",
        "rate_limit_error",
        3600.0,
    )


def test_429_without_retry_after() -> None:
    """A 429 without Retry-After has retry_after None."""
    error = error_for(429, {"error": {"message": "Rate limit exceeded", "type": "RATE_LIMITED"}})
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None


def test_simple_envelope_402() -> None:
    """The simple envelope: the message is the error string, requiredBalance is kept."""
    error = error_for(402, {"error": "Insufficient balance", "status": 402, "requiredBalance": 5})
    assert isinstance(error, InsufficientBalanceError)
    assert (error.message, error.required_balance) == ("Insufficient balance", 5.0)
    assert error.error_type is None


def test_required_balance_inside_error_object() -> None:
    """requiredBalance inside the error object counts too, and wins over the top level."""
    body = {
        "error": {"message": "m", "type": "INSUFFICIENT_BALANCE", "requiredBalance": "2.5"},
        "requiredBalance": 9,
    }
    error = error_for(402, body)
    assert isinstance(error, InsufficientBalanceError)
    assert error.required_balance == 2.5


@pytest.mark.parametrize("balance", [None, "lots", True, math.inf])
def test_unusable_required_balance(balance: Any) -> None:
    """A missing or unusable requiredBalance is None."""
    error = error_for(402, {"error": "Insufficient balance", "requiredBalance": balance})
    assert isinstance(error, InsufficientBalanceError)
    assert error.required_balance is None


def test_oas_envelope() -> None:
    """The OpenAPI envelope {"error": int, "message": str} takes the message field."""
    error = error_for(404, {"error": 404, "message": "Request not found"})
    assert isinstance(error, NotFoundError)
    assert error.message == "Request not found"
    assert error.code is None


def test_error_object_without_message() -> None:
    """An error object without a message falls back to the top-level message or detail."""
    assert error_for(400, {"error": {"type": "t"}, "message": "top"}).message == "top"
    assert error_for(400, {"error": {"type": "t"}, "detail": "det"}).message == "det"


def test_top_level_code() -> None:
    """A code outside the error object is read when the object has none."""
    assert error_for(400, {"error": "bad", "code": "model_not_found"}).code == "model_not_found"
    assert (
        error_for(400, {"error": {"message": "m", "code": "inner"}, "code": "outer"}).code
        == "inner"
    )


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"error": ""},
        {"error": None},
        {"error": {}},
        {"error": True},
        {"unrelated": 1},
        [],
        None,
        42,
        "",
        "   ",
        "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>",
        "x" * 300,
    ],
)
def test_no_usable_message_uses_reason(body: Any) -> None:
    """Without a usable message (HTML pages, long or empty text) the HTTP reason is the message."""
    assert error_for(502, body, reason="Bad Gateway").message == "Bad Gateway"


def test_no_reason_either() -> None:
    """Without a message or a reason phrase the message is "HTTP <status>"."""
    assert error_for(520, None, reason="").message == "HTTP 520"


def test_short_plain_text_body() -> None:
    """A short plain-text body is the message, stripped."""
    assert error_for(503, "  upstream overloaded\n").message == "upstream overloaded"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("0.25", 0.25),
        (None, None),
        ("", None),
        ("  ", None),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("5%", None),
        ("Wed, 21 Oct 2015", None),
    ],
)
def test_retry_after_seconds(value: str | None, expected: float | None) -> None:
    """Retry-After in delta seconds; negative, non-finite and unreadable values are None."""
    assert retry_after_seconds(value) == expected


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date is the time from now until then."""
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:29:00 -0000", now=now) == 60.0


def test_retry_after_http_date_in_the_past() -> None:
    """An HTTP date already past means "retry now" (0), not a negative wait."""
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 + 99) == 0.0


def test_retry_after_http_date_default_clock() -> None:
    """Without ``now`` the wall clock is used: a date long past gives 0."""
    assert retry_after_seconds("Mon, 01 Jan 2001 00:00:00 GMT") == 0.0


def test_parse_error_keeps_retry_after_date() -> None:
    """parse_error reads an HTTP-date Retry-After too (the wall clock; a past date is 0)."""
    error = error_for(429, {"error": "slow down"}, retry_after="Mon, 01 Jan 2001 00:00:00 GMT")
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 0.0


# --- Hypothesis: arbitrary JSON never escapes as anything but ResponseDecodeError ----------------

KEYS = [
    "data", "status", "output", "video", "url", "videoUrl", "video_url", "error", "message",
    "type", "code", "detail", "userFriendlyError", "isNSFWError", "progress", "cost",
    "estimatedTimeRemaining", "model", "createdAt", "completedAt", "runId", "id", "requestId",
    "taskId", "eta", "paymentSource", "remainingBalance", "prechargeLabel", "requiredBalance",
    "conversationUUID",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from([*SPELLINGS, "unknown", "50%", "NaN", "Infinity", URL, RUN]),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=8)
any_json = json_values | json_objects


@settings(max_examples=200, deadline=None)
@given(any_json)
def test_parse_status_total(body: Any) -> None:
    """Any JSON gives a StatusUpdate or a ResponseDecodeError, and never a bad field type."""
    try:
        update, known = parse_status(body, RUN)
    except ResponseDecodeError:
        return
    assert isinstance(known, bool)
    assert isinstance(update.status, JobStatus)
    assert known or update.status is S.PROCESSING
    for value in (update.progress, update.eta, update.cost):
        assert value is None or (type(value) is float and math.isfinite(value))
    for text in (update.video_url, update.error, update.user_friendly_error):
        assert text is None or (isinstance(text, str) and text)
    assert update.model is None or isinstance(update.model, str)
    assert isinstance(update.is_nsfw, bool)


@settings(max_examples=200, deadline=None)
@given(any_json, st.text(min_size=1, max_size=10))
def test_parse_submission_total(body: Any, model: str) -> None:
    """Any JSON gives a Submission with a run id, or a ResponseDecodeError."""
    try:
        sub = parse_submission(body, model)
    except ResponseDecodeError:
        return
    assert isinstance(sub.run_id, str)
    assert sub.run_id
    assert isinstance(sub.model, str)
    assert isinstance(sub.status, JobStatus)
    for value in (sub.cost, sub.remaining_balance, sub.eta):
        assert value is None or math.isfinite(value)


@settings(max_examples=200, deadline=None)
@given(
    any_json
    | st.lists(json_objects, max_size=4)
    | st.builds(lambda xs: {"data": xs}, st.lists(json_objects, max_size=4))
)
def test_parse_recover_total(body: Any) -> None:
    """Any JSON gives a list of RecoveredRun with run ids, or a ResponseDecodeError."""
    try:
        runs = parse_recover(body)
    except ResponseDecodeError:
        return
    for run in runs:
        assert isinstance(run, RecoveredRun)
        assert isinstance(run.run_id, str)
        assert run.run_id
        assert run.status is None or isinstance(run.status, JobStatus)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=100, max_value=699),
    any_json | st.text(max_size=400),
    st.text(max_size=20),
    st.none() | st.text(max_size=40) | st.from_regex(r"\A[0-9]{1,6}(\.[0-9]{1,3})?\Z"),
)
def test_parse_error_total(status: int, body: Any, reason: str, retry_after: str | None) -> None:
    """Any body, status and Retry-After give an APIError with a non-empty message."""
    error = parse_error(status, body, reason=reason, request_id=None, retry_after=retry_after)
    assert isinstance(error, APIError)
    assert error.status_code == status
    assert isinstance(error.message, str)
    assert error.message
    assert str(error).startswith(f"{status}: ")
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        assert math.isfinite(error.retry_after)
        assert error.retry_after >= 0


@pytest.mark.parametrize(
    ("error_type", "cls"),
    [("RATE_LIMITED", RateLimitError), ("INSUFFICIENT_BALANCE", InsufficientBalanceError)],
)
def test_guide_error_type_decides_the_class_of_a_4xx(error_type, cls):
    """Like the guide's sample client, a 4xx whose type says rate limit / balance is that error."""
    body = {"error": {"message": "no", "type": error_type}}
    error = parse_error(400, body, reason="Bad Request", request_id=None, retry_after="3")
    assert type(error) is cls
    assert error.status_code == 400
    server = parse_error(500, body, reason="", request_id=None, retry_after=None)
    assert type(server) is ServerError
