"""The queue on taskiq: a Redis-streams broker, the submit and follow tasks, the worker.

Every worker process opens one :class:`~aiovideoextend.redis_limiter.RedisRateLimiter` and one
:class:`~aiovideoextend.Session` in the broker's worker-startup hook: all workers draw on one
budget. How many tasks a worker runs at once (``concurrency``) is not a rate limit; the shared
limiter is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
import redis.asyncio as aioredis
import redis.exceptions
from taskiq import AsyncBroker, TaskiqEvents, TaskiqState
from taskiq.exceptions import SendTaskError
from taskiq.receiver import Receiver
from taskiq_redis import RedisStreamBroker

import aiovideoextend as ave
from aiovideoextend.batch import BatchOutcome, Candidate, ManifestLine, parse_manifest
from aiovideoextend.redis_limiter import RedisRateLimiter, key_prefix

from ._steps import follow_step, submit_step
from ._store import QueueJournal

__all__ = ["QueueConfig", "make_broker", "outcome_from_dict", "run_worker"]

log = logging.getLogger("aiovideoextend")
_T = TypeVar("_T")
#: what Redis going away (a restart) raises
DOWN: Final = (redis.exceptions.ConnectionError, OSError, SendTaskError)

#: outcomes a task tries again (the line is not done): the submit's or the poll's fate unknown
_AGAIN: Final = frozenset({"unfinished", "skipped"})
#: tries of a line's submit, and of its following, that ended "unfinished" before it is reported
MAX_TRIES: Final = 6
SUBMIT: Final = "aiovideoextend.submit"
FOLLOW: Final = "aiovideoextend.follow"
NUDGE: Final = "aiovideoextend.nudge"


@attrs.frozen
class QueueConfig:
    """What workers and the enqueuing batch agree on. Times are at the server's real scale
    (divided by ``time_scale`` for an emulator)."""

    url: str
    prefix: str = "aiovideoextend"
    time_scale: float = 1.0
    #: a task whose worker stopped beating for this long goes to another worker (taskiq's
    #: idle timeout; live workers re-claim what they hold every quarter of it)
    redeliver_after: float = 20.0
    #: the longest a follow task polls before it enqueues itself again
    follow_slice: float = 120.0
    #: tasks one worker runs at once (submits waiting for a slot count): not the rate limit
    concurrency: int = 32
    # worker-only
    api_key: str = attrs.field(default="", repr=False)
    base_url: str | None = None
    download: str | None = None
    retries: ave.Retries = attrs.field(factory=ave.Retries)

    def __attrs_post_init__(self) -> None:
        if not (self.redeliver_after > 0 and self.follow_slice > 0 and self.concurrency > 0):
            raise ValueError("redeliver_after, follow_slice and concurrency must be positive")

    def scaled(self, seconds: float) -> float:
        return seconds / self.time_scale


def outcome_from_dict(data: dict[str, Any]) -> BatchOutcome:
    fields = dict(data)
    fields["candidates"] = tuple(Candidate.from_stored(c) for c in fields.get("candidates") or ())
    return BatchOutcome(**fields)


@attrs.define
class _Worker:
    """A worker process's state: its session, the shared budget, the batches' journals."""

    config: QueueConfig
    redis: aioredis.Redis
    limiter: RedisRateLimiter
    session: ave.Session
    manifests: dict[str, list[ManifestLine]] = attrs.field(factory=dict)

    def journal(self, batch_id: str) -> QueueJournal:
        cfg = self.config
        return QueueJournal(self.redis, batch_id, prefix=cfg.prefix, time_scale=cfg.time_scale)

    async def line(self, batch_id: str, number: int) -> ManifestLine:
        lines = self.manifests.get(batch_id)
        if lines is None:
            stored = await self.journal(batch_id).manifest()
            if stored is None:
                raise LookupError(f"batch {batch_id} has no manifest in Redis")
            content, suffix = stored
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"manifest{suffix}"
                path.write_bytes(content)
                lines = parse_manifest(path)
            self.manifests[batch_id] = lines
        return next(ln for ln in lines if ln.line == number)


class HeartbeatBroker(RedisStreamBroker):
    """taskiq-redis's stream broker plus a heartbeat: a worker re-claims the messages it holds
    (running or prefetched) every ``beat`` seconds, which resets their idle time, so that only
    a dead (or frozen) worker's tasks go to another worker after ``idle_timeout``, however long
    a task runs."""

    def __init__(self, url: str, *, beat: float, **options: Any) -> None:
        super().__init__(url, **options)
        self.beat = beat
        #: message id -> stream, from delivery to acknowledgement
        self.held: dict[str, str] = {}
        self._beating: asyncio.Task[None] | None = None

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:  # noqa: A002
        self.held[id] = queue_name
        ack = super()._ack_generator(id, queue_name)

        async def acknowledge() -> None:
            await ack()
            self.held.pop(id, None)

        return acknowledge

    async def startup(self) -> None:
        await super().startup()
        if self.is_worker_process and self._beating is None:
            self._beating = asyncio.create_task(self._heartbeat())

    async def shutdown(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        await super().shutdown()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.beat)
            streams: dict[str, list[Any]] = {}
            for msg_id, stream in list(self.held.items()):
                streams.setdefault(stream, []).append(msg_id)
            try:
                async with aioredis.Redis(connection_pool=self.connection_pool) as client:
                    for stream, ids in streams.items():
                        await client.xclaim(
                            stream,
                            self.consumer_group_name,
                            self.consumer_name,
                            0,
                            ids,
                            justid=True,
                        )
            except DOWN as exc:  # Redis restarting: the next beat tries again
                log.warning("queue heartbeat: %r", exc)


def make_broker(config: QueueConfig) -> AsyncBroker:
    """The broker with the three tasks registered (kick them by name: :data:`SUBMIT`, ...)."""
    redeliver = config.scaled(config.redeliver_after)
    broker = HeartbeatBroker(
        config.url,
        beat=min(redeliver / 4, 2.0),
        queue_name=f"{config.prefix}:tasks",
        consumer_group_name=f"{config.prefix}:workers",
        idle_timeout=max(1, int(redeliver * 1000)),
        # A worker killed while it held the reclaim lock must not hold it for ever.
        unacknowledged_lock_timeout=max(0.5, redeliver / 10),
        xread_count=1,
        xread_block=500,
    )

    async def startup(state: TaskiqState) -> None:
        limits = ave.Limits().scaled(config.time_scale)
        prefix = key_prefix(config.api_key, config.prefix)
        limiter = await RedisRateLimiter(config.url, limits, prefix=prefix).__aenter__()
        session = ave.Session(
            config.api_key,
            base_url=config.base_url,
            time_scale=config.time_scale,
            limiter=limiter,
            retries=config.retries,
        )
        await session.__aenter__()
        client = aioredis.Redis.from_url(config.url)
        state.worker = _Worker(config, client, limiter, session)

    async def shutdown(state: TaskiqState) -> None:
        worker: _Worker | None = getattr(state, "worker", None)
        if worker is not None:
            await worker.session.__aexit__(None, None, None)
            await worker.limiter.aclose()
            await worker.redis.aclose()

    broker.add_event_handler(TaskiqEvents.WORKER_STARTUP, startup)
    broker.add_event_handler(TaskiqEvents.WORKER_SHUTDOWN, shutdown)

    def worker() -> _Worker:
        found: _Worker = broker.state.worker
        return found

    async def again(call: Callable[[], Awaitable[_T]]) -> _T:
        """Redis may be restarting: try again for up to half the redelivery timeout."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + config.scaled(config.redeliver_after) / 2
        while True:
            try:
                return await call()
            except DOWN:
                if loop.time() > give_up:
                    raise
                await asyncio.sleep(0.1)

    async def kick(name: str, *args: Any) -> None:
        task = broker.find_task(name)
        assert task is not None  # noqa: S101
        await again(lambda: task.kiq(*args))

    async def finish(batch_id: str, outcome: BatchOutcome) -> None:
        journal = worker().journal(batch_id)
        stored = await again(lambda: journal.put_result(outcome.line or 0, outcome.to_dict()))
        if not stored:
            log.info("line %s of %s had its result already", outcome.line, batch_id)

    async def submit(batch_id: str, line: int, tries: int = 0) -> None:
        w = worker()
        item = await again(lambda: w.line(batch_id, line))
        key = item.request.key if item.request is not None else None
        try:
            step = await submit_step(w.session, w.journal(batch_id).line(line, key), item)
        except Exception as exc:
            # The intent, if any, stays: the next try reconciles it.
            step = BatchOutcome(line - 1, "unfinished", line=line, error=repr(exc))
        if isinstance(step, str):
            await kick(FOLLOW, batch_id, line)
        elif step.status in _AGAIN and tries + 1 < MAX_TRIES:
            await kick(SUBMIT, batch_id, line, tries + 1)
        else:
            await finish(batch_id, step)

    async def follow(batch_id: str, line: int, tries: int = 0, slices: int = 0) -> None:
        w = worker()
        item = await again(lambda: w.line(batch_id, line))
        key = item.request.key if item.request is not None else None
        budget = config.scaled(config.follow_slice)
        try:
            outcome = await follow_step(
                w.session,
                w.journal(batch_id).line(line, key),
                item,
                budget=budget,
                download=config.download,
            )
        except Exception as exc:
            outcome = BatchOutcome(line - 1, "unfinished", line=line, error=repr(exc))
        if outcome is None:  # the slice ran out: the next one is a task of its own
            await kick(FOLLOW, batch_id, line, tries, slices + 1)
        elif outcome.status in _AGAIN and tries + 1 < MAX_TRIES:
            await kick(FOLLOW, batch_id, line, tries + 1, slices)
        else:
            await finish(batch_id, outcome)

    async def nudge() -> None:
        """Nothing: a message that makes idle workers look for tasks a dead worker left."""

    broker.register_task(submit, task_name=SUBMIT)
    broker.register_task(follow, task_name=FOLLOW)
    broker.register_task(nudge, task_name=NUDGE)
    return broker


