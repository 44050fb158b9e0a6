"""The shared batch journal (public as :mod:`aiovideoextend.redis_journal`).

It keeps the SQLite journal's protocol (intent before a submit, run id after, outcome at the
end, a global sequence number and snapshots of the runs that existed before a model's first
submit) and adds ownership:

* every worker holds a lease in ``{prefix:batch}:workers`` (a sorted set scored by expiry, on
  Redis's clock), renewed every ``lease / 3`` seconds while it runs and dropped when it closes;
* recording an intent is a compare-and-set *claim*: it succeeds only for an entry nobody holds
  (or one this worker holds and reconciled away); the entry then carries the worker's id;
* an entry whose owner's lease has lapsed (or that its owner released) can be *adopted* by one
  other worker, again by compare-and-set; only the adopter reconciles or follows it.

Every step is one Lua script (``lua/journal_*.lua``, atomic across workers); those that ask
whether a worker is alive read ``TIME`` themselves, so workers' clocks never decide that. Per
batch, the keys share one hash tag (one cluster slot): ``seq`` (INCR counter), ``workers``,
``ids`` (set of entry ids), ``entry:<id>`` (a hash per entry), ``known:<model>`` (run id ->
sequence it was seen at) and ``snap:<model>`` (sequence of the first complete snapshot).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Any, Final, Self, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.core import AsyncScript

from aiovideoextend._converter import structure_journal_entry
from aiovideoextend._journal import JournalEntry
from aiovideoextend.exceptions import JournalError

from .client import (
    check_lease,
    check_name,
    micros,
    redis_client,
    renew_every,
    run_script,
    script,
    stop_background,
    unavailable,
)

__all__ = ["JournalError", "RedisJournal"]

log = logging.getLogger("aiovideoextend")

_WHAT: Final = "the shared journal in Redis"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry_id: str, flat: Sequence[Any], alive: bool) -> JournalEntry:
    fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    return structure_journal_entry({**fields, "entry_id": entry_id, "owner_alive": alive})


class RedisJournal:
    """The journal of one batch, in Redis, shared by every worker that runs that batch.

    ``redis`` is a URL (the journal owns and closes that client) or a ``redis.asyncio.Redis``
    you own. Workers that pass the same ``batch_id`` and ``prefix`` share the journal; the
    command line uses the manifest's content hash as ``batch_id``. ``lease``: how long after its
    last renewal a worker that stopped (crash, SIGKILL, lost network) still holds its entries; a
    live worker renews every ``lease / 3`` seconds. Keep it well above any stall of the event
    loop: a worker that stalls longer loses its entries to the others. ``poll_interval``: how
    often a worker looks at the entries others hold (default ``min(lease / 3, 1)``).

    Use ``async with`` (or :meth:`aclose`): closing hands every unfinished entry of this worker
    over to the others at once. The journal keys have no expiry; delete them (:meth:`delete`)
    once the batch is done and its results are safe.
    """

    shared: Final = True

    def __init__(
        self,
        redis: str | aioredis.Redis,
        batch_id: str,
        *,
        prefix: str = "aiovideoextend",
        lease: float = 30.0,
        poll_interval: float | None = None,
    ) -> None:
        check_name("prefix", prefix)
        check_name("batch_id", batch_id)
        lease = check_lease(lease)
        self._client, self._own_client = redis_client(redis)
        self.batch_id: Final = batch_id
        self.prefix: Final = prefix
        self.lease: Final = lease
        self.poll_interval: Final = (
            min(self.lease / 3, 1.0) if poll_interval is None else float(poll_interval)
        )
        self._lease_us = micros(lease)
        host = socket.gethostname().replace(" ", "_")[:32] or "host"
        self.worker_id: Final = f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        tag = f"{{{prefix}:{batch_id}}}"
        self._tag = tag
        self._entry_prefix = f"{tag}:entry:"
        client = self._client
        # lua/journal_*.lua; those that ask whether a worker is alive read the clock first.
        alive = ("now", "journal_alive")
        self._intent: Final = script(client, *alive, "journal_intent")
        self._submitted: Final = script(client, "journal_submitted")
        self._finished: Final = script(client, "journal_finished")
        self._forget: Final = script(client, "journal_forget")
        self._release: Final = script(client, "journal_release")
        self._adopt: Final = script(client, *alive, "journal_adopt")
        self._register: Final = script(client, *alive, "journal_register")
        self._renew_lua: Final = script(client, *alive, "journal_renew")
        self._known: Final = script(client, "journal_known")
        self._read: Final = script(client, *alive, "journal_read")
        self._open_lock = asyncio.Lock()
        self._registered = False
        self._closed = False
        self._lapsed = False
        self._renewer: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open" if self._registered else "new"
        return f"<RedisJournal {self.prefix}:{self.batch_id} {self.worker_id} {state}>"

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> Self:
        """Register this worker (its lease starts); done on first use if not called."""
        async with self._open_lock:
            if self._closed:
                raise RuntimeError("the RedisJournal is closed")
            if not self._registered:
                await self._run(
                    self._register, [self._key(":workers")], [self.worker_id, self._lease_us]
                )
                self._registered = True
                self._renewer = asyncio.get_running_loop().create_task(
                    renew_every(self, self.lease / 3, self._renew, JournalError),
                    name="aiovideoextend-journal-lease",
                )
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish pending writes, drop this worker's lease (its entries become adoptable at
        once), and close an owned client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await stop_background(self._renewer, self._writes)
        try:
            if self._registered:
                await self._client.zrem(self._key(":workers"), self.worker_id)
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("%r: could not drop the lease (it lapses by itself): %s", self, exc)
        finally:
            if self._own_client:
                await self._client.aclose()

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        if getattr(self, "_registered", False) and not self._closed:
            _warn(f"unclosed {self!r}: use 'async with' or aclose()", ResourceWarning, source=self)

    async def delete(self) -> int:
        """Delete every key of this batch (after it is done). Returns how many were deleted."""
        keys = [key async for key in self._client.scan_iter(match=self._key("*"), count=1000)]
        return int(await self._client.delete(*keys)) if keys else 0

    # -- plumbing ---------------------------------------------------------------------------

    async def _run(self, lua: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await run_script(lua, keys, args, JournalError, _WHAT)

    async def _write(self, lua: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a write to the end even if the caller is cancelled (``aclose`` waits for it)."""
        if not self._registered:
            await self.open()
        if self._closed:
            raise RuntimeError("the RedisJournal is closed")
        task = asyncio.get_running_loop().create_task(self._run(lua, keys, args))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _renew(self) -> bool:
        """Renew this worker's lease; ``False`` (stop renewing) once it has lapsed."""
        keys = [self._key(":workers")]
        if await self._run(self._renew_lua, keys, [self.worker_id, self._lease_us]):
            return True
        self._lapsed = True
        log.error(
            "%r: this worker's lease lapsed (stalled longer than %.3gs?); other workers "
            "may take its entries over, so it claims nothing more",
            self,
            self.lease,
        )
        return False

    def _lapsed_error(self) -> JournalError:
        self._lapsed = True
        return JournalError(
            f"this worker's lease on shared journal {self.prefix}:{self.batch_id} lapsed "
            f"(stalled longer than {self.lease:g}s?); its entries may be taken over by other "
            "workers, so it stops claiming"
        )

    def _key(self, suffix: str) -> str:
        return self._tag + suffix

    def _entry_key(self, entry_id: str) -> str:
        return self._entry_prefix + entry_id

    # -- reads ------------------------------------------------------------------------------

    async def entries(self, entry_ids: Collection[str] | None = None) -> dict[str, JournalEntry]:
        """Every entry by id (or those of ``entry_ids`` that exist), with owner liveness."""
        if entry_ids is not None and not entry_ids:
            return {}
        keys = [self._key(":workers"), self._key(":ids")]
        flat = await self._run(self._read, keys, [self._entry_prefix, *(entry_ids or ())])
        result = {}
        for i in range(0, len(flat), 3):
            entry_id = _text(flat[i])
            result[entry_id] = _entry(entry_id, flat[i + 1], bool(flat[i + 2]))
        return result

    async def known_runs(self, model: str) -> dict[str, int]:
        with unavailable(JournalError, _WHAT):
            # redis-py 6+ types a reply as "awaitable or not" (one signature for both clients).
            reply = self._client.hgetall(self._key(f":known:{model}"))
            rows = await cast("Awaitable[dict[Any, Any]]", reply)
        return {_text(run_id): int(seq) for run_id, seq in rows.items()}

    async def complete_snapshot_seq(self, model: str) -> int | None:
        with unavailable(JournalError, _WHAT):
            value = await self._client.get(self._key(f":snap:{model}"))
        return None if value is None else int(value)

    async def total_precharge(self) -> float:
        """What every submit recorded in this journal was precharged."""
        return sum(entry.precharge or 0.0 for entry in (await self.entries()).values())

    # -- writes -----------------------------------------------------------------------------

    async def record_intent(
        self, entry_id: str, *, request_key: str, model: str, position: int
    ) -> bool:
        """Claim the entry and commit the intent; ``False`` if another worker has it."""
        if self._lapsed:
            raise self._lapsed_error()
        keys = [self._key(s) for s in (":workers", ":seq", ":ids")] + [self._entry_key(entry_id)]
        args = [self.worker_id, entry_id, request_key, model, position, repr(time.time())]
        result = await self._write(self._intent, keys, args)
        code = int(result[0])
        if code == -1:
            raise self._lapsed_error()
        if code == -2:
            raise JournalError(f"journal entry {entry_id} is already past its intent")
        return code == 1

    async def record_submitted(
        self, entry_id: str, run_id: str, precharge: float | None, *, answered: bool = True
    ) -> None:
        """Commit the run id; raises if the entry is no longer this worker's open intent."""
        keys = [self._key(":seq"), self._entry_key(entry_id)]
        price = "" if precharge is None else repr(float(precharge))
        now = repr(time.time())
        args = [self.worker_id, run_id, price, now, now if answered else ""]
        if not await self._write(self._submitted, keys, args):
            raise JournalError(
                f"journal entry {entry_id} is no longer this worker's open intent (its lease "
                f"lapsed and another worker took it over): run {run_id} may be charged twice"
            )

    async def record_finished(self, entry_id: str, outcome: dict[str, Any]) -> None:
        """Commit an entry's final outcome; raises if the entry is no longer this worker's."""
        args = [self.worker_id, json.dumps(outcome, sort_keys=True), repr(time.time())]
        if not await self._write(self._finished, [self._entry_key(entry_id)], args):
            raise JournalError(
                f"journal entry {entry_id} is no longer this worker's (its lease lapsed)"
            )

    async def forget_intent(self, entry_id: str) -> None:
        """Drop this worker's intent the server did not act on: the entry is unclaimed again."""
        keys = [self._key(":ids"), self._entry_key(entry_id)]
        await self._write(self._forget, keys, [self.worker_id, entry_id])

    async def release(self, entry_id: str) -> None:
        """Hand an unfinished entry over: any other worker may adopt it now."""
        await self._write(self._release, [self._entry_key(entry_id)], [self.worker_id])

    async def adopt(self, entry_id: str) -> JournalEntry | None:
        """Take over an unfinished entry whose owner's lease lapsed (or who released it)."""
        if self._lapsed:
            raise self._lapsed_error()
        keys = [self._key(":workers"), self._entry_key(entry_id)]
        result = await self._write(self._adopt, keys, [self.worker_id])
        code = int(result[0])
        if code == -1:
            raise self._lapsed_error()
        if code != 1:
            return None
        return _entry(entry_id, result[1], alive=True)

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        keys = [self._key(":seq"), self._key(f":known:{model}"), self._key(f":snap:{model}")]
        await self._write(self._known, keys, ["1" if complete else "0", *run_ids])
