"""The rules that match submits whose answer was lost to the runs they created: pure functions.

Both the session (a submit that lost its answer) and the journaled batch (an intent whose
worker died) ask the same question: of the runs ``generate-video/recover`` lists, which did
each lost submit create? The client knows, for every submit, an *order stamp* (when it left,
in the sequence of everything the client saw) and, when it can, the client's clock when it
left and when its answer was lost; for every listed run, when the client first saw it and,
when the server says, its ``createdAt``.

A run *may* belong to a lost submit only if none of these rules it out:

1. it is claimed by a submit that got its answer, or it is the run a Midjourney extend
   extends (never a candidate at all);
2. the client saw it (in a listing or an answer) before the submit left: a run that existed
   then cannot be that submit's. Only order stamps are compared, never clocks;
3. its ``createdAt``, moved onto the client's clock by the server's offset, falls outside the
   submit's flight ``[left, answer lost]``, widened by the timestamp's resolution and a margin.
   The offset is bounded by the answered submits themselves: each one's run was created
   between its send and its answer, so ``createdAt - answered <= offset <= createdAt - sent``.
   Without a ``createdAt`` (missing, unreadable) or an offset, this rule rules nothing out;
4. it carries a ``conversationUUID`` that some lost or open submit sent, and this submit did
   not send that one. The server stores the tag it was sent, so a tagged run was created by a
   request that carried its tag. A tag no submit sent, or none, rules nothing out: the server
   may drop tags, or the run may be someone else's. With a fresh tag per submit
   (``Retries(tag_submits=True)``) lost answers that flew together are told apart exactly.

Every listed run that some lost or still-unanswered submit may have created was created by
exactly one of them (the client assumes no one else submits with its key and model at the
same time). Each way of handing the runs to the submits that obeys the rules is an
*explanation*. A lost submit gets a run only when every explanation gives it that run; it
created nothing only when no explanation gives it one; otherwise it is ambiguous, with the
runs some explanation gives it. Submits with the same body are interchangeable: when the
explanations differ only by swapping them, the oldest run goes to the oldest submit.

A run no submit may have created is *unattributed*: it is reported, never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Final

import attrs

from .models import RecoveredRun

__all__ = [
    "Anchor",
    "Attempt",
    "Claim",
    "Listed",
    "Listing",
    "Matching",
    "Verdict",
    "attribute",
    "offset_bounds",
    "parse_created_at",
    "read_listing",
]

#: Past this many explanations the search stops and every lost submit with a candidate is
#: ambiguous: a person decides rather than a slow or wrong guess.
MAX_EXPLANATIONS: Final = 5000


@attrs.frozen
class Attempt:
    """A submit whose run is to be found (``lost``) or that may still own one (open)."""

    key: str
    #: order stamp when it left; runs seen at a smaller stamp are not its own
    sent_seq: int
    #: the client's clock just before it left (None: unknown)
    sent_at: float | None = None
    #: the client's clock when its answer was lost (None: still open, or unknown)
    ended_at: float | None = None
    #: the request body, canonical: attempts with the same body are interchangeable
    body: str = ""
    #: runs that are certainly not its own (the run a Midjourney extend extends)
    exclude: frozenset[str] = frozenset()
    #: the ``conversationUUID`` it sent (None: none)
    conversation: str | None = None


@attrs.frozen
class Listed:
    """A run of the model, unclaimed, as recover listed it."""

    run_id: str
    #: ``createdAt`` on the server's clock (epoch seconds), None when absent or unreadable
    created_at: float | None = None
    #: how coarse ``createdAt`` is: the true moment lies in [created_at, created_at + this)
    resolution: float = 0.0
    #: order stamp when the client first saw it (None: first seen in this listing)
    seen_seq: int | None = None
    #: the row's ``conversationUUID`` (None: none)
    conversation: str | None = None


@attrs.frozen
class Anchor:
    """An answered submit whose run's ``createdAt`` is known: it pins the server's clock."""

    sent_at: float
    answered_at: float
    created_at: float
    resolution: float = 0.0


@attrs.frozen
class Verdict:
    """What one lost submit created: ``run``, nothing (``created_nothing``), or ambiguous."""

    key: str
    run: str | None = None
    created_nothing: bool = False
    candidates: tuple[str, ...] = ()

    @property
    def ambiguous(self) -> bool:
        return self.run is None and not self.created_nothing


@attrs.frozen
class Matching:
    verdicts: dict[str, Verdict]
    #: runs no submit may have created (late creations, or someone else's): to report
    unattributed: tuple[str, ...]


@attrs.frozen
class Claim:
    """A listed run the client already knows whose it is."""

    #: order stamp when the client first saw it (None: unknown)
    seen_seq: int | None = None
    #: (sent, answered) on our clock, when it came in its own submit's answer
    flight: tuple[float, float] | None = None


@attrs.frozen
class Listing:
    """A recover listing of one model, read for :func:`attribute`."""

    unclaimed: list[Listed]
    claimed: list[Listed]
    anchors: list[Anchor]
    #: every row carried a readable ``createdAt``
    dated: bool


def read_listing(
    runs: Iterable[RecoveredRun],
    model: str,
    claims: Mapping[str, Claim],
    seen: Mapping[str, int],
) -> Listing:
    """Split ``model``'s rows into unclaimed candidates (with when each was ``seen``), claimed
    runs, and the anchors that the claimed runs' flights make."""
    unclaimed: list[Listed] = []
    claimed: list[Listed] = []
    anchors: list[Anchor] = []
    dated = True
    for run in runs:
        if run.model not in (None, model):
            continue
        created, resolution = parse_created_at(run.created_at)
        dated = dated and created is not None
        claim = claims.get(run.run_id)
        if claim is None:
            unclaimed.append(
                Listed(run.run_id, created, resolution, seen.get(run.run_id), run.conversation_uuid)
            )
            continue
        claimed.append(Listed(run.run_id, created, resolution, claim.seen_seq))
        if claim.flight is not None and created is not None:
            anchors.append(Anchor(*claim.flight, created, resolution))
    return Listing(unclaimed, claimed, anchors, dated)


