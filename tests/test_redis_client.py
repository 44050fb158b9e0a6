"""The Redis limiter's plumbing, as pure functions: argument checks, microseconds, and the Lua
scripts that ship with the package (no Redis needed here; the scripts run against a real
``redis-server`` in tests/test_redis_limiter.py)."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path
from typing import Any

import pytest

from aiovideoextend._redis import client

PACKAGE = Path(client.__file__).parent


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("aiovideoextend", True),
        ("batch-1:a.b_c", True),
        ("", False),
        ("{x}", False),
        ("a}", False),
        ("a b", False),
        ("a\nb", False),
        ("a\tb", False),
        ("a\rb", False),
        (None, False),
        (5, False),
        (b"x", False),
    ],
)
def test_check_name(value: Any, ok: bool) -> None:
    """A key part is a non-empty string that cannot leave its hash tag (no braces, no spaces)."""
    if ok:
        assert client.check_name("prefix", value) == value
    else:
        with pytest.raises(ValueError, match="prefix must be a non-empty string"):
            client.check_name("prefix", value)


@pytest.mark.parametrize(
    ("lease", "expected"),
    [(30, 30.0), (0.5, 0.5), (0, None), (-1, None), (1e6, None), (True, None), ("30", None)],
)
def test_check_lease(lease: Any, expected: float | None) -> None:
    """A lease is a number of seconds above 0 (and below a million); bools are not numbers."""
    if expected is not None:
        assert client.check_lease(lease) == expected
    else:
        with pytest.raises(ValueError, match="lease"):
            client.check_lease(lease)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(1.0, 1_000_000), (0.0000015, 2), (0.0, 1), (-3.0, 1), (2.5, 2_500_000)],
)
def test_micros(seconds: float, expected: int) -> None:
    """Seconds become whole microseconds, rounded up, never below one."""
    assert client.micros(seconds) == expected


def scripts_named_in(module: str) -> set[str]:
    """The ``lua/<name>.lua`` parts a backend composes its scripts from."""
    source = (PACKAGE / f"{module}.py").read_text()
    names = set(re.findall(r'"(now|limiter_\w+)"', source))
    assert names, f"no scripts found in {module}.py"
    return names


def test_every_script_part_ships_with_the_package() -> None:
    """Every part the backends name is a package resource, and every resource is used."""
    shipped = {
        entry.name.removesuffix(".lua")
        for entry in importlib.resources.files("aiovideoextend._redis").joinpath("lua").iterdir()
        if entry.name.endswith(".lua")
    }
    assert scripts_named_in("limiter") == shipped


@pytest.mark.parametrize("name", ["now", "limiter_prologue", "limiter_acquire"])
def test_script_parts_are_lua_with_a_header(name: str) -> None:
    """Each part starts with a comment saying what it takes and returns."""
    text = client._lua(name)
    assert text.startswith("-- ")
    assert "redis.call(" in text
