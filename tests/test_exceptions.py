"""The public error tree: its shape, its attributes, and what str() shows."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

import aiovideoextend as ave
from aiovideoextend import exceptions as exc

#: Each public error, built with every attribute set, as the library would raise it.
SAMPLES: list[exc.VideoExtendError] = [
    exc.VideoExtendError("base"),
    exc.InvalidRequestError("bad argument"),
    exc.APIError(
        "teapot", status_code=418, error_type="t", code="c", request_id="r", body={"a": 1}
    ),
    exc.BadRequestError("bad", status_code=400),
    exc.AuthenticationError("who", status_code=401),
    exc.InsufficientBalanceError("poor", status_code=402, required_balance=5.0),
    exc.PermissionDeniedError("not yours", status_code=403),
    exc.NotFoundError("gone", status_code=404),
    exc.ConflictError("conflict", status_code=409),
    exc.PayloadTooLargeError("big", status_code=413),
    exc.RateLimitError("slow down", status_code=429, retry_after=2.5, code="rate_limit_exceeded"),
    exc.ServerError("boom", status_code=503),
    exc.TransportError("reset"),
    exc.ResponseDecodeError("not json", status_code=200),
    exc.AmbiguousSubmitError(
        "unknown", model="veo3-1-extend", candidates=["a", "b"], cause="timeout"
    ),
    exc.JobError("bad job", run_id="vid_1"),
    exc.JobFailedError(
        "failed", run_id="vid_2", error="e", user_friendly_error="friendly", is_nsfw=True
    ),
    exc.JobCancelledError("cancelled", run_id="vid_3"),
    exc.JobTimeoutError("late", run_id="vid_4"),
]


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (exc.InvalidRequestError, exc.VideoExtendError),
        (exc.InvalidRequestError, ValueError),
        (exc.APIError, exc.VideoExtendError),
        (exc.BadRequestError, exc.APIError),
        (exc.AuthenticationError, exc.APIError),
        (exc.InsufficientBalanceError, exc.APIError),
        (exc.PermissionDeniedError, exc.APIError),
        (exc.NotFoundError, exc.APIError),
        (exc.ConflictError, exc.APIError),
        (exc.PayloadTooLargeError, exc.APIError),
        (exc.RateLimitError, exc.APIError),
        (exc.ServerError, exc.APIError),
        (exc.TransportError, exc.VideoExtendError),
        (exc.ResponseDecodeError, exc.VideoExtendError),
        (exc.AmbiguousSubmitError, exc.VideoExtendError),
        (exc.JobError, exc.VideoExtendError),
        (exc.JobFailedError, exc.JobError),
        (exc.JobCancelledError, exc.JobError),
        (exc.JobTimeoutError, exc.JobError),
        (exc.JobTimeoutError, TimeoutError),
    ],
)
def test_tree(child: type[Exception], parent: type[Exception]) -> None:
    """Each error sits where the module docstring draws it."""
    assert issubclass(child, parent)


@pytest.mark.parametrize(
    "cls",
    [
        exc.APIError,
        exc.TransportError,
        exc.ResponseDecodeError,
        exc.AmbiguousSubmitError,
        exc.JobError,
    ],
)
def test_branches_are_not_value_or_timeout_errors(cls: type[Exception]) -> None:
    """Only InvalidRequestError is a ValueError and only JobTimeoutError a TimeoutError."""
    assert not issubclass(cls, ValueError)
    assert not issubclass(cls, TimeoutError)


def test_invalid_request_caught_as_value_error() -> None:
    """Code that validates with ``except ValueError`` catches InvalidRequestError."""
    with pytest.raises(ValueError, match="index"):
        ave.MidjourneyExtend("vid_1", index=7)


def test_job_timeout_caught_as_timeout_error() -> None:
    """``except TimeoutError`` (asyncio.timeout users) catches JobTimeoutError."""
    with pytest.raises(TimeoutError) as info:
        raise exc.JobTimeoutError("still running", run_id="vid_9")
    assert isinstance(info.value, exc.JobTimeoutError)
    assert info.value.run_id == "vid_9"
    assert str(info.value) == "still running"


def test_every_public_error_is_exported_and_drawn() -> None:
    """Every name in exceptions.__all__ is re-exported at top level and drawn in the tree."""
    doc = exc.__doc__ or ""
    assert exc.__all__ == sorted(exc.__all__)
    for name in exc.__all__:
        assert getattr(ave, name) is getattr(exc, name)
        assert name in doc


def test_api_error_str_minimal() -> None:
    """str() of an APIError is "<status>: <message>"."""
    error = exc.APIError("Insufficient balance", status_code=402)
    assert str(error) == "402: Insufficient balance"
    assert error.args == ("Insufficient balance",)


def test_api_error_str_with_code_and_request_id() -> None:
    """The code and the X-Request-ID (what support asks for) follow the message."""
    error = exc.RateLimitError(
        "Daily request limit exceeded",
        status_code=429,
        code="daily_rpd_limit_exceeded",
        request_id="req_123",
    )
    assert (
        str(error)
        == "429: Daily request limit exceeded code=daily_rpd_limit_exceeded request_id=req_123"
    )


def test_api_error_str_follows_message_changes() -> None:
    """str() reads ``message`` at call time, so a redacted message is what gets printed."""
    error = exc.APIError("key sk-nano-secret is bad", status_code=401)
    error.message = "key [redacted] is bad"
    assert str(error) == "401: key [redacted] is bad"


def test_api_error_attributes() -> None:
    """An APIError keeps the status, type, code, request id and the decoded body."""
    error = exc.APIError(
        "m", status_code=418, error_type="teapot", code="c", request_id="r", body={"x": 1}
    )
    assert (error.message, error.status_code, error.error_type, error.code) == (
        "m",
        418,
        "teapot",
        "c",
    )
    assert (error.request_id, error.body) == ("r", {"x": 1})


def test_api_error_defaults() -> None:
    """Optional APIError attributes default to None."""
    error = exc.ServerError("m", status_code=500)
    assert (error.error_type, error.code, error.request_id, error.body) == (None,) * 4


def test_subclass_extras() -> None:
    """402 carries required_balance, 429 retry_after; both default to None."""
    assert exc.InsufficientBalanceError("m", status_code=402).required_balance is None
    assert exc.RateLimitError("m", status_code=429).retry_after is None
    assert (
        exc.InsufficientBalanceError("m", status_code=402, required_balance=3).required_balance == 3
    )
    assert exc.RateLimitError("m", status_code=429, retry_after=1.5).retry_after == 1.5


def test_response_decode_error() -> None:
    """ResponseDecodeError keeps the HTTP status when there was one."""
    assert exc.ResponseDecodeError("x").status_code is None
    error = exc.ResponseDecodeError("not json", status_code=502)
    assert (str(error), error.status_code) == ("not json", 502)


def test_ambiguous_submit_error() -> None:
    """AmbiguousSubmitError keeps the model, the candidates as a tuple, and the cause."""
    error = exc.AmbiguousSubmitError("?", model="m", candidates=["a", "b"], cause="reset")
    assert (error.model, error.candidates, error.cause) == ("m", ("a", "b"), "reset")
    bare = exc.AmbiguousSubmitError("?", model="m")
    assert (bare.candidates, bare.cause) == ((), "")


def test_job_failed_error() -> None:
    """JobFailedError carries the raw error, the friendly text and the NSFW flag."""
    error = exc.JobFailedError(
        "failed", run_id="vid_1", error="Content policy violation", user_friendly_error="f"
    )
    assert (error.run_id, error.error, error.user_friendly_error, error.is_nsfw) == (
        "vid_1",
        "Content policy violation",
        "f",
        False,
    )
    assert exc.JobFailedError("x", run_id="r", is_nsfw=True).is_nsfw is True


def _state(error: BaseException) -> tuple[Any, ...]:
    return type(error), error.args, vars(error), str(error)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_round_trip(error: exc.VideoExtendError) -> None:
    """Every error survives pickle (multiprocessing, concurrent.futures) with its attributes."""
    clone = pickle.loads(pickle.dumps(error))
    assert _state(clone) == _state(error)


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_copy(error: exc.VideoExtendError) -> None:
    """copy.copy and copy.deepcopy keep the class and every attribute."""
    assert _state(copy.copy(error)) == _state(error)
    assert _state(copy.deepcopy(error)) == _state(error)
