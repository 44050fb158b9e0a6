"""The Emulator object: options, lifecycle, inspection, the pytest fixture and the command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import signal
import sys

import aiohttp
import pytest

from aiovideoextend.testing import EXTEND_MODELS, Emulator, Fault
from aiovideoextend.testing._serve import add_emulator_arguments, serve

KEY = "sk-nano-test-0001"
OTHER = "sk-nano-test-0002"
GOOD = {
    "model": "wan-wavespeed-22-spicy-extend",
    "prompt": "the cat keeps walking",
    "videoUrl": "https://example.com/cat.mp4",
}
REPO = pathlib.Path(__file__).resolve().parents[2]


async def test_context_manager_binds_a_free_port(http):
    """`async with` serves on 127.0.0.1 with a bound port in base_url, and closes cleanly."""
    async with Emulator() as emu:
        assert emu.base_url.startswith("http://127.0.0.1:")
        assert not emu.base_url.endswith("/")
        assert emu.base_url.endswith("/api")
        assert emu.api_key == "sk-nano-test-0001"
        assert emu.balance(emu.api_key) == 1000.0
        assert len(emu.midjourney_run_ids(emu.api_key)) == 2
        url = f"{emu.base_url}/generate-video/recover"
        async with http.get(url, headers={"x-api-key": emu.api_key}) as response:
            assert response.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        await http.get(url, headers={"x-api-key": emu.api_key})


async def test_start_and_close_by_hand():
    """start() returns the emulator; close() is idempotent; a closed emulator cannot restart."""
    emu = Emulator(midjourney_runs=0)
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    assert await emu.start() is emu
    with pytest.raises(RuntimeError):
        await emu.start()
    assert emu.midjourney_run_ids(emu.api_key) == []
    await emu.close()
    await emu.close()
    with pytest.raises(RuntimeError):
        await emu.start()


async def test_dropping_a_running_emulator_warns():
    """An emulator garbage-collected while serving raises a ResourceWarning."""
    emu = await Emulator().start()
    try:
        with pytest.warns(ResourceWarning, match="never closed"):
            emu.__del__()
    finally:
        await emu.close()
    emu.__del__()


@pytest.mark.parametrize(
    "options",
    [
        {"time_scale": 0},
        {"job_lengths": "gamma"},
        {"envelope": "sideways"},
        {"error_shape": "xml"},
        {"limit_algorithm": "leaky"},
        {"queue_seconds": (5.0,)},
        {"run_seconds": (10.0, 1.0)},
        {"latency": (-1.0, 0.0)},
        {"failure_rate": 1.5},
        {"failure_rate": 0.6, "nsfw_rate": 0.6},
        {"users": {}},
    ],
)
async def test_invalid_options_are_refused(options):
    """Nonsense options fail at construction, not on the first request."""
    with pytest.raises(ValueError):
        Emulator(**options)


async def test_now_runs_at_time_scale():
    """now() is real elapsed loop time multiplied by time_scale."""
    async with Emulator(time_scale=1000.0) as emu:
        before = emu.now()
        await asyncio.sleep(0.01)
        assert emu.now() - before >= 10.0


async def test_seed_makes_runs_reproducible(make_api):
    """The same seed gives the same random id suffixes, durations and outcomes."""
    runs = []
    for _ in range(2):
        api = await make_api(seed=11, failure_rate=0.5)
        ids = [(await api.submit()).body["runId"] for _ in range(6)]
        jobs = [api.emu.job(run_id) for run_id in ids]
        runs.append(
            [
                (run_id[-9:], job.outcome, round(job.run_end - job.created_at, 6))
                for run_id, job in zip(ids, jobs, strict=True)
            ]
        )
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("job_lengths", "fast", "slow"),
    [
        ("uniform", (65.0, 300.0), (65.0, 300.0)),
        ("narrow", (164.25, 200.75), (164.25, 200.75)),
        ("bimodal", (16.25, 75.0), (65.0, 300.0)),
    ],
)
async def test_job_lengths_shape_the_durations(make_api, job_lengths, fast, slow):
    """``job_lengths`` picks the distribution; under "bimodal" the fast model's jobs are short."""
    api = await make_api(
        job_lengths=job_lengths, queue_seconds=(5.0, 60.0), run_seconds=(60.0, 240.0)
    )
    for model, (low, high) in (("veo3-1-fast-extend", fast), ("veo3-1-extend", slow)):
        for _ in range(5):
            run_id = (await api.submit({**GOOD, "model": model})).body["runId"]
            job = api.emu.job(run_id)
            assert low <= job.run_end - job.created_at <= high


