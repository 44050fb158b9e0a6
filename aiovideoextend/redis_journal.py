"""A batch journal in Redis, shared by every worker of one batch (``[redis]`` extra).

``run_batch(session, requests, journal=RedisJournal(url, batch_id))`` in every worker (or
``aiovideoextend batch MANIFEST --redis URL`` on every host): the workers split the requests
between them, and when one dies the others finish its work, without paying twice. See
``docs/scale-out.md``.

It keeps the SQLite journal's protocol (intent before a submit, run id after, outcome at the
end, a global sequence number and snapshots of the runs that existed before a model's first
submit) and adds ownership:

* every worker holds a lease in ``{prefix:batch}:workers`` (a sorted set scored by expiry, on
  Redis's clock), renewed every ``lease / 3`` seconds while it runs and dropped when it closes;
* recording an intent is a compare-and-set *claim*: it succeeds only for an entry nobody holds
  (or one this worker holds and reconciled away); the entry then carries the worker's id;
* an entry whose owner's lease has lapsed (or that its owner released) can be *adopted* by one
  other worker, again by compare-and-set; only the adopter reconciles or follows it.

Every step is one Lua script (atomic across workers) that reads ``TIME`` itself, so workers'
clocks never decide who is alive. Per batch, the keys share one hash tag (one cluster slot):
``seq`` (INCR counter), ``workers``, ``ids`` (set of entry ids), ``entry:<id>`` (a hash per
entry), ``known:<model>`` (run id -> sequence it was seen at) and ``snap:<model>`` (sequence of
the first complete snapshot).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Final, Self

import redis.asyncio as aioredis
import redis.exceptions
from redis.commands.core import AsyncScript

from ._converter import structure_journal_entry
from ._journal import JournalEntry
from ._redis_client import check_lease, redis_client, stop_background
from .exceptions import JournalError

__all__ = ["JournalError", "RedisJournal"]

log = logging.getLogger("aiovideoextend")

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function alive(worker)
  if not worker or worker == '' then return false end
  local expiry = redis.call('ZSCORE', KEYS[1], worker)
  return expiry ~= false and tonumber(expiry) > now
end
"""

# KEYS: workers, seq, ids, entry. ARGV: me, entry id, request key, model, position, time.
# Returns {1, seq} claimed, {0} held by another worker or finished, {-1} my lease lapsed,
# {-2} mine and past its intent.
_INTENT = (
    _NOW
    + """
local me = ARGV[1]
if not alive(me) then return {-1} end
local state = redis.call('HGET', KEYS[4], 'state')
if state then
  local owner = redis.call('HGET', KEYS[4], 'owner')
  if owner ~= me or state == 'finished' then return {0} end
  if state ~= 'intent' then return {-2} end
end
local seq = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[4], 'request_key', ARGV[3], 'model', ARGV[4], 'position', ARGV[5],
  'state', 'intent', 'intent_seq', seq, 'intent_at', ARGV[6], 'owner', me, 'adopted', '0',
  'updated_at', ARGV[6])
redis.call('SADD', KEYS[3], ARGV[2])
return {1, seq}
"""
)

# KEYS: seq, entry. ARGV: me, run id, precharge ('' for none), time, answer time ('' for
# none). 1 done, 0 not my intent.
_SUBMITTED = """
if redis.call('HGET', KEYS[2], 'state') ~= 'intent' then return 0 end
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'state', 'submitted', 'run_id', ARGV[2], 'submitted_seq', seq,
  'precharge', ARGV[3], 'adopted', '0', 'updated_at', ARGV[4], 'submitted_at', ARGV[5])
return 1
"""

# KEYS: entry. ARGV: me, outcome JSON, time. 1 done, 0 not mine.
_FINISHED = """
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'finished', 'outcome', ARGV[2], 'updated_at', ARGV[3])
return 1
"""

# KEYS: ids, entry. ARGV: me, entry id.
_FORGET = """
if redis.call('HGET', KEYS[2], 'state') ~= 'intent' then return 0 end
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[2])
return 1
"""

# KEYS: entry. ARGV: me.
_RELEASE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'finished' then return 0 end
if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'owner', '')
return 1
"""

# KEYS: workers, entry. ARGV: me. Returns {1, fields} adopted, {0} not adoptable, {-1} lapsed.
_ADOPT = (
    _NOW
    + """
local me = ARGV[1]
if not alive(me) then return {-1} end
local state = redis.call('HGET', KEYS[2], 'state')
if not state or state == 'finished' then return {0} end
local owner = redis.call('HGET', KEYS[2], 'owner')
if owner ~= me then
  if alive(owner) then return {0} end
  redis.call('HSET', KEYS[2], 'owner', me, 'adopted', state == 'intent' and '1' or '0')
