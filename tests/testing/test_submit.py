"""Both submit routes: auth, validation, charging and the 202 body."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiovideoextend.testing import EXTEND_MODELS, MIDJOURNEY_MODEL

KEY = "sk-nano-test-0001"
OTHER = "sk-nano-test-0002"
GOOD = {
    "model": "wan-wavespeed-22-spicy-extend",
    "prompt": "the cat keeps walking",
    "videoUrl": "https://example.com/cat.mp4",
}


def data_url(size: int, mime: str = "video/mp4") -> str:
    return f"data:{mime};base64," + base64.b64encode(b"\0" * size).decode()


def with_(**fields: Any) -> dict[str, Any]:
    body = {**GOOD, **fields}
    return {name: value for name, value in body.items() if value is not None}


async def test_accepts_x_api_key(api):
    """A good submit with x-api-key gets 202 and the documented fields."""
    reply = await api.submit()
    assert reply.status == 202
    body = reply.body
    assert body["runId"] == body["id"]
    assert body["runId"].startswith("vid_")
    assert len(body["runId"]) == len("vid_") + 8 + 9
    assert body["status"] == "pending"
    assert body["model"] == GOOD["model"]
    assert body["cost"] == 0.35
    assert body["paymentSource"] == "USD"
    assert body["remainingBalance"] == pytest.approx(100.0 - 0.35)
    assert body["prechargeLabel"]
    assert reply.headers["X-Request-ID"]


async def test_accepts_bearer(api):
    """Authorization: Bearer works as well as x-api-key."""
    reply = await api.call(
        "POST", "/generate-video", key=None, body=GOOD, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert reply.status == 202


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "sk-nano-nope"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer "},
    ],
)
async def test_missing_or_unknown_key_is_401(api, headers):
    """No key, an unknown key or a non-Bearer Authorization header is a 401."""
    reply = await api.call("POST", "/generate-video", key=None, body=GOOD, headers=headers)
    assert reply.status == 401
    assert reply.body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("model", EXTEND_MODELS)
async def test_every_extend_model_is_accepted(api, model):
    """Each of the five documented extend models takes a videoUrl."""
    reply = await api.submit(with_(model=model))
    assert reply.status == 202
    assert reply.body["model"] == model


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (with_(model=None), "model_not_found"),
        (with_(model="sora-2"), "model_not_found"),
        (with_(model=MIDJOURNEY_MODEL), "model_not_found"),
        (with_(prompt=None), "missing_prompt"),
        (with_(prompt="   "), "missing_prompt"),
        (with_(prompt=5), "missing_prompt"),
        (with_(videoUrl=None), "missing_video_source"),
        (with_(videoAttachmentId="att_1"), "multiple_video_sources"),
        (with_(videoUrl="ftp://example.com/a.mp4"), "invalid_video_url_scheme"),
        (with_(videoUrl="https://"), "invalid_video_url_scheme"),
        (with_(videoUrl=7), "invalid_video_source"),
        (with_(videoUrl=None, videoAttachmentId=""), "invalid_video_source"),
        (with_(videoUrl=None, videoDataUrl="https://x/y.mp4"), "invalid_video_data_url"),
        (with_(videoUrl=None, videoDataUrl="data:video/mp4,AAAA"), "invalid_video_data_url"),
        (with_(videoUrl=None, videoDataUrl=data_url(4, "image/png")), "invalid_video_mime_type"),
        (with_(videoUrl=None, videoDataUrl=data_url(4, "video")), "invalid_video_mime_type"),
        (with_(videoUrl=None, videoDataUrl="data:video/mp4;base64,@@@@"), "invalid_video_base64"),
        (with_(video="https://example.com/a.mp4", videoUrl=None), "video_input_not_supported"),
        (with_(duration=5.5), "invalid_duration"),
        (with_(duration=True), "invalid_duration"),
        (with_(seed="1"), "invalid_seed"),
        (with_(seed=False), "invalid_seed"),
        (with_(resolution=720), "invalid_resolution"),
    ],
)
async def test_invalid_generate_bodies_are_400(api, body, code):
    """Every source-field and type rule answers 400 with its code, and charges nothing."""
    reply = await api.submit(body)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == code
    assert api.emu.ledger == []
    assert api.emu.balance(KEY) == 100.0


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_non_object_body_is_400(api, raw):
    """A body that is not a JSON object is a 400."""
    reply = await api.call("POST", "/generate-video", data=raw)
    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_json"


async def test_video_field_only_for_models_that_take_it(api):
    """`video` is accepted by wan-wavespeed-25-extend, as a URL or a data URL."""
    for source in ("https://example.com/a.mp4", data_url(16)):
        reply = await api.submit(
            with_(model="wan-wavespeed-25-extend", videoUrl=None, video=source)
        )
        assert reply.status == 202, reply.body


async def test_attachment_and_data_url_sources(api):
    """videoAttachmentId and a well-formed videoDataUrl are valid sources."""
    assert (await api.submit(with_(videoUrl=None, videoAttachmentId="att_1"))).status == 202
    reply = await api.submit(with_(videoUrl=None, videoDataUrl=data_url(1024, "video/webm")))
    assert reply.status == 202


async def test_data_url_over_4_mb_is_413(api):
    """A videoDataUrl decoding to more than 4 MiB is a 413; exactly 4 MiB is fine."""
    limit = 4 * 1024 * 1024
    assert (await api.submit(with_(videoUrl=None, videoDataUrl=data_url(limit)))).status == 202
    reply = await api.submit(with_(videoUrl=None, videoDataUrl=data_url(limit + 1)))
    assert reply.status == 413
    assert reply.body["error"]["code"] == "video_attachment_too_large"


async def test_body_over_server_limit_is_413(api):
    """A body beyond what the server reads at all is a 413 in the error envelope."""
    reply = await api.call("POST", "/generate-video", data=b"x" * (17 * 1024 * 1024))
    assert reply.status == 413
    assert reply.body["error"]["code"] == "request_too_large"


async def test_source_over_120_seconds_is_400(api):
    """A URL declared longer than 120 s is rejected; 120 s exactly is accepted."""
    api.emu.set_video_length("https://example.com/long.mp4", 120.5)
    api.emu.set_video_length("https://example.com/ok.mp4", 120)
    reply = await api.submit(with_(videoUrl="https://example.com/long.mp4"))
    assert reply.status == 400
    assert reply.body["error"]["code"] == "video_too_long"
    assert (await api.submit(with_(videoUrl="https://example.com/ok.mp4"))).status == 202


async def test_optional_fields_and_duration_pricing(api):
    """Optional fields pass; a 10 s duration costs twice the 5 s price."""
    reply = await api.submit(
        with_(
            duration="10s",
            resolution="480p",
            seed=-1,
            negative_prompt="blur",
            aspect_ratio="16:9",
            conversationUUID="c-1",
        )
    )
    assert reply.status == 202
    assert reply.body["cost"] == 0.7
    assert (await api.submit(with_(duration=8))).body["cost"] == pytest.approx(0.56)
    assert (await api.submit(with_(duration="long"))).body["cost"] == 0.35


async def test_insufficient_balance_is_402(make_api):
    """A submit costing more than the balance is a 402 with requiredBalance and no charge."""
    api = await make_api(users={KEY: 1.0})
    reply = await api.submit(with_(model="veo3-1-extend"))
    assert reply.status == 402
    assert reply.body["requiredBalance"] == 1.2
    assert reply.body["error"]["type"] == "INSUFFICIENT_BALANCE"
    assert reply.body["refundMessage"]
    assert api.emu.balance(KEY) == 1.0
    assert api.emu.ledger == []


# -- Midjourney task-based extend -----------------------------------------------------------


async def test_extend_midjourney_run(api):
    """Extending an owned, completed midjourney run answers 202 with the extend extras."""
    parent = api.emu.midjourney_run_ids(KEY)[0]
    reply = await api.extend({"runId": parent, "index": 2})
    assert reply.status == 202
    body = reply.body
    assert body["success"] is True
    assert body["taskId"] == body["runId"] == body["id"]
    assert body["model"] == MIDJOURNEY_MODEL
    assert body["message"] == "Extending video 3 by 5 seconds..."
    assert isinstance(body["eta"], int)
    assert body["eta"] > 0
    assert body["cost"] == 0.4
    job = api.emu.job(body["runId"])
    assert (job.parent_run_id, job.index) == (parent, 2)


async def test_extend_accepts_task_id_and_both_when_equal(api):
    """taskId works alone, and together with an identical runId."""
    parent = api.emu.midjourney_run_ids(KEY)[0]
    assert (await api.extend({"taskId": parent, "index": 0})).status == 202
    assert (await api.extend({"taskId": parent, "runId": parent, "index": 3})).status == 202


@pytest.mark.fast_forward  # the child must still be running at the second request
async def test_extended_run_can_be_extended_again(api):
    """The new job is itself a midjourney-video run, extendable once it completes."""
    parent = api.emu.midjourney_run_ids(KEY)[0]
    child = (await api.extend({"runId": parent, "index": 0})).body["runId"]
    early = await api.extend({"runId": child, "index": 0})
    assert early.status == 400
    assert early.body["error"]["code"] == "run_not_completed"
    await api.until_terminal(child)
    assert (await api.extend({"runId": child, "index": 1})).status == 202


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"index": 0}, "missing_run_id"),
        ({"runId": "", "index": 0}, "invalid_run_id"),
        ({"runId": 5, "index": 0}, "invalid_run_id"),
        ({"runId": "vid_a", "taskId": "vid_b", "index": 0}, "conflicting_run_id"),
        ({"runId": "PARENT"}, "invalid_index"),
        ({"runId": "PARENT", "index": 4}, "invalid_index"),
        ({"runId": "PARENT", "index": -1}, "invalid_index"),
        ({"runId": "PARENT", "index": 1.0}, "invalid_index"),
        ({"runId": "PARENT", "index": "1"}, "invalid_index"),
        ({"runId": "PARENT", "index": True}, "invalid_index"),
        ({"runId": "PARENT", "index": 0, "video": "x"}, "video_input_not_supported"),
        ({"runId": "PARENT", "index": 0, "videoUrl": "https://a/b"}, "video_input_not_supported"),
        ({"runId": "PARENT", "index": 0, "videoDataUrl": "data:"}, "video_input_not_supported"),
        ({"runId": "PARENT", "index": 0, "videoAttachmentId": "a"}, "video_input_not_supported"),
    ],
)
async def test_invalid_extend_bodies_are_400(api, body, code):
    """Index must be a real integer 0-3; run ids must agree; source fields are refused."""
    parent = api.emu.midjourney_run_ids(KEY)[0]
    body = {name: parent if value == "PARENT" else value for name, value in body.items()}
    reply = await api.extend(body)
    assert reply.status == 400, reply.body
    assert reply.body["error"]["code"] == code


async def test_extend_ownership_and_existence(api):
    """Unknown run 404, another user's run 403, a non-Midjourney run 400."""
    mine = api.emu.midjourney_run_ids(KEY)[0]
    assert (await api.extend({"runId": "vid_nope", "index": 0})).status == 404
    assert (await api.extend({"runId": mine, "index": 0}, key=OTHER)).status == 403
    other_model = (await api.submit()).body["runId"]
    await api.until_terminal(other_model)
    reply = await api.extend({"runId": other_model, "index": 0})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_run_id"


