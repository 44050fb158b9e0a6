"""What the ``aiovideoextend`` command shows while a batch runs.

Three displays share one :class:`Tally`: rich progress bars on a terminal, plain log lines
otherwise, and JSON lines with ``--json``. Progress goes to stderr; the summary (or the JSON)
to stdout, so ``aiovideoextend batch jobs.jsonl > summary.txt`` still shows the bars.
"""

from __future__ import annotations

import collections
import json
import re
import sys
import time
from typing import TYPE_CHECKING, Any, Final, TextIO

import attrs

from .models import Event, EventKind

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.progress import Progress, TaskID

    from .batch import BatchOutcome, BatchUpdate

__all__ = ["Display", "JsonDisplay", "PlainDisplay", "RichDisplay", "Tally", "make_display"]

#: The live states in display order, with their labels.
_LIVE: Final = {
    "queued": "queued",
    "waiting": "waiting for rate limit",
    "submitting": "submitting",
    "pending": "submitted",
    "processing": "processing",
    "downloading": "downloading",
}
_SUBMITTED: Final = frozenset({"pending", "processing", "downloading"})


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
            errors = {_kind(o)[1] for o in group}
            shared = errors.pop() if len(errors) == 1 and len(group) > 1 else None
            what, reason = _what(status, shared)
            if status == "skipped" and any(
                not (o.error or "").startswith("not submitted: ") for o in group
            ):
                what = status
            count = f"{len(group)} line{'s' if len(group) > 1 else ''}"
            rows.append(f"{count} {what} ({_lines(group)})" + (f": {reason}" if reason else ""))
        return rows

    def counts_line(self) -> str:
        counts = self.counts()
        parts = [f"{label} {counts[state]}" for state, label in _LIVE.items() if counts[state]]
        finals = sorted((s, n) for s, n in counts.items() if s not in _LIVE)
        parts += [f"{state} {count}" for state, count in finals]
        return " · ".join(parts) or "starting"

    def summary(self) -> dict[str, Any]:
        by_status = collections.Counter(o.status for o in self.outcomes)
        running = self.running
        if running is None:
            running = sum(1 for state in self.state.values() if state in _SUBMITTED)
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


