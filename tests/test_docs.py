"""The documentation's examples run as written (against the bundled emulator).

Every ```python block of README.md and docs/*.md is one of:

- a program: run in a fresh interpreter, it must exit 0 (and print, if it runs ``asyncio.run``);
- a pytest module (it defines ``test_`` functions): run by pytest with pytest-asyncio's default
  (strict) mode, as in a project that configured nothing, and every test must pass;
- a fragment, marked with ``<!-- fragment: why it cannot run alone -->`` on the line before it.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(
    r"(?:<!--[ \t]*fragment:(?P<reason>[^\n]*?)-->[ \t]*\n)?```python\n(?P<code>.*?)```", re.DOTALL
)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def blocks() -> list[tuple[str, str, str | None]]:
    """(id, code, fragment reason or None) of every python block of the docs."""
    found = []
    for path in DOCS:
        for number, match in enumerate(FENCE.finditer(path.read_text()), 1):
            found.append((f"{path.name}-{number}", match["code"], match["reason"]))
    return found


def is_test_module(code: str) -> bool:
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in ast.parse(code).body
    )


def params(kind: str) -> list[pytest.ParameterSet]:
    chosen = []
    for name, code, reason in blocks():
        if reason is not None:
            continue
        if (kind == "test") == is_test_module(code):
            chosen.append(pytest.param(code, id=name))
    return chosen


@pytest.mark.parametrize("code", params("program"))
def test_example_runs(code: str) -> None:
    """A complete example from the docs runs to the end, in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    if "asyncio.run(" in code:
        assert done.stdout.strip()


@pytest.mark.parametrize("code", params("test"))
def test_example_test_module_passes(code: str, tmp_path: Path) -> None:
    """A test module from the docs passes under pytest-asyncio's defaults (strict mode)."""
    (tmp_path / "test_example.py").write_text(code)
    tests = sum(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in ast.parse(code).body
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=strict",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{tests} passed" in done.stdout, done.stdout


def test_every_block_runs_or_says_why_not() -> None:
    """No python block is skipped silently: a fragment names its reason."""
    fragments = [(name, reason) for name, _, reason in blocks() if reason is not None]
    assert all(reason.strip() for _, reason in fragments), fragments
    ran = len(params("program")) + len(params("test"))
    assert ran + len(fragments) == len(blocks())
    assert ran >= 10  # the tutorial, testing, batch and README examples at least


def test_docs_name_no_private_module() -> None:
    """The docs document public names only (no ``aiovideoextend._x`` as API)."""
    private = re.compile(r"aiovideoextend(?:\.testing)?\._\w+")
    hits = [
        f"{path.name}: {match[0]}"
        for path in DOCS
        if path.name != "benchmarks.md"  # names the benchmark scripts' files, not an API
        for match in private.finditer(path.read_text())
    ]
    assert not hits


def test_reliability_gives_one_count_of_injected_429s() -> None:
    """The figures and the prose of reliability.md agree on the injected 429s."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    figures = {int(n) for n in re.findall(r"'rate_limit': (\d+)", text)}
    figures |= {int(n) for n in re.findall(r"429s \(plus (\d+) injected\)", text)}
    figures |= {int(n) for n in re.findall(r"(\d+) injected 429s", text)}
    assert len(figures) == 1, figures
