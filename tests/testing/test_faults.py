"""Injected faults: each kind, counting, rates and route matching."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from aiovideoextend.testing import Fault

KEY = "sk-nano-test-0001"
LIMITS = ("generate", "extend", "recover", "status", "legacy_status", "overall")
GOOD = {
    "model": "wan-wavespeed-22-spicy-extend",
    "prompt": "the cat keeps walking",
    "videoUrl": "https://example.com/cat.mp4",
}


async def test_server_error(api):
    """server_error answers 500 in the configured error shape, or the status given."""
    api.emu.faults.add(Fault("generate", "server_error", count=1))
    api.emu.faults.add(Fault("generate", "server_error", count=1, status=503))
    first, second, third = [await api.submit() for _ in range(3)]
    assert first.status == 500
    assert first.body["error"]["type"] == "server_error"
    assert second.status == 503
    assert third.status == 202
    assert len(api.emu.ledger) == 1


async def test_bad_gateway_html(api):
    """bad_gateway_html answers 502 with an HTML page, as a CDN in front of the API would."""
    api.emu.faults.add(Fault("status", "bad_gateway_html", count=1))
    run_id = (await api.submit()).body["runId"]
    reply = await api.status(run_id)
    assert reply.status == 502
    assert reply.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in reply.body


async def test_malformed_json(api):
    """malformed_json sends a truncated JSON body with a JSON content type; the job exists."""
    api.emu.faults.add(Fault("generate", "malformed_json", count=1))
    reply = await api.submit()
    assert reply.status == 202
    assert reply.headers["Content-Type"].startswith("application/json")
    assert isinstance(reply.body, bytes)
    with pytest.raises(ValueError):
        json.loads(reply.body)
    assert len(api.emu.ledger) == 1


@pytest.mark.parametrize("envelope", ["nested", "flat"])
async def test_missing_fields_on_status(make_api, envelope):
    """missing_fields drops the status from a status body, in either envelope."""
    api = await make_api(envelope=envelope)
    run_id = (await api.submit()).body["runId"]
    api.emu.faults.add(Fault("status", "missing_fields", count=1))
    body = (await api.status(run_id)).body
    assert "status" not in body
    assert "status" not in body.get("data", {})
    assert "requestId" in body


async def test_missing_fields_on_submit_recover_and_legacy(api):
    """missing_fields drops runId/id from submits, data from recover, status from legacy."""
    api.emu.faults.add(Fault("generate", "missing_fields", count=1))
    reply = await api.submit()
    assert reply.status == 202
    assert "runId" not in reply.body
    assert "id" not in reply.body
    run_id = api.emu.ledger[0].run_id
    api.emu.faults.add(Fault("recover", "missing_fields", count=1))
    assert (await api.call("GET", "/generate-video/recover")).body == {}
    api.emu.faults.add(Fault("legacy_status", "missing_fields", count=1))
    legacy = await api.call(
        "GET", "/generate-video/status", params={"runId": run_id, "model": GOOD["model"]}
    )
    assert "status" not in legacy.body["data"]


async def test_missing_fields_leaves_errors_alone(api):
    """An error answer is not mangled by missing_fields."""
    api.emu.faults.add(Fault("status", "missing_fields", count=1))
    reply = await api.status("vid_unknown")
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"


async def test_missing_fields_on_files_is_harmless(make_api, http):
    """missing_fields on a video download serves the bytes unchanged."""
    api = await make_api()
    run_id = (await api.submit()).body["runId"]
    url = (await api.until_terminal(run_id)).body["data"]["output"]["video"]["url"]
    api.emu.faults.add(Fault("files", "missing_fields", count=1))
    async with http.get(url) as response:
        assert response.status == 200
        assert len(await response.read()) == api.emu.video_size


@pytest.mark.parametrize("envelope", ["nested", "flat"])
async def test_unknown_status(make_api, envelope):
    """unknown_status shows WARMING_UP once; the job itself is unaffected."""
    api = await make_api(envelope=envelope)
    run_id = (await api.submit()).body["runId"]
    await api.until_terminal(run_id)
    api.emu.faults.add(Fault("*", "unknown_status", count=1))
    body = (await api.status(run_id)).body
    assert (body["data"]["status"] if envelope == "nested" else body["status"]) == "WARMING_UP"
    assert (await api.until_terminal(run_id)).status == 200


async def test_unknown_status_is_not_a_terminal_sighting(api):
    """A poll mangled by a fault does not count as the client seeing the terminal state."""
    run_id = (await api.submit()).body["runId"]
    api.emu.job(run_id).run_end = 0.0
    api.emu.faults.add(Fault("status", "unknown_status", count=1))
    await api.status(run_id)
    assert run_id not in api.emu.stats.first_seen_terminal
    await api.status(run_id)
    assert run_id in api.emu.stats.first_seen_terminal


async def test_slow(api):
    """slow delays the answer by `delay` real seconds, then answers normally."""
    api.emu.faults.add(Fault("generate", "slow", count=1, delay=0.05))
    loop = asyncio.get_running_loop()
    started = loop.time()
    reply = await api.submit()
    assert reply.status == 202
    assert loop.time() - started >= 0.05


async def test_slow_defaults_to_30_seconds(api, http):
    """Without a delay, slow waits 30 s: long enough for any client timeout to fire."""
    api.emu.faults.add(Fault("recover", "slow", count=1))
    with pytest.raises(asyncio.TimeoutError):
        async with asyncio.timeout(0.05):
            await api.call("GET", "/generate-video/recover")


async def test_reset_creates_nothing(api):
    """reset closes the connection without an answer and creates no job."""
    api.emu.faults.add(Fault("generate", "reset", count=1))
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.submit()
    assert api.emu.ledger == []
    assert api.emu.balance(KEY) == 100.0
    assert (await api.submit()).status == 202


@pytest.mark.fast_forward  # the job must not have finished (and been refunded) by the check
async def test_ambiguous_charges_but_never_answers(api):
    """ambiguous creates and charges the job, drops the answer, and recover shows the job."""
    api.emu.faults.add(Fault("generate", "ambiguous", count=1))
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.submit()
    [entry] = api.emu.ledger
    assert not entry.delivered
    assert api.emu.balance(KEY) == pytest.approx(100.0 - 0.35)
    recovered = (await api.call("GET", "/generate-video/recover")).body["data"]
    assert recovered[0]["runId"] == entry.run_id


async def test_ambiguous_on_a_rejected_submit(api):
    """An ambiguous fault on an invalid submit drops the answer and creates nothing."""
    api.emu.faults.add(Fault("extend", "ambiguous", count=1))
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.extend({"runId": "vid_nope", "index": 0})
    assert api.emu.ledger == []


async def test_rate_limit_fault(api):
    """rate_limit answers 429 under budget, with a Retry-After of `delay` or one emulated second."""
    api.emu.faults.add(Fault("generate", "rate_limit", count=1, delay=2.0))
    api.emu.faults.add(Fault("generate", "rate_limit", count=1))
    first, second = await api.submit(), await api.submit()
    assert (first.status, first.headers["Retry-After"]) == (429, "2")
    assert first.body["error"]["code"] == "rate_limit_exceeded"
    assert float(second.headers["Retry-After"]) == pytest.approx(1 / 6000, abs=1e-3)
    assert api.emu.stats.rate_limited["generate"] == 2
    assert api.emu.stats.faults["rate_limit"] == 2


async def test_count_and_removal(api):
    """A counted fault fires that many times, records it, and disarms itself."""
    fault = api.emu.faults.add(Fault("*", "server_error", count=2))
    assert len(api.emu.faults) == 1
    statuses = [(await api.call("GET", "/generate-video/recover")).status for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert fault.fired == 2
    assert fault.exhausted
    assert list(api.emu.faults) == []


async def test_unbounded_fault_until_removed(api):
    """With neither count nor rate a fault fires every time until removed or cleared."""
    fault = api.emu.faults.add(Fault("recover", "server_error"))
    for _ in range(3):
        assert (await api.call("GET", "/generate-video/recover")).status == 500
    api.emu.faults.remove(fault)
    assert (await api.call("GET", "/generate-video/recover")).status == 200
    api.emu.faults.add(Fault("recover", "server_error"))
    api.emu.faults.clear()
    assert (await api.call("GET", "/generate-video/recover")).status == 200


async def test_rate_is_seeded(make_api):
    """A rate fault fires on roughly that share of requests, identically for the same seed."""
    patterns = []
    for _ in range(2):
        api = await make_api(seed=3, limits={"overall": None})
        api.emu.faults.add(Fault("recover", "server_error", rate=0.5))
        replies = [await api.call("GET", "/generate-video/recover") for _ in range(20)]
        patterns.append([reply.status for reply in replies])
    assert patterns[0] == patterns[1]
    assert 3 <= patterns[0].count(500) <= 17


async def test_route_matching(api):
    """A fault for one route leaves the others alone; "*" skips routes its kind cannot use."""
    api.emu.faults.add(Fault("extend", "server_error"))
    api.emu.faults.add(Fault("*", "ambiguous", count=1))
    run_id = (await api.call("GET", "/generate-video/recover")).body["data"][0]["runId"]
    assert (await api.status(run_id)).status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.submit()


@pytest.mark.parametrize(
    ("route", "kind"),
    [
        ("nowhere", "reset"),
        ("generate", "explode"),
        ("status", "ambiguous"),
        ("generate", "unknown_status"),
    ],
)
async def test_invalid_faults(route, kind):
    """Unknown routes and kinds, and kinds on routes they cannot apply to, are refused."""
    with pytest.raises(ValueError):
        Fault(route, kind)


async def test_no_video_url_fault_strips_the_url_of_a_completed_job(make_api):
    """The no_video_url fault answers a completed job's status without its video URL."""
    api = await make_api(envelope="nested")
    run_id = api.emu.midjourney_run_ids(KEY)[0]
    api.emu.faults.add(Fault("status", "no_video_url", count=1))
    stripped = await api.status(run_id)
    assert stripped.body["data"]["status"] == "COMPLETED"
    assert "output" not in stripped.body["data"]
    normal = await api.status(run_id)
    assert normal.body["data"]["output"]["video"]["url"]