async def test_extend_eta_can_be_left_out(make_api):
    """``eta=False``: the Midjourney extend 202 carries no ``eta``, so no hint at all."""
    for eta in (True, False):
        api = await make_api(eta=eta)
        parent = api.emu.midjourney_run_ids(KEY)[0]
        reply = await api.extend({"runId": parent, "index": 0})
        assert ("eta" in reply.body) is eta


@pytest.mark.fast_forward  # the job must not have finished (and settled) by the check
async def test_ledger_records_every_accepted_submit(api):
    """The ledger holds route, model, payload, precharge and creation time of accepted submits."""
    await api.submit({"model": "nope"})
    await api.submit()
    parent = api.emu.midjourney_run_ids(KEY)[0]
    await api.extend({"runId": parent, "index": 1})
    generate, extend = api.emu.ledger
    assert (generate.route, generate.model, generate.payload) == ("generate", GOOD["model"], GOOD)
    assert (extend.route, extend.model, extend.precharge) == ("extend", "midjourney-video", 0.4)
    assert generate.key == KEY
    assert 0 <= generate.created_at <= extend.created_at
    assert generate.delivered
    assert generate.final_cost is None


async def test_duplicate_charges(make_api):
    """Repeated identical submits that stay charged count; refunded or different ones do not."""
    api = await make_api(users={KEY: 100.0, OTHER: 100.0}, time_scale=1.0)
    for _ in range(3):
        await api.submit()
    await api.submit(key=OTHER)
    await api.submit({**GOOD, "prompt": "something else"})
    assert api.emu.duplicate_charges() == 2
    api.emu.cancel(api.emu.ledger[0].run_id)
    assert api.emu.duplicate_charges() == 1


