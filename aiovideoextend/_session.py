"""Session: configuration, lifecycle and the public verbs; the calls themselves are the API
layer's, the polls the scheduler's."""

from __future__ import annotations

import enum
import logging
import os
import random
import warnings
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, Unpack

import aiohttp

from ._api import LONGEST_RATE_LIMIT_WAIT, Api
from ._backoff import Backoff
from ._config import (
    Limits,
    PollPolicy,
    Retries,
    Timeouts,
    checked_key,
    checked_redis,
    checked_time_scale,
    redis_limiter,
)
from ._events import EventHook, Hooks
from ._host import Host
from ._http import Transport, api_url, client_session
from ._job import USE_POLICY_DEFAULT, Job, _Default
from ._limiter import shared_limiter
from ._limiter_api import Limiter
from ._one_call import Kept
from ._poll import PollScheduler
from ._requests import ExtendOptions, MidjourneyExtend, SourceExtend
from .exceptions import AmbiguousSubmitError, InvalidRequestError
from .models import Event, EventKind, RecoveredRun, StatusUpdate, Submission, VideoResult

__all__ = ["DEFAULT_BASE_URL", "LONGEST_RATE_LIMIT_WAIT", "Session"]

log = logging.getLogger("aiovideoextend")

DEFAULT_BASE_URL: Final = "https://nano-gpt.com/api"


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPENED = "opened"
    CLOSED = "closed"


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
        key = checked_key(api_key if api_key is not None else os.environ.get("NANOGPT_API_KEY"))
        time_scale = checked_time_scale(time_scale)
        if base_url is not None and not isinstance(base_url, str):
            raise InvalidRequestError(f"base_url must be a string, got {type(base_url).__name__}")
        url = api_url(base_url or os.environ.get("NANOGPT_BASE_URL") or DEFAULT_BASE_URL)
        if not verify_ssl:
            warnings.warn(
                "TLS certificate verification is off: the API key can be intercepted",
                stacklevel=2,
            )
        self._key: Final = key
        self.base_url: Final = str(url).rstrip("/")
        self.time_scale: Final = float(time_scale)
        self.limits: Final = (limits or Limits()).scaled(self.time_scale)
        self._retries: Final = (retries or Retries()).scaled(self.time_scale)
        self._timeouts: Final = timeout or Timeouts()
        self._own_http = http_session is None
        self._http = http_session
        self._redis_url = checked_redis(redis, limiter)
        self._given_limiter = limiter
        self._own_limiter: Any = None
        self._verify_ssl = verify_ssl
        self._hooks: Final = Hooks(on_event)
        self._state = _State.UNOPENED
        self._transport: Transport | None = None
        self._jobs: weakref.WeakValueDictionary[str, Job] = weakref.WeakValueDictionary()
        self._kept: Final = Kept(self.candidate_jobs)
        #: runs a submit or an attach of this session owns (the submit guard reads it)
        self._claimed: set[str] = set()
        # The one random source of the session's retries and polls: seed it to replay them.
        self._rng = random.Random()
        backoff = Backoff(self._retries.delay, self._rng.random, self._hooks.emit)
        self._api: Final = Api(
            url,
            self._key,
            self._ready,
            limits=self.limits,
            retries=self._retries,
            timeouts=self._timeouts,
            time_scale=self.time_scale,
            backoff=backoff,
            emit=self._hooks.emit,
            claimed=self._claimed,
        )
        self._guard: Final = self._api.guard
        policy = (poll or PollPolicy()).scaled(self.time_scale)
        self._scheduler: Final = PollScheduler(
            fetch=self._api.status,
            transport=self._ready,
            policy=policy,
            retries=self._retries,
            time_scale=self.time_scale,
            backoff=backoff,
            rand=self._rng.random,
            on_wait=self._hooks.on_wait,
            forget=self._forget,
        )
        self._host: Final = Host(
            self._scheduler,
            fetch_status=self._api.status,
            status_changed=self._hooks.status_changed,
            absolute=self._api.absolute,
            download=self.download,
            time_scale=self.time_scale,
            timeout=policy.timeout,
        )

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
        self._http = client_session(self._http)
        if self._redis_url is not None:
            self._own_limiter = redis_limiter(self._redis_url, self.limits, self._key)
        self._limiter = (
            self._given_limiter or self._own_limiter or shared_limiter(self.base_url, self.limits)
        )
        self._transport = Transport(
            http=self._http,
            limiter=self._limiter,
            headers={"x-api-key": self._key, "Accept": "application/json"},
            timeout=self._timeouts.client_timeout(),
            on_wait=self._hooks.on_wait,
            ssl=self._verify_ssl,
        )
        self._api.transport = self._transport
        self._state = _State.OPENED

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
            await self._kept.aclose()
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

    def add_event_hook(self, hook: EventHook) -> None:
        """Call ``hook(event)`` for every :class:`Event` (progress displays, metrics)."""
        self._hooks.add(hook)

    def remove_event_hook(self, hook: EventHook) -> None:
        self._hooks.remove(hook)

    def _forget(self, run_id: str) -> None:
        self._jobs.pop(run_id, None)

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
            job = self._jobs[run_id] = Job(self._host, run_id, model)
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
        return await self._kept.run(lambda leaving: self._submit_with(request, leaving), timeout)

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
        return self._kept.jobs()

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
        *,
        reconcile: bool = True,
    ) -> Job:
        """:meth:`submit`, awaiting ``before_send`` right before each attempt leaves (slots
        held; what it raises stops the submit unsent). ``reconcile=False``: see the API layer."""
        return await self._api.submit(request, self._adopt, before_send, reconcile=reconcile)

    def _adopt(self, submission: Submission) -> Job:
        run_id = submission.run_id
        # Seen already: in its submit's answer (Ticket.answered) or in a recover listing.
        self._claimed.add(run_id)
        job = self._jobs.get(run_id)
        if job is None:
            job = self._jobs[run_id] = Job(self._host, run_id, submission.model, submission)
        log.info("submitted %s (%s)", run_id, submission.model)
        if self._hooks:
            self._hooks.emit(Event(EventKind.SUBMITTED, run_id=run_id, status=submission.status))
        return job

    def _server_offset(self) -> float:
        """The server's clock minus ours, from the Date headers (0 until measured)."""
        return self._api.server_offset()

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

    # --- status, recover, results -----------------------------------------------------------

    async def status(self, run_id: str) -> StatusUpdate:
        """Poll a run's status once (retrying transient errors)."""
        if not isinstance(run_id, str) or not run_id.strip():
            raise InvalidRequestError(f"run_id must be a non-empty string, got {run_id!r:.40}")
        update, _known = await self._api.status(run_id)
        return update

    async def recover(self, *, model: str | None = None, limit: int = 10) -> list[RecoveredRun]:
        """Recent runs of this account, newest first (``limit`` 1-50)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 50:
            raise InvalidRequestError(f"limit must be an int 1-50, got {limit!r:.20}")
        return await self._api.recover(model=model, limit=limit)

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
