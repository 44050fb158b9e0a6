"""The batch's spend guard as pure bookkeeping: tables of cases, no server.

The end-to-end tests (tests/test_batch.py, tests/test_cli_money.py) show a batch stopping at
max_cost or min_balance against the emulator; here each rule of the guard is one row.
"""

from __future__ import annotations

import pytest

from aiovideoextend._journal_api import JournalEntry
from aiovideoextend.batch._guard import SpendGuard

MAX_COST = "max cost"
FLOOR = "floor"


def record(model: str, precharge: float | None, status: str | None = None) -> JournalEntry:
    """A journal entry of an earlier run: precharged, maybe finished with ``status``."""
    outcome = None if status is None else {"status": status}
    state = "submitted" if status is None else "finished"
    return JournalEntry(
        f"{model}:{precharge}:{status}",
        "k",
        model,
        0,
        state,
        1,
        0.0,
        "vid",
        2,
        None,
        precharge,
        outcome,
    )


def verdict(reason: str | None) -> str | None:
    if reason is None:
        return None
    return MAX_COST if reason.startswith("max cost") else FLOOR


CHECKS = [
    # (id, guard, model to submit, verdict)
    ("no limits", SpendGuard(), "a", None),
    ("no limits, much spent", SpendGuard(spent=1e6, balance=-5.0), "a", None),
    ("under max cost", SpendGuard(max_cost=3.0, spent=2.0, estimates={"a": 0.5}), "a", None),
    ("exactly at max cost", SpendGuard(max_cost=3.0, spent=2.5, estimates={"a": 0.5}), "a", None),
    ("past max cost", SpendGuard(max_cost=3.0, spent=2.6, estimates={"a": 0.5}), "a", MAX_COST),
    (
        "reserved submits count",
        SpendGuard(max_cost=3.0, spent=2.0, reserved=0.6, estimates={"a": 0.5}),
        "a",
        MAX_COST,
    ),
    (
        "an unseen model costs as much as the dearest seen",
        SpendGuard(max_cost=3.0, spent=2.0, estimates={"a": 0.5, "b": 1.5}),
        "c",
        MAX_COST,
    ),
    (
        "a seen model costs what it cost",
        SpendGuard(max_cost=3.0, spent=2.0, estimates={"a": 0.5, "b": 1.5}),
        "a",
        None,
    ),
    ("nothing seen yet: the first submit passes", SpendGuard(max_cost=0.0), "a", None),
    (
        "max cost 0 once a price is known",
        SpendGuard(max_cost=0.0, estimates={"a": 0.5}),
        "a",
        MAX_COST,
    ),
    ("balance unknown: the floor cannot apply", SpendGuard(min_balance=2.0), "a", None),
    (
        "balance over the floor",
        SpendGuard(min_balance=2.0, balance=3.0, estimates={"a": 0.5}),
        "a",
        None,
    ),
    (
        "exactly at the floor after the submit",
        SpendGuard(min_balance=2.0, balance=2.5, estimates={"a": 0.5}),
        "a",
        None,
    ),
    (
        "under the floor after the submit",
        SpendGuard(min_balance=2.0, balance=2.4, estimates={"a": 0.5}),
        "a",
        FLOOR,
    ),
    (
        "max cost is looked at first",
        SpendGuard(max_cost=1.0, spent=1.0, min_balance=2.0, balance=0.0, estimates={"a": 0.5}),
        "a",
        MAX_COST,
    ),
]


@pytest.mark.parametrize(
    ("guard", "model", "expected"), [c[1:] for c in CHECKS], ids=[c[0] for c in CHECKS]
)
def test_check(guard: SpendGuard, model: str, expected: str | None) -> None:
    assert verdict(guard.check(model)) == expected


def test_the_reasons_name_the_limits() -> None:
    guard = SpendGuard(max_cost=3.0, spent=2.75, estimates={"a": 0.5})
    assert guard.check("a") == (
        "max cost $3 reached: this batch has precharged $2.75, its earlier runs included"
    )
    floor = SpendGuard(min_balance=2.0, balance=2.25, estimates={"a": 0.5})
    assert floor.check("a") == "balance 2.25 is at the 2 floor"


