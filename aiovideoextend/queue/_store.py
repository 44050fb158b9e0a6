"""A batch's journal and results in Redis, for a task queue: no leases, no claims, no adoption.

The task queue delivers each task to one worker at a time and hands a dead worker's tasks to
another; what the journal still has to do is what no queue does: record a submit's *intent*
before it leaves, its run id after, and its outcome at the end, so that a submit task delivered
twice reconciles through ``recover`` instead of paying again (see ``docs/scale-out.md``).

Per batch, the keys share one hash tag: ``seq`` (INCR counter), ``ids`` (entry ids),
``entry:<line>`` (one hash per manifest line), ``known:<model>``, ``snap:<model>`` (the
snapshots the reconciler needs), ``manifest`` (the manifest's bytes, so that workers on other
hosts need no copy of it) and ``results`` (line -> outcome JSON, first one wins).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Collection, Iterable, Sequence
from typing import Any, Final, cast

import attrs
import redis.asyncio as aioredis

from aiovideoextend.batch import JournalEntry, JournalError

__all__ = ["LineJournal", "QueueJournal"]

#: an intent younger than this (seconds, at real time) may still get its answer: a reconciling
#: task waits for it rather than counting its run as a rival's
INTENT_LIVE: Final = 60.0

_INTENT = """
local state = redis.call('HGET', KEYS[3], 'state')
if state and (state ~= 'intent' or redis.call('HGET', KEYS[3], 'owner') ~= ARGV[1]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[3], 'request_key', ARGV[3], 'model', ARGV[4], 'position', ARGV[5],
  'state', 'intent', 'intent_seq', seq, 'intent_at', ARGV[6], 'owner', ARGV[1],
  'live_until', string.format('%.0f', now + tonumber(ARGV[7])))
redis.call('SADD', KEYS[2], ARGV[2])
return seq
"""

# A run id is the server's word: it is recorded whichever execution of the task sent it.
_SUBMITTED = """
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'intent' then
  return redis.call('HGET', KEYS[2], 'run_id') == ARGV[1] and 1 or 0
end
local seq = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], 'state', 'submitted', 'run_id', ARGV[1], 'submitted_seq', seq,
  'precharge', ARGV[2], 'submitted_at', ARGV[3], 'live_until', '0')
return 1
"""

_FORGET = """
if redis.call('HGET', KEYS[2], 'state') ~= 'intent' then return 0 end
if redis.call('HGET', KEYS[2], 'owner') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[2])
return 1
"""

# A task delivered again takes its line's intent over: its earlier execution is gone.
_TAKE = """
if redis.call('HGET', KEYS[1], 'state') ~= 'intent' then return 0 end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'live_until', '0')
return 1
"""

_KNOWN = """
local seq = redis.call('INCR', KEYS[1])
for i = 2, #ARGV do
  redis.call('HSETNX', KEYS[2], ARGV[i], seq)
end
if ARGV[1] == '1' then redis.call('SETNX', KEYS[3], seq) end
return seq
"""

_READ = """
local t = redis.call('TIME')
local out = {tonumber(t[1]) * 1000000 + tonumber(t[2])}
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('SMEMBERS', KEYS[1])
end
for _, id in ipairs(ids) do
  local fields = redis.call('HGETALL', ARGV[1] .. id)
  if #fields > 0 then
    out[#out + 1] = id
    out[#out + 1] = fields
  end
end
return out
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entry(entry_id: str, flat: Sequence[Any], now: int) -> JournalEntry:
    fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}

    def number(name: str) -> int | None:
        value = fields.get(name, "")
        return int(value) if value else None

    def real(name: str) -> float | None:
        value = fields.get(name, "")
        return float(value) if value else None

    outcome = fields.get("outcome")
    state = fields["state"]
    return JournalEntry(
        entry_id=entry_id,
        request_key=fields.get("request_key", ""),
        model=fields.get("model", ""),
        position=number("position") or 0,
        state=cast("Any", state),
        intent_seq=number("intent_seq") or 0,
        intent_at=real("intent_at") or 0.0,
        run_id=fields.get("run_id") or None,
        submitted_seq=number("submitted_seq"),
        submitted_at=real("submitted_at"),
        precharge=real("precharge"),
        outcome=json.loads(outcome) if outcome else None,
        owner=fields.get("owner") or None,
        # "alive": an intent whose answer may still come (see INTENT_LIVE)
        owner_alive=state == "intent" and (number("live_until") or 0) > now,
    )


class QueueJournal:
    """One batch's journal and results in Redis (a client you opened and close)."""

    def __init__(
        self,
        client: aioredis.Redis,
        batch_id: str,
        *,
        prefix: str = "aiovideoextend",
        time_scale: float = 1.0,
    ) -> None:
        if not batch_id or "}" in batch_id or "{" in batch_id:
            raise ValueError(f"batch id must be non-empty, without braces: {batch_id!r}")
        self.client = client
        self.batch_id = batch_id
        self._base = f"{{{prefix}:queue:{batch_id}}}"
        self._live_us = int(INTENT_LIVE / time_scale * 1_000_000)
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("intent", _INTENT),
                ("submitted", _SUBMITTED),
                ("forget", _FORGET),
                ("take", _TAKE),
                ("known", _KNOWN),
                ("read", _READ),
            )
        }

    def key(self, suffix: str) -> str:
        return f"{self._base}:{suffix}"

    async def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        return await self._scripts[name](keys=list(keys), args=list(args))

    # -- the manifest and the results ----------------------------------------------------

    async def put_manifest(self, content: bytes, suffix: str) -> None:
        await self.client.hset(self.key("manifest"), mapping={"content": content, "suffix": suffix})

    async def manifest(self) -> tuple[bytes, str] | None:
        content, suffix = await self.client.hmget(self.key("manifest"), ["content", "suffix"])
        if content is None:
            return None
        return cast("bytes", content), _text(suffix or ".jsonl")

    async def put_result(self, line: int, outcome: dict[str, Any]) -> bool:
        """Store a line's result unless it has one: ``True`` if this one was stored."""
        return bool(await self.client.hsetnx(self.key("results"), str(line), json.dumps(outcome)))

    async def drop_result(self, line: int) -> None:
        await self.client.hdel(self.key("results"), str(line))

    async def results(self) -> dict[int, dict[str, Any]]:
        raw = await self.client.hgetall(self.key("results"))
        return {int(_text(k)): json.loads(v) for k, v in raw.items()}

    async def result_count(self) -> int:
        return int(await self.client.hlen(self.key("results")))

    # -- the journal (keyed by manifest line) --------------------------------------------

    async def entries(self, entry_ids: Collection[str] | None = None) -> dict[str, JournalEntry]:
        if entry_ids is not None and not entry_ids:
            return {}
        out = await self._run("read", [self.key("ids")], [self.key("entry:"), *(entry_ids or ())])
        now = int(out[0])
        return {
            _text(out[i]): _entry(_text(out[i]), out[i + 1], now) for i in range(1, len(out), 2)
        }

    async def first_look(self, model: str) -> bool:
        """``True`` once per batch and model: the caller snapshots the model's runs."""
        return bool(await self.client.set(self.key(f"looked:{model}"), 1, nx=True))

    async def known_runs(self, model: str) -> dict[str, int]:
        raw = await self.client.hgetall(self.key(f"known:{model}"))
        return {_text(k): int(v) for k, v in raw.items()}

    async def complete_snapshot_seq(self, model: str) -> int | None:
        value = await self.client.get(self.key(f"snap:{model}"))
        return None if value is None else int(value)

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        keys = [self.key("seq"), self.key(f"known:{model}"), self.key(f"snap:{model}")]
        await self._run("known", keys, ["1" if complete else "0", *run_ids])

    def line(self, line: int, request_key: str | None) -> LineJournal:
        """The journal as `run_batch` sees it when it runs this one line."""
        return LineJournal(self, line, request_key)


