"""`Emulator`: the options, the public inspection API and the server lifecycle."""

from __future__ import annotations

import asyncio
import copy
import math
import random
import time
import warnings
from typing import TYPE_CHECKING, Any, Final, Literal, Self

import attrs
from aiohttp import web

from ._app import Routes
from ._errors import ERROR_SHAPES, ErrorShape
from ._faults import FaultSet
from ._lengths import JOB_LENGTHS, JobLengths
from ._limits import DEFAULT_LIMITS, LIMIT_ALGORITHMS, LimitAlgorithm, RateLimiter
from ._state import Clock, Job, JobPlan, LedgerEntry, State, Stats

if TYPE_CHECKING:
    from collections.abc import Mapping
    from types import TracebackType

ENVELOPES = ("nested", "flat", "mixed")
#: How the server stamps ``createdAt``: milliseconds, whole seconds, or not at all.
CreatedAt = Literal["exact", "coarse", "missing"]
CREATED_AT_MODES: Final = ("exact", "coarse", "missing")


def _default_users() -> dict[str, float]:
    return {"sk-nano-test-0001": 1000.0}


def _check_pair(_: object, attribute: attrs.Attribute[tuple[float, float]], value: object) -> None:
    if not (
        isinstance(value, tuple)
        and len(value) == 2
        and 0 <= value[0] <= value[1]
        and all(isinstance(item, int | float) for item in value)
    ):
        raise ValueError(f"{attribute.name} must be a (low, high) pair with 0 <= low <= high")


def _check_positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive")


def _check_users(_: object, __: attrs.Attribute[dict[str, float]], value: dict[str, float]) -> None:
    if not value:
        raise ValueError("users needs at least one api key")


