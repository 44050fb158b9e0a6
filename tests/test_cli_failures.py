"""The command when things go wrong: fast, one clear line, nothing paid, nothing left behind.

Subprocesses against a real emulator (or a real socket that is not NanoGPT), as a person runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import signal
import socket
import sqlite3
from typing import TYPE_CHECKING, Any

import pytest

from aiovideoextend import __version__
from aiovideoextend.cli import build_parser, main
from aiovideoextend.testing import Emulator, Fault

from .mp4util import make_mp4
from .test_cli import KEY, SCALE, cli_emulator, manifest, results, run, start

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(300)

URL_LINE = {"model": "veo3-1-extend", "prompt": "p", "video_url": "https://x/a.mp4"}


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with cli_emulator(seed=2) as emulator:
        yield emulator


@pytest.fixture
async def slow_emu() -> AsyncIterator[Emulator]:
    """Jobs that run for days of emulated time: still running whenever the test looks."""
    async with Emulator(
        time_scale=SCALE,
        users={KEY: 1000.0},
        seed=3,
        failure_rate=0.0,
        nsfw_rate=0.0,
        midjourney_runs=1,
        queue_seconds=(5.0, 5.0),
        run_seconds=(1e6, 1e6),
    ) as emulator:
        yield emulator


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def journal_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM entries").fetchone()
    db.close()
    return int(count)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# --- server down, wrong base URL, wrong key ------------------------------------------------------


@pytest.mark.timeout(60)
async def test_unreachable_server_stops_the_batch_at_once(emu, tmp_path):
    """A closed port: one line naming the base URL, exit 1, no per-line output, nothing sent.

    At the real clock (no --time-scale): the old way, each line retried for ~30 s."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 20)
    base = f"http://127.0.0.1:{closed_port()}/api"
    done = await run(emu, "batch", "jobs.jsonl", "--base-url", base, cwd=tmp_path)
    assert done.proc.returncode == 1
    (line,) = lines(done.stderr)
    assert line == (
        f"aiovideoextend: error: cannot reach the server at {base} (connection refused); "
        "nothing was sent. Check --base-url or $NANOGPT_BASE_URL"
    )
    assert done.stdout == ""
    assert journal_rows(tmp_path / "jobs.jsonl.journal") == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "argv",
    [
        ["extend", "--run-id", "vid_a", "--index", "1"],
        ["wait", "vid_a"],
        ["status", "vid_a"],
        ["download", "vid_a", "out"],
    ],
    ids=lambda argv: argv[0],
)
async def test_unreachable_server_single_commands(emu, tmp_path, argv):
    """Single commands against a closed port: one line, exit 1, no private class names."""
    base = f"http://127.0.0.1:{closed_port()}/api"
    done = await run(emu, *argv, "--base-url", base, cwd=tmp_path)
    assert done.proc.returncode == 1
    (line,) = lines(done.stderr)
    assert line.startswith(f"aiovideoextend: error: cannot reach the server at {base} ")
    assert "Unsent" not in line
    assert done.stdout == ""
    as_json = await run(emu, *argv, "--base-url", base, "--json", cwd=tmp_path)
    assert as_json.proc.returncode == 1
    assert as_json.stderr == ""
    (record,) = [json.loads(line) for line in lines(as_json.stdout)]
    assert record["event"] == "error"
    assert record["exit_code"] == 1
    assert record["error"]["type"] == "APIConnectionError"
    assert base in record["error"]["message"]


