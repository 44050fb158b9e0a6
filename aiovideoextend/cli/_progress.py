"""What the ``aiovideoextend`` command shows while a batch runs.

Three displays share one :class:`Tally`: rich progress bars on a terminal, plain log lines
otherwise, and JSON lines with ``--json``. Progress goes to stderr; the summary (or the JSON)
to stdout, so ``aiovideoextend batch jobs.jsonl > summary.txt`` still shows the bars. Rich (the
``[cli]`` extra) is imported only when a terminal shows the bars.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from aiovideoextend.models import Event, EventKind

from ._tally import SUBMITTED, Tally, kind_of, lines_text, summary_lines, what_of

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.progress import Progress, TaskID

    from aiovideoextend.batch import BatchOutcome, BatchUpdate

__all__ = [
    "Display",
    "JsonDisplay",
    "PlainDisplay",
    "RichDisplay",
    "Tally",
    "make_display",
    "summary_lines",
]


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
        if held and kind_of(held[0]) == kind_of(outcome):
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
            what = what_of(*kind_of(held[0]))[0]
            count = f"{len(held)} more line{'s' if len(held) > 1 else ''}"
            text = f"{count} {what} for the same reason ({lines_text(held)})"
            self._row(f"{text}  [{self._held_done}/{self.tally.total}]")

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
        if update.state in SUBMITTED and previous not in SUBMITTED and update.run_id:
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
        from aiovideoextend.batch._records import result_record  # noqa: PLC0415

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
