"""The reconciler's rules as pure functions: tables of cases, no event loop, no server."""

from __future__ import annotations

import math

import pytest

from aiovideoextend._attribution import (
    MAX_EXPLANATIONS,
    Anchor,
    Attempt,
    Claim,
    Listed,
    Verdict,
    attribute,
    offset_bounds,
    parse_created_at,
    read_listing,
)
from aiovideoextend.models import RecoveredRun

T = 1_800_000_000.0  # a client-clock instant; the server's clock is T + offset
ZERO = (0.0, 0.0)


def lost(  # noqa: PLR0917  (the tables read best positionally)
    key: str,
    seq: int,
    sent: float | None = None,
    ended: float | None = None,
    body: str = "",
    exclude=(),
    tag: str | None = None,
):
    return Attempt(key, seq, sent, ended, body or key, frozenset(exclude), tag)


def run(
    run_id: str,
    created: float | None = None,
    seen: int | None = None,
    resolution: float = 0.001,
    tag: str | None = None,
):
    return Listed(run_id, created, resolution if created is not None else 0.0, seen, tag)


ADOPT, NOTHING = "adopt", "nothing"


def summary(verdict: Verdict) -> tuple[str, object]:
    if verdict.run is not None:
        return ADOPT, verdict.run
    if verdict.created_nothing:
        return NOTHING, None
    return "ambiguous", verdict.candidates


CASES = [
    pytest.param(
        [lost("a", 5)],
        [run("R1")],
        {},
        {"a": (ADOPT, "R1")},
        (),
        id="one lost, one new run: adopted",
    ),
    pytest.param(
        [lost("a", 5)],
        [],
        {},
        {"a": (NOTHING, None)},
        (),
        id="one lost, no run: created nothing",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R0", seen=3)],
        {},
        {"a": (NOTHING, None)},
        ("R0",),
        id="a run seen before the submit left is never its own, and is reported",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R1", seen=6)],
        {},
        {"a": (ADOPT, "R1")},
        (),
        id="first seen after the submit left: may be its own",
    ),
    pytest.param(
        [lost("a", 5), lost("b", 6)],
        [run("R1"), run("R2")],
        {},
        {"a": ("ambiguous", ("R1", "R2")), "b": ("ambiguous", ("R1", "R2"))},
        (),
        id="two lost, distinct bodies, no clock: ambiguous",
    ),
    pytest.param(
        [lost("a", 5, body="x"), lost("b", 6, body="x")],
        [run("R1"), run("R2")],
        {},
        {"a": (ADOPT, "R1"), "b": (ADOPT, "R2")},
        (),
        id="two lost, same body: interchangeable, each gets one",
    ),
    pytest.param(
        [lost("a", 5, body="x"), lost("b", 6, body="x")],
        [run("R1")],
        {},
        {"a": (ADOPT, "R1"), "b": (NOTHING, None)},
        (),
        id="two lost, same body, one run: one adopts, the other is sent again",
    ),
    pytest.param(
        [lost("a", 5), lost("b", 6)],
        [run("R1")],
        {},
        {"a": ("ambiguous", ("R1",)), "b": ("ambiguous", ("R1",))},
        (),
        id="two lost, distinct bodies, one run: nobody knows whose",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010), lost("b", 6, T + 0.001, T + 0.020)],
        [run("Ra", T + 0.004), run("Rb", T + 0.015)],
        {"offset": ZERO},
        {"a": (ADOPT, "Ra"), "b": (ADOPT, "Rb")},
        (),
        id="createdAt after one answer was lost separates overlapping flights",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010), lost("b", 6, T + 0.001, T + 0.020)],
        [run("Ra", T + 0.004), run("Rb", T + 0.008)],
        {"offset": ZERO},
        {"a": ("ambiguous", ("Ra", "Rb")), "b": ("ambiguous", ("Ra", "Rb"))},
        (),
        id="both runs inside both flights: ambiguous",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010), lost("b", 6, T + 0.001, T + 0.020)],
        [run("Ra", T + 0.004), run("Rb", T + 0.008)],
        {"offset": ZERO, "margin": 0.0},
        {"a": ("ambiguous", ("Ra", "Rb")), "b": ("ambiguous", ("Ra", "Rb"))},
        (),
        id="no margin does not make a guess",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010), lost("b", 6, T + 0.001, T + 0.020)],
        [run("Ra", T + 0.004), run("Rb", T + 0.015)],
        {"offset": ZERO, "margin": 0.006},
        {"a": ("ambiguous", ("Ra", "Rb")), "b": ("ambiguous", ("Ra", "Rb"))},
        (),
        id="a wider margin keeps the flights overlapping",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010)],
        [run("Rlate", T + 5.0)],
        {"offset": ZERO},
        {"a": (NOTHING, None)},
        ("Rlate",),
        id="created after the client gave up: not the submit's, and reported",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010)],
        [run("Rold", T - 60)],
        {"offset": ZERO},
        {"a": (NOTHING, None)},
        ("Rold",),
        id="an older run of the model (never seen) is ruled out by its createdAt",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010)],
        [run("Rold", T - 60)],
        {},
        {"a": (ADOPT, "Rold")},
        (),
        id="without an offset createdAt rules nothing out (keep a snapshot)",
    ),
    pytest.param(
        [lost("a", 5, T, T + 0.010)],
        [run("R", T + 2.0)],
        {"offset": (1.95, 2.0)},
        {"a": (ADOPT, "R")},
        (),
        id="the server clock runs 2 s ahead: the offset moves createdAt onto ours",
    ),
    pytest.param(
        [lost("a", 5, T + 0.2, T + 0.3)],
        [run("R", T, resolution=1.0)],
        {"offset": ZERO},
        {"a": (ADOPT, "R")},
        (),
        id="a coarse createdAt (whole seconds) covers its whole second",
    ),
    pytest.param(
        [lost("a", 5, exclude=["Rsrc"])],
        [run("Rsrc"), run("R1")],
        {},
        {"a": (ADOPT, "R1")},
        ("Rsrc",),
        id="the run a Midjourney extend extends is never its result",
    ),
    pytest.param(
        [lost("a", 5), lost("b", 9)],
        [run("R1", seen=7), run("R2")],
        {},
        {"a": (ADOPT, "R1"), "b": (ADOPT, "R2")},
        (),
        id="R1 was seen before b left: only a may own it, so b owns R2",
    ),
    pytest.param(
        [lost("b", 9)],
        [run("RA", seen=7)],
        {},
        {"b": (NOTHING, None)},
        ("RA",),
        id="the traced misattribution: a run named earlier never goes to a later submit",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R1")],
        {"open_attempts": [Attempt("o", 4)]},
        {"a": ("ambiguous", ("R1",))},
        (),
        id="a submit still on its way may own the run: not decided",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R1"), run("R2")],
        {"open_attempts": [Attempt("o", 4)]},
        {"a": ("ambiguous", ("R1", "R2"))},
        (),
        id="two runs, the lost and the open submit: still not decided",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R1", seen=8)],
        {"open_attempts": [Attempt("o", 9)]},
        {"a": (ADOPT, "R1")},
        (),
        id="an open submit sent after the run was seen cannot own it",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R1"), run("R2")],
        {},
        {"a": ("ambiguous", ("R1", "R2"))},
        (),
        id="more runs than submits: no explanation, nothing adopted",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R9", seen=9)],
        {"listing_full": True},
        {"a": (ADOPT, "R9")},
        (),
        id="a full listing: a run that may be ours is ours",
    ),
    pytest.param(
        [lost("a", 5)],
        [],
        {"listing_full": True},
        {"a": ("ambiguous", ())},
        (),
        id="a full listing with nothing older than the submit: unknown",
    ),
    pytest.param(
        [lost("a", 5)],
        [run("R0", seen=2)],
        {"listing_full": True},
        {"a": (NOTHING, None)},
        ("R0",),
        id="a full listing that reaches back before the submit: created nothing",
    ),
]