def parse_created_at(text: object) -> tuple[float | None, float]:
    """``createdAt`` as (epoch seconds, resolution); (None, 0) when absent or unreadable.

    A stamp without a time zone is unreadable: its offset from UTC is unknown.
    """
    if not isinstance(text, str) or not text:
        return None, 0.0
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None, 0.0
    if stamp.tzinfo is None:
        return None, 0.0
    _, dot, rest = text.partition(".")
    digits = 0
    if dot:
        for char in rest:
            if not char.isdigit():
                break
            digits += 1
    return stamp.timestamp(), 10.0**-digits


def offset_bounds(
    anchors: Iterable[Anchor], fallback: tuple[float, float] | None = None
) -> tuple[float, float] | None:
    """Bounds on (server clock - client clock) that every anchor agrees with.

    None when the anchors contradict each other (then ``createdAt`` cannot be trusted) or
    when there are none and no ``fallback``.
    """
    low, high = -math.inf, math.inf
    count = 0
    for anchor in anchors:
        count += 1
        low = max(low, anchor.created_at - anchor.answered_at)
        high = min(high, anchor.created_at + anchor.resolution - anchor.sent_at)
    if not count:
        return fallback
    if low > high:
        return None
    return low, high


def _may_own(
    attempt: Attempt,
    run: Listed,
    offset: tuple[float, float] | None,
    margin: float,
    tags: Collection[str] = (),
) -> bool:
    if run.run_id in attempt.exclude:
        return False
    if run.conversation in tags and attempt.conversation != run.conversation:
        return False
    if run.seen_seq is not None and run.seen_seq < attempt.sent_seq:
        return False
    if offset is None or run.created_at is None or attempt.sent_at is None:
        return True
    low, high = offset
    # The run's creation on our clock, with every uncertainty on the generous side.
    earliest = run.created_at - high - margin
    latest = run.created_at + run.resolution - low + margin
    ended = math.inf if attempt.ended_at is None else attempt.ended_at
    return latest >= attempt.sent_at and earliest <= ended


