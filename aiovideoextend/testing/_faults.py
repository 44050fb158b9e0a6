"""Injected faults: what can go wrong between a client and NanoGPT, on demand."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, get_args

import attrs

if TYPE_CHECKING:
    import random
    from collections.abc import Iterator

FaultKind = Literal[
    "ambiguous",
    "bad_gateway_html",
    "late_create",
    "malformed_json",
    "missing_fields",
    "no_video_url",
    "rate_limit",
    "reset",
    "server_error",
    "slow",
    "unknown_status",
]
FAULT_KINDS: Final = frozenset(get_args(FaultKind))
SUBMIT_ROUTES: Final = frozenset({"extend", "generate"})
STATUS_ROUTES: Final = frozenset({"legacy_status", "status"})
#: Names that target several routes at once.
_ROUTE_GROUPS: Final[dict[str, frozenset[str]]] = {"submit": SUBMIT_ROUTES}
#: Every route a fault can target; "*" targets all of them (within what the kind applies to).
FAULT_ROUTES: Final = frozenset(
    {"*", "extend", "files", "generate", "legacy_status", "recover", "status", *_ROUTE_GROUPS}
)
#: Kinds that only make sense on some routes; a "*" fault of such a kind skips the others.
_KIND_ROUTES: Final[dict[str, frozenset[str]]] = {
    "ambiguous": SUBMIT_ROUTES,
    "late_create": SUBMIT_ROUTES,
    "unknown_status": STATUS_ROUTES,
    "no_video_url": STATUS_ROUTES,
}


def _check_kind(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {value!r}; expected one of {sorted(FAULT_KINDS)}")


def _check_route(_: object, __: attrs.Attribute[str], value: str) -> None:
    if value not in FAULT_ROUTES:
        raise ValueError(f"unknown route {value!r}; expected one of {sorted(FAULT_ROUTES)}")


@attrs.define
class Fault:
    """One injected fault.

    ``route`` is one route, ``"submit"`` (both submit routes) or ``"*"``. ``count`` limits it
    to the next N matching requests, ``rate`` makes it fire with that probability (seeded);
    with neither it fires on every matching request until removed.
    """

    route: str = attrs.field(validator=_check_route)
    kind: FaultKind = attrs.field(validator=_check_kind)
    count: int | None = None
    rate: float | None = None
    status: int | None = None
    delay: float | None = None
    #: How many times the fault has fired so far.
    fired: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        allowed = _KIND_ROUTES.get(self.kind)
        targets = _ROUTE_GROUPS.get(self.route, {self.route})
        if allowed is not None and self.route != "*" and not targets <= allowed:
            raise ValueError(f"a {self.kind!r} fault only applies to {sorted(allowed)}")
        # The emulator cannot know the client's timeout: a late creation needs it spelled out.
        if self.kind == "late_create" and not (self.delay is not None and self.delay > 0):
            raise ValueError("a 'late_create' fault needs a delay > 0 (real seconds)")

    def matches(self, route: str) -> bool:
        """Whether the fault targets ``route``."""
        if self.route != "*" and route not in _ROUTE_GROUPS.get(self.route, {self.route}):
            return False
        allowed = _KIND_ROUTES.get(self.kind)
        return allowed is None or route in allowed

    @property
    def exhausted(self) -> bool:
        """Whether a counted fault has used all its firings."""
        return self.count is not None and self.fired >= self.count


@attrs.define
class FaultSet:
    """The faults armed on one emulator, checked in the order they were added."""

    _rng: random.Random
    _faults: list[Fault] = attrs.field(factory=list, init=False)

    def add(self, fault: Fault) -> Fault:
        """Arm ``fault`` and return it (its ``fired`` counter shows how often it hit)."""
        self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        """Disarm ``fault``."""
        self._faults.remove(fault)

    def clear(self) -> None:
        """Disarm every fault."""
        self._faults.clear()

    def __iter__(self) -> Iterator[Fault]:
        return iter(self._faults)

    def __len__(self) -> int:
        return len(self._faults)

    def pick(self, route: str) -> Fault | None:
        """The first armed fault that fires for a request on ``route``, if any."""
        for fault in self._faults:
            if not fault.matches(route):
                continue
            if fault.rate is not None and self._rng.random() >= fault.rate:
                continue
            fault.fired += 1
            if fault.exhausted:
                self._faults.remove(fault)
            return fault
        return None