async def test_batch_against_a_server_that_is_not_nanogpt(emu, not_nanogpt, tmp_path):
    """501/404 pages from another server: one line naming the URL tried, not 'ambiguous';
    a status poll's HTML 404 says the same, not 'no such job'."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 6)
    done = await run(
        emu, "batch", "jobs.jsonl", "--base-url", not_nanogpt, "--time-scale", "600", cwd=tmp_path
    )
    assert done.proc.returncode == 1
    (line,) = lines(done.stderr)
    assert line.startswith(f"aiovideoextend: error: {not_nanogpt}/generate-video")
    assert "is not NanoGPT's video API" in line
    assert "check the base URL" in line
    assert "mbiguous" not in line
    waited = await run(emu, "wait", "vid_x", "--base-url", not_nanogpt, cwd=tmp_path)
    assert waited.proc.returncode == 1
    (line,) = lines(waited.stderr)
    assert line.startswith(f"aiovideoextend: error: {not_nanogpt}/video/status is not NanoGPT's")


async def test_single_commands_without_api_in_the_base_url(emu, tmp_path):
    """The emulator's root instead of its /api: the submit names the URL; nothing is charged;
    a real 'no such run' 404 from NanoGPT is still that."""
    root = emu.base_url.removesuffix("/api")
    scale = ("--time-scale", str(SCALE))
    done = await run(emu, "extend", *URL_LINE_ARGS, "--base-url", root, *scale, cwd=tmp_path)
    assert done.proc.returncode == 1
    # (The emulator answers its unknown paths in NanoGPT's shape, so the look through recover
    # before the submit is an ordinary 404 warning here; a foreign server's page is quiet.)
    line = lines(done.stderr)[-1]
    assert line.startswith(f"aiovideoextend: error: {root}/generate-video is not NanoGPT's")
    assert emu.ledger == []
    missing = await run(emu, "status", "vid_nope", *scale, cwd=tmp_path)
    assert missing.proc.returncode == 1
    assert "NotFoundError" in missing.stderr


async def test_wrong_api_key_stops_the_batch_in_one_line(emu, tmp_path):
    """A rejected key: one line, exit 1, no 'ambiguous' warning, no per-line rows, nothing paid."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 20)
    wrong = "sk-nano-wrong-0000"
    batch = await start(
        emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path, NANOGPT_API_KEY=wrong
    )
    assert await batch.finish() == 1
    (line,) = lines(batch.stderr)
    assert line.startswith(
        f"aiovideoextend: error: {emu.base_url} rejected the API key in $NANOGPT_API_KEY (401"
    )
    assert line.endswith("nothing was submitted")
    assert batch.stdout == ""
    assert wrong not in batch.stderr
    assert emu.ledger == []
    assert journal_rows(tmp_path / "jobs.jsonl.journal") == 0
    # Without a journal's first look (recover), the first submit meets the 401: the same.
    as_json = await start(
        emu,
        "batch",
        "jobs.jsonl",
        "--json",
        "--time-scale",
        str(SCALE),
        cwd=tmp_path,
        NANOGPT_API_KEY=wrong,
    )
    assert await as_json.finish() == 1
    (record,) = [json.loads(line) for line in lines(as_json.stdout)]
    assert record["error"]["type"] == "AuthenticationError"


# --- output paths ---------------------------------------------------------------------------------