def attribute(
    lost: Sequence[Attempt],
    runs: Sequence[Listed],
    *,
    open_attempts: Sequence[Attempt] = (),
    offset: tuple[float, float] | None = None,
    margin: float = 0.0,
    listing_full: bool = False,
    reach: Sequence[Listed] = (),
) -> Matching:
    """Decide, for every lost submit, the run it created (see the module docstring).

    ``runs``: the unclaimed runs of the model that recover listed. ``open_attempts``: submits
    still waiting for their answer (they may own a run, they get no verdict).
    ``listing_full``: recover returned as many runs as asked for, so older runs may be
    missing: a lost submit is then said to have created nothing only if a listed run (of
    ``runs`` or ``reach``, the claimed runs of the listing) is certainly older than it.
    """
    attempts = [*lost, *open_attempts]
    tags = {attempt.conversation for attempt in attempts if attempt.conversation is not None}
    owners = {
        run.run_id: [
            i for i, attempt in enumerate(attempts) if _may_own(attempt, run, offset, margin, tags)
        ]
        for run in runs
    }
    unattributed = tuple(run_id for run_id, who in owners.items() if not who)
    todo = [run for run in runs if owners[run.run_id]]
    outcomes: list[set[str | None]] = [set() for _ in lost]
    shapes: set[tuple[tuple[str, tuple[str, ...]], ...]] = set()
    first: dict[int, str] = {}
    taken: dict[int, str] = {}
    count = 0

    def record() -> None:
        by_body: dict[str, list[str]] = {}
        for i, attempt in enumerate(lost):
            run_id = taken.get(i)
            outcomes[i].add(run_id)
            by_body.setdefault(attempt.body, []).append(run_id or "")
        shapes.add(tuple(sorted((body, tuple(sorted(ids))) for body, ids in by_body.items())))
        if not first:
            first.update(taken)

    def search(index: int) -> bool:
        nonlocal count
        if index == len(todo):
            count += 1
            record()
            return count < MAX_EXPLANATIONS
        for owner in owners[todo[index].run_id]:
            if owner in taken:
                continue
            taken[owner] = todo[index].run_id
            going = search(index + 1)
            del taken[owner]
            if not going:
                return False
        return True

    def settle(attempt: Attempt, run_id: str | None) -> Verdict:
        if run_id is not None:
            return Verdict(attempt.key, run=run_id)
        if listing_full and not any(
            _older(run, attempt, offset, margin) for run in (*runs, *reach)
        ):
            # Its run, if any, may be older than everything listed: nothing can be said.
            return Verdict(attempt.key)
        return Verdict(attempt.key, created_nothing=True)

    finished = search(0)
    verdicts: dict[str, Verdict] = {}
    if not finished or count == 0:
        # Too many explanations, or none (more runs than submits that may own them): nothing
        # is decided; each lost submit is ambiguous between the runs it may own.
        for i, attempt in enumerate(lost):
            may = tuple(run.run_id for run in todo if i in owners[run.run_id])
            verdicts[attempt.key] = (
                Verdict(attempt.key, candidates=may) if may else settle(attempt, None)
            )
        return Matching(verdicts, unattributed)
    if len(shapes) == 1:
        # Every explanation gives each body the same runs (they differ at most by swapping
        # submits with the same body, which are interchangeable): take the first one.
        for i, attempt in enumerate(lost):
            verdicts[attempt.key] = settle(attempt, first.get(i))
        return Matching(verdicts, unattributed)
    for i, attempt in enumerate(lost):
        seen = outcomes[i]
        if len(seen) == 1:
            (run_id,) = seen
            verdicts[attempt.key] = settle(attempt, run_id)
        else:
            may = tuple(run.run_id for run in todo if run.run_id in seen)
            verdicts[attempt.key] = Verdict(attempt.key, candidates=may)
    return Matching(verdicts, unattributed)


def _older(
    run: Listed, attempt: Attempt, offset: tuple[float, float] | None, margin: float
) -> bool:
    """Whether ``run`` certainly existed before ``attempt`` left."""
    if run.seen_seq is not None and run.seen_seq < attempt.sent_seq:
        return True
    if offset is None or run.created_at is None or attempt.sent_at is None:
        return False
    return run.created_at + run.resolution - offset[0] + margin < attempt.sent_at