async def run_worker(config: QueueConfig, stop: asyncio.Event) -> None:
    """Run tasks until ``stop`` is set, then finish the running ones (each is bounded) and
    leave the prefetched ones unacknowledged, for another worker. Redis going away (a restart)
    pauses the worker; it goes on when Redis is back. A worker whose tasks are not done a
    follow slice plus a redelivery timeout after the stop cancels them: unacknowledged, they
    go to another worker, and running a step again is safe."""
    serving = asyncio.ensure_future(_serve(config, stop))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not serving.done():
            grace = config.scaled(config.follow_slice + config.redeliver_after)
            done, _ = await asyncio.wait({serving}, timeout=grace)
            if not done:
                log.warning(
                    "queue worker: tasks still running %.1f s after the stop; handing them back",
                    grace,
                )
                serving.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await serving
    finally:
        stopping.cancel()
        serving.cancel()


async def _serve(config: QueueConfig, stop: asyncio.Event) -> None:
    broker = make_broker(config)
    broker.is_worker_process = True
    await broker.startup()
    try:
        while not stop.is_set():
            receiver = Receiver(
                broker, max_async_tasks=config.concurrency, max_prefetch=0, run_startup=False
            )
            try:
                await receiver.listen(stop)
            except Exception as exc:
                log.warning("queue worker: %r; listening again", exc)
                await asyncio.sleep(0.2)
            else:
                return
    finally:
        with contextlib.suppress(Exception):
            await broker.shutdown()
