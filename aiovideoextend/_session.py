"""Session: lifecycle, request plumbing with retries, safe submits, error mapping."""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import os
import random
import uuid
import warnings
import weakref
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar, Unpack

import aiohttp
from yarl import URL

from ._config import Limits, PollPolicy, Retries, Timeouts
from ._converter import parse_error, parse_recover, parse_status, parse_submission
from ._http import Response, Transport, is_loopback
from ._job import USE_POLICY_DEFAULT, Job, _Default
from ._limiter import shared_limiter
from ._limiter_api import Limiter
from ._poll import PollScheduler
from ._reconcile import LostSubmit, NotNow, SubmitGuard, Ticket
from ._requests import ExtendOptions, MidjourneyExtend, SourceExtend
from .exceptions import (
    AmbiguousSubmitError,
    APIConnectionError,
    APIError,
    EndpointNotFoundError,
    InvalidRequestError,
    JobTimeoutError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    TransportError,
    VideoExtendError,
)
from .models import Event, EventKind, JobStatus, RecoveredRun, StatusUpdate, Submission, VideoResult

__all__ = ["DEFAULT_BASE_URL", "LONGEST_RATE_LIMIT_WAIT", "Session"]

log = logging.getLogger("aiovideoextend")

DEFAULT_BASE_URL: Final = "https://nano-gpt.com/api"
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
EventHook = Callable[[Event], None]


def _interrupted_note(run_id: str) -> str:
    return (
        f"aiovideoextend: run {run_id} goes on on the server (paid); resume with "
        f"session.job({run_id!r}) or from session.interrupted_jobs"
    )


def _is_envelope(body: Any) -> bool:
    """Whether an error body has one of NanoGPT's documented shapes (an ``error`` member)."""
    return isinstance(body, Mapping) and "error" in body


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


def _version() -> str:
    try:
        from importlib.metadata import version  # noqa: PLC0415

        return version("aiovideoextend")
    except Exception:  # pragma: no cover - not installed
        return "0"


