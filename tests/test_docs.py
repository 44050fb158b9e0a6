"""The documentation's complete examples run as written (against the bundled emulator)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"```python\n(.*?)```", re.DOTALL)


def runnable_examples() -> list[pytest.ParameterSet]:
    params = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, block in enumerate(FENCE.findall(path.read_text()), 1):
            if "asyncio.run(" in block:
                params.append(pytest.param(block, id=f"{path.name}-{number}"))
    return params


@pytest.mark.parametrize("code", runnable_examples())
def test_example_runs(code: str) -> None:
    """A complete example from the docs runs to the end, in a fresh interpreter, and prints."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