async def test_results_and_journal_in_missing_folders_are_created(emu, tmp_path):
    """--results and --journal in folders that do not exist yet: the folders are made."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 3)
    done = await run(
        emu,
        "batch",
        "jobs.jsonl",
        "--results",
        "out/deep/results.jsonl",
        "--journal",
        "state/j.db",
        "--time-scale",
        str(SCALE),
        cwd=tmp_path,
    )
    assert done.proc.returncode == 0, done.stderr
    assert len(results(tmp_path / "out" / "deep" / "results.jsonl")) == 3
    assert journal_rows(tmp_path / "state" / "j.db") == 3


@pytest.mark.parametrize("option", ["--results", "--journal"])
async def test_unwritable_output_is_one_line_before_anything_is_sent(emu, tmp_path, option):
    """An output path that cannot be written: exit 2, one line, no journal left, nothing paid."""
    manifest(tmp_path / "jobs.jsonl", emu.midjourney_run_ids(KEY), 3)
    (tmp_path / "blocker").write_text("a file, not a folder")
    done = await run(
        emu, "batch", "jobs.jsonl", option, "blocker/out", "--time-scale", str(SCALE), cwd=tmp_path
    )
    assert done.proc.returncode == 2
    (line,) = lines(done.stderr)
    assert line.startswith(f"aiovideoextend: error: cannot create the folder for {option} ")
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "jobs.jsonl"]
    assert emu.ledger == []
    folder = await run(
        emu, "batch", "jobs.jsonl", option, str(tmp_path), "--time-scale", str(SCALE), cwd=tmp_path
    )
    assert folder.proc.returncode == 2
    assert "is a folder" in folder.stderr
    assert emu.ledger == []


# --- manifests ------------------------------------------------------------------------------------


async def test_missing_or_fake_video_file_is_invalid_and_never_journaled(emu, tmp_path):
    """A missing video_file and a text file named .mp4 are invalid lines with their full paths;
    nothing is sent or journaled for them, so a rerun does not reconcile them again."""
    (tmp_path / "clip.mp4").write_bytes(make_mp4(4.0))
    (tmp_path / "fake.mp4").write_text("not a video\n")
    rows = [{**URL_LINE, "video_url": None, "video_file": name} for name in ("clip.mp4",)]
    rows = [{k: v for k, v in row.items() if v is not None} for row in rows]
    rows += [
        {"model": "veo3-1-extend", "prompt": "q", "video_file": "missing.mp4"},
        {"model": "veo3-1-extend", "prompt": "r", "video_file": "fake.mp4"},
    ]
    write_jsonl(tmp_path / "jobs.jsonl", rows)
    for _ in range(2):
        done = await run(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
        assert done.proc.returncode == 2
        assert f"line 2: invalid (video_file {tmp_path / 'missing.mp4'}: no such file" in (
            done.stderr
        )
        assert f"line 3: invalid (video_file {tmp_path / 'fake.mp4'} is not a video" in (
            done.stderr
        )
        assert "outcome unknown" not in done.stdout + done.stderr
        assert journal_rows(tmp_path / "jobs.jsonl.journal") == 1
    assert len(emu.ledger) == 1


async def test_manifest_field_typos_and_semicolons(emu, tmp_path):
    """'promt' and 'videoUrl' get a did-you-mean; a semicolon CSV is named as such."""
    write_jsonl(
        tmp_path / "jobs.jsonl",
        [
            {"model": "veo3-1-extend", "promt": "p", "video_url": "https://x/a.mp4"},
            {"model": "veo3-1-extend", "prompt": "p", "videoUrl": "https://x/a.mp4"},
        ],
    )
    done = await run(emu, "batch", "jobs.jsonl", "--time-scale", str(SCALE), cwd=tmp_path)
    assert done.proc.returncode == 2
    assert "did you mean 'prompt'?" in done.stderr
    assert "did you mean 'video_url'?" in done.stderr
    assert "options" not in done.stderr
    (tmp_path / "jobs.csv").write_text("model;prompt;video_url\nveo3-1-extend;p;https://x/a\n")
    csv = await run(emu, "batch", "jobs.csv", cwd=tmp_path)
    assert csv.proc.returncode == 2
    (line,) = lines(csv.stderr)
    assert "separated by semicolons" in line
    assert emu.ledger == []


# --- extend ---------------------------------------------------------------------------------------

URL_LINE_ARGS = ("--model", "veo3-1-extend", "--prompt", "p", "--video-url", "https://x/a.mp4")


async def test_extend_file_errors_exit_2_before_anything_is_sent(emu, tmp_path):
    """A missing file or a text file named .mp4: exit 2 like any argument error, one line."""
    (tmp_path / "fake.mp4").write_text("hello\n")
    for name, words in (("missing.mp4", "no such file"), ("fake.mp4", "is not a video file")):
        done = await run(
            emu, "extend", "--model", "veo3-1-extend", "--prompt", "p", "--video-file", name,
            cwd=tmp_path,
        )  # fmt: skip
        assert done.proc.returncode == 2
        (line,) = lines(done.stderr)
        assert line.startswith(f"aiovideoextend: error: video_file {tmp_path / name}")
        assert words in line
    assert emu.ledger == []


async def test_extend_no_wait_prints_only_the_run_id(emu, tmp_path):
    """--no-wait: stdout is the run id alone, so RID=$(aiovideoextend extend ... --no-wait)."""
    done = await run(emu, "extend", *URL_LINE_ARGS, "--no-wait", cwd=tmp_path)
    assert done.proc.returncode == 0, done.stderr
    (entry,) = emu.ledger
    assert done.stdout == f"{entry.run_id}\n"
    assert f"submitted {entry.run_id}" in done.stderr


async def test_extend_passes_conversation_audio_and_mode(emu, tmp_path):
    """--conversation-uuid, --generate-audio and --mode reach the request."""
    done = await run(
        emu,
        "extend",
        *URL_LINE_ARGS,
        "--conversation-uuid",
        "conv-1",
        "--generate-audio",
        "--mode",
        "fast",
        "--no-wait",
        cwd=tmp_path,
    )
    assert done.proc.returncode == 0, done.stderr
    (entry,) = emu.ledger
    assert entry.payload["conversationUUID"] == "conv-1"
    assert entry.payload["generateAudio"] is True
    assert entry.payload["mode"] == "fast"
    off = await run(emu, "extend", *URL_LINE_ARGS, "--no-generate-audio", "--no-wait", cwd=tmp_path)
    assert off.proc.returncode == 0, off.stderr
    assert emu.ledger[1].payload["generateAudio"] is False


async def test_extend_timeout_prints_the_resume_command(slow_emu, tmp_path):
    """An expired --timeout names the run and the command that goes on waiting for it."""
    scale = ("--time-scale", str(SCALE))
    done = await run(slow_emu, "extend", *URL_LINE_ARGS, "--timeout", "0.2", *scale, cwd=tmp_path)
    assert done.proc.returncode == 1
    (entry,) = slow_emu.ledger
    assert f"{entry.run_id} is still" in done.stderr
    command = done.stderr.split("wait for it with:")[1].strip().splitlines()[0]
    argv = shlex.split(command)
    assert argv[-6:] == ["wait", entry.run_id, "--model", "veo3-1-extend", *scale]


async def read_until(stream: asyncio.StreamReader, text: str) -> str:
    seen = ""
    while text not in seen:
        line = await stream.readline()
        assert line, f"the stream ended before {text!r}: {seen!r}"
        seen += line.decode()
    return seen


async def test_extend_ctrl_c_prints_the_resume_command_that_finishes_it(slow_emu, tmp_path):
    """Ctrl-C while waiting: exit 130 with the resume command; that command gets the video."""
    scale = ("--time-scale", str(SCALE))
    first = await start(slow_emu, "extend", *URL_LINE_ARGS, *scale, cwd=tmp_path)
    assert first.proc.stderr is not None
    seen = await read_until(first.proc.stderr, "submitted ")
    first.proc.send_signal(signal.SIGINT)
    assert await first.finish() == 130
    stderr = seen + first.stderr
    (entry,) = slow_emu.ledger
    assert f"{entry.run_id} is still" in stderr
    command = stderr.split("wait for it with:")[1].strip().splitlines()[0]
    argv = shlex.split(command)
    assert argv[-6:-4] == ["wait", entry.run_id]
    # The run finishes on the server; the printed command picks it up.
    job = slow_emu.job(entry.run_id)
    job.queue_end = job.run_end = slow_emu.now()
    resumed = await run(slow_emu, *argv[argv.index("wait") :], cwd=tmp_path)
    assert resumed.proc.returncode == 0, resumed.stderr
    assert f"{entry.run_id} completed" in resumed.stdout
    assert len(slow_emu.ledger) == 1


# --- JSON errors, version, verbosity, help --------------------------------------------------------


async def test_json_errors_are_json(emu, tmp_path):
    """Under --json a usage error is one JSON object on stdout, like every other error."""
    done = await run(emu, "batch", "missing.jsonl", "--json", cwd=tmp_path)
    assert done.proc.returncode == 2
    (record,) = [json.loads(line) for line in lines(done.stdout)]
    assert record == {
        "event": "error",
        "error": {"type": "UsageError", "message": record["error"]["message"]},
        "exit_code": 2,
    }
    assert "cannot read manifest" in record["error"]["message"]
    parse = await run(emu, "batch", "--json", "--max-in-flight", "0", "m.jsonl", cwd=tmp_path)
    assert parse.proc.returncode == 2
    (record,) = [json.loads(line) for line in lines(parse.stdout)]
    assert "--max-in-flight" in record["error"]["message"]


async def test_version_and_verbose(emu, tmp_path):
    """--version prints the version; -v shows the client's info log through the handler."""
    version = await run(emu, "--version", cwd=tmp_path)
    assert version.proc.returncode == 0
    assert version.stdout == f"aiovideoextend {__version__}\n"
    quiet = await run(emu, "extend", *URL_LINE_ARGS, "--no-wait", cwd=tmp_path)
    assert "aiovideoextend: info:" not in quiet.stderr
    loud = await run(emu, "extend", *URL_LINE_ARGS, "--no-wait", "-v", cwd=tmp_path)
    assert loud.proc.returncode == 0, loud.stderr
    assert "aiovideoextend: info: submitted vid_" in loud.stderr
    assert emu.api_key not in loud.stderr


