"""pytest plugin (entry point ``aiovideoextend``): the ``nanogpt_emulator`` fixture.

Every pytest run of anyone who installs aiovideoextend loads this module, so it only adds a
marker and a fixture, and adds the fixture only when pytest-asyncio is there to run it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._emulator import Emulator

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    import pytest

#: Jobs take 65-300 emulated seconds; at 600x that is well under a second of test time.
DEFAULT_OPTIONS: dict[str, Any] = {"time_scale": 600.0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "nanogpt_emulator(**options): Emulator options for the nanogpt_emulator fixture",
    )


def emulator_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Defaults, then the closest ``nanogpt_emulator`` marker, then indirect parameters."""
    options = dict(DEFAULT_OPTIONS)
    marker = request.node.get_closest_marker("nanogpt_emulator")
    if marker is not None:
        if marker.args:
            raise TypeError("the nanogpt_emulator marker takes keyword arguments only")
        options.update(marker.kwargs)
    options.update(getattr(request, "param", None) or {})
    return options


async def _emulator(request: pytest.FixtureRequest) -> AsyncIterator[Emulator]:
    async with Emulator(**emulator_options(request)) as emu:
        yield emu


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - without a loop runner there is no async fixture
    pass
else:
    nanogpt_emulator = pytest_asyncio.fixture(_emulator, name="nanogpt_emulator")