async def test_stats_count_requests(api):
    """stats counts requests per route and logs arrivals with loop times."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    await api.submit()
    await api.call("GET", "/generate-video/recover")
    stats = api.emu.stats
    assert stats.requests == {"generate": 1, "recover": 1}
    assert [route for _, route in stats.arrivals] == ["generate", "recover"]
    assert all(started <= t <= loop.time() for t, _ in stats.arrivals)
    assert stats.admitted == stats.arrivals


@pytest.mark.fast_forward  # the job must not have finished (and been refunded) by the check
async def test_admin_route(make_api):
    """The admin route serves ledger and stats only when admin=True."""
    hidden = await make_api()
    assert (await hidden.call("GET", "/_emulator/state")).status == 404
    api = await make_api(admin=True)
    await api.submit()
    reply = await api.call("GET", "/_emulator/state", key=None)
    assert reply.status == 200
    assert reply.body["ledger"][0]["payload"] == GOOD
    assert reply.body["stats"]["requests"]["generate"] == 1
    assert reply.body["balances"][KEY] == pytest.approx(1000.0 - 0.35)
    assert reply.body["duplicateCharges"] == 0


async def test_latency_delays_answers(make_api):
    """latency adds real seconds of delay before each answer."""
    api = await make_api(latency=(0.03, 0.04))
    loop = asyncio.get_running_loop()
    started = loop.time()
    await api.call("GET", "/generate-video/recover")
    assert loop.time() - started >= 0.03


async def test_app_can_be_mounted(aiohttp_client):
    """emu.app works in another server (here pytest-aiohttp's); time starts on first request."""
    emu = Emulator(time_scale=6000.0)
    client = await aiohttp_client(emu.app)
    response = await client.post("/api/generate-video", json=GOOD, headers={"x-api-key": KEY})
    assert response.status == 202
    assert len(emu.ledger) == 1


async def test_many_jobs_stay_cheap(make_api):
    """Thousands of jobs settle lazily: recover and balance stay fast with no per-job tasks."""
    api = await make_api(users={KEY: 1e9}, limits={"generate": None, "overall": None})
    tasks_before = len(asyncio.all_tasks())
    state, clock = api.emu._state, api.emu._ensure_clock()
    for _ in range(3000):
        state.create(
            clock,
            api.emu.now(),
            key=KEY,
            route="generate",
            model=GOOD["model"],
            payload=GOOD,
            precharge=0.35,
        )
    assert len(asyncio.all_tasks()) == tasks_before
    reply = await api.call("GET", "/generate-video/recover", params={"limit": "50"})
    assert len(reply.body["data"]) == 50
    api.emu.job(api.emu.ledger[0].run_id).run_end = 0.0
    assert api.emu.balance(KEY) < 1e9


# -- pytest fixture ---------------------------------------------------------------------------


async def test_fixture_defaults(nanogpt_emulator):
    """The fixture yields a started emulator at time_scale 600."""
    assert nanogpt_emulator.time_scale == 600.0
    assert nanogpt_emulator.base_url.startswith("http://127.0.0.1:")


@pytest.mark.nanogpt_emulator(envelope="flat", seed=4)
async def test_fixture_marker(nanogpt_emulator):
    """The nanogpt_emulator marker passes options to the fixture."""
    assert nanogpt_emulator.envelope == "flat"
    assert nanogpt_emulator.seed == 4
    assert nanogpt_emulator.time_scale == 600.0


@pytest.mark.nanogpt_emulator(envelope="flat")
@pytest.mark.parametrize(
    "nanogpt_emulator", [{"error_shape": "oas", "envelope": "mixed"}], indirect=True
)
async def test_fixture_indirect(nanogpt_emulator):
    """Indirect parameters override marker options."""
    assert nanogpt_emulator.error_shape == "oas"
    assert nanogpt_emulator.envelope == "mixed"


@pytest.mark.nanogpt_emulator("flat")
async def test_fixture_marker_rejects_positional(request):
    """The marker takes keyword arguments only."""
    from aiovideoextend.testing.pytest_plugin import emulator_options

    with pytest.raises(TypeError):
        emulator_options(request)


# -- command line -----------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    return parser.parse_args(argv)


async def test_arguments():
    """Every flag lands in the namespace; --key is repeatable with optional balances."""
    args = parse(
        "--port",
        "0",
        "--time-scale",
        "60",
        "--seed",
        "3",
        "--envelope",
        "flat",
        "--error-shape",
        "oas",
        "--limit-algorithm",
        "token",
        "--no-retry-after",
        "--key",
        "sk-a=5",
        "--key",
        "sk-b",
        "--midjourney-runs",
        "1",
        "--failure-rate",
        "0.1",
        "--latency",
        "0.1,0.2",
        "--admin",
        "--host",
        "127.0.0.1",
        "--job-lengths",
        "lognormal",
    )
    assert args.job_lengths == "lognormal"
    assert args.keys == [("sk-a", 5.0), ("sk-b", 1000.0)]
    assert (args.time_scale, args.seed, args.envelope, args.error_shape) == (60.0, 3, "flat", "oas")
    assert (args.limit_algorithm, args.retry_after, args.admin) == ("token", False, True)
    assert args.latency == (0.1, 0.2)
    assert parse("--latency", "0.5").latency == (0.5, 0.5)
    assert parse().keys is None


@pytest.mark.parametrize(
    "argv", [("--key", "=5"), ("--key", "sk=lots"), ("--latency", "a"), ("--latency", "1,2,3")]
)
async def test_bad_arguments(argv, capsys):
    """Malformed --key and --latency values are usage errors."""
    with pytest.raises(SystemExit):
        parse(*argv)
    assert "error" in capsys.readouterr().err


async def test_serve_prints_and_serves_until_cancelled(capsys, http):
    """serve() prints URL, keys and Midjourney runs, answers requests, and stops on cancel."""
    args = parse("--port", "0", "--key", "sk-a=5", "--key", "sk-b", "--midjourney-runs", "1")
    task = asyncio.create_task(serve(args))
    out = ""
    for _ in range(200):
        await asyncio.sleep(0.005)
        out += capsys.readouterr().out
        if "Ctrl+C" in out:
            break
    base_url = out.split("NanoGPT emulator at ", 1)[1].split()[0]
    assert "sk-a  balance 5.00 USD  midjourney runs: vid_" in out
    assert "sk-b  balance 1000.00 USD" in out
    async with http.get(f"{base_url}/generate-video/recover", headers={"x-api-key": "sk-b"}) as r:
        assert r.status == 200
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()


async def test_python_m_serves_and_stops_on_interrupt(http):
    """`python -m aiovideoextend.testing` serves until SIGINT and then exits with 0."""
    # A child inherits an ignored SIGINT, and pytest started in the background (`cmd &` in a
    # script) has it ignored: then Ctrl-C rightly does nothing to the server. Start it the way a
    # terminal would, with the default disposition.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aiovideoextend.testing",
            "--port",
            "0",
            "--midjourney-runs",
            "0",
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = line.split(" at ", 1)[1].strip()
        headers = {"x-api-key": "sk-nano-test-0001"}
        async with http.get(f"{base_url}/generate-video/recover", headers=headers) as response:
            assert (await response.json()) == {"data": []}
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_every_model_is_listed():
    """EXTEND_MODELS names the five documented extend models."""
    assert sorted(EXTEND_MODELS) == [
        "bytedance-seedance-v1.5-pro-extend",
        "veo3-1-extend",
        "veo3-1-fast-extend",
        "wan-wavespeed-22-spicy-extend",
        "wan-wavespeed-25-extend",
    ]
    assert Fault("generate", "reset").fired == 0
