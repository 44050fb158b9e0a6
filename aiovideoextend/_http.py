"""One HTTP attempt through the rate limiter, and the classification of what went wrong.

The session decides about retries; this module only reports facts: the response, a
:class:`APIConnectionError` when no connection was made (the request provably never reached the
server), or another :class:`TransportError` when it may have.
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import attrs
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ._limiter import SlidingWindow
from ._limiter_api import Limiter, Window
from .exceptions import APIConnectionError, InvalidRequestError, TransportError

__all__ = ["Response", "Transport", "api_url", "client_session", "is_loopback"]

_LARGE_BODY = 256 * 1024
_REDACTED = "[redacted]"


@attrs.frozen
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    raw: bytes
    reason: str

    def json(self) -> Any:
        """The decoded body, or None when it is not JSON."""
        try:
            return json.loads(self.raw)
        except (ValueError, UnicodeDecodeError):
            return None

    @property
    def request_id(self) -> str | None:
        return self.headers.get("X-Request-ID")


def _unreachable(exc: Exception) -> str:
    """Why no connection was made, in a few words (no Python class names)."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    os_error = getattr(exc, "os_error", None)
    number = getattr(os_error, "errno", None)
    if isinstance(number, int) and number > 0:
        # asyncio words a refused connection "Connect call failed (...)": say what it was.
        text = os.strerror(number)
    else:
        text = getattr(os_error, "strerror", None) or str(os_error or exc)
    return text[:1].lower() + text[1:]


def api_url(base: str) -> URL:
    """The API's base URL (with a trailing slash): http(s), plain http only to this host."""
    try:
        url = URL(base.rstrip("/") + "/")
    except ValueError:
        url = URL()
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidRequestError(f"base_url must be an http(s) URL, got {base!r}")
    if url.scheme == "http" and not is_loopback(url.host):
        raise InvalidRequestError(
            "refusing to send the API key over plain http to a non-loopback host; use https"
        )
    return url


def _version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("aiovideoextend")
    except Exception:  # pragma: no cover - not installed
        return "0"


def client_session(given: aiohttp.ClientSession | None) -> aiohttp.ClientSession:
    """``given``, or a new pool of our own; either way one that never resends by itself."""
    http = given or aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=100),
        headers={"User-Agent": f"aiovideoextend/{_version()}"},
    )
    # aiohttp resends a GET once, unseen, when the connection drops after it went out: the
    # server may then count two arrivals for one slot of our limiter (a 429 in a full
    # window). Every attempt must pass the limiter, so we retry ourselves. aiohttp's own
    # test client turns it off the same way; without the attribute nothing changes.
    if hasattr(http, "_retry_connection"):
        http._retry_connection = False
    return http


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _multidict(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(headers))


@attrs.define
class Transport:
    """Sends requests with the API key, through the shared limiter, never following redirects."""

    http: aiohttp.ClientSession
    limiter: Limiter
    #: kept as aiohttp's own type: given a plain dict, aiohttp converts it on every request
    headers: Mapping[str, str] = attrs.field(repr=False, converter=_multidict)
    timeout: aiohttp.ClientTimeout
    on_wait: Callable[[str, float], None] | None = None
    ssl: bool = True
    #: server clock minus ours, from the last Date header (seconds; 0 until measured)
    clock_offset: float = 0.0
    #: the server answered at least once (any status)
    reached: bool = False
    _key: bytes = attrs.field(init=False, repr=False, default=b"")

    def __attrs_post_init__(self) -> None:
        self._key = self.headers.get("x-api-key", "").encode()

    async def send(
        self,
        budget: str,
        method: str,
        url: URL,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        overall_held: bool = False,
        admit: Callable[[], Awaitable[None]] | None = None,
    ) -> Response:
        """One attempt. ``overall_held``: the caller already holds a slot of the overall budget.
        ``admit`` is awaited once the slots are ours, right before the request leaves."""
        taken: list[Window] = []
        if overall_held and admit is None and budget == "overall":
            # A poll: the scheduler took its slot already (the hot path, nothing to wait for).
            taken.append(self.limiter.overall)
        else:
            await self._acquire(budget, overall_held, admit, taken)
        data: bytes | io.BytesIO | None = None
        headers = self.headers
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers = {**headers, "Content-Type": "application/json"}
            if len(data) > _LARGE_BODY:
                # aiohttp wants big bodies as a stream so as not to block the loop.
                data = io.BytesIO(data)
        try:
            async with self.http.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                allow_redirects=False,
                timeout=self.timeout,
                ssl=True if self.ssl else False,  # noqa: SIM210  (aiohttp: True = default checks)
            ) as resp:
                raw = await resp.read()
                response = self._scrub(Response(resp.status, resp.headers, raw, resp.reason or ""))
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            # No connection, so nothing arrived: the slots were never used.
            for window in taken:
                window.cancel()
            reason = _unreachable(exc)
            where = str(url.with_query(None))
            raise APIConnectionError(
                f"cannot connect to {where}: {reason}", url=where, reason=reason
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._release(taken)
            kind = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            error = TransportError(f"{method} {url.path} failed: {kind}")
            error.timed_out = isinstance(exc, TimeoutError)
            raise error from None
        except BaseException:
            self._release(taken)
            raise
        self._release(taken)
        self.reached = True
        if budget != "overall":
            # Only submits and recovers need the server's clock (to date runs): keep polls lean.
            self._note_date(response.headers.get("Date"))
        return response

    async def _acquire(
        self,
        budget: str,
        overall_held: bool,
        admit: Callable[[], Awaitable[None]] | None,
        taken: list[Window],
    ) -> None:
        """Take the slots of a request into ``taken`` (and the held overall one once they are
        all ours), or give back every one taken (the held one too) and raise."""
        windows: list[Window] = []
        if budget != "overall":
            windows.append(self.limiter.budget(budget))
        if not overall_held:
            windows.append(self.limiter.overall)
        try:
            for window in windows:
                if admit is not None and isinstance(window, SlidingWindow):
                    # A submit (paid, and limited by its own budget) goes before the polls.
                    await window.acquire(self.on_wait, first=True)
                else:
                    await window.acquire(self.on_wait)
                taken.append(window)
            if admit is not None:
                await admit()
        except BaseException:
            for window in taken:
                window.cancel()
            if overall_held:
                self.limiter.overall.cancel()
            raise
        if overall_held:
            taken.append(self.limiter.overall)

    def _scrub(self, response: Response) -> Response:
        """A server that echoes the key (in the body, a header, the reason) must not make us
        leak it: everything we keep of an answer ends up in errors, logs and results files."""
        key_bytes = self._key
        if not key_bytes:
            return response
        key = key_bytes.decode()
        headers = response.headers
        # One C-level search over all values (no header value holds a newline; a key that does
        # only takes the slow path below, which finds nothing to replace).
        in_headers = key in "\n".join(headers.values())
        # The common case (every poll): nothing to scrub, keep the response as it is.
        if not in_headers and key_bytes not in response.raw and key not in response.reason:
            return response
        if in_headers:
            headers = CIMultiDictProxy(
                CIMultiDict(
                    (name, value.replace(key, _REDACTED)) for name, value in headers.items()
                )
            )
        raw = response.raw.replace(key.encode(), _REDACTED.encode())
        reason = response.reason.replace(key, _REDACTED)
        return Response(response.status, headers, raw, reason)

    @staticmethod
    def _release(windows: list[Window]) -> None:
        end = asyncio.get_running_loop().time()
        for window in windows:
            window.release(end)

    def _note_date(self, value: str | None) -> None:
        if value is None:
            return
        try:
            server = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        self.clock_offset = server - time.time()