async def test_extend_needs_balance(make_api):
    """Extending with too little money is a 402."""
    api = await make_api(users={KEY: 0.1})
    reply = await api.extend({"runId": api.emu.midjourney_run_ids(KEY)[0], "index": 0})
    assert reply.status == 402
    assert reply.body["requiredBalance"] == 0.4


async def test_add_midjourney_run(api):
    """add_midjourney_run seeds one more extendable run for that key only."""
    run_id = api.emu.add_midjourney_run(OTHER)
    assert run_id in api.emu.midjourney_run_ids(OTHER)
    assert run_id not in api.emu.midjourney_run_ids(KEY)
    assert (await api.extend({"runId": run_id, "index": 0}, key=OTHER)).status == 202


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
submit_fields = st.fixed_dictionaries(
    {},
    optional={
        name: json_values | st.sampled_from(choices)
        for name, choices in {
            "model": [*EXTEND_MODELS, MIDJOURNEY_MODEL],
            "prompt": ["go on", ""],
            "videoUrl": ["https://a.example/v.mp4", "file:///etc/passwd"],
            "videoDataUrl": ["data:video/mp4;base64,AAAA", "data:;base64,"],
            "videoAttachmentId": ["att"],
            "video": ["https://a.example/v.mp4"],
            "runId": ["vid_x"],
            "taskId": ["vid_y"],
            "index": [0, 3, 4],
            "duration": ["5", 8],
            "seed": [1],
        }.items()
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=submit_fields | json_values)
async def test_random_bodies_never_500(api, body):
    """Whatever JSON arrives, both submit routes answer 202 or a 4xx, never a 5xx."""
    for path in ("/generate-video", "/generate-video/extend"):
        reply = await api.call("POST", path, data=json.dumps(body).encode())
        assert reply.status in (202, 400, 402, 403, 404, 413), (path, body, reply.body)
