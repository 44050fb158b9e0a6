"""Calls to the API: one request with retries, the 429 pause, error mapping, the safe submit.

Below the session, above the transport: it knows the routes and what their answers mean, not
jobs or polling. A submit's run is handed to ``adopt`` (the session's) while its ticket still
holds the guard, so that a reconciliation running for a lost sibling sees it as claimed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping
from typing import Any, Final, Generic, TypeVar

from yarl import URL

from ._backoff import Backoff
from ._config import Limits, Retries, Timeouts
from ._converter import parse_error, parse_recover, parse_status, parse_submission
from ._http import Response, Transport
from ._reconcile import SubmitGuard
from ._requests import MidjourneyExtend, SourceExtend
from ._ticket import LeftToJournal, LostSubmit, NotNow, Ticket
from .exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    APIError,
    EndpointNotFoundError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    VideoExtendError,
)
from .models import Event, EventKind, JobStatus, RecoveredRun, StatusUpdate, Submission

__all__ = ["LONGEST_RATE_LIMIT_WAIT", "Api", "Memo"]

log = logging.getLogger("aiovideoextend")

#: A 429 asking for a longer wait than this (seconds; a daily cap resets at midnight UTC) is
#: raised as :class:`RateLimitError` instead of being waited out.
LONGEST_RATE_LIMIT_WAIT: Final = 300.0
_ROUTES: Final = {
    "generate": "generate-video",
    "extend": "generate-video/extend",
    "status": "video/status",
    "recover": "generate-video/recover",
}
_T = TypeVar("_T")
_J = TypeVar("_J")


class Memo(Generic[_T]):
    """What one recurring call (one route, the same parameters: a run's status) need not work
    out twice: its URL with the query, and its last success body with what it parsed to. Most
    polls of a running job get the very same bytes back: a byte comparison then stands in for
    decoding and parsing them."""

    __slots__ = ("raw", "url", "value")

    def __init__(self) -> None:
        self.url: URL | None = None
        self.raw: bytes | None = None
        self.value: _T


def _is_envelope(body: Any) -> bool:
    """Whether an error body has one of NanoGPT's documented shapes (an ``error`` member)."""
    return isinstance(body, Mapping) and "error" in body


class Api:
    """One session's calls. ``ready`` gives the open transport (opening it on first use)."""

    def __init__(
        self,
        url: URL,
        key: str,
        ready: Callable[[], Transport],
        *,
        limits: Limits,
        retries: Retries,
        timeouts: Timeouts,
        time_scale: float,
        backoff: Backoff,
        emit: Callable[[Event], None],
        claimed: Collection[str],
    ) -> None:
        self._key: Final = key
        self._ready: Final = ready
        self._retries: Final = retries
        self._time_scale: Final = time_scale
        self._backoff: Final = backoff
        self._emit: Final = emit
        self.urls: Final = {name: url / path for name, path in _ROUTES.items()}
        self._origin: Final = url.origin()
        #: set by the session when it opens
        self.transport: Transport | None = None
        self.guard: Final = SubmitGuard(
            self._recover_for,
            self._snapshot_for,
            claimed,
            clock_offset=self.server_offset,
            skew=retries.reconcile_skew,
            margin=retries.reconcile_margin,
            settle_timeout=timeouts.total,
            # A careful spell of five rate-limit windows of the submit endpoints.
            cooldown=5 * limits.generate.period,
            pace=retries.pace_submits,
        )

    def absolute(self, video_url: str) -> str:
        """Relative video URLs (seen in the wild) are taken against the API's origin."""
        if video_url.startswith("/"):
            return str(self._origin.join(URL(video_url)))
        return video_url

    def server_offset(self) -> float:
        """The server's clock minus ours, from the Date headers (0 until measured)."""
        return self.transport.clock_offset if self.transport is not None else 0.0

    # --- idempotent calls -----------------------------------------------------------------

    def status(
        self,
        run_id: str,
        *,
        overall_held: bool = False,
        attempts: int | None = None,
        memo: Memo[tuple[StatusUpdate, bool]] | None = None,
    ) -> Coroutine[Any, Any, tuple[StatusUpdate, bool]]:
        """A run's status and whether its spelling is known (``memo``: the run's last one)."""
        # The call's own coroutine, not one awaiting it: a frame less on every resumption.
        return self.call(
            "overall",
            "GET",
            self.urls["status"],
            params={"requestId": run_id},
            parse=lambda body: parse_status(body, run_id),
            overall_held=overall_held,
            attempts=attempts,
            memo=memo,
        )

    async def recover(
        self, *, model: str | None, limit: int, attempts: int | None = None
    ) -> list[RecoveredRun]:
        params = {"limit": str(limit)}
        if model is not None:
            params["model"] = model
        runs = await self.call(
            "recover",
            "GET",
            self.urls["recover"],
            params=params,
            parse=parse_recover,
            attempts=attempts,
        )
        # Every run listed now existed before any submit sent from now on.
        self.guard.saw([run.run_id for run in runs])
        if model is not None and limit == 50:
            self.guard.listed(model)
        return runs

    async def _recover_for(self, model: str) -> list[RecoveredRun]:
        return await self.recover(model=model, limit=50)

    async def _snapshot_for(self, model: str) -> list[RecoveredRun]:
        # One try: a snapshot helps, but must not hold a submit back through a backoff.
        return await self.recover(model=model, limit=50, attempts=1)

    async def call(
        self,
        budget: str,
        method: str,
        url: URL,
        *,
        params: Mapping[str, str],
        parse: Callable[[Any], _T],
        overall_held: bool = False,
        attempts: int | None = None,
        memo: Memo[_T] | None = None,
    ) -> _T:
        """An idempotent request: retried on 429, 408, 5xx, transport and decode errors.
        ``memo``: the last answer of the same call; a body byte for byte the same parses alike."""
        transport = self._ready()
        attempts = attempts or self._retries.attempts
        target: URL = url
        query: Mapping[str, str] | None = params
        if memo is not None:
            # The same request line as aiohttp would build from ``params``, built once.
            target = memo.url or url.with_query(params)
            memo.url, query = target, None
        error: VideoExtendError
        for attempt in range(1, attempts + 1):
            try:
                response = await transport.send(
                    budget, method, target, params=query, overall_held=overall_held
                )
            except APIConnectionError as exc:
                # Unreachable: a few quick tries, not the long backoff meant for a busy server.
                if attempt >= self._retries.connect_attempts:
                    raise
                error = exc
            except TransportError as exc:
                error = exc
            else:
                if response.status < 300:
                    if memo is not None and response.raw == memo.raw:
                        return memo.value
                    body = response.json()
                    if body is None:
                        error = ResponseDecodeError(
                            f"{url.path}: the body is not JSON", status_code=response.status
                        )
                    else:
                        try:
                            value = parse(body)
                        except ResponseDecodeError as exc:
                            error = exc
                        else:
                            if memo is not None:
                                memo.raw, memo.value = response.raw, value
                            return value
                else:
                    api_error = self.error(response, url)
                    if isinstance(api_error, RateLimitError):
                        if not self.rate_limited(budget, api_error):
                            raise api_error
                    elif not isinstance(api_error, ServerError):
                        raise api_error
                    error = api_error
            overall_held = False
            if attempt == attempts:
                break
            await self._wait(attempt, str(error), error)
        raise error

    async def _wait(self, attempt: int, why: str, error: object = None) -> None:
        if isinstance(error, RateLimitError):
            # The budget is paused already: the next attempt waits in the limiter's line.
            return
        await asyncio.sleep(self._backoff.next(attempt, why))

    def rate_limited(self, budget: str, error: RateLimitError) -> bool:
        """A 429 pauses the whole budget it belongs to, not just one request.

        Returns whether waiting is worth it: a daily cap (or a ``Retry-After`` beyond
        :data:`LONGEST_RATE_LIMIT_WAIT`) is raised to the caller rather than slept through.
        """
        window = self._ready().limiter.budget(budget)
        pause = error.retry_after if error.retry_after is not None else window.window
        window.pause(pause)
        log.warning("rate limited on %s; pausing that budget %.3fs", budget, pause)
        self._emit(Event(EventKind.RATE_LIMITED, budget=budget, delay=pause, detail=str(error)))
        daily = error.code is not None and error.code.startswith("daily_")
        return not daily and pause <= LONGEST_RATE_LIMIT_WAIT / self._time_scale

    def error(
        self, response: Response, url: URL | None = None, route: str | None = None
    ) -> APIError:
        """The typed error of an answer that is no success (the key scrubbed from it)."""
        body = response.json()
        if body is None:
            body = response.raw[:300].decode("utf-8", "replace")
        status = response.status
        # NanoGPT answers an unknown run with its own error body. A 404 without one, a 404 to
        # the source-video submit (it names no run that could be missing) or a 501 ("method
        # not supported") mean there is no such route here: nothing was created.
        if url is not None and (
            status == 501 or (status == 404 and (route == "generate" or not _is_envelope(body)))
        ):
            return EndpointNotFoundError(
                f"{url} is not NanoGPT's video API ({response.status} {response.reason}); "
                "check the base URL (it usually ends in /api)",
                url=str(url),
                status_code=response.status,
                request_id=response.request_id,
            )
        error = parse_error(
            response.status,
            body,
            reason=response.reason,
            request_id=response.request_id,
            retry_after=response.headers.get("Retry-After"),
        )
        if self._key in error.message:
            # A server that echoes the key must not make us leak it into logs.
            error.message = error.message.replace(self._key, "[redacted]")
            error.args = (error.message,)
        error.body = None if self._key in repr(error.body) else error.body
        return error

    # --- the safe submit ------------------------------------------------------------------

    async def submit(
        self,
        request: MidjourneyExtend | SourceExtend,
        adopt: Callable[[Submission], _J],
        before_send: Callable[[], Awaitable[None]] | None = None,
        *,
        reconcile: bool = True,
    ) -> _J:
        """Send ``request``; its run goes to ``adopt``. ``before_send`` is awaited right before
        each attempt leaves (with the rate-limit slots held); what it raises stops the submit
        with nothing sent. ``reconcile=False``: a lost answer raises :class:`LeftToJournal`
        instead of being matched to a run here."""
        transport = self._ready()
        if isinstance(request, SourceExtend) and request.video_file is not None:
            payload = await asyncio.to_thread(request.payload)
        else:
            payload = request.payload()
        if (
            self._retries.tag_submits
            and isinstance(request, SourceExtend)
            and "conversationUUID" not in payload
        ):
            # A tag of its own: the run a lost answer created is then known by it.
            payload = {**payload, "conversationUUID": str(uuid.uuid4())}
        return await self._submit(
            transport, request, payload, adopt, before_send, reconcile=reconcile
        )

    async def _submit(
        self,
        transport: Transport,
        request: MidjourneyExtend | SourceExtend,
        payload: Any,
        adopt: Callable[[Submission], _J],
        before_send: Callable[[], Awaitable[None]] | None,
        *,
        reconcile: bool,
    ) -> _J:
        route, model = request.route, request.model
        retries = self._retries
        guard = self.guard
        url = self.urls[route]
        source = request.run_id if isinstance(request, MidjourneyExtend) else None
        # Runs that exist before our first submit of the model can never be taken for ours.
        await guard.snapshot(model)
        attempt = 0
        while True:
            attempt += 1
            # Entered after the rate limiter, right before the request leaves: only requests
            # on the wire can lose an answer, and a careful spell must hold back queued ones.
            ticket = Ticket(guard, model, before_send, payload.get("conversationUUID"))
            lost: LostSubmit | None = None
            try:
                try:
                    response = await transport.send(
                        route, "POST", url, body=payload, admit=ticket.enter
                    )
                except NotNow:
                    attempt -= 1  # nothing was sent: this was no attempt
                    await guard.ready(model)
                    continue
                except APIConnectionError as exc:
                    if attempt >= min(retries.attempts, retries.connect_attempts):
                        raise
                    cause = f"{exc.reason}: nothing was sent"
                except TransportError as exc:
                    cause = str(exc)
                    lost = ticket.lost(payload, cause, source, timed_out=exc.timed_out)
                else:
                    status = response.status
                    if 200 <= status < 300:
                        try:
                            submission = parse_submission(response.json(), model)
                        except ResponseDecodeError as exc:
                            cause = str(exc)
                            lost = ticket.lost(payload, cause, source)
                        else:
                            # Adopted before leaving the guard: a reconciliation running for
                            # a lost sibling must see this run as claimed.
                            ticket.answered(submission.run_id)
                            return adopt(submission)
                    else:
                        error = self.error(response, url, route)
                        if isinstance(error, RateLimitError):
                            if not self.rate_limited(route, error) or attempt >= retries.attempts:
                                raise error from None
                            continue
                        if not isinstance(error, ServerError):
                            raise error from None
                        cause = str(error)
                        if status != 503:
                            lost = ticket.lost(payload, cause, source)
                        elif attempt >= retries.attempts:
                            raise error from None
                        # A 503 "Service Unavailable": the server did not take the request
                        # (RFC 9110, 15.6.4), so it created nothing and may be sent again.
                if lost is not None and reconcile:
                    guard.lost(lost)
            finally:
                ticket.leave()
            if lost is None:
                await self._wait(attempt, cause)
                continue
            if not reconcile:
                raise LeftToJournal(
                    f"submit of {model} failed ({cause}); whether it created a run is left to "
                    "the journal's reconciliation; nothing was resubmitted",
                    model=model,
                    cause=cause,
                )
            log.warning("submit of %s: outcome unknown (%s); reconciling", model, cause)
            try:
                run = await guard.resolve(lost)
            except (APIError, TransportError, ResponseDecodeError) as exc:
                # Not knowing is not "nothing was created": the caller must not resubmit.
                raise AmbiguousSubmitError(
                    f"submit of {model} failed ({cause}) and recover could not tell whether it "
                    f"created a run ({exc}); nothing was resubmitted",
                    model=model,
                    cause=cause,
                ) from exc
            except AmbiguousSubmitError as exc:
                self._emit(Event(EventKind.RECONCILED, detail=str(exc)))
                raise
            self._emit(
                Event(EventKind.RECONCILED, run_id=run.run_id if run else None, detail=cause)
            )
            if run is not None:
                return adopt(Submission(run.run_id, model, run.status or JobStatus.PENDING))
            if attempt >= retries.attempts:
                raise TransportError(f"submit of {model} failed {attempt} times: {cause}")
            log.warning("submit of %s created no run; sending it again", model)
            await self._wait(attempt, cause)
