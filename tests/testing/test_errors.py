"""Error envelopes: guide, simple, oas and mixed; the 429 body; X-Request-ID everywhere."""

from __future__ import annotations

import json
import pathlib

import jsonschema
import pytest

KEY = "sk-nano-test-0001"
_SCHEMAS = json.loads((pathlib.Path(__file__).parent / "openapi_schemas.json").read_text())[
    "schemas"
]


def shape_of(body):
    if isinstance(body.get("error"), dict):
        return "guide"
    if isinstance(body.get("error"), str):
        return "simple"
    return "oas"


async def test_guide_shape(make_api):
    """guide: {"error": {"message", "type", "code"}}."""
    api = await make_api(error_shape="guide")
    reply = await api.status("vid_nope")
    assert reply.status == 404
    assert reply.body == {
        "error": {
            "message": "Request vid_nope not found",
            "type": "not_found_error",
            "code": "not_found",
        }
    }


async def test_simple_shape(make_api):
    """simple: {"error": message, "status": code}, plus requiredBalance on a 402."""
    api = await make_api(error_shape="simple", users={KEY: 0.0})
    reply = await api.status("vid_nope")
    assert reply.body == {"error": "Request vid_nope not found", "status": 404}
    broke = await api.submit()
    assert broke.body == {"error": "Insufficient balance", "status": 402, "requiredBalance": 0.35}


async def test_oas_shape_matches_schema(make_api):
    """oas: {"error": <int>, "message": str}, valid against the vendor's Error schema."""
    api = await make_api(error_shape="oas", users={KEY: 0.0})
    for reply in (
        await api.status("vid_nope"),
        await api.submit(),
        await api.call("GET", "/video/status"),
    ):
        jsonschema.Draft202012Validator(_SCHEMAS["Error"]).validate(reply.body)
        assert reply.body["error"] == reply.status
    assert (await api.submit()).body["requiredBalance"] == 0.35


async def test_mixed_shape_is_per_response_and_seeded(make_api):
    """mixed picks a shape per response: all three appear, in the same order for the same seed."""
    sequences = []
    for _ in range(2):
        api = await make_api(error_shape="mixed", seed=5)
        sequences.append([shape_of((await api.status("vid_nope")).body) for _ in range(15)])
    assert sequences[0] == sequences[1]
    assert set(sequences[0]) == {"guide", "simple", "oas"}


@pytest.mark.parametrize("shape", ["guide", "simple", "oas", "mixed"])
async def test_429_is_openai_style_in_every_shape(make_api, shape):
    """Rate-limit answers keep the OpenAI-style body whatever error_shape says."""
    api = await make_api(error_shape=shape, time_scale=1.0, limits={"recover": (1, 60.0)})
    await api.call("GET", "/generate-video/recover")
    reply = await api.call("GET", "/generate-video/recover")
    assert reply.status == 429
    assert reply.body["error"]["type"] == "rate_limit_error"


async def test_unknown_path_and_method_use_the_shape(make_api):
    """aiohttp's own 404 and 405 answers are re-shaped too."""
    api = await make_api(error_shape="simple")
    missing = await api.call("GET", "/no/such/thing")
    assert missing.body == {"error": "Not Found", "status": 404}
    wrong = await api.call("DELETE", "/video/status")
    assert wrong.body == {"error": "Method Not Allowed", "status": 405}


async def test_request_id_on_every_response(api):
    """Every answer, good, bad or rate-limited, carries a distinct X-Request-ID."""
    replies = [await api.submit(), await api.status("vid_nope"), await api.call("GET", "/nope")]
    ids = {reply.headers["X-Request-ID"] for reply in replies}
    assert len(ids) == 3