# -- late creation and the submit stand-ins ---------------------------------------------------


async def ledger_entry(api, count: int = 1):
    """Wait (in small steps) until the ledger holds ``count`` entries; return the last."""
    for _ in range(400):
        if len(api.emu.ledger) >= count:
            return api.emu.ledger[count - 1]
        await asyncio.sleep(0.005)
    raise AssertionError("the run was never created")


async def test_late_create_creates_the_run_after_the_client_gave_up(api):
    """late_create holds the submit `delay` seconds, creates and charges the run only after the
    client gave up, and drops the answer; the ledger shows the run, undelivered."""
    api.emu.faults.add(Fault("generate", "late_create", count=1, delay=0.05))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await api.submit()
    assert api.emu.ledger == []
    gave_up = api.emu.now()
    entry = await ledger_entry(api)
    assert entry.created_at > gave_up
    assert not entry.delivered
    assert api.emu.created_by(entry.run_id) == GOOD
    assert api.emu.balance(KEY) < 100.0  # charged (a fast job may have settled already)
    assert api.emu.stats.faults["late_create"] == 1
    recovered = (await api.call("GET", "/generate-video/recover")).body["data"]
    assert recovered[0]["runId"] == entry.run_id


async def test_late_create_drops_the_answer_of_a_client_that_waits(api):
    """A client that waits out the delay gets no answer either: the connection is reset."""
    api.emu.faults.add(Fault("generate", "late_create", count=1, delay=0.02))
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.submit()
    [entry] = api.emu.ledger
    assert not entry.delivered
    assert (await api.submit()).status == 202