end
return {1, redis.call('HGETALL', KEYS[2])}
"""
)

# KEYS: workers. ARGV: me, lease (microseconds). Lapsed workers are pruned: absent = lapsed.
_REGISTER = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
return 1
"""
)

# KEYS: workers. ARGV: me, lease. 0: the lease had lapsed (others may have adopted entries).
_RENEW = (
    _NOW
    + """
if not alive(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
return 1
"""
)

# KEYS: seq, known, snap. ARGV: complete ('1'/'0'), run ids...
_KNOWN = """
local seq = redis.call('INCR', KEYS[1])
for i = 2, #ARGV do
  redis.call('HSETNX', KEYS[2], ARGV[i], seq)
end
if ARGV[1] == '1' then redis.call('SETNX', KEYS[3], seq) end
return seq
"""

# KEYS: workers, ids. ARGV: entry key prefix, entry ids (none: every entry).
# Returns {id, fields, owner alive (1/0), ...}.
_READ = (
    _NOW
    + """
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('SMEMBERS', KEYS[2])
end
local living = {}
local out = {}
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', ARGV[1] .. id)
  if #fields > 0 then
    local owner = redis.call('HGET', ARGV[1] .. id, 'owner')
    if owner and living[owner] == nil then living[owner] = alive(owner) end
    out[#out + 1] = id
    out[#out + 1] = fields
    out[#out + 1] = (owner and living[owner]) and 1 or 0
  end
end
return out
"""
)


def _micros(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1_000_000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry_id: str, flat: Sequence[Any], alive: bool) -> JournalEntry:
    fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}
    return structure_journal_entry({**fields, "entry_id": entry_id, "owner_alive": alive})


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "{} \n\r\t"):
        raise ValueError(f"{what} must be a non-empty string without braces, got {value!r}")
    return value


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
        _check_name("prefix", prefix)
        _check_name("batch_id", batch_id)
        lease = check_lease(lease)
        self._client, self._own_client = redis_client(redis)
        self.batch_id: Final = batch_id
        self.prefix: Final = prefix
        self.lease: Final = lease
        self.poll_interval: Final = (
            min(self.lease / 3, 1.0) if poll_interval is None else float(poll_interval)
        )
        self._lease_us = _micros(lease)
        host = socket.gethostname().replace(" ", "_")[:32] or "host"
        self.worker_id: Final = f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        tag = f"{{{prefix}:{batch_id}}}"
        self._tag = tag
        self._entry_prefix = f"{tag}:entry:"
        client = self._client
        self._intent: Final = client.register_script(_INTENT)
        self._submitted: Final = client.register_script(_SUBMITTED)
        self._finished: Final = client.register_script(_FINISHED)
        self._forget: Final = client.register_script(_FORGET)
        self._release: Final = client.register_script(_RELEASE)
        self._adopt: Final = client.register_script(_ADOPT)
        self._register: Final = client.register_script(_REGISTER)
        self._renew: Final = client.register_script(_RENEW)
        self._known: Final = client.register_script(_KNOWN)
        self._read: Final = client.register_script(_READ)
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
                    self._renew_loop(), name="aiovideoextend-journal-lease"
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

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise JournalError(f"the shared journal in Redis is unavailable: {exc}") from exc

    async def _write(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run a write to the end even if the caller is cancelled (``aclose`` waits for it)."""
        if not self._registered:
            await self.open()
        if self._closed:
            raise RuntimeError("the RedisJournal is closed")
        task = asyncio.get_running_loop().create_task(self._run(script, keys, args))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        return await asyncio.shield(task)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                renewed = await self._run(
                    self._renew, [self._key(":workers")], [self.worker_id, self._lease_us]
                )
            except JournalError as exc:
                log.warning("%r: cannot renew the lease: %s", self, exc)
                continue
            if not renewed:
                self._lapsed = True
                log.error(
                    "%r: this worker's lease lapsed (stalled longer than %.3gs?); other workers "
                    "may take its entries over, so it claims nothing more",
                    self,
                    self.lease,
                )
                return

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
        try:
            rows = await self._client.hgetall(self._key(f":known:{model}"))
        except (redis.exceptions.RedisError, OSError) as exc:
            raise JournalError(f"the shared journal in Redis is unavailable: {exc}") from exc
        return {_text(run_id): int(seq) for run_id, seq in rows.items()}

    async def complete_snapshot_seq(self, model: str) -> int | None:
        try:
            value = await self._client.get(self._key(f":snap:{model}"))
        except (redis.exceptions.RedisError, OSError) as exc:
            raise JournalError(f"the shared journal in Redis is unavailable: {exc}") from exc
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