CASES += [
    pytest.param(
        [lost("a", 5)],
        [],
        {"listing_full": True, "reach": [run("Rclaimed", seen=3)]},
        {"a": (NOTHING, None)},
        (),
        id="a full listing reaching back through a claimed run: created nothing",
    ),
    pytest.param(
        [lost("a", 5)],
        [],
        {"listing_full": True, "reach": [run("Rclaimed", seen=7)]},
        {"a": ("ambiguous", ())},
        (),
        id="a full listing whose claimed runs are all newer: unknown",
    ),
]


# Rule 4: conversationUUID tags. Two lost submits that flew together, no createdAt.
CASES += [
    pytest.param(
        [lost("a", 5, tag="ta"), lost("b", 6, tag="tb")],
        [run("Rb", tag="tb"), run("Ra", tag="ta")],
        {},
        {"a": (ADOPT, "Ra"), "b": (ADOPT, "Rb")},
        (),
        id="tagged runs go to the submits that sent their tags",
    ),
    pytest.param(
        [lost("a", 5, tag="ta"), lost("b", 6, tag="tb")],
        [run("R1"), run("R2")],
        {},
        {"a": ("ambiguous", ("R1", "R2")), "b": ("ambiguous", ("R1", "R2"))},
        (),
        id="a server that drops tags: as without them",
    ),
    pytest.param(
        [lost("a", 5, tag="ta"), lost("b", 6, tag="tb")],
        [run("R1", tag="server-made"), run("R2", tag="server-made-2")],
        {},
        {"a": ("ambiguous", ("R1", "R2")), "b": ("ambiguous", ("R1", "R2"))},
        (),
        id="tags no submit sent rule nothing out",
    ),
    pytest.param(
        [lost("a", 5, tag="ta"), lost("b", 6)],
        [run("R1", tag="ta"), run("R2")],
        {},
        {"a": (ADOPT, "R1"), "b": (ADOPT, "R2")},
        (),
        id="an untagged submit cannot own a run tagged by another",
    ),
    pytest.param(
        [lost("a", 5, tag="conv"), lost("b", 6, tag="conv")],
        [run("R1", tag="conv"), run("R2", tag="conv")],
        {},
        {"a": ("ambiguous", ("R1", "R2")), "b": ("ambiguous", ("R1", "R2"))},
        (),
        id="one conversation shared by both: as without tags",
    ),
    pytest.param(
        [lost("a", 5, tag="ta")],
        [run("R1", tag="tb")],
        {"open_attempts": [lost("open", 6, tag="tb")]},
        {"a": (NOTHING, None)},
        (),
        id="a run tagged by a submit still in flight is not a lost one's",
    ),
]