async def test_log_environment_variable(emu, tmp_path):
    """AIOVIDEOEXTEND_LOG=debug turns on the library's debug log, for the command too."""
    done = await start(
        emu, "extend", *URL_LINE_ARGS, "--no-wait", cwd=tmp_path, AIOVIDEOEXTEND_LOG="debug"
    )
    assert await done.finish() == 0, done.stderr
    assert "aiovideoextend: info: submitted vid_" in done.stderr
    assert emu.api_key not in done.stderr


async def test_library_warnings_use_the_configured_handler(emu, tmp_path):
    """A library warning (a 429 pausing the submit budget) is one 'aiovideoextend: warning:'
    line, not Python's bare last-resort output."""
    emu.faults.add(Fault("generate", "rate_limit", count=1))
    done = await run(emu, "extend", *URL_LINE_ARGS, "--no-wait", cwd=tmp_path)
    assert done.proc.returncode == 0, done.stderr
    warnings = [line for line in lines(done.stderr) if "rate limited" in line]
    assert len(warnings) == 1
    assert warnings[0].startswith("aiovideoextend: warning: rate limited on generate")


def _every_action(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, Any]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _every_action(sub, f"{path} {name}")
        else:
            found.append((path, action))
    return found


def test_every_option_has_help():
    """Every option and argument of every command says what it is for."""
    actions = _every_action(build_parser(), "aiovideoextend")
    assert len(actions) > 60
    missing = [
        f"{path}: {'/'.join(a.option_strings) or a.dest}" for path, a in actions if not a.help
    ]
    assert missing == []