class LineJournal:
    """A :class:`~aiovideoextend.batch.JournalStore` for ``run_batch(session, [line])``: the
    line's entry under the line's own id, every other line's entry as it is (they are the rivals
    and claims the reconciler weighs). Each execution of a task gets its own owner token."""

    #: other workers submit lines of this batch at the same time: a lost answer is settled by
    #: the journal's reconciliation, which sees their intents, never by one worker's session
    concurrent = True
    poll_interval = 0.05

    def __init__(self, store: QueueJournal, line: int, request_key: str | None) -> None:
        self.store = store
        self.global_id = str(line)
        # run_batch names a lone request's entry "<request key>:0"
        self.local_id = f"{request_key}:0"
        self.me = uuid.uuid4().hex

    def _g(self, entry_id: str) -> str:
        return self.global_id if entry_id == self.local_id else entry_id

    def _entry_key(self, entry_id: str) -> str:
        return self.store.key(f"entry:{self._g(entry_id)}")

    async def entries(self, entry_ids: Collection[str] | None = None) -> dict[str, JournalEntry]:
        ids = None if entry_ids is None else [self._g(e) for e in entry_ids]
        found = await self.store.entries(ids)
        mine = found.pop(self.global_id, None)
        if mine is not None:
            found[self.local_id] = attrs.evolve(mine, entry_id=self.local_id)
        return found

    async def take(self) -> None:
        """Take the line's open intent over (this task was delivered again)."""
        await self.store._run("take", [self._entry_key(self.local_id)], [self.me])

    async def known_runs(self, model: str) -> dict[str, int]:
        return await self.store.known_runs(model)

    async def complete_snapshot_seq(self, model: str) -> int | None:
        return await self.store.complete_snapshot_seq(model)

    async def record_known_runs(
        self, model: str, run_ids: Iterable[str], *, complete: bool
    ) -> None:
        await self.store.record_known_runs(model, run_ids, complete=complete)

    async def record_intent(
        self, entry_id: str, *, request_key: str, model: str, position: int
    ) -> bool:
        keys = [self.store.key("seq"), self.store.key("ids"), self._entry_key(entry_id)]
        args = [self.me, self._g(entry_id), request_key, model, position, f"{time.time():.6f}"]
        return bool(await self.store._run("intent", keys, [*args, self.store._live_us]))

    async def record_submitted(
        self, entry_id: str, run_id: str, precharge: float | None, *, answered: bool = True
    ) -> None:
        keys = [self.store.key("seq"), self._entry_key(entry_id)]
        at = f"{time.time():.6f}" if answered else ""
        pre = "" if precharge is None else repr(precharge)
        if not await self.store._run("submitted", keys, [run_id, pre, at]):
            raise JournalError(f"line {self.global_id} has another run than {run_id}")

    async def record_finished(self, entry_id: str, outcome: dict[str, Any]) -> None:
        await self.store.client.hset(
            self._entry_key(entry_id), mapping={"state": "finished", "outcome": json.dumps(outcome)}
        )

    async def forget_intent(self, entry_id: str) -> None:
        keys = [self.store.key("ids"), self._entry_key(entry_id)]
        await self.store._run("forget", keys, [self.me, self._g(entry_id)])