def _check_skew(_: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{attribute.name} must be a finite number of seconds")


def _check_rate(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be between 0 and 1")


@attrs.define(kw_only=True)
class Emulator:
    """A local NanoGPT video API on a real socket, with compressed time and injectable faults.

    Use it as ``async with Emulator() as emu:``, or call `start` and `close` yourself.
    """

    users: Mapping[str, float] = attrs.field(factory=_default_users, validator=_check_users)
    time_scale: float = attrs.field(default=1.0, validator=_check_positive)
    seed: int = 0
    envelope: str = attrs.field(default="nested", validator=attrs.validators.in_(ENVELOPES))
    error_shape: ErrorShape = attrs.field(
        default="guide", validator=attrs.validators.in_(ERROR_SHAPES)
    )
    limit_algorithm: LimitAlgorithm = attrs.field(
        default="sliding", validator=attrs.validators.in_(LIMIT_ALGORITHMS)
    )
    retry_after: bool = True
    limits: Mapping[str, tuple[int, float] | None] | None = None
    queue_seconds: tuple[float, float] = attrs.field(default=(5.0, 60.0), validator=_check_pair)
    run_seconds: tuple[float, float] = attrs.field(default=(60.0, 240.0), validator=_check_pair)
    job_lengths: JobLengths = attrs.field(
        default="uniform", validator=attrs.validators.in_(JOB_LENGTHS)
    )
    #: whether the extend route's 202 carries an ``eta`` (False: no hint anywhere, nested)
    eta: bool = True
    failure_rate: float = attrs.field(default=0.05, validator=_check_rate)
    nsfw_rate: float = attrs.field(default=0.02, validator=_check_rate)
    cancel_rate: float = attrs.field(default=0.0, validator=_check_rate)
    midjourney_runs: int = 2
    latency: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_check_pair)
    video_size: int = 4096
    created_at: CreatedAt = attrs.field(
        default="exact", validator=attrs.validators.in_(CREATED_AT_MODES)
    )
    clock_skew: float = attrs.field(default=0.0, validator=_check_skew)
    host: str = "127.0.0.1"
    port: int = 0
    admin: bool = False

    #: The armed faults; ``emu.faults.add(Fault(...))``.
    faults: FaultSet = attrs.field(init=False)
    _state: State = attrs.field(init=False)
    _limiter: RateLimiter = attrs.field(init=False)
    _error_rng: random.Random = attrs.field(init=False)
    _latency_rng: random.Random = attrs.field(init=False)
    _clock: Clock | None = attrs.field(default=None, init=False)
    _app: web.Application = attrs.field(init=False)
    _runner: web.AppRunner | None = attrs.field(default=None, init=False)
    _base_url: str | None = attrs.field(default=None, init=False)
    _closed: bool = attrs.field(default=False, init=False)

    def __attrs_post_init__(self) -> None:
        if self.failure_rate + self.nsfw_rate + self.cancel_rate > 1:
            raise ValueError("failure_rate + nsfw_rate + cancel_rate must not exceed 1")
        limits = dict(DEFAULT_LIMITS)
        limits.update(self.limits or {})
        plan = JobPlan(
            queue_seconds=self.queue_seconds,
            run_seconds=self.run_seconds,
            failure_rate=self.failure_rate,
            nsfw_rate=self.nsfw_rate,
            cancel_rate=self.cancel_rate,
            envelope=self.envelope,
            lengths=self.job_lengths,
        )
        # Separate streams, so that arming a fault does not change which jobs fail.
        self._state = State(
            balances=dict(self.users), plan=plan, rng=random.Random(f"{self.seed}:jobs")
        )
        self.faults = FaultSet(random.Random(f"{self.seed}:faults"))
        self._error_rng = random.Random(f"{self.seed}:errors")
        self._latency_rng = random.Random(f"{self.seed}:latency")
        self._limiter = RateLimiter(self.limit_algorithm, limits)
        self._app = Routes(self).build()

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def app(self) -> web.Application:
        """The aiohttp application, for mounting it in a server of your own."""
        return self._app

    def _ensure_clock(self) -> Clock:
        """Start emulated time on first use, which needs a running loop."""
        if self._clock is None:
            loop = asyncio.get_running_loop()
            self._clock = Clock(
                time_scale=self.time_scale,
                start=loop.time(),
                epoch=time.time(),
                skew=self.clock_skew,
            )
            for key in self.users:
                for _ in range(self.midjourney_runs):
                    self._state.seed_midjourney(self._clock, 0.0, key)
        return self._clock

    async def start(self) -> Self:
        """Bind the socket and start serving; returns the emulator."""
        if self._runner is not None or self._closed:
            raise RuntimeError("an Emulator can be started only once")
        self._ensure_clock()
        # A short grace period: a "slow" fault must not hold close() for its whole delay.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=0.25)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            # A port in use must not leave a half-started runner behind (a ResourceWarning).
            self._runner = None
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._base_url = f"http://{host}:{port}/api"
        return self

    async def close(self) -> None:
        """Stop serving; calling it again does nothing."""
        self._closed = True
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __del__(self) -> None:
        if getattr(self, "_runner", None) is not None:
            warnings.warn(
                f"Emulator at {self._base_url} was never closed", ResourceWarning, stacklevel=1
            )

    # -- inspection -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/api``, without a trailing slash."""
        if self._base_url is None:
            raise RuntimeError("the Emulator is not started")
        return self._base_url

    @property
    def api_key(self) -> str:
        """The first user's key."""
        return next(iter(self.users))

    def now(self) -> float:
        """Emulated seconds since the emulator started."""
        clock = self._ensure_clock()
        return (asyncio.get_running_loop().time() - clock.start) * clock.time_scale

    def _settled(self) -> State:
        self._state.settle_due(self._ensure_clock(), self.now())
        return self._state

    def balance(self, key: str) -> float:
        """The USD balance of ``key``, with every finished job's refund applied."""
        return self._settled().balances[key]

    def midjourney_run_ids(self, key: str) -> list[str]:
        """The completed ``midjourney-video`` runs owned by ``key``, oldest first."""
        self._ensure_clock()
        return [job.run_id for job in self._state.by_key[key] if job.model == "midjourney-video"]

    def add_midjourney_run(self, key: str) -> str:
        """Seed one more completed ``midjourney-video`` run for ``key``; returns its id."""
        clock = self._ensure_clock()
        return self._state.seed_midjourney(clock, self.now(), key).run_id

    def created_by(self, run_id: str) -> dict[str, Any] | None:
        """The request body of the accepted submit that created ``run_id``.

        None for a run no submit created (a seeded ``midjourney-video`` run) or an unknown id.
        """
        job = self._state.jobs.get(run_id)
        if job is None or job.ledger is None:
            return None
        return copy.deepcopy(job.ledger.payload)

    def set_video_length(self, url: str, seconds: float) -> None:
        """Declare how long the video at ``url`` is; over 120 s a submit naming it gets a 400."""
        self._state.video_lengths[url] = seconds

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Every accepted submit, oldest first."""
        return list(self._settled().ledger)

    def duplicate_charges(self) -> int:
        """Accepted submits repeating an earlier one (key, route, body) that stayed charged."""
        return self._settled().duplicate_charges()

    @property
    def stats(self) -> Stats:
        """Request counters and timings."""
        return self._settled().stats

    def job(self, run_id: str) -> Job:
        """The internal record of ``run_id``, its ``status`` brought up to date."""
        state = self._settled()
        job = state.jobs[run_id]
        state.refresh(job, self.now())
        return job

    def cancel(self, run_id: str) -> bool:
        """Force ``run_id`` to cancelled (refunded); False if it had already finished."""
        state = self._settled()
        return state.cancel(self._ensure_clock(), state.jobs[run_id], self.now())