class Session:
    """A connection to NanoGPT's video API, shared safely by any number of tasks.

    ``async with Session() as session:`` (or call :meth:`aclose`). The key comes from
    ``api_key`` or ``NANOGPT_API_KEY``; the base URL from ``base_url``, ``NANOGPT_BASE_URL``
    or :data:`DEFAULT_BASE_URL`. Every request passes the rate limiter shared by all sessions of
    this process talking to the same server, unless ``limiter`` is given. ``time_scale``
    divides every client-side period (limit windows, poll intervals, backoff, default deadline)
    for servers whose clock runs faster, like the bundled emulator.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        limits: Limits | None = None,
        poll: PollPolicy | None = None,
        timeout: Timeouts | None = None,
        retries: Retries | None = None,
        http_session: aiohttp.ClientSession | None = None,
        time_scale: float = 1.0,
        limiter: Limiter | None = None,
        redis: str | None = None,
        on_event: EventHook | None = None,
        verify_ssl: bool = True,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("NANOGPT_API_KEY")
        if not isinstance(key, str) or not key.strip():
            raise InvalidRequestError("no API key: pass api_key= or set NANOGPT_API_KEY")
        if (
            isinstance(time_scale, bool)
            or not isinstance(time_scale, int | float)
            or not (math.isfinite(time_scale) and time_scale > 0)
        ):
            raise InvalidRequestError(
                f"time_scale must be a finite number > 0, got {time_scale!r:.40}"
            )
        if base_url is not None and not isinstance(base_url, str):
            raise InvalidRequestError(f"base_url must be a string, got {type(base_url).__name__}")
        base = base_url or os.environ.get("NANOGPT_BASE_URL") or DEFAULT_BASE_URL
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
        if not verify_ssl:
            warnings.warn(
                "TLS certificate verification is off: the API key can be intercepted",
                stacklevel=2,
            )
        self._key: Final = key.strip()
        self.base_url: Final = str(url).rstrip("/")
        self.time_scale: Final = float(time_scale)
        self.limits: Final = (limits or Limits()).scaled(self.time_scale)
        self._poll: Final = (poll or PollPolicy()).scaled(self.time_scale)
        self._retries: Final = (retries or Retries()).scaled(self.time_scale)
        self._timeouts: Final = timeout or Timeouts()
        self._urls: Final = {name: url / path for name, path in _ROUTES.items()}
        self._origin: Final = url.origin()
        self._own_http = http_session is None
        self._http = http_session
        if redis is not None:
            if limiter is not None:
                raise InvalidRequestError("give limiter= or redis=, not both")
            if not isinstance(redis, str) or not redis.startswith(
                ("redis://", "rediss://", "unix://")
            ):
                raise InvalidRequestError("redis must be a redis://, rediss:// or unix:// URL")
        self._redis_url = redis
        self._given_limiter = limiter
        self._own_limiter: Any = None
        self._verify_ssl = verify_ssl
        self._hooks: list[EventHook] = [on_event] if on_event is not None else []
        self._state = _State.UNOPENED
        self._transport: Transport | None = None
        self._scheduler = PollScheduler(self)
        self._jobs: weakref.WeakValueDictionary[str, Job] = weakref.WeakValueDictionary()
        # Runs whose one-call wait (run(), extend_and_wait()) was cancelled or timed out: held
        # here so that they stay reachable (interrupted_jobs), and submits left on the wire.
        self._interrupted: dict[str, Job] = {}
        self._background: set[asyncio.Task[Job]] = set()
        self._claimed: set[str] = set()
        self._guard = SubmitGuard(
            self._recover_for,
            self._snapshot_for,
            self._claimed,
            clock_offset=self._server_offset,
            skew=self._retries.reconcile_skew,
            margin=self._retries.reconcile_margin,
            settle_timeout=self._timeouts.total,
            # A careful spell of five rate-limit windows of the submit endpoints.
            cooldown=5 * self.limits.generate.period,
            pace=self._retries.pace_submits,
        )
        self._rng = random.Random()

    def __repr__(self) -> str:
        return f"<Session {self.base_url} {self._state.value}>"

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state is not _State.UNOPENED:
            raise RuntimeError(
                "a Session can be entered once; it cannot be reopened after close"
                if self._state is _State.CLOSED
                else "the Session is already open"
            )
        self._open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _open(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=100),
                headers={"User-Agent": f"aiovideoextend/{_version()}"},
            )
        # aiohttp resends a GET once, unseen, when the connection drops after it went out: the
        # server may then count two arrivals for one slot of our limiter (a 429 in a full
        # window). Every attempt must pass the limiter, so we retry ourselves. aiohttp's own
        # test client turns it off the same way; without the attribute nothing changes.
        if hasattr(self._http, "_retry_connection"):
            self._http._retry_connection = False
        if self._redis_url is not None:
            self._own_limiter = self._redis_limiter(self._redis_url)
        self._limiter = (
            self._given_limiter or self._own_limiter or shared_limiter(self.base_url, self.limits)
        )
        self._transport = Transport(
            http=self._http,
            limiter=self._limiter,
            headers={"x-api-key": self._key, "Accept": "application/json"},
            timeout=aiohttp.ClientTimeout(
                total=self._timeouts.total, sock_connect=self._timeouts.connect
            ),
            on_wait=self._on_wait,
            ssl=self._verify_ssl,
        )
        self._state = _State.OPENED

    def _redis_limiter(self, url: str) -> Limiter:
        try:
            from .redis_limiter import RedisRateLimiter, key_prefix  # noqa: PLC0415
        except ImportError:
            raise InvalidRequestError(
                "redis= needs redis-py: pip install 'aiovideoextend[redis]'"
            ) from None
        return RedisRateLimiter(url, self.limits, prefix=key_prefix(self._key))

    def _ready(self) -> Transport:
        if self._state is _State.UNOPENED:
            self._open()
        elif self._state is _State.CLOSED:
            raise RuntimeError("the Session is closed")
        assert self._transport is not None  # noqa: S101  (set by _open)
        return self._transport

    async def aclose(self) -> None:
        """Stop polling, release waiters and close the connection pool. Idempotent."""
        if self._state is _State.CLOSED:
            return
        was_open = self._state is _State.OPENED
        self._state = _State.CLOSED
        if was_open:
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            await self._scheduler.aclose()
            await self._guard.aclose()
            for job in list(self._jobs.values()):
                job._interrupt()
            if self._own_http and self._http is not None:
                await self._http.close()
            if self._own_limiter is not None:
                await self._own_limiter.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_state", None) is _State.OPENED and self._own_http:
            _warn(f"unclosed {self!r}: use 'async with' or aclose()", ResourceWarning, source=self)

    @property
    def http(self) -> aiohttp.ClientSession:
        """The aiohttp session (for downloads); it never carries the API key by default."""
        self._ready()
        assert self._http is not None  # noqa: S101
        return self._http

    # --- events ---------------------------------------------------------------------------

    def add_event_hook(self, hook: EventHook) -> None:
        """Call ``hook(event)`` for every :class:`Event` (progress displays, metrics)."""
        self._hooks.append(hook)

    def remove_event_hook(self, hook: EventHook) -> None:
        self._hooks.remove(hook)

    def _emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:
                log.exception("event hook %r failed", hook)

    def _on_wait(self, budget: str, delay: float) -> None:
        if self._hooks:
            self._emit(Event(EventKind.WAITING_FOR_RATE_LIMIT, budget=budget, delay=delay))

    def _status_changed(self, job: Job) -> None:
        if self._hooks:
            self._emit(Event(EventKind.STATUS_CHANGED, run_id=job.run_id, status=job.status))

    # --- jobs -----------------------------------------------------------------------------

    async def extend_midjourney(self, run_id: str, index: int = 0) -> Job:
        """Extend video ``index`` (0-3) of a completed ``midjourney-video`` run."""
        return await self.submit(MidjourneyExtend(run_id, index))

    async def extend(
        self,
        model: str,
        prompt: str,
        *,
        video_url: str | None = None,
        video_file: str | os.PathLike[str] | None = None,
        video_data_url: str | None = None,
        video_attachment_id: str | None = None,
        video: str | None = None,
        **options: Unpack[ExtendOptions],
    ) -> Job:
        """Extend a source video with an extend model (exactly one source).

        ``options`` are the documented optional fields (:class:`ExtendOptions`): duration,
        resolution, seed, negative_prompt, aspect_ratio, conversation_uuid, generate_audio,
        mode. They are typed: a type checker rejects a misspelt one.
        """
        return await self.submit(
            SourceExtend(
                model,
                prompt,
                video_url=video_url,
                video_file=video_file,
                video_data_url=video_data_url,
                video_attachment_id=video_attachment_id,
                video=video,
                options=options,
            )
        )

    def job(self, run_id: str, model: str | None = None) -> Job:
        """Attach to an existing run (from another process, a journal, a crash)."""
        if not isinstance(run_id, str) or not run_id.strip():
            raise InvalidRequestError(f"run_id must be a non-empty string, got {run_id!r:.40}")
        self._ready()
        job = self._jobs.get(run_id)
        if job is None:
            job = self._jobs[run_id] = Job(self, run_id, model)
            self._claimed.add(run_id)
            self._guard.saw((run_id,))
        return job

    # --- one call: submit and wait -----------------------------------------------------------

    async def run(
        self,
        request: MidjourneyExtend | SourceExtend,
        *,
        timeout: float | _Default | None = USE_POLICY_DEFAULT,
    ) -> VideoResult:
        """Submit ``request``, wait for its run to end and return the video (or raise).

        :meth:`submit` then :meth:`Job.result`, in one call; ``timeout`` is the wait's, as in
        :meth:`Job.result`. Nothing paid is lost when the wait stops early:

        - :class:`JobTimeoutError`, :class:`JobFailedError`, :class:`JobCancelledError` carry
          the ``run_id``;
        - on a timeout or a cancellation of the caller, the :class:`Job` is kept in
          :attr:`interrupted_jobs` (await it to resume), and a cancellation's
          ``CancelledError`` carries a note naming the run id;
        - a cancellation while the submit is on the wire lets the submit finish in the
          background (its run, or an :class:`AmbiguousSubmitError`'s candidates, land in
          :attr:`interrupted_jobs`); one still queued in the rate limiter is dropped, nothing
          having been sent.
        """
        on_wire = False

        async def leaving() -> None:
            nonlocal on_wire
            on_wire = True

        submit = asyncio.ensure_future(self._submit_with(request, leaving))
        try:
            job = await asyncio.shield(submit)
        except asyncio.CancelledError as exc:
            self._after_cancelled_submit(submit, on_wire=on_wire, error=exc)
            raise
        try:
            return await job.result(timeout)
        except JobTimeoutError:
            self._interrupted[job.run_id] = job
            raise
        except asyncio.CancelledError as exc:
            self._interrupted[job.run_id] = job
            exc.add_note(_interrupted_note(job.run_id))
            log.warning("wait for %s cancelled; the run goes on", job.run_id)
            raise

    async def extend_and_wait(
        self,
        model: str,
        prompt: str,
        *,
        video_url: str | None = None,
        video_file: str | os.PathLike[str] | None = None,
        video_data_url: str | None = None,
        video_attachment_id: str | None = None,
        video: str | None = None,
        timeout: float | _Default | None = USE_POLICY_DEFAULT,
        **options: Unpack[ExtendOptions],
    ) -> VideoResult:
        """:meth:`extend`, then wait for the video: one call (see :meth:`run`)."""
        request = SourceExtend(
            model,
            prompt,
            video_url=video_url,
            video_file=video_file,
            video_data_url=video_data_url,
            video_attachment_id=video_attachment_id,
            video=video,
            options=options,
        )
        return await self.run(request, timeout=timeout)

    async def extend_midjourney_and_wait(
        self,
        run_id: str,
        index: int = 0,
        *,
        timeout: float | _Default | None = USE_POLICY_DEFAULT,
    ) -> VideoResult:
        """:meth:`extend_midjourney`, then wait for the video: one call (see :meth:`run`)."""
        return await self.run(MidjourneyExtend(run_id, index), timeout=timeout)

    @property
    def interrupted_jobs(self) -> tuple[Job, ...]:
        """Unfinished runs whose :meth:`run` / ``*_and_wait`` call timed out or was cancelled.

        Each was paid for and goes on running on the server: ``await job`` resumes the wait.
        """
        return tuple(job for job in self._interrupted.values() if not job.done())

    def _after_cancelled_submit(
        self, submit: asyncio.Task[Job], *, on_wire: bool, error: asyncio.CancelledError
    ) -> None:
        """The caller of :meth:`run` was cancelled while its submit was under way."""
        if submit.done():
            if not submit.cancelled() and submit.exception() is None:
                job = submit.result()
                self._interrupted[job.run_id] = job
                error.add_note(_interrupted_note(job.run_id))
            return
        if not on_wire:
            submit.cancel()  # still queued: nothing was sent, nothing is paid
            return
        # On the wire: cancelling now would leave the outcome unknown. Let it end.
        error.add_note(
            "aiovideoextend: the submit was on the wire; its run, if created, will be listed "
            "in session.interrupted_jobs"
        )
        self._background.add(submit)
        submit.add_done_callback(self._background_submit_done)

    def _background_submit_done(self, submit: asyncio.Task[Job]) -> None:
        self._background.discard(submit)
        if submit.cancelled():
            return
        error = submit.exception()
        if error is not None:
            log.warning("a submit left running after a cancel failed: %s", error)
            if isinstance(error, AmbiguousSubmitError) and self._state is _State.OPENED:
                # Each candidate was paid for by someone: keep them all in reach.
                for job in self.candidate_jobs(error):
                    self._interrupted[job.run_id] = job
            return
        job = submit.result()
        self._interrupted[job.run_id] = job
        log.warning("submit finished after its caller was cancelled: %s", job.run_id)

    async def submit(self, request: MidjourneyExtend | SourceExtend) -> Job:
        """Send a validated request; return its :class:`Job`.

        A submit is repeated only when it provably created no job (429, connection refused).
        When the outcome is unknown (timeout or reset after sending, 5xx, an unreadable 2xx),
        the run is looked up through ``generate-video/recover``: the one new run of that model
        is adopted, none means the submit is sent again, several raise
        :class:`AmbiguousSubmitError`. Money is at stake: never a blind retry.

        A server that cannot be reached raises :class:`APIConnectionError` after
        ``Retries.connect_attempts`` tries; one that is not NanoGPT's API (a 404/501 page)
        raises :class:`EndpointNotFoundError`. Neither created anything.
        """
        return await self._submit_with(request)

    async def _submit_with(
        self,
        request: MidjourneyExtend | SourceExtend,
        before_send: Callable[[], Awaitable[None]] | None = None,
    ) -> Job:
        """:meth:`submit`, awaiting ``before_send`` right before each attempt leaves (with
        the rate-limit slots held); what it raises stops the submit with nothing sent."""
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
        return await self._submit(transport, request, payload, before_send)

    async def _submit(
        self,
        transport: Transport,
        request: MidjourneyExtend | SourceExtend,
        payload: Any,
        before_send: Callable[[], Awaitable[None]] | None,
    ) -> Job:
        route, model = request.route, request.model
        retries = self._retries
        guard = self._guard
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
                        route, "POST", self._urls[route], body=payload, admit=ticket.enter
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
                            return self._adopt(submission)
                    else:
                        error = self._api_error(response, self._urls[route], route)
                        if isinstance(error, RateLimitError):
                            if not self._rate_limited(route, error) or attempt >= retries.attempts:
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
                if lost is not None:
                    guard.lost(lost)
            finally:
                ticket.leave()
            if lost is None:
                await self._backoff(attempt, cause)
                continue
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
                return self._adopt(Submission(run.run_id, model, run.status or JobStatus.PENDING))
            if attempt >= retries.attempts:
                raise TransportError(f"submit of {model} failed {attempt} times: {cause}")
            log.warning("submit of %s created no run; sending it again", model)
            await self._backoff(attempt, cause)

    def _adopt(self, submission: Submission) -> Job:
        run_id = submission.run_id
        # Seen already: in its submit's answer (Ticket.answered) or in a recover listing.
        self._claimed.add(run_id)
        job = self._jobs.get(run_id)
        if job is None:
            job = self._jobs[run_id] = Job(self, run_id, submission.model, submission)
        log.info("submitted %s (%s)", run_id, submission.model)
        if self._hooks:
            self._emit(Event(EventKind.SUBMITTED, run_id=run_id, status=submission.status))
        return job

    async def _recover_for(self, model: str) -> list[RecoveredRun]:
        return await self.recover(model=model, limit=50)

    async def _snapshot_for(self, model: str) -> list[RecoveredRun]:
        # One try: a snapshot helps, but must not hold a submit back through a backoff.
        return await self._recover(model=model, limit=50, attempts=1)

    def _server_offset(self) -> float:
        """The server's clock minus ours, from the Date headers (0 until measured)."""
        return self._transport.clock_offset if self._transport is not None else 0.0

    def candidate_jobs(self, error: AmbiguousSubmitError) -> list[Job]:
        """Jobs for the runs an :class:`AmbiguousSubmitError` names: follow each to its end
        (every one was paid for), then decide which is yours."""
        return [self.job(run_id, error.model) for run_id in error.candidates]

    @property
    def unattributed(self) -> tuple[RecoveredRun, ...]:
        """Runs created since this session's first submit that no submit of it can own.

        A run a server created after the client gave up on its submit (and found nothing)
        lands here, as does a run someone else created with the same key: reported, never
        adopted, never dropped. Attach with :meth:`job` to follow one.
        """
        return tuple(self._guard.unattributed)

    # --- status and recover ---------------------------------------------------------------

    async def status(self, run_id: str) -> StatusUpdate:
        """Poll a run's status once (retrying transient errors)."""
        if not isinstance(run_id, str) or not run_id.strip():
            raise InvalidRequestError(f"run_id must be a non-empty string, got {run_id!r:.40}")
        update, _known = await self._fetch_status(run_id)
        return update

    async def _fetch_status(
        self, run_id: str, *, overall_held: bool = False, attempts: int | None = None
    ) -> tuple[StatusUpdate, bool]:
        return await self._call(
            "overall",
            "GET",
            self._urls["status"],
            params={"requestId": run_id},
            parse=lambda body: parse_status(body, run_id),
            overall_held=overall_held,
            attempts=attempts,
        )

    async def recover(self, *, model: str | None = None, limit: int = 10) -> list[RecoveredRun]:
        """Recent runs of this account, newest first (``limit`` 1-50)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise InvalidRequestError(f"limit must be an int 1-50, got {limit!r:.20}")
        return await self._recover(model=model, limit=limit)

    async def _recover(
        self, *, model: str | None, limit: int, attempts: int | None = None
    ) -> list[RecoveredRun]:
        params = {"limit": str(limit)}
        if model is not None:
            params["model"] = model
        runs = await self._call(
            "recover",
            "GET",
            self._urls["recover"],
            params=params,
            parse=parse_recover,
            attempts=attempts,
        )
        # Every run listed now existed before any submit sent from now on.
        self._guard.saw([run.run_id for run in runs])
        if model is not None and limit == 50:
            self._guard.listed(model)
        return runs

    async def _call(
        self,
        budget: str,
        method: str,
        url: URL,
        *,
        params: Mapping[str, str],
        parse: Callable[[Any], _T],
        overall_held: bool = False,
        attempts: int | None = None,
    ) -> _T:
        """An idempotent request: retried on 429, 408, 5xx, transport and decode errors."""
        transport = self._ready()
        attempts = attempts or self._retries.attempts
        error: VideoExtendError
        for attempt in range(1, attempts + 1):
            try:
                response = await transport.send(
                    budget, method, url, params=params, overall_held=overall_held
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
                    body = response.json()
                    if body is None:
                        error = ResponseDecodeError(
                            f"{url.path}: the body is not JSON", status_code=response.status
                        )
                    else:
                        try:
                            return parse(body)
                        except ResponseDecodeError as exc:
                            error = exc
                else:
                    api_error = self._api_error(response, url)
                    if isinstance(api_error, RateLimitError):
                        if not self._rate_limited(budget, api_error):
                            raise api_error
                    elif not isinstance(api_error, ServerError):
                        raise api_error
                    error = api_error
            overall_held = False
            if attempt == attempts:
                break
            await self._backoff(attempt, str(error), error)
        raise error

    async def _backoff(self, attempt: int, why: str, error: object = None) -> None:
        if isinstance(error, RateLimitError):
            # The budget is paused already: the next attempt waits in the limiter's line.
            return
        delay = self._retries.delay(attempt, self._rng.random())
        self._emit(Event(EventKind.RETRYING, delay=delay, detail=why))
        log.debug("retrying in %.3fs after: %s", delay, why)
        await asyncio.sleep(delay)

    def _rate_limited(self, budget: str, error: RateLimitError) -> bool:
        """A 429 pauses the whole budget it belongs to, not just one request.

        Returns whether waiting is worth it: a daily cap (or a ``Retry-After`` beyond
        :data:`LONGEST_RATE_LIMIT_WAIT`) is raised to the caller rather than slept through.
        """
        window = self._limiter.budget(budget)
        pause = error.retry_after if error.retry_after is not None else window.window
        window.pause(pause)
        log.warning("rate limited on %s; pausing that budget %.3fs", budget, pause)
        self._emit(Event(EventKind.RATE_LIMITED, budget=budget, delay=pause, detail=str(error)))
        daily = error.code is not None and error.code.startswith("daily_")
        return not daily and pause <= LONGEST_RATE_LIMIT_WAIT / self.time_scale

    def _api_error(
        self, response: Response, url: URL | None = None, route: str | None = None
    ) -> APIError:
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

    # --- results --------------------------------------------------------------------------

    def _absolute(self, video_url: str) -> str:
        """Relative video URLs (seen in the wild) are taken against the API's origin."""
        if video_url.startswith("/"):
            return str(self._origin.join(URL(video_url)))
        return video_url

    async def download(
        self,
        result: VideoResult,
        dest: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        max_bytes: int | None = None,
    ) -> Path:
        """Stream a finished job's video to ``dest`` (file, or directory for ``<run_id>.mp4``).

        Only http(s) URLs; the name comes from the run id, never from the server; a video over
        ``max_bytes`` raises :class:`DownloadError` and leaves nothing behind.
        """
        from ._download import download_video  # noqa: PLC0415  (batch feature, loaded lazily)

        return await download_video(
            self.http,
            result.video_url,
            Path(dest),
            run_id=result.run_id,
            overwrite=overwrite,
            max_bytes=max_bytes,
        )

    def _random(self) -> float:
        return self._rng.random()
