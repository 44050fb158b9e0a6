"""The command line as a package of its own: the library runs without rich (the ``[cli]``
extra), the exit code comes from the batch's outcomes, every run has its own settings and
interrupt, and the parsed arguments are never changed."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from aiovideoextend.batch import BatchOutcome
from aiovideoextend.cli import build_parser, main
from aiovideoextend.cli._batch import exit_code
from aiovideoextend.cli._context import Context, Interrupt, Settings
from aiovideoextend.cli._progress import PlainDisplay, Tally, make_display

# Subprocesses on compressed time: one generous limit for a busy machine, no waits of our own.
pytestmark = pytest.mark.timeout(300)

#: Run first in each subprocess: ``import rich`` (and any ``rich.x``) then raises ImportError.
BLOCK_RICH = "import sys; sys.modules['rich'] = None\n"

LIBRARY_WITHOUT_RICH = """
import asyncio

import aiovideoextend as ave
import aiovideoextend.batch
import aiovideoextend.redis_journal
import aiovideoextend.redis_limiter
import aiovideoextend.testing

KEY = "sk-nano-test-0001"


async def run() -> None:
    emulator = ave.testing.Emulator(
        users={KEY: 100.0},
        time_scale=600,
        failure_rate=0.0,
        nsfw_rate=0.0,
        queue_seconds=(1.0, 5.0),
        run_seconds=(5.0, 20.0),
    )
    async with emulator as emu, ave.Session(KEY, base_url=emu.base_url, time_scale=600) as s:
        request = ave.SourceExtend(
            model="veo3-1-extend", prompt="p", video_url="https://example.com/a.mp4"
        )
        job = await s.submit(request)
        result = await job.result()
        assert result.video_url, result
        outcomes = [
            o async for o in ave.batch.run_batch(s, [request, request], journal=None)
        ]
        assert sorted(o.status for o in outcomes) == ["completed", "completed"], outcomes


asyncio.run(run())
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "rich")
assert loaded == ["rich"] and sys.modules["rich"] is None, loaded
cli = sorted(name for name in sys.modules if name.startswith("aiovideoextend.cli"))
assert cli == [], cli
print("ok")
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )


def test_the_library_imports_and_runs_without_rich():
    """With rich blocked, the package imports and a Session submits, waits and runs a batch
    against the emulator; neither rich nor the command line's package is imported."""
    done = _python(BLOCK_RICH + textwrap.dedent(LIBRARY_WITHOUT_RICH))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_demo_runs_without_rich_as_plain_lines():
    """Without the [cli] extra the command still works: progress as plain log lines."""
    code = BLOCK_RICH + "from aiovideoextend.cli import main; sys.exit(main(sys.argv[1:]))"
    done = _python(code, "demo", "--count", "6", "--time-scale", "600")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("done: ")
    assert "[6/6]" in done.stderr
    assert "0 duplicate charges" in done.stderr


def test_without_rich_a_terminal_gets_plain_lines(monkeypatch):
    """make_display falls back to the plain display when rich cannot be imported."""
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert isinstance(make_display(Tally(total=1), json_output=False), PlainDisplay)


def test_the_console_script_is_the_packages_main():
    """pyproject's [project.scripts] entry resolves to the same main() as ``-m aiovideoextend``."""
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    module, _, name = pyproject["project"]["scripts"]["aiovideoextend"].partition(":")
    assert getattr(importlib.import_module(module), name) is main


def _outcomes(*statuses: str) -> list[BatchOutcome]:
    return [BatchOutcome(index, status) for index, status in enumerate(statuses)]


@pytest.mark.parametrize(
    ("statuses", "total", "interrupted", "code"),
    [
        (("completed", "completed"), 2, False, 0),
        ((), 0, False, 0),
        (("completed",), 2, False, 1),  # a line without an outcome did not run
        (("completed", "failed"), 2, False, 1),
        (("completed", "skipped"), 2, False, 1),
        (("completed", "ambiguous"), 2, False, 1),
        (("completed", "invalid"), 2, False, 2),
        (("failed", "invalid"), 2, False, 2),
        (("completed", "completed"), 2, True, 130),
        (("invalid",), 3, True, 130),
    ],
)
def test_exit_code_from_the_batch_outcomes(statuses, total, interrupted, code):
    """0 all completed, 1 something failed or did not run, 2 an invalid line, 130 stopped."""
    assert exit_code(_outcomes(*statuses), total, interrupted=interrupted) == code


@pytest.mark.parametrize(
    ("argv", "download", "json"),
    [
        (["download", "vid_a", "out"], "out", False),
        (["download", "vid_a"], ".", False),
        (["wait", "vid_a", "--json"], None, True),
        (["extend", "--run-id", "vid_a", "--download", "d"], "d", False),
        (["batch", "m.jsonl", "--download", "d", "--max-cost", "5"], "d", False),
        (["demo"], None, False),
        (["emulator", "--port", "0"], None, False),
    ],
)
def test_settings_are_derived_and_the_arguments_left_alone(argv, download, json):
    """Settings come from the arguments; the arguments are exactly as argparse made them."""
    args = build_parser().parse_args(argv)
    before = dict(vars(args))
    settings = Settings.from_args(args, argv)
    assert vars(args) == before
    assert settings.argv == tuple(argv)
    assert settings.download == download
    assert settings.json is json


def test_main_leaves_no_state_behind(tmp_path, monkeypatch, capsys):
    """Two runs in one process: each has its own settings (a --json run does not make the next
    one's errors JSON)."""
    monkeypatch.chdir(tmp_path)
    assert main(["batch", "missing.jsonl", "--json"]) == 2
    assert '"event": "error"' in capsys.readouterr().out
    assert main(["batch", "missing.jsonl"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("aiovideoextend: error: cannot read manifest")
    with pytest.raises(SystemExit) as exited:  # an argparse error: plain text again
        main(["batch"])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: the following arguments are required" in captured.err


def test_every_run_has_an_interrupt_of_its_own():
    assert Context(Settings()).interrupt is not Context(Settings()).interrupt


async def test_an_interrupt_is_told_from_other_cancellation(capsys):
    """A cancellation is the person's Ctrl-C only after the run's signal handler saw it."""
    interrupt = Interrupt()

    async def body() -> bool:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return interrupt.caught()
        return False

    other = asyncio.create_task(body())
    await asyncio.sleep(0)
    other.cancel()
    assert await other is False  # cancelled by someone else: not caught

    task = asyncio.create_task(body())
    await asyncio.sleep(0)
    interrupt.signal(task)
    assert await task is True
    assert task.cancelling() == 0  # uncancelled: the command goes on to report
    assert interrupt.requested
    assert "stopping..." in capsys.readouterr().err
