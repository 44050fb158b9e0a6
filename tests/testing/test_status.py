"""Job lifecycle, both status routes, both envelopes, recover and the video files."""

from __future__ import annotations

import json
import pathlib
import struct
from typing import Any

import jsonschema
import pytest

from aiovideoextend.testing import JobStatus

KEY = "sk-nano-test-0001"
OTHER = "sk-nano-test-0002"
GOOD = {
    "model": "wan-wavespeed-22-spicy-extend",
    "prompt": "the cat keeps walking",
    "videoUrl": "https://example.com/cat.mp4",
}
_SCHEMAS = json.loads((pathlib.Path(__file__).parent / "openapi_schemas.json").read_text())[
    "schemas"
]


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` in JSON Schema terms."""
    if isinstance(schema, dict):
        out = {name: _nullable(value) for name, value in schema.items() if name != "nullable"}
        if schema.get("nullable") and "type" in schema:
            out["type"] = [schema["type"], "null"]
        return out
    return schema


def validate(body: Any, name: str) -> None:
    """Check ``body`` against the vendor's OpenAPI component schema ``name``."""
    jsonschema.Draft202012Validator(_nullable(_SCHEMAS[name])).validate(body)


def status_of(body: dict[str, Any]) -> str:
    return body["data"]["status"] if "data" in body else body["status"]


async def test_submit_body_matches_openapi(api):
    """Both submit routes' 202 bodies validate as VideoGenerationResponse."""
    validate((await api.submit()).body, "VideoGenerationResponse")
    extend = await api.extend({"taskId": api.emu.midjourney_run_ids(KEY)[0], "index": 0})
    validate(extend.body, "VideoGenerationResponse")
    validate({"taskId": "vid_x", "index": 0}, "VideoExtendRequest")


async def test_lifecycle_nested(make_api):
    """Shape A walks IN_QUEUE -> IN_PROGRESS -> COMPLETED with the output URL and final cost."""
    api = await make_api(time_scale=1.0, queue_seconds=(100.0, 100.0), run_seconds=(100.0, 100.0))
    run_id = (await api.submit()).body["runId"]
    queued = (await api.status(run_id)).body
    assert queued == {
        "requestId": run_id,
        "model": GOOD["model"],
        "data": {"requestId": run_id, "status": "IN_QUEUE"},
    }
    job = api.emu.job(run_id)
    assert job.status is JobStatus.QUEUED
    assert job.status_at(job.queue_end) is JobStatus.PROCESSING
    assert job.status_at(job.run_end) is JobStatus.COMPLETED
    # Shift the job's timeline instead of waiting: the state is computed from timestamps.
    job.queue_end = api.emu.now()
    running = (await api.status(run_id)).body["data"]
    assert running["status"] == "IN_PROGRESS"
    assert running["details"]
    job.run_end = api.emu.now()
    done = (await api.status(run_id)).body["data"]
    assert done["status"] == "COMPLETED"
    assert done["output"]["video"]["url"].endswith(f"/files/{run_id}.mp4")
    assert 0.6 * 0.35 <= done["cost"] <= 0.35


@pytest.mark.fast_forward  # the job must not have finished (and been refunded) by the first check
async def test_completion_refunds_the_difference(api):
    """On completion the ledger gets the final cost and the balance the unused precharge."""
    run_id = (await api.submit()).body["runId"]
    assert api.emu.balance(KEY) == pytest.approx(100.0 - 0.35)
    done = (await api.until_terminal(run_id)).body["data"]
    entry = api.emu.ledger[0]
    assert entry.final_cost == done["cost"]
    assert not entry.refunded
    assert api.emu.balance(KEY) == pytest.approx(100.0 - done["cost"])
    assert api.emu.stats.completed_at[run_id] > 0


@pytest.mark.parametrize(
    ("options", "status", "nsfw"),
    [
        ({"failure_rate": 1.0}, "FAILED", False),
        ({"nsfw_rate": 1.0}, "FAILED", True),
        ({"cancel_rate": 1.0}, "CANCELED", False),
    ],
)
async def test_unsuccessful_endings_refund_everything(make_api, options, status, nsfw):
    """Failed, content-flagged and cancelled jobs end with error fields and a full refund."""
    api = await make_api(**options)
    run_id = (await api.submit()).body["runId"]
    data = (await api.until_terminal(run_id)).body["data"]
    assert data["status"] == status
    assert data["isNSFWError"] is nsfw
    assert data["error"]
    assert data["userFriendlyError"]
    assert "cost" not in data
    assert "output" not in data
    assert api.emu.balance(KEY) == 1000.0
    assert api.emu.ledger[0].refunded
    assert api.emu.ledger[0].final_cost is None


async def test_terminal_result_never_changes(api):
    """Once terminal, later polls return the identical body."""
    run_id = (await api.submit()).body["runId"]
    first = (await api.until_terminal(run_id)).body
    assert not api.emu.cancel(run_id)
    assert (await api.status(run_id)).body == first


async def test_cancel_forces_cancelled(make_api):
    """emu.cancel turns a running job into CANCELED and refunds it."""
    api = await make_api(time_scale=1.0)
    run_id = (await api.submit()).body["runId"]
    assert api.emu.cancel(run_id)
    assert (await api.status(run_id)).body["data"]["status"] == "CANCELED"
    assert api.emu.balance(KEY) == 1000.0
    assert api.emu.job(run_id).status is JobStatus.CANCELLED


async def test_flat_envelope_lifecycle(make_api):
    """Shape B reports queued/processing with progress and eta, then completed with videoUrl."""
    api = await make_api(
        envelope="flat", time_scale=1.0, queue_seconds=(100.0, 100.0), run_seconds=(100.0, 100.0)
    )
    run_id = (await api.submit()).body["runId"]
    queued = (await api.status(run_id)).body
    validate(queued, "UnifiedVideoStatusResponse")
    assert queued["status"] == "queued"
    assert queued["progress"] == 0
    assert 199 < queued["estimatedTimeRemaining"] <= 200
    assert queued["completedAt"] is None
    assert queued["createdAt"].endswith("Z")
    job = api.emu.job(run_id)
    job.queue_end = api.emu.now() - 50.0
    job.run_end = job.queue_end + 100.0
    processing = (await api.status(run_id)).body
    validate(processing, "UnifiedVideoStatusResponse")
    assert processing["status"] == "processing"
    assert 49 <= processing["progress"] <= 51
    assert 49 < processing["estimatedTimeRemaining"] <= 50
    job.run_end = api.emu.now()
    done = (await api.status(run_id)).body
    validate(done, "UnifiedVideoStatusResponse")
    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert done["videoUrl"].endswith(f"/files/{run_id}.mp4")
    assert done["error"] is None
    assert done["completedAt"]


@pytest.mark.parametrize(
    ("options", "status"), [({"failure_rate": 1.0}, "failed"), ({"cancel_rate": 1.0}, "cancelled")]
)
async def test_flat_envelope_failures(make_api, options, status):
    """Shape B failures carry the error string and no URL, and validate against the OAS."""
    api = await make_api(envelope="flat", **options)
    run_id = (await api.submit()).body["runId"]
    body = (await api.until_terminal(run_id)).body
    validate(body, "UnifiedVideoStatusResponse")
    assert body["status"] == status
    assert body["error"]
    assert body["videoUrl"] is None
    assert body["progress"] is None


async def test_mixed_envelope_is_per_job_and_seeded(make_api):
    """envelope="mixed" gives each job one shape, the same for the same seed."""
    shapes = []
    for _ in range(2):
        api = await make_api(envelope="mixed", seed=7)
        run_ids = [(await api.submit()).body["runId"] for _ in range(12)]
        bodies = [(await api.status(run_id)).body for run_id in run_ids]
        shapes.append(["data" in body for body in bodies])
        for run_id, body in zip(run_ids, bodies, strict=True):
            assert ("data" in (await api.status(run_id)).body) == ("data" in body)
    assert shapes[0] == shapes[1]
    assert set(shapes[0]) == {True, False}


async def test_status_accepts_run_id_alias_and_bearer(api):
    """runId works in place of requestId, and Bearer auth works on status."""
    run_id = (await api.submit()).body["runId"]
    reply = await api.call(
        "GET",
        "/video/status",
        key=None,
        params={"runId": run_id},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert reply.status == 200
    assert reply.body["requestId"] == run_id


async def test_status_errors(api):
    """Missing id 400, unknown id 404, another user's job 403, no key 401."""
    run_id = (await api.submit()).body["runId"]
    assert (await api.call("GET", "/video/status")).status == 400
    assert (await api.status("vid_unknown")).status == 404
    assert (await api.status(run_id, key=OTHER)).status == 403
    assert (await api.status(run_id, key=None)).status == 401


# Fast-forwarded, no time passes between a poll's arrival (the stamp) and its answer, so the
# first poll that shows the end arrives at or after it (with real time it may be a hair before).
@pytest.mark.fast_forward
async def test_polls_and_first_seen_terminal(api):
    """Stats count polls per job and the loop time a poll first showed the terminal state."""
    run_id = (await api.submit()).body["runId"]
    await api.until_terminal(run_id)
    stats = api.emu.stats
    seen = stats.first_seen_terminal[run_id]
    polls = stats.polls[run_id]
    assert polls >= 1
    assert seen >= stats.completed_at[run_id]
    await api.status(run_id)
    assert api.emu.stats.polls[run_id] == polls + 1
    assert api.emu.stats.first_seen_terminal[run_id] == seen


# -- legacy status ---------------------------------------------------------------------------


@pytest.mark.parametrize("param", ["model", "modelSlug"])
async def test_legacy_status(api, param):
    """The legacy route takes model or modelSlug and answers {"data": {..., request_id}}."""
    run_id = (await api.submit()).body["runId"]
    await api.until_terminal(run_id)
    reply = await api.call(
        "GET", "/generate-video/status", params={"runId": run_id, param: GOOD["model"]}
    )
    assert reply.status == 200
    validate(reply.body, "GenerateVideoStatusResponse")
    assert set(reply.body) == {"data"}
    assert reply.body["data"]["request_id"] == run_id
    assert reply.body["data"]["status"] == "COMPLETED"
    assert reply.body["data"]["output"]["video"]["url"]


async def test_legacy_status_failure_validates(make_api):
    """A failed job's legacy body carries error fields and validates against the OAS."""
    api = await make_api(nsfw_rate=1.0)
    run_id = (await api.submit()).body["runId"]
    await api.until_terminal(run_id)
    reply = await api.call(
        "GET", "/generate-video/status", params={"runId": run_id, "model": GOOD["model"]}
    )
    validate(reply.body, "GenerateVideoStatusResponse")
    assert reply.body["data"]["isNSFWError"] is True


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"model": GOOD["model"]}, 400, "missing_run_id"),
        ({"runId": "RUN"}, 400, "missing_model"),
        ({"runId": "RUN", "model": "veo3-1-extend"}, 400, "model_mismatch"),
        ({"runId": "vid_zzz", "model": GOOD["model"]}, 404, "not_found"),
    ],
)
async def test_legacy_status_errors(api, params, status, code):
    """The legacy route needs runId and model|modelSlug matching the job."""
    run_id = (await api.submit()).body["runId"]
    params = {name: run_id if value == "RUN" else value for name, value in params.items()}
    reply = await api.call("GET", "/generate-video/status", params=params)
    assert reply.status == status
    assert reply.body["error"]["code"] == code


# -- recover ----------------------------------------------------------------------------------


async def test_recover_lists_newest_first(api):
    """Recover lists the caller's runs newest first with lowercase statuses."""
    first = (await api.submit()).body["runId"]
    second = (await api.submit({**GOOD, "conversationUUID": "conv-1"})).body["runId"]
    await api.submit(key=OTHER)
    reply = await api.call("GET", "/generate-video/recover")
    assert reply.status == 200
    runs = reply.body["data"]
    seeded = api.emu.midjourney_run_ids(KEY)
    assert [run["runId"] for run in runs] == [second, first, *reversed(seeded)]
    assert runs[0]["conversationUUID"] == "conv-1"
    assert runs[0]["id"] == second
    assert runs[0]["status"] in ("pending", "processing", "completed")
    assert runs[-1]["status"] == "completed"
    assert runs[0]["createdAt"].endswith("Z")


async def test_recover_limit_and_filters(api):
    """limit caps the list; model and conversationUUID filter it."""
    for n in range(3):
        await api.submit({**GOOD, "conversationUUID": f"c{n % 2}"})

    async def recover(**params: str) -> list[dict[str, Any]]:
        reply = await api.call("GET", "/generate-video/recover", params=params)
        assert reply.status == 200
        return reply.body["data"]

    assert len(await recover()) == 5
    assert len(await recover(limit="2")) == 2
    assert len(await recover(model=GOOD["model"])) == 3
    assert {run["model"] for run in await recover(model="midjourney-video")} == {"midjourney-video"}
    assert len(await recover(conversationUUID="c0")) == 2


@pytest.mark.parametrize("limit", ["0", "51", "abc", "1.5", "-1", ""])
async def test_recover_rejects_bad_limit(api, limit):
    """limit outside 1..50 or not an integer is a 400."""
    reply = await api.call("GET", "/generate-video/recover", params={"limit": limit})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_limit"


async def test_recover_statuses_follow_jobs(make_api):
    """Recover reports pending, processing, failed and cancelled in lowercase."""
    api = await make_api(time_scale=1.0, queue_seconds=(100.0, 100.0), run_seconds=(100.0, 100.0))
    runs = [(await api.submit()).body["runId"] for _ in range(3)]
    api.emu.job(runs[1]).queue_end = 0.0
    api.emu.cancel(runs[2])
    reply = await api.call("GET", "/generate-video/recover", params={"limit": "3"})
    assert [run["status"] for run in reply.body["data"]] == ["cancelled", "processing", "pending"]


# -- files ------------------------------------------------------------------------------------


async def test_completed_video_downloads(make_api, http):
    """The output URL serves a deterministic MP4 of the configured size and expected length."""
    api = await make_api(video_size=2048)
    api.emu.set_video_length(GOOD["videoUrl"], 12.0)
    run_id = (await api.submit({**GOOD, "duration": 8})).body["runId"]
    url = (await api.until_terminal(run_id)).body["data"]["output"]["video"]["url"]
    async with http.get(url) as response:
        assert response.status == 200
        assert response.content_type == "video/mp4"
        video = await response.read()
    assert len(video) == 2048
    assert video[4:8] == b"ftyp"
    assert video[32:36] == b"moov"
    timescale, duration = struct.unpack(">II", video[56:64])
    assert duration / timescale == 20.0
    async with http.get(url) as response:
        assert await response.read() == video


async def test_unfinished_or_unknown_video_is_404(make_api, http):
    """A job's file is 404 until it completes, and for unknown ids."""
    api = await make_api(time_scale=1.0)
    run_id = (await api.submit()).body["runId"]
    origin = api.emu.base_url.removesuffix("/api")
    for name in (run_id, "vid_unknown"):
        async with http.get(f"{origin}/files/{name}.mp4") as response:
            assert response.status == 404
