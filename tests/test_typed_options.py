"""Extend options are typed: mypy --strict rejects a misspelt option or a wrong type.

Runs mypy on snippets, the way a user's code is checked. The same cases are pinned in
``tests/typing/api.py`` with ``type: ignore[...]`` comments, which ``mypy --strict`` (unused
ignores are errors) checks in the lint step.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aiovideoextend._requests import OPTION_FIELDS, ExtendOptions

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
import aiovideoextend as ave


async def ok(session: ave.Session) -> None:
    await session.extend(
        "veo3-1-extend", "p", video_url="https://e.com/a.mp4",
        duration=5, resolution="720p", seed=-1, negative_prompt="blur", aspect_ratio="16:9",
        conversation_uuid="c", generate_audio=True, mode="std",
    )
    await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", duration="5s")
    await session.extend_and_wait("veo3-1-extend", "p", video_url="https://e.com/a.mp4", seed=None)
    options: ave.ExtendOptions = {"duration": 5, "seed": 1}
    await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", **options)
"""

BAD = """\
import aiovideoextend as ave


async def typo(session: ave.Session) -> None:
    await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", duraton=5)
    await session.extend_and_wait("veo3-1-extend", "p", video_url="https://e.com/a.mp4", seeed=1)
    await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", seed="1")
    await session.extend("veo3-1-extend", "p", video_url="https://e.com/a.mp4", generate_audio=1)
"""


def test_the_typed_dict_names_every_documented_option():
    assert set(ExtendOptions.__annotations__) == set(OPTION_FIELDS)


@pytest.mark.timeout(300)
def test_mypy_rejects_a_misspelt_option_and_accepts_the_documented_ones(tmp_path: Path):
    (tmp_path / "good.py").write_text(GOOD)
    (tmp_path / "bad.py").write_text(BAD)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--show-error-codes",
            "--cache-dir",
            str(tmp_path / "cache"),
            "good.py",
            "bad.py",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert not [line for line in errors if line.startswith("good.py")], done.stdout
    by_line = {int(m[1]): line for line in errors if (m := re.match(r"bad\.py:(\d+): ", line))}
    assert sorted(by_line) == [5, 6, 7, 8], done.stdout + done.stderr
    assert 'Unexpected keyword argument "duraton"' in by_line[5]
    assert 'did you mean "duration"' in by_line[5]
    assert '"seeed"' in by_line[6]
    assert "[arg-type]" in by_line[7]
    assert "[arg-type]" in by_line[8]
    assert done.returncode == 1