async def test_late_create_on_the_submit_group_hits_midjourney_extends(api):
    """Targeted at "submit", late creation hits Midjourney extends too; the ledger shows them."""
    api.emu.faults.add(Fault("submit", "late_create", count=1, delay=0.02))
    body = {"runId": api.emu.midjourney_run_ids(KEY)[0], "index": 3}
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.extend(body)
    [entry] = api.emu.ledger
    assert (entry.route, entry.delivered) == ("extend", False)
    assert api.emu.created_by(entry.run_id) == body


async def test_late_create_of_a_rejected_submit_creates_nothing(api):
    """A late submit that fails validation creates and charges nothing."""
    api.emu.faults.add(Fault("extend", "late_create", count=1, delay=0.01))
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.extend({"runId": "vid_nope", "index": 0})
    assert api.emu.ledger == []
    assert api.emu.balance(KEY) == 100.0


async def test_late_create_pending_at_close_never_creates(make_api):
    """Closing the emulator while a late submit is held cancels it: no run, and close is quick."""
    api = await make_api()
    api.emu.faults.add(Fault("generate", "late_create", count=1, delay=30.0))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await api.submit()
    await api.emu.close()
    assert api.emu.ledger == []


@pytest.mark.parametrize("delay", [None, 0.0, -1.0])
async def test_late_create_needs_a_delay(delay):
    """The emulator cannot know the client's timeout, so a late creation's delay is required."""
    with pytest.raises(ValueError, match="delay"):
        Fault("generate", "late_create", delay=delay)


