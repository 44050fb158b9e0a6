"""Sessions: tests, lint, typing, docs, demo, bench (modelled on stamina's noxfile)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True
nox.options.default_venv_backend = "uv|venv"

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, with branch coverage of the package."""
    session.install("-e", ".[tests]")
    session.run("coverage", "erase")
    session.run("coverage", "run", "-m", "pytest", *session.posargs)
    session.run("coverage", "combine", success_codes=[0, 1])
    session.run("coverage", "report")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typing(session: nox.Session) -> None:
    """mypy --strict on the package and on tests/typing (the public API as a user writes it)."""
    session.install("-e", ".[typing]")
    session.run("mypy", "--strict", "aiovideoextend", "tests/typing")


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the Sphinx docs with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The batch demo on the embedded emulator: no key, no network."""
    session.install("-e", ".[cli]")
    session.run("aiovideoextend", "demo", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks against the emulator, with the docs loop and naive limiter as baselines.

    ``nox -s bench -- --quick`` takes about three minutes; ``--only polling cpu`` picks some. The
    polling benchmark redraws the figures in docs/figures/.
    """
    session.install("-e", ".[tests,bench]")
    session.run("python", "bench/run.py", *session.posargs)


@nox.session(python=PYTHON)
def soak(session: nox.Session) -> None:
    """2,000 jobs under mixed faults and 20 SIGKILL trials of the batch command; prints figures.

    ``nox -s soak -- --jobs 5000 --trials 50 --seed 7`` for a longer one;
    ``nox -s soak -- --variant distinct`` for issue 11's lost answers with distinct bodies.
    """
    session.install("-e", ".[tests]")
    session.run("python", "bench/soak.py", *session.posargs)
