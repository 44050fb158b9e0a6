"""Downloading finished videos: streamed to a temporary file, then renamed into place.

The file name comes from the run id (sanitised), never from the server, so a hostile URL or
``Content-Disposition`` cannot write outside ``dest``. A file that exists under the final name
is complete (only a finished download is ever renamed to it), so it is skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
from pathlib import Path, PurePosixPath
from typing import Final

import aiohttp
from yarl import URL

from .exceptions import DownloadError

__all__ = ["DownloadError", "download_video", "video_filename"]

_CHUNK: Final = 256 * 1024
_SUFFIXES: Final = frozenset({".mp4", ".m4v", ".mov", ".webm"})
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_-]")
_TRANSIENT: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


def video_filename(run_id: str, url: str | None = None) -> str:
    """``<run_id>.mp4``, made safe; the suffix may come from the URL if it is a video suffix."""
    stem = _UNSAFE.sub("_", run_id)[:120].strip("_")
    if not stem:
        raise DownloadError(f"cannot make a file name from run id {run_id!r:.40}")
    suffix = ".mp4"
    if url:
        url_suffix = PurePosixPath(URL(url).path).suffix.lower()
        if url_suffix in _SUFFIXES:
            suffix = url_suffix
    return stem + suffix


def _target(dest: Path, run_id: str, url: str) -> Path:
    # A path without a suffix is a directory to create: nobody names a video "videos".
    if dest.is_dir() or not dest.suffix:
        return dest / video_filename(run_id, url)
    return dest


def _check_url(url: str) -> URL:
    try:
        parsed = URL(url)
    except (TypeError, ValueError):
        raise DownloadError(f"not a URL: {url!r:.80}", url=url) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DownloadError(f"only absolute http(s) URLs are downloaded, not {url!r:.80}", url=url)
    return parsed


async def _fetch_once(
    http: aiohttp.ClientSession, url: URL, tmp: Path, max_bytes: int | None
) -> None:
    """One attempt: stream the body into ``tmp`` (truncating it first)."""
    async with http.get(url, headers={"Accept": "*/*"}, allow_redirects=True) as response:
        if response.status != 200:
            raise DownloadError(
                f"GET {url.host}{url.path} answered {response.status} {response.reason or ''}",
                url=str(url),
                status=response.status,
            )
        expected = response.content_length
        if max_bytes is not None and expected is not None and expected > max_bytes:
            raise DownloadError(f"video is {expected} bytes, over the {max_bytes} limit")
        received = 0
        with tmp.open("wb") as out:
            async for chunk in response.content.iter_chunked(_CHUNK):
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise DownloadError(f"video is over the {max_bytes}-byte limit")
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and received != expected:
            # A connection cut short: aiohttp does not always notice, the length does.
            raise aiohttp.ClientPayloadError(f"got {received} of {expected} bytes")


async def download_video(
    http: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    run_id: str,
    overwrite: bool = False,
    max_bytes: int | None = None,
    retries: int = 3,
    backoff: float = 0.5,
) -> Path:
    """Download ``url`` to ``dest`` and return the final path.

    ``dest`` is a directory (an existing one, or a path without a suffix; the file is
    ``<run_id>.mp4`` in it) or a file path. An existing
    final file is returned untouched unless ``overwrite``. Transient failures (connection
    errors, timeouts, 408/429/5xx) are retried ``retries`` times with exponential ``backoff``
    seconds; anything else raises :class:`DownloadError` at once. The temporary file is removed
    on every failure, cancellation included.
    """
    parsed = _check_url(url)
    target = _target(Path(dest), run_id, url)
    tmp = _prepare(target, overwrite)
    if tmp is None:
        return target
    try:
        for attempt in range(retries + 1):
            try:
                await _fetch_once(http, parsed, tmp, max_bytes)
                break
            except DownloadError as exc:
                if exc.status not in _TRANSIENT or attempt == retries:
                    raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt == retries:
                    raise DownloadError(
                        f"downloading {parsed.host}{parsed.path} failed: {exc!r}", url=url
                    ) from exc
            await asyncio.sleep(backoff * 2**attempt)
        tmp.replace(target)
    except OSError as exc:
        raise DownloadError(f"cannot write {target}: {exc.strerror}", url=url) from exc
    finally:
        _discard(tmp)
    return target


def _prepare(target: Path, overwrite: bool) -> Path | None:
    """The temporary file to stream into, or None when the final file is already there."""
    if target.exists() and not overwrite:
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        while True:
            # Not mkstemp: its files are 0600. A video is created like any file a tool writes,
            # 0666 less the umask (0644 under the usual 022).
            name = target.parent / f".{target.name}.{secrets.token_hex(6)}.part"
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            os.close(fd)
            return name
    except OSError as exc:
        raise DownloadError(f"cannot write into {target.parent}: {exc.strerror}") from exc


def _discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