async def test_submit_group_targets_generate_and_extend_only(api):
    """route="submit" fires on both submit routes and leaves status and recover alone."""
    api.emu.faults.add(Fault("submit", "server_error", status=503))
    run_id = api.emu.midjourney_run_ids(KEY)[0]
    assert (await api.submit()).status == 503
    assert (await api.extend({"runId": run_id, "index": 0})).status == 503
    assert (await api.status(run_id)).status == 200
    assert (await api.call("GET", "/generate-video/recover")).status == 200
    assert api.emu.ledger == []


@pytest.mark.parametrize("kind", ["unknown_status", "no_video_url"])
async def test_submit_group_refuses_status_only_kinds(kind):
    """A kind that only applies to status routes cannot target "submit"."""
    with pytest.raises(ValueError, match="only applies"):
        Fault("submit", kind)


async def test_submit_stand_ins_at_a_rate(make_api):
    """The issue's stand-ins on submits at a rate: "ambiguous" creates the run and drops the
    answer, "server_error" with 503 answers before anything is created."""
    api = await make_api(seed=5, midjourney_runs=3, limits=dict.fromkeys(LIMITS))
    dropped = api.emu.faults.add(Fault("submit", "ambiguous", rate=0.2))
    unavailable = api.emu.faults.add(Fault("submit", "server_error", rate=0.25, status=503))
    parents = api.emu.midjourney_run_ids(KEY)
    bodies = [{**GOOD, "prompt": f"shot {n}"} for n in range(28)]
    bodies += [{"runId": run, "index": index} for run in parents for index in range(4)]
    outcomes: dict[int, object] = {}
    for n, body in enumerate(bodies):
        send = api.extend if "index" in body else api.submit
        try:
            outcomes[n] = (await send(body)).status
        except aiohttp.ClientConnectionError:
            outcomes[n] = "dropped"
    statuses = list(outcomes.values())
    assert statuses.count("dropped") == dropped.fired > 0
    assert statuses.count(503) == unavailable.fired > 0
    assert statuses.count(202) == len(bodies) - dropped.fired - unavailable.fired
    created = [api.emu.created_by(entry.run_id) for entry in api.emu.ledger]
    assert created == [bodies[n] for n, status in outcomes.items() if status != 503]
    assert [entry.delivered for entry in api.emu.ledger] == [
        status == 202 for status in statuses if status != 503
    ]


async def test_slow_submit_whose_client_gave_up_creates_nothing(api):
    """Unlike late_create, a slow submit abandoned by its client is never created."""
    api.emu.faults.add(Fault("generate", "slow", count=1, delay=0.03))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await api.submit()
    await asyncio.sleep(0.06)
    assert api.emu.ledger == []
    assert api.emu.stats.faults["slow"] == 1
