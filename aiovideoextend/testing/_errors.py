"""Error envelopes: the three shapes NanoGPT documents (REFERENCE §10) and the 429 body."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Final, Literal

import attrs

if TYPE_CHECKING:
    import random

ErrorShape = Literal["guide", "simple", "oas", "mixed"]
ERROR_SHAPES: Final = ("guide", "simple", "oas", "mixed")

_DEFAULT_TYPES: Final[dict[int, str]] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "INSUFFICIENT_BALANCE",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "RATE_LIMITED",
}

RATE_LIMIT_BODY: Final = {
    "error": {
        "message": "Rate limit exceeded",
        "type": "rate_limit_error",
        "code": "rate_limit_exceeded",
    }
}


@attrs.define(auto_exc=True)
class ApiError(Exception):
    """Raised by a route to answer with an error in the configured shape."""

    status: int
    message: str
    code: str
    type: str | None = None
    refund_message: str | None = None
    required_balance: float | None = None


def error_body(error: ApiError, shape: ErrorShape, rng: random.Random) -> dict[str, Any]:
    """The JSON body for ``error``; ``mixed`` picks one of the other shapes with ``rng``."""
    if shape == "mixed":
        shape = rng.choice(("guide", "simple", "oas"))
    body: dict[str, Any]
    if shape == "guide":
        kind = error.type or _DEFAULT_TYPES.get(error.status, "server_error")
        body = {"error": {"message": error.message, "type": kind, "code": error.code}}
        if error.refund_message is not None:
            body["refundMessage"] = error.refund_message
    elif shape == "simple":
        body = {"error": error.message, "status": error.status}
    else:
        body = {"error": error.status, "message": error.message}
    # A 402 tells the caller how much it needs, whichever envelope carries it.
    if error.required_balance is not None:
        body["requiredBalance"] = error.required_balance
    return body


def dumps(body: Any) -> bytes:
    """Compact JSON, as a real API would send it."""
    return json.dumps(body, separators=(",", ":")).encode()
