"""The state of a batch as the command shows it: every line's state, the outcomes, money.

:class:`Tally` is what every display of :mod:`._progress` reads; the summary's words are here
too, so that the plain and rich displays say the same thing.
"""

from __future__ import annotations

import collections
import re
import time
from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from aiovideoextend.batch import BatchOutcome, BatchUpdate

__all__ = ["LIVE", "SUBMITTED", "Tally", "kind_of", "lines_text", "summary_lines", "what_of"]

#: The live states in display order, with their labels.
LIVE: Final = {
    "queued": "queued",
    "waiting": "waiting for rate limit",
    "submitting": "submitting",
    "pending": "submitted",
    "processing": "processing",
    "downloading": "downloading",
}
SUBMITTED: Final = frozenset({"pending", "processing", "downloading"})


@attrs.define
class Tally:
    """The state of every request, the finished outcomes, money."""

    total: int = 0
    state: dict[int, str] = attrs.field(factory=dict)
    outcomes: list[BatchOutcome] = attrs.field(factory=list)
    balance: float | None = None
    started: float = attrs.field(factory=time.monotonic)
    #: set when the batch was stopped (Ctrl-C) before every line ended
    interrupted: bool = False
    #: from the journal after the run: jobs submitted and not ended (still running on the
    #: server as far as anyone saw), what they were precharged, and submits whose answer was
    #: never recorded (the next run reconciles them)
    running: int | None = None
    precharged: float = 0.0
    unanswered: int = 0
    #: lines with no outcome and nothing in the journal (never submitted)
    not_started: int | None = None

    def update(self, update: BatchUpdate) -> None:
        self.state[update.index] = update.state
        if update.balance is not None:
            self.balance = update.balance

    def outcome(self, outcome: BatchOutcome) -> None:
        self.state[outcome.index] = outcome.status
        self.outcomes.append(outcome)

    def counts(self) -> collections.Counter[str]:
        return collections.Counter(self.state.values())

    @property
    def done(self) -> int:
        return len(self.outcomes)

    @property
    def cost(self) -> float:
        """The final cost of the completed lines."""
        return sum(o.cost or 0.0 for o in self.outcomes if o.status == "completed")

    def not_completed(self) -> list[str]:
        """One row per status for the lines that did not complete (by line number; the reason
        too when all of them share it), for the summary."""
        by_status: dict[str, list[BatchOutcome]] = {}
        for o in sorted(self.outcomes, key=lambda o: o.index):
            if o.status != "completed" or o.error:
                by_status.setdefault(o.status, []).append(o)
        rows = []
        for status, group in by_status.items():
            errors = {kind_of(o)[1] for o in group}
            shared = errors.pop() if len(errors) == 1 and len(group) > 1 else None
            what, reason = what_of(status, shared)
            if status == "skipped" and any(
                not (o.error or "").startswith("not submitted: ") for o in group
            ):
                what = status
            count = f"{len(group)} line{'s' if len(group) > 1 else ''}"
            rows.append(f"{count} {what} ({lines_text(group)})" + (f": {reason}" if reason else ""))
        return rows

    def counts_line(self) -> str:
        counts = self.counts()
        parts = [f"{label} {counts[state]}" for state, label in LIVE.items() if counts[state]]
        finals = sorted((s, n) for s, n in counts.items() if s not in LIVE)
        parts += [f"{state} {count}" for state, count in finals]
        return " · ".join(parts) or "starting"

    def summary(self) -> dict[str, Any]:
        by_status = collections.Counter(o.status for o in self.outcomes)
        running = self.running
        if running is None:
            running = sum(1 for state in self.state.values() if state in SUBMITTED)
        return {
            "total": self.total,
            "interrupted": self.interrupted,
            "counts": dict(sorted(by_status.items())),
            #: the final cost of the completed lines
            "cost": round(self.cost, 6),
            #: jobs still running on the server, and what they were precharged
            "running": running,
            "precharged": round(self.precharged, 6),
            "unanswered": self.unanswered,
            "not_started": (
                max(0, self.total - self.done - running - self.unanswered)
                if self.not_started is None
                else self.not_started
            ),
            #: as the server last reported it with a submit (after precharges, before refunds)
            "balance": self.balance,
            "failures": [
                {"line": o.line, "status": o.status, "run_id": o.run_id, "error": o.error}
                for o in sorted(self.outcomes, key=lambda o: o.index)
                if o.status != "completed" or o.error
            ],
        }


def lines_text(outcomes: list[BatchOutcome]) -> str:
    """``line 4``, ``lines 23-150``, ``lines 2, 5, 9-12``."""
    numbers = [o.line if o.line is not None else o.index + 1 for o in outcomes]
    spans: list[list[int]] = []
    for number in sorted(numbers):
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)
    return ("line " if len(numbers) == 1 else "lines ") + text


_REQUEST_ID: Final = re.compile(r"\s*request_id=\S+")


def kind_of(outcome: BatchOutcome) -> tuple[str, str | None]:
    """What makes two outcomes the same for a person: the status and the reason, less the
    server's per-request id."""
    error = outcome.error
    return outcome.status, None if error is None else _REQUEST_ID.sub("", error)


def what_of(status: str, error: str | None) -> tuple[str, str | None]:
    """How a status reads in a sentence, and the reason without its repeated part."""
    if status == "skipped" and error is not None and error.startswith("not submitted: "):
        return "not submitted", error.removeprefix("not submitted: ")
    if status == "completed":
        return "completed with an error", error
    if status == "insufficient_balance":
        return "refused for insufficient balance", error
    return status, error


def summary_lines(data: dict[str, Any]) -> list[str]:
    """The human summary: what ended how, what is final, what is still running, the balance."""
    counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items())
    head = "interrupted" if data["interrupted"] else "done"
    total = data["total"]
    if counts:
        text = f"{head}: {counts} (of {total} lines)"
    else:
        text = f"{head}: no line ended yet (of {total} lines)"
    completed = data["counts"].get("completed", 0)
    if completed:
        text += f"; final cost ${data['cost']:.2f}"
    out = [text]
    if data["running"]:
        out.append(
            f"still running on the server: {data['running']} jobs, "
            f"${data['precharged']:.2f} precharged (the final cost is known when they end; "
            "failed jobs are refunded). Rerun the batch to follow them"
        )
    if data["unanswered"]:
        out.append(
            f"{data['unanswered']} submits without a recorded answer: the next run checks "
            "whether they created runs before it submits anything"
        )
    if data["interrupted"] and data["not_started"]:
        out.append(f"not submitted yet: {data['not_started']} lines")
    if data["balance"] is not None:
        out.append(
            f"remaining balance ${data['balance']:.2f}, as last reported by the server "
            "(after precharges, before refunds)"
        )
    return out