async def test_more_bad_arguments_are_one_line(emu, tmp_path):
    """A taken port, a negative timeout or a zero time scale: exit 2 with one line each."""
    port = emu.base_url.split(":")[2].split("/")[0]
    taken = await run(emu, "emulator", "--port", port, cwd=tmp_path)
    assert taken.proc.returncode == 2
    (line,) = lines(taken.stderr)
    assert line.startswith(f"aiovideoextend: error: cannot serve on 127.0.0.1:{port}: ")
    for argv in (
        ["wait", "vid_a", "--timeout", "-1"],
        ["extend", *URL_LINE_ARGS, "--timeout", "0"],
        ["demo", "--time-scale", "0"],
        ["emulator", "--time-scale", "-1"],
        ["batch", "jobs.jsonl", "--time-scale", "nan"],
    ):
        done = await run(emu, *argv, cwd=tmp_path)
        assert done.proc.returncode == 2, argv
        assert "Traceback" not in done.stderr
        assert lines(done.stderr)[-1].startswith(f"aiovideoextend {argv[0]}: error: argument")
    assert emu.ledger == []


def test_main_leaves_the_logger_as_it_found_it(tmp_path, monkeypatch, capsys):
    """main() inside another program (a test, a notebook) undoes its logging setup."""
    logger = logging.getLogger("aiovideoextend")
    before = (logger.level, logger.propagate, list(logger.handlers))
    monkeypatch.chdir(tmp_path)
    assert main(["batch", "missing.jsonl", "-v"]) == 2
    assert "cannot read manifest" in capsys.readouterr().err
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


async def test_tag_submits_flag_tags_batch_lines_and_single_extends(emu, tmp_path):
    """--tag-submits gives each source-video submit a conversationUUID of its own (a batch
    line's derived from its entry, so a rerun knows it); without it none is sent (a paced
    extend, --pace-submits, carries none either)."""
    write_jsonl(
        tmp_path / "jobs.jsonl",
        [{**URL_LINE, "prompt": "a"}, {**URL_LINE, "prompt": "b"}],
    )
    scale = ("--time-scale", str(SCALE))
    done = await run(emu, "batch", "jobs.jsonl", "--tag-submits", *scale, cwd=tmp_path)
    assert done.proc.returncode == 0, done.stderr
    single = await run(emu, "extend", *URL_LINE_ARGS, "--tag-submits", *scale, cwd=tmp_path)
    assert single.proc.returncode == 0, single.stderr
    plain = await run(emu, "extend", *URL_LINE_ARGS, "--pace-submits", *scale, cwd=tmp_path)
    assert plain.proc.returncode == 0, plain.stderr
    tags = [emu.created_by(entry.run_id).get("conversationUUID") for entry in emu.ledger]  # type: ignore[union-attr]
    assert len(tags) == 4
    assert all(tags[:3])
    assert len(set(tags[:3])) == 3
    assert tags[3] is None