@pytest.mark.parametrize(("lost_", "runs", "options", "expected", "unattributed"), CASES)
def test_attribute(lost_, runs, options, expected, unattributed):
    """Each lost submit gets its run only when no other explanation is possible."""
    matching = attribute(lost_, runs, **options)
    assert {key: summary(v) for key, v in matching.verdicts.items()} == expected
    assert matching.unattributed == unattributed


def test_too_many_explanations_decide_nothing():
    """Past the search cap every lost submit with a candidate is ambiguous."""
    many = [lost(f"a{i}", i) for i in range(9)]
    runs = [run(f"R{i}") for i in range(9)]
    matching = attribute(many, runs)  # 9! explanations
    assert math.factorial(9) > MAX_EXPLANATIONS
    assert all(v.ambiguous and len(v.candidates) == 9 for v in matching.verdicts.values())


def test_every_created_run_is_named():
    """No paid run is orphaned: each listed run is adopted, a candidate, or unattributed."""
    cases = [param.values for param in CASES]
    for lost_, runs, options, _expected, _unattributed in cases:
        matching = attribute(lost_, runs, **options)
        named = set(matching.unattributed)
        for verdict in matching.verdicts.values():
            named.update(verdict.candidates)
            if verdict.run:
                named.add(verdict.run)
        owned_by_open = bool(options.get("open_attempts"))
        if not owned_by_open:
            assert named == {r.run_id for r in runs}


@pytest.mark.parametrize(
    ("anchors", "expected"),
    [
        ([], None),
        ([Anchor(T, T + 0.1, T + 2.05)], (1.95, 2.05)),
        ([Anchor(T, T + 0.1, T + 2.05), Anchor(T + 1, T + 1.02, T + 3.01)], (1.99, 2.01)),
        ([Anchor(T, T + 0.1, T + 5.0), Anchor(T + 1, T + 1.1, T + 1.0)], None),
        ([Anchor(T, T + 0.5, T, resolution=1.0)], (-0.5, 1.0)),
    ],
)
def test_offset_bounds(anchors, expected):
    """Answered submits bound the server clock's offset; contradicting ones void createdAt."""
    bounds = offset_bounds(anchors)
    if expected is None:
        assert bounds is None
    else:
        assert bounds == pytest.approx(expected)


def test_offset_bounds_fallback():
    """Without anchors the fallback (Date headers and a stated skew) is used."""
    assert offset_bounds([], (-5.0, 5.0)) == (-5.0, 5.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-05T22:41:58.123Z", (1770331318.123, 0.001)),
        ("2026-02-05T22:41:58Z", (1770331318.0, 1.0)),
        ("2026-02-05T22:41:58.5+00:00", (1770331318.5, 0.1)),
        ("2026-02-05T22:41:58", (None, 0.0)),
        ("yesterday", (None, 0.0)),
        (None, (None, 0.0)),
        (12, (None, 0.0)),
        ("", (None, 0.0)),
    ],
)
def test_parse_created_at(text, expected):
    """createdAt with its resolution; no time zone or no date means no createdAt."""
    stamp, resolution = parse_created_at(text)
    if expected[0] is None:
        assert stamp is None
    else:
        assert stamp == pytest.approx(expected[0])
    assert resolution == pytest.approx(expected[1])


def test_read_listing_splits_claimed_unclaimed_and_anchors():
    """Rows of another model are dropped; a claimed run with a flight is an anchor; a row
    without createdAt makes the listing undated."""
    rows = [
        RecoveredRun("R1", "m", created_at="2026-02-05T22:41:58.100Z"),
        RecoveredRun("R2", "m", created_at="2026-02-05T22:41:58.200Z"),
        RecoveredRun("R3", None),
        RecoveredRun("X", "other", created_at="2026-02-05T22:41:58.300Z"),
    ]
    claims = {"R1": Claim(4, (T, T + 0.1)), "R3": Claim(6)}
    listing = read_listing(rows, "m", claims, {"R2": 5})
    assert [r.run_id for r in listing.unclaimed] == ["R2"]
    assert listing.unclaimed[0].seen_seq == 5
    assert [(r.run_id, r.seen_seq) for r in listing.claimed] == [("R1", 4), ("R3", 6)]
    assert listing.anchors == [Anchor(T, T + 0.1, 1770331318.1, 0.001)]
    assert not listing.dated
    assert read_listing(rows[:2], "m", {}, {}).dated
