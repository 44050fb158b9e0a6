"""The server's clock as clients see it (createdAt modes, clock skew) and `created_by`."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import time

import aiohttp
import pytest

from aiovideoextend.testing import Emulator, Fault
from aiovideoextend.testing._serve import add_emulator_arguments, emulator_from_arguments

KEY = "sk-nano-test-0001"
GOOD = {
    "model": "wan-wavespeed-22-spicy-extend",
    "prompt": "the cat keeps walking",
    "videoUrl": "https://example.com/cat.mp4",
}
#: Slack for comparing the server's stamps with our wall clock (float and loop-clock noise).
SLACK = 0.005
EXACT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
COARSE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def epoch(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


async def recover_row(api, run_id: str) -> dict[str, object]:
    rows = (await api.call("GET", "/generate-video/recover")).body["data"]
    [row] = [row for row in rows if row["runId"] == run_id]
    return row


async def submit_between(api) -> tuple[str, float, float]:
    """Submit once; return the run id and our wall clock just before and after."""
    before = time.time()
    run_id = (await api.submit()).body["runId"]
    return run_id, before, time.time()


async def test_exact_by_default(make_api):
    """By default createdAt has milliseconds and is the moment the run was created."""
    api = await make_api(envelope="flat")
    run_id, before, after = await submit_between(api)
    row = await recover_row(api, run_id)
    flat = (await api.status(run_id)).body
    assert EXACT.fullmatch(row["createdAt"])
    assert flat["createdAt"] == row["createdAt"]
    assert before - SLACK <= epoch(row["createdAt"]) <= after + SLACK


async def test_coarse_truncates_to_whole_seconds(make_api):
    """created_at="coarse" sends whole seconds, truncated, in recover rows and flat status."""
    api = await make_api(envelope="flat", created_at="coarse")
    run_id, before, after = await submit_between(api)
    row = await recover_row(api, run_id)
    flat = (await api.status(run_id)).body
    assert COARSE.fullmatch(row["createdAt"])
    assert flat["createdAt"] == row["createdAt"]
    assert math.floor(before) - SLACK <= epoch(row["createdAt"]) <= after + SLACK


async def test_missing_leaves_created_at_out(make_api):
    """created_at="missing": recover rows lack the key, the flat status (which must have it)
    sends null; completedAt is still sent."""
    api = await make_api(envelope="flat", created_at="missing")
    run_id = (await api.submit()).body["runId"]
    row = await recover_row(api, run_id)
    assert "createdAt" not in row
    assert set(row) == {"runId", "id", "model", "status", "conversationUUID"}
    seeded = await recover_row(api, api.emu.midjourney_run_ids(KEY)[0])
    assert "createdAt" not in seeded
    done = (await api.until_terminal(run_id)).body
    assert done["createdAt"] is None
    assert EXACT.fullmatch(done["completedAt"])


@pytest.mark.parametrize("skew", [2.5, -90.0])
async def test_clock_skew_shifts_every_timestamp(make_api, skew):
    """clock_skew moves createdAt (recover and flat status) and completedAt by that many
    seconds; the runs themselves are unchanged."""
    api = await make_api(envelope="flat", clock_skew=skew)
    run_id, before, after = await submit_between(api)
    row = await recover_row(api, run_id)
    assert before - SLACK <= epoch(row["createdAt"]) - skew <= after + SLACK
    done = (await api.until_terminal(run_id)).body
    assert done["createdAt"] == row["createdAt"]
    assert epoch(row["createdAt"]) <= epoch(done["completedAt"]) <= time.time() + skew + SLACK


async def test_skew_and_coarse_combine(make_api):
    """Coarse truncation applies to the skewed clock."""
    api = await make_api(created_at="coarse", clock_skew=0.75)
    run_id, before, after = await submit_between(api)
    stamp = (await recover_row(api, run_id))["createdAt"]
    assert COARSE.fullmatch(stamp)
    assert math.floor(before + 0.75) - SLACK <= epoch(stamp) <= after + 0.75 + SLACK


@pytest.mark.parametrize(
    "options",
    [
        {"created_at": "fuzzy"},
        {"created_at": None},
        {"clock_skew": math.nan},
        {"clock_skew": math.inf},
        {"clock_skew": "1"},
        {"clock_skew": True},
    ],
)
async def test_invalid_clock_options_are_refused(options):
    """Unknown createdAt modes and non-finite or non-numeric skews fail at construction."""
    with pytest.raises(ValueError):
        Emulator(**options)


async def test_defaults_are_unchanged():
    """Without the new options the emulator stamps exactly, with no skew."""
    emu = Emulator()
    assert (emu.created_at, emu.clock_skew) == ("exact", 0.0)


# -- created_by -------------------------------------------------------------------------------


async def test_created_by_names_the_body_that_created_a_run(api):
    """created_by gives the request body of the submit that created a run, on either route."""
    first = (await api.submit()).body["runId"]
    other = {**GOOD, "prompt": "another shot"}
    second = (await api.submit(other)).body["runId"]
    parent = api.emu.midjourney_run_ids(KEY)[0]
    extended = (await api.extend({"runId": parent, "index": 2})).body["runId"]
    assert api.emu.created_by(first) == GOOD
    assert api.emu.created_by(second) == other
    assert api.emu.created_by(extended) == {"runId": parent, "index": 2}


async def test_created_by_a_lost_answer(api):
    """A run whose answer was dropped is attributed to the body that created it."""
    api.emu.faults.add(Fault("generate", "ambiguous", count=1))
    body = {**GOOD, "prompt": "lost"}
    with pytest.raises(aiohttp.ClientConnectionError):
        await api.submit(body)
    [entry] = api.emu.ledger
    assert api.emu.created_by(entry.run_id) == body


async def test_created_by_none_for_seeded_and_unknown_runs(api):
    """Seeded Midjourney runs (no submit made them) and unknown ids give None."""
    assert api.emu.created_by(api.emu.midjourney_run_ids(KEY)[0]) is None
    assert api.emu.created_by("vid_nope") is None


async def test_created_by_returns_a_copy(api):
    """Changing what created_by returned leaves the ledger alone."""
    run_id = (await api.submit()).body["runId"]
    body = api.emu.created_by(run_id)
    assert body is not None
    body["prompt"] = "changed"
    assert api.emu.created_by(run_id) == GOOD
    assert api.emu.ledger[0].payload == GOOD


# -- command line -----------------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_emulator_arguments(parser)
    return parser.parse_args(argv)


async def test_clock_arguments():
    """--created-at and --clock-skew reach the Emulator; the defaults change nothing."""
    emu = emulator_from_arguments(parse("--created-at", "missing", "--clock-skew", "-1.5"))
    assert (emu.created_at, emu.clock_skew) == ("missing", -1.5)
    emu = emulator_from_arguments(parse())
    assert (emu.created_at, emu.clock_skew) == ("exact", 0.0)


@pytest.mark.parametrize(
    "argv",
    [("--created-at", "fuzzy"), ("--clock-skew", "soon"), ("--clock-skew", "nan")],
)
async def test_bad_clock_arguments(argv, capsys):
    """An unknown mode or a skew that is not a finite number is a usage error."""
    with pytest.raises(SystemExit):
        parse(*argv)
    assert "error" in capsys.readouterr().err