class Display:
    """The interface; the base class shows nothing."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self._held: list[BatchOutcome] = []
        self._held_done = 0

    def start(self) -> None: ...

    def update(self, update: BatchUpdate) -> None:
        self.tally.update(update)

    def event(self, event: Event) -> None: ...

    def outcome(self, outcome: BatchOutcome) -> None:
        self.tally.outcome(outcome)

    def _row(self, text: str) -> None:
        """Show one outcome row (or a group's) as the batch runs."""

    def _show(self, outcome: BatchOutcome) -> None:
        """Show an outcome as it ends, once. Identical ones without a run in a row (a stopped
        batch skips every line left) show the first, then one row for the rest."""
        held = self._held
        if held and _kind(held[0]) == _kind(outcome):
            held.append(outcome)
            self._held_done = self.tally.done
            return
        self._flush()
        self._row(f"{_describe(outcome)}  [{self.tally.done}/{self.tally.total}]")
        if outcome.run_id is None and not outcome.candidates and outcome.status != "completed":
            self._held = [outcome]

    def _flush(self) -> None:
        held, self._held = self._held[1:], []
        if held:
            what = _what(*_kind(held[0]))[0]
            count = f"{len(held)} more line{'s' if len(held) > 1 else ''}"
            text = f"{count} {what} for the same reason ({_lines(held)})"
            self._row(f"{text}  [{self._held_done}/{self.tally.total}]")

    def stop(self) -> None: ...

    def summary(self) -> None: ...

    def message(self, text: str, **data: Any) -> None: ...


def _lines(outcomes: list[BatchOutcome]) -> str:
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


def _kind(outcome: BatchOutcome) -> tuple[str, str | None]:
    """What makes two outcomes the same for a person: the status and the reason, less the
    server's per-request id."""
    error = outcome.error
    return outcome.status, None if error is None else _REQUEST_ID.sub("", error)


def _what(status: str, error: str | None) -> tuple[str, str | None]:
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


def _describe(outcome: BatchOutcome) -> str:
    where = f"line {outcome.line}" if outcome.line is not None else f"#{outcome.index}"
    text = f"{where}: {outcome.status}"
    if outcome.run_id:
        text += f" {outcome.run_id}"
    if outcome.status == "completed" and outcome.cost is not None:
        text += f" ${outcome.cost:.2f}"
    if outcome.path:
        text += f" -> {outcome.path}"
    if outcome.error:
        text += f" ({outcome.error})"
    if outcome.resumed:
        text += " [from journal]"
    return text


class PlainDisplay(Display):
    """Log lines for logs and pipes: every outcome, submits, rate-limit waits."""

    def __init__(self, tally: Tally, stream: TextIO | None = None) -> None:
        super().__init__(tally)
        self.stream = stream or sys.stderr
        self._last_wait: str | None = None

    def _log(self, text: str) -> None:
        elapsed = time.monotonic() - self.tally.started
        print(f"[{elapsed:7.1f}s] {text}", file=self.stream, flush=True)

    def update(self, update: BatchUpdate) -> None:
        previous = self.tally.state.get(update.index)
        super().update(update)
        if update.state in _SUBMITTED and previous not in _SUBMITTED and update.run_id:
            if update.detail == "from journal":
                self._log(f"line {update.line}: following {update.run_id} [from journal]")
            else:
                self._log(f"line {update.line}: submitted {update.run_id}")

    def event(self, event: Event) -> None:
        if event.kind is EventKind.WAITING_FOR_RATE_LIMIT:
            key = event.budget or "?"
            if key != self._last_wait:
                self._log(f"waiting {event.delay or 0:.1f}s for the {key} rate limit")
            self._last_wait = key
        elif event.kind is EventKind.RATE_LIMITED:
            self._log(
                f"rate limited by the server ({event.budget}); pausing {event.delay or 0:.1f}s"
            )

    def outcome(self, outcome: BatchOutcome) -> None:
        super().outcome(outcome)
        self._last_wait = None
        self._show(outcome)

    def _row(self, text: str) -> None:
        self._log(text)

    def stop(self) -> None:
        self._flush()

    def summary(self) -> None:
        """Counts and money, then the lines that did not complete by status (each line's row
        was logged once as it ended; the results file has every detail)."""
        data = self.tally.summary()
        for text in summary_lines(data):
            print(text, file=sys.stdout)
        rows = self.tally.not_completed()
        if rows:
            print("not completed:", file=sys.stdout)
        for text in rows:
            print(f"  {text}", file=sys.stdout)

    def message(self, text: str, **_data: Any) -> None:
        print(text, file=sys.stderr, flush=True)


class JsonDisplay(Display):
    """One JSON object per line on stdout: each outcome, then the summary."""

    def _write(self, record: dict[str, Any]) -> None:
        print(json.dumps(record), flush=True)

    def outcome(self, outcome: BatchOutcome) -> None:
        from ._results import result_record  # noqa: PLC0415

        super().outcome(outcome)
        self._write({"event": "outcome", **result_record(outcome)})

    def summary(self) -> None:
        self._write({"event": "summary", **self.tally.summary()})

    def message(self, text: str, **data: Any) -> None:
        self._write({"event": "message", "message": text, **data})


class RichDisplay(Display):
    """An overall bar with ETA, counts per state, the current rate-limit wait; a summary table."""

    def __init__(self, tally: Tally, console: Console, title: str = "Extending") -> None:
        from rich.live import Live  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        super().__init__(tally)
        self.console = console
        self.progress: Progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("• ETA"),
            TimeRemainingColumn(),
            TextColumn("•"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task: TaskID = self.progress.add_task(title, total=tally.total)
        self.wait: tuple[str, float, float] | None = None
        self.live = Live(self, console=console, refresh_per_second=8, transient=False)

    def __rich__(self) -> RenderableType:
        from rich.console import Group  # noqa: PLC0415
        from rich.text import Text  # noqa: PLC0415

        line = Text("  " + self.tally.counts_line(), style="dim")
        if self.wait is not None:
            budget, delay, since = self.wait
            left = delay - (time.monotonic() - since)
            if left > 0:
                line.append(f"   ⏳ {budget} rate limit: {left:.1f}s", style="yellow")
        return Group(self.progress.get_renderable(), line)

    def start(self) -> None:
        self.live.start()

    def stop(self) -> None:
        self._flush()
        self.live.stop()

    def event(self, event: Event) -> None:
        if event.kind in (EventKind.WAITING_FOR_RATE_LIMIT, EventKind.RATE_LIMITED):
            self.wait = (event.budget or "?", event.delay or 0.0, time.monotonic())

    def outcome(self, outcome: BatchOutcome) -> None:
        super().outcome(outcome)
        self.progress.update(self.task, completed=self.tally.done)
        if outcome.status != "completed" or outcome.error:
            self._show(outcome)

    def _row(self, text: str) -> None:
        from rich.markup import escape  # noqa: PLC0415

        self.console.print(f"[red]✗[/red] {escape(text)}", highlight=False)

    def summary(self) -> None:
        from rich.console import Console as RichConsole  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        data = self.tally.summary()
        title = "Batch summary (interrupted)" if data["interrupted"] else "Batch summary"
        table = Table(title=title, show_header=True, header_style="bold")
        table.add_column("status")
        table.add_column("count", justify="right")
        for status, count in data["counts"].items():
            style = "green" if status == "completed" else "red"
            table.add_row(f"[{style}]{status}[/{style}]", str(count))
        if not data["counts"]:
            table.add_row("no line ended yet", "")
        if data["counts"].get("completed"):
            table.add_row("final cost", f"${data['cost']:.2f}", end_section=False)
        if data["running"]:
            table.add_row("still running on the server", str(data["running"]))
            table.add_row("precharged for them", f"${data['precharged']:.2f}")
        if data["unanswered"]:
            table.add_row("submits without a recorded answer", str(data["unanswered"]))
        if data["interrupted"] and data["not_started"]:
            table.add_row("not submitted yet", str(data["not_started"]))
        if data["balance"] is not None:
            table.add_row("remaining balance (last reported)", f"${data['balance']:.2f}")
        out = RichConsole()
        out.print(table)
        rows = self.tally.not_completed()
        if rows:
            out.print("not completed:", highlight=False)
        for text in rows:
            out.print(f"  {text}", highlight=False, markup=False)

    def message(self, text: str, **_data: Any) -> None:
        self.console.print(text, highlight=False)


def make_display(tally: Tally, *, json_output: bool, title: str = "Extending") -> Display:
    """Rich bars on a terminal, plain lines otherwise (or without rich), JSON with ``--json``."""
    if json_output:
        return JsonDisplay(tally)
    try:
        from rich.console import Console as RichConsole  # noqa: PLC0415
    except ImportError:  # pragma: no cover - rich is the [cli] extra
        return PlainDisplay(tally)
    console = RichConsole(stderr=True)
    if not console.is_terminal:
        return PlainDisplay(tally)
    return RichDisplay(tally, console, title)