def test_a_no_is_kept_and_a_402_stops_too() -> None:
    """Once the guard says no, a refund does not start the batch again; the server's 402 stops
    it whatever the figures say."""
    guard = SpendGuard(max_cost=1.0, spent=1.0, estimates={"a": 0.5})
    reason = guard.check("a")
    assert reason is not None
    guard.refund(1.0)
    assert guard.spent == 0.0
    assert guard.check("a") == reason
    other = SpendGuard()
    other.stop("insufficient balance")
    assert other.check("a") == "insufficient balance"
    assert other.stopped == "insufficient balance"


RESUMES = [
    # (id, earlier runs' journal entries, spent, estimates)
    ("empty journal", [], 0.0, {}),
    ("precharges count", [record("a", 0.5), record("a", 0.5, "completed")], 1.0, {"a": 0.5}),
    (
        "failed and cancelled are refunded",
        [record("a", 0.5, "failed"), record("a", 0.5, "cancelled")],
        0.0,
        {"a": 0.5},
    ),
    (
        "ambiguous and unfinished count",
        [record("a", 0.5, "ambiguous"), record("a", 0.5, "unfinished")],
        1.0,
        {"a": 0.5},
    ),
    ("no precharge: nothing known", [record("a", None), record("a", None, "completed")], 0.0, {}),
    (
        "the dearest precharge is the estimate",
        [record("a", 0.5), record("a", 0.75), record("b", 2.0)],
        3.25,
        {"a": 0.75, "b": 2.0},
    ),
]


@pytest.mark.parametrize(
    ("records", "spent", "estimates"), [c[1:] for c in RESUMES], ids=[c[0] for c in RESUMES]
)
def test_resume(records: list[JournalEntry], spent: float, estimates: dict[str, float]) -> None:
    """A rerun starts from what its journal's earlier runs were precharged (no fresh budget)."""
    guard = SpendGuard(max_cost=10.0)
    guard.resume(records)
    assert (guard.spent, guard.estimates) == (spent, estimates)


CHARGES = [
    # (id, answers: (model, precharge, balance), refunds, spent, estimates, balance)
    ("nothing", [], [], 0.0, {}, None),
    ("a precharge and a balance", [("a", 0.5, 9.5)], [], 0.5, {"a": 0.5}, 9.5),
    (
        "the last precharge is the estimate",
        [("a", 0.5, 9.5), ("a", 0.25, 9.25)],
        [],
        0.75,
        {"a": 0.25},
        9.25,
    ),
    (
        "an answer without figures keeps them",
        [("a", 0.5, 9.5), ("a", None, None)],
        [],
        0.5,
        {"a": 0.5},
        9.5,
    ),
    (
        "a refund takes its precharge off",
        [("a", 0.5, 9.5), ("a", 0.5, 9.0)],
        [0.5],
        0.5,
        {"a": 0.5},
        9.0,
    ),
    (
        "a refund of an unknown precharge is nothing",
        [("a", 0.5, 9.5)],
        [None],
        0.5,
        {"a": 0.5},
        9.5,
    ),
]


@pytest.mark.parametrize(
    ("answers", "refunds", "spent", "estimates", "balance"),
    [c[1:] for c in CHARGES],
    ids=[c[0] for c in CHARGES],
)
def test_charges_and_refunds(answers, refunds, spent, estimates, balance) -> None:
    guard = SpendGuard()
    for model, precharge, reported in answers:
        guard.charged(model, precharge, reported)
    for precharge in refunds:
        guard.refund(precharge)
    assert (guard.spent, guard.estimates, guard.balance) == (spent, estimates, balance)


def test_a_submit_on_its_way_is_reserved_until_it_ends() -> None:
    guard = SpendGuard(max_cost=1.0, estimates={"a": 0.75})
    assert guard.check("a") is None
    with guard.reserving("a"):
        assert guard.reserved == 0.75
        assert guard._limit("a") is not None  # a second one would pass max_cost
    assert guard.reserved == 0.0
    with pytest.raises(RuntimeError), guard.reserving("a"):
        raise RuntimeError
    assert guard.reserved == 0.0
    with guard.reserving("unseen"):
        assert guard.reserved == 0.0


@pytest.mark.parametrize(
    ("max_cost", "min_balance", "active"),
    [(None, None, False), (0.0, None, True), (None, 0.0, True), (5.0, 1.0, True)],
)
async def test_checks_and_submits_go_one_at_a_time_only_with_a_limit(
    max_cost, min_balance, active
) -> None:
    guard = SpendGuard(max_cost=max_cost, min_balance=min_balance)
    assert guard.active is active
    async with guard.turn():
        assert guard._lock.locked() is active
