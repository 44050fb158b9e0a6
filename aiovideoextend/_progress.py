"""What the ``aiovideoextend`` command shows while a batch runs.

Three displays share one :class:`Tally`: rich progress bars on a terminal, plain log lines
otherwise, and JSON lines with ``--json``. Progress goes to stderr; the summary (or the JSON)
to stdout, so ``aiovideoextend batch jobs.jsonl > summary.txt`` still shows the bars.
"""

from __future__ import annotations

import collections
import json
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
        return sum(o.cost or 0.0 for o in self.outcomes if o.status == "completed")

    def counts_line(self) -> str:
        counts = self.counts()
        parts = [f"{label} {counts[state]}" for state, label in _LIVE.items() if counts[state]]
        finals = sorted((s, n) for s, n in counts.items() if s not in _LIVE)
        parts += [f"{state} {count}" for state, count in finals]
        return " · ".join(parts) or "starting"

    def summary(self) -> dict[str, Any]:
        by_status = collections.Counter(o.status for o in self.outcomes)
        return {
            "total": self.total,
            "counts": dict(sorted(by_status.items())),
            "cost": round(self.cost, 6),
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

    def start(self) -> None: ...

    def update(self, update: BatchUpdate) -> None:
        self.tally.update(update)

    def event(self, event: Event) -> None: ...

    def outcome(self, outcome: BatchOutcome) -> None:
        self.tally.outcome(outcome)

    def stop(self) -> None: ...

    def summary(self) -> None: ...

    def message(self, text: str, **data: Any) -> None: ...


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
        if update.state == "pending" and previous != "pending" and update.run_id:
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
        tally = self.tally
        self._log(f"{_describe(outcome)}  [{tally.done}/{tally.total}]")

    def summary(self) -> None:
        data = self.tally.summary()
        counts = ", ".join(f"{k} {v}" for k, v in data["counts"].items())
        print(f"done: {counts}; total cost ${data['cost']:.2f}", file=sys.stdout)
        if data["balance"] is not None:
            print(f"remaining balance ${data['balance']:.2f}", file=sys.stdout)
        for failure in data["failures"]:
            print(f"  line {failure['line']}: {failure['status']}: {failure['error']}")

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
        self.live.stop()

    def event(self, event: Event) -> None:
        if event.kind in (EventKind.WAITING_FOR_RATE_LIMIT, EventKind.RATE_LIMITED):
            self.wait = (event.budget or "?", event.delay or 0.0, time.monotonic())

    def outcome(self, outcome: BatchOutcome) -> None:
        super().outcome(outcome)
        self.progress.update(self.task, completed=self.tally.done)
        if outcome.status != "completed" or outcome.error:
            self.console.print(f"[red]✗[/red] {_describe(outcome)}", highlight=False)

    def summary(self) -> None:
        from rich.console import Console as RichConsole  # noqa: PLC0415
        from rich.table import Table  # noqa: PLC0415

        data = self.tally.summary()
        table = Table(title="Batch summary", show_header=True, header_style="bold")
        table.add_column("status")
        table.add_column("count", justify="right")
        for status, count in data["counts"].items():
            style = "green" if status == "completed" else "red"
            table.add_row(f"[{style}]{status}[/{style}]", str(count))
        table.add_row("total cost", f"${data['cost']:.2f}", end_section=False)
        if data["balance"] is not None:
            table.add_row("remaining balance", f"${data['balance']:.2f}")
        out = RichConsole()
        out.print(table)
        if data["failures"]:
            reasons = Table(title="Not completed", header_style="bold")
            for column in ("line", "status", "run id", "reason"):
                reasons.add_column(column)
            for f in data["failures"]:
                reasons.add_row(str(f["line"]), f["status"], f["run_id"] or "", f["error"] or "")
            out.print(reasons)

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
