"""Start and stop ``_static_server.py`` in a child process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp


@contextlib.contextmanager
def static_server() -> Iterator[str]:
    """Yield the base URL (``http://127.0.0.1:PORT``) of a fresh static status server."""
    script = Path(__file__).with_name("_static_server.py")
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=10)


async def served(base: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/count") as resp:
        return int((await resp.json())["served"])
