"""The ``batch`` command: a manifest under a progress display, with a journal and a results
file beside it (or, with ``--queue``, run by ``worker`` processes: see ``_queue``)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from aiovideoextend._journal import Journal
from aiovideoextend._manifest import ManifestLine, parse_manifest
from aiovideoextend.exceptions import JournalError, ManifestError

from ._context import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Context,
    UsageError,
    default_beside,
    open_session,
    output_path,
    resume_command,
)
from ._progress import Display, make_display
from ._results import ResultsFile
from ._tally import Tally

if TYPE_CHECKING:
    from aiovideoextend._session import Session
    from aiovideoextend.batch import BatchOutcome

__all__ = ["Leftovers", "cmd_batch", "exit_code", "run_with_display"]


def exit_code(outcomes: Sequence[BatchOutcome], total: int, *, interrupted: bool) -> int:
    """The batch command's exit code from what the batch yielded: 130 interrupted, 2 when a line
    is invalid, 0 when every one of the ``total`` lines completed, else 1."""
    statuses = {o.status for o in outcomes}
    if interrupted:
        return EXIT_INTERRUPTED
    if "invalid" in statuses:
        return EXIT_USAGE
    if statuses <= {"completed"} and len(outcomes) == total:
        return EXIT_OK
    return EXIT_FAILED


@attrs.frozen
class Leftovers:
    """From the journal after a run, for the summary: jobs submitted and not ended, what they
    were precharged, submits without a recorded answer, lines never submitted."""

    running: int = 0
    precharged: float = 0.0
    unanswered: int = 0
    not_started: int = 0


async def run_with_display(
    session: Session,
    lines: list[ManifestLine],
    *,
    display: Display,
    journal: Journal,
    results: ResultsFile | None,
    context: Context,
) -> tuple[int, bool]:
    """Run a batch under a display; returns (exit code, interrupted)."""
    from aiovideoextend.batch import run_batch  # noqa: PLC0415

    settings = context.settings
    session.add_event_hook(display.event)
    display.start()
    interrupted = False
    outcomes: list[BatchOutcome] = []
    try:
        async for outcome in run_batch(
            session,
            lines,
            journal=journal,
            max_in_flight=settings.max_in_flight,
            max_cost=settings.max_cost,
            min_balance=settings.min_balance,
            on_update=display.update,
            download=settings.download,
        ):
            outcomes.append(outcome)
            if results is not None:
                results.write(outcome)
            display.outcome(outcome)
    except asyncio.CancelledError:
        if not context.interrupt.caught():
            raise
        interrupted = True
    finally:
        display.stop()
    tally = display.tally
    tally.interrupted = interrupted
    try:
        left = _account(journal, lines, outcomes, results, display)
    except Exception as exc:  # the summary matters more than its extra figures
        display.message(f"could not read the journal for the summary: {exc}")
    else:
        tally.running, tally.precharged = left.running, left.precharged
        tally.unanswered, tally.not_started = left.unanswered, left.not_started
    display.summary()
    return exit_code(outcomes, len(lines), interrupted=interrupted), interrupted


def _entry_ids(lines: list[ManifestLine]) -> list[str]:
    """The journal's name of each line's request ('' for an invalid line), as the batch names
    them."""
    from aiovideoextend.batch import _items  # noqa: PLC0415

    return [entry.entry_id for entry in _items(lines)]


def _check_journal(journal: Journal, lines: list[ManifestLine], args: argparse.Namespace) -> None:
    """Refuse a journal that shares no request with the manifest (another batch's): its
    precharges would count toward --max-cost and its runs would be reported for no line."""
    if args.reuse_journal:
        return
    entries = journal.entries()
    keys = {line.request.key for line in lines if line.request is not None}
    if not entries or not keys or any(e.request_key in keys for e in entries.values()):
        return
    raise UsageError(
        f"journal {journal.path} records {len(entries)} requests and none of them is in "
        f"{args.manifest} (another batch's journal?); give this batch its own --journal, or "
        "pass --reuse-journal to use it anyway (its precharges count toward --max-cost)"
    )


def _account(
    journal: Journal,
    lines: list[ManifestLine],
    outcomes: list[BatchOutcome],
    results: ResultsFile | None,
    display: Display,
) -> Leftovers:
    """From the journal, after a run: what is left for the summary (returned), and the paid
    runs of requests no longer in the manifest (into the results)."""
    entries = journal.entries()
    ids = {entry_id: line.line for entry_id, line in zip(_entry_ids(lines), lines, strict=True)}
    ids.pop("", None)
    running = unanswered = 0
    precharged = 0.0
    ended = {o.line for o in outcomes}
    not_started = sum(
        1 for entry_id, line in ids.items() if line not in ended and entry_id not in entries
    )
    gone = 0
    for entry in entries.values():
        if entry.entry_id in ids:
            if entry.state == "submitted":
                running += 1
                precharged += entry.precharge or 0.0
                line = ids[entry.entry_id]
                recorded = results.records.get(line, {}) if results is not None else {}
                if results is not None and recorded.get("run_id") != entry.run_id:
                    # A paid run that is still going: in the results now, replaced when it ends.
                    results.put(
                        {
                            "line": line,
                            "status": "unfinished",
                            "key": entry.request_key,
                            "model": entry.model,
                            "run_id": entry.run_id,
                            "error": "still running when the batch stopped; rerun to follow it",
                            "precharge": entry.precharge,
                            "candidates": [],
                        }
                    )
            elif entry.state == "intent":
                unanswered += 1
            continue
        outcome = dict(entry.outcome or {})
        run_id = outcome.get("run_id") or entry.run_id
        if run_id is None and not outcome.get("candidates"):
            continue
        gone += 1
        if results is not None:
            record = {
                "line": outcome.get("line", entry.position + 1),
                "key": entry.request_key,
                "model": entry.model,
                "status": outcome.get("status", "unfinished"),
                "run_id": run_id,
                "video_url": outcome.get("video_url"),
                "error": outcome.get("error"),
                "cost": outcome.get("cost"),
                "precharge": outcome.get("precharge", entry.precharge),
                "candidates": outcome.get("candidates") or [],
            }
            results.keep_stale(record)
    if gone:
        where = f" in {results.path}" if results is not None else ""
        display.message(
            f"{gone} paid run(s) recorded in the journal are for requests no longer in the "
            f'manifest; they are kept{where} with "in_manifest": false',
            not_in_manifest=gone,
        )
    return Leftovers(running, precharged, unanswered, not_started)


async def cmd_batch(args: argparse.Namespace, context: Context) -> int:
    settings = context.settings
    manifest = Path(args.manifest)
    try:
        lines = parse_manifest(manifest)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    results_path = Path(args.results or default_beside(manifest, ".results.jsonl"))
    output_path(results_path, "--results")
    display = make_display(Tally(total=len(lines)), json_output=settings.json)
    if args.redis is not None:
        raise UsageError(
            "batch --redis was removed: run `aiovideoextend worker --queue URL` on every host "
            "and `aiovideoextend batch MANIFEST --queue URL` once (see docs/scale-out.md)"
        )
    if getattr(args, "queue", None) is not None:
        from ._queue import batch_on_queue  # noqa: PLC0415

        code, interrupted = await batch_on_queue(
            args,
            context,
            manifest=manifest,
            lines=lines,
            display=display,
            results_path=results_path,
        )
    else:
        if args.batch_id is not None:
            raise UsageError("--batch-id goes with --queue")
        session = open_session(settings)
        journal_path = output_path(
            Path(args.journal or default_beside(manifest, ".journal")), "--journal"
        )
        try:
            journal = Journal(journal_path)
        except JournalError as exc:
            raise UsageError(str(exc)) from None
        expected = [(ln.line, ln.request.key if ln.request else None) for ln in lines]
        with journal:
            _check_journal(journal, lines, args)
            with ResultsFile(results_path, expected) as results:
                async with session:
                    code, interrupted = await run_with_display(
                        session,
                        lines,
                        display=display,
                        journal=journal,
                        results=results,
                        context=context,
                    )
    if interrupted:
        command = resume_command(settings.argv)
        display.message(
            f"interrupted; the journal is consistent. Resume with:\n  {command}", resume=command
        )
    else:
        display.message(f"results: {results_path}", results=str(results_path))
    return code
