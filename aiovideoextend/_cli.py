"""The ``aiovideoextend`` command: batch runs, single jobs, the demo and the emulator.

Exit codes: 0 everything completed, 1 something failed or did not run, 2 a usage, manifest or
journal error (or invalid manifest lines), 130 interrupted. The API key is read from the
environment only, so it never shows up in ``ps``, in the resume command or in any output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import signal
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ._journal import Journal, JournalEntry
from ._manifest import ManifestLine, parse_manifest, request_from_fields
from ._progress import Display, Tally, make_display
from ._resolve import resolve_line
from ._results import ResultsFile
from .exceptions import InvalidRequestError, JobError, JournalError, ManifestError, VideoExtendError

if TYPE_CHECKING:
    from collections.abc import Coroutine, Sequence

    from ._journal_api import JournalStore
    from ._limiter_api import Limiter
    from ._session import Session

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
DEMO_KEY: Final = "sk-nano-demo-0000"


class _Interrupt:
    """Set by the SIGINT/SIGTERM handler, so a batch can tell Ctrl-C from other cancellation."""

    requested = False


_interrupt = _Interrupt()


class UsageError(Exception):
    """A problem with how the command was called: exit 2 with the message."""


def _api_key(args: argparse.Namespace) -> str:
    key = os.environ.get(args.api_key_env, "").strip()
    if not key:
        raise UsageError(f"no API key: set the {args.api_key_env} environment variable")
    return key


def _session(args: argparse.Namespace, limiter: Limiter | None = None) -> Session:
    from ._session import Session  # noqa: PLC0415

    key = _api_key(args)
    try:
        return Session(key, base_url=args.base_url, time_scale=args.time_scale, limiter=limiter)
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None


def _hide_password(arg: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host`` (for anything printed)."""
    if "://" not in arg or "@" not in arg:
        return arg
    parts = urllib.parse.urlsplit(arg)
    if parts.password is None:
        return arg
    user = f"{parts.username}:***" if parts.username else ":***"
    netloc = user + "@" + parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _resume_command(argv: Sequence[str]) -> str:
    prog = Path(sys.argv[0]).name
    command = (
        ["aiovideoextend"] if prog == "aiovideoextend" else [sys.executable, "-m", "aiovideoextend"]
    )
    return shlex.join([*command, *(_hide_password(arg) for arg in argv)])


async def _run_batch(
    session: Session,
    lines: list[ManifestLine],
    *,
    display: Display,
    journal: Journal | JournalStore,
    results: ResultsFile | None,
    args: argparse.Namespace,
) -> tuple[int, bool]:
    """Run a batch under a display; returns (exit code, interrupted)."""
    from .batch import run_batch  # noqa: PLC0415

    session.add_event_hook(display.event)
    display.start()
    interrupted = False
    try:
        async for outcome in run_batch(
            session,
            lines,
            journal=journal,
            max_in_flight=args.max_in_flight,
            max_cost=args.max_cost,
            min_balance=args.min_balance,
            on_update=display.update,
            download=args.download,
        ):
            if results is not None:
                results.write(outcome)
            display.outcome(outcome)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or not _interrupt.requested:
            raise
        task.uncancel()
        interrupted = True
    finally:
        display.stop()
    display.tally.interrupted = interrupted
    try:
        await _account(journal, lines, results, display)
    except Exception as exc:  # the summary matters more than its extra figures
        display.message(f"could not read the journal for the summary: {exc}")
    display.summary()
    statuses = {o.status for o in display.tally.outcomes}
    if interrupted:
        return EXIT_INTERRUPTED, True
    if "invalid" in statuses:
        return EXIT_USAGE, False
    if statuses <= {"completed"} and len(display.tally.outcomes) == len(lines):
        return EXIT_OK, False
    return EXIT_FAILED, False


async def _journal_entries(journal: Journal | JournalStore) -> dict[str, JournalEntry]:
    if isinstance(journal, Journal):
        return journal.entries()
    return await journal.entries()


def _entry_ids(lines: list[ManifestLine]) -> list[str]:
    """The journal's name of each line's request ('' for an invalid line), as the batch names
    them."""
    from .batch import _items  # noqa: PLC0415

    return [entry.entry_id for entry in _items(lines)]


async def _check_journal(
    journal: Journal | JournalStore, lines: list[ManifestLine], args: argparse.Namespace
) -> None:
    """Refuse a journal that shares no request with the manifest (another batch's): its
    precharges would count toward --max-cost and its runs would be reported for no line."""
    if args.reuse_journal:
        return
    entries = await _journal_entries(journal)
    keys = {line.request.key for line in lines if line.request is not None}
    if not entries or not keys or any(e.request_key in keys for e in entries.values()):
        return
    where = f"journal {journal.path}" if isinstance(journal, Journal) else "the shared journal"
    raise UsageError(
        f"{where} records {len(entries)} requests and none of them is in {args.manifest} "
        "(another batch's journal?); give this batch its own --journal, or pass "
        "--reuse-journal to use it anyway (its precharges count toward --max-cost)"
    )


async def _account(
    journal: Journal | JournalStore,
    lines: list[ManifestLine],
    results: ResultsFile | None,
    display: Display,
) -> None:
    """From the journal, after a run: the jobs still running and their precharge (for the
    summary), and the paid runs of requests no longer in the manifest (into the results)."""
    entries = await _journal_entries(journal)
    ids = {entry_id: line.line for entry_id, line in zip(_entry_ids(lines), lines, strict=True)}
    ids.pop("", None)
    tally = display.tally
    tally.running = tally.unanswered = 0
    tally.precharged = 0.0
    ended = {o.line for o in tally.outcomes}
    tally.not_started = sum(
        1 for entry_id, line in ids.items() if line not in ended and entry_id not in entries
    )
    gone = 0
    for entry in entries.values():
        if entry.entry_id in ids:
            if entry.state == "submitted":
                tally.running += 1
                tally.precharged += entry.precharge or 0.0
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
                tally.unanswered += 1
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


def _default_beside(manifest: Path, suffix: str) -> Path:
    return manifest.with_name(manifest.name + suffix)


async def cmd_batch(args: argparse.Namespace) -> int:
    manifest = Path(args.manifest)
    try:
        lines = parse_manifest(manifest)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    results_path = Path(args.results or _default_beside(manifest, ".results.jsonl"))
    display = make_display(Tally(total=len(lines)), json_output=args.json)
    if args.redis is not None:
        code, interrupted = await _batch_on_redis(args, manifest, lines, display, results_path)
    else:
        if args.batch_id is not None:
            raise UsageError("--batch-id goes with --redis")
        session = _session(args)
        journal_path = Path(args.journal or _default_beside(manifest, ".journal"))
        try:
            journal = Journal(journal_path)
        except JournalError as exc:
            raise UsageError(str(exc)) from None
        expected = [(ln.line, ln.request.key if ln.request else None) for ln in lines]
        with journal:
            await _check_journal(journal, lines, args)
            with ResultsFile(results_path, expected) as results:
                async with session:
                    code, interrupted = await _run_batch(
                        session,
                        lines,
                        display=display,
                        journal=journal,
                        results=results,
                        args=args,
                    )
    if interrupted:
        command = _resume_command(args.argv)
        display.message(
            f"interrupted; the journal is consistent. Resume with:\n  {command}", resume=command
        )
    else:
        display.message(f"results: {results_path}", results=str(results_path))
    return code


async def _batch_on_redis(
    args: argparse.Namespace,
    manifest: Path,
    lines: list[ManifestLine],
    display: Display,
    results_path: Path,
) -> tuple[int, bool]:
    """One worker of a batch shared through Redis: one rate budget, one journal, N workers."""
    if args.journal is not None:
        raise UsageError("--journal and --redis exclude each other: the journal is in Redis")
    try:
        from ._config import Limits  # noqa: PLC0415
        from .redis_journal import RedisJournal  # noqa: PLC0415
        from .redis_limiter import RedisRateLimiter, key_prefix  # noqa: PLC0415
    except ImportError:
        raise UsageError("--redis needs redis-py: pip install 'aiovideoextend[redis]'") from None
    content = await asyncio.to_thread(manifest.read_bytes)
    batch_id = args.batch_id or hashlib.sha256(content).hexdigest()[:32]
    try:
        limiter = RedisRateLimiter(
            args.redis,
            Limits().scaled(args.time_scale),
            # Workers with the same key share one budget; the key itself never goes to Redis.
            prefix=key_prefix(_api_key(args), args.redis_prefix),
            lease=args.lease,
        )
        journal = RedisJournal(args.redis, batch_id, prefix=args.redis_prefix, lease=args.lease)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    display.message(
        f"shared batch {batch_id} as worker {journal.worker_id}",
        batch_id=batch_id,
        worker=journal.worker_id,
    )
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(limiter)
        await stack.enter_async_context(journal)
        await _check_journal(journal, lines, args)
        expected = [(ln.line, ln.request.key if ln.request else None) for ln in lines]
        results = stack.enter_context(ResultsFile(results_path, expected))
        session = await stack.enter_async_context(_session(args, limiter=limiter))
        return await _run_batch(
            session, lines, display=display, journal=journal, results=results, args=args
        )


def _demo_lines(midjourney: list[str], count: int) -> list[ManifestLine]:
    from ._requests import EXTEND_MODELS  # noqa: PLC0415

    models = sorted(EXTEND_MODELS)
    pairs = [(run_id, index) for run_id in midjourney for index in range(4)]
    fields: list[dict[str, Any]] = []
    for number in range(count - 1):
        if number % 4 != 3 and pairs:
            run_id, index = pairs.pop(0)
            fields.append({"run_id": run_id, "index": index})
        else:
            model = models[number % len(models)]
            source = "video" if model == "wan-wavespeed-25-extend" else "video_url"
            url = f"https://example.com/source-{number}.mp4"
            fields.append({"model": model, "prompt": f"scene {number}", source: url, "duration": 5})
    fields.insert(count // 2, {"run_id": midjourney[0] if midjourney else "x", "index": 7})
    lines = []
    for number, field in enumerate(fields, start=1):
        try:
            lines.append(ManifestLine(number, request=request_from_fields(field)))
        except InvalidRequestError as exc:
            lines.append(ManifestLine(number, error=str(exc)))
    return lines


async def cmd_demo(args: argparse.Namespace) -> int:
    from ._session import Session  # noqa: PLC0415
    from .testing import Emulator  # noqa: PLC0415

    async with Emulator(
        users={DEMO_KEY: 1000.0}, time_scale=args.time_scale, seed=args.seed, midjourney_runs=6
    ) as emu:
        lines = _demo_lines(emu.midjourney_run_ids(DEMO_KEY), args.count)
        tally = Tally(total=len(lines))
        display = make_display(tally, json_output=args.json, title="Demo")
        display.message(
            f"aiovideoextend demo: {len(lines)} extends against the bundled emulator at "
            f"{emu.base_url} ({args.time_scale:g}x time; no key, no network)"
        )
        with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "demo.journal") as journal:
            async with Session(DEMO_KEY, base_url=emu.base_url, time_scale=args.time_scale) as s:
                code, interrupted = await _run_batch(
                    s, lines, display=display, journal=journal, results=None, args=args
                )
        display.message(
            f"emulator ledger: {len(emu.ledger)} paid submits, "
            f"{emu.duplicate_charges()} duplicate charges"
        )
    if interrupted:
        display.message("demo interrupted")
    # The demo's invalid line is there on purpose, to show how one is reported.
    return EXIT_INTERRUPTED if interrupted else EXIT_OK if code in (0, 2) else code


def _print(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data) if args.json else text, flush=True)


async def _wait_and_report(
    session: Session, args: argparse.Namespace, run_id: str, model: str | None
) -> int:
    job = session.job(run_id, model)
    try:
        result = await job.result(timeout=args.timeout)
    except JobError as exc:
        _print(args, {"run_id": run_id, "status": job.status.value, "error": str(exc)}, str(exc))
        return EXIT_FAILED
    data: dict[str, Any] = {"run_id": run_id, "status": "completed", "video_url": result.video_url}
    data["cost"] = result.cost
    text = f"{run_id} completed: {result.video_url}"
    if getattr(args, "download", None):
        path = await session.download(result, args.download)
        data["path"] = str(path)
        text += f"\nsaved {path}"
    _print(args, data, text)
    return EXIT_OK


async def cmd_extend(args: argparse.Namespace) -> int:
    fields = {
        name: value
        for name in (
            "run_id",
            "index",
            "model",
            "prompt",
            "video_url",
            "video_file",
            "video_data_url",
            "video_attachment_id",
            "video",
            "duration",
            "resolution",
            "seed",
            "negative_prompt",
            "aspect_ratio",
        )
        if (value := getattr(args, name)) is not None
    }
    try:
        request = request_from_fields(fields)
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None
    async with _session(args) as session:
        job = await session.submit(request)
        cost = job.submission.cost if job.submission is not None else None
        if not args.json:
            print(f"submitted {job.run_id} ({request.model}, precharge {cost})", flush=True)
        if args.no_wait:
            _print(args, {"run_id": job.run_id, "status": "pending", "precharge": cost}, job.run_id)
            return EXIT_OK
        return await _wait_and_report(session, args, job.run_id, request.model)


async def cmd_status(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        update = await session.status(args.run_id)
    data = {
        "run_id": update.run_id,
        "status": update.status.value,
        "progress": update.progress,
        "video_url": update.video_url,
        "cost": update.cost,
        "error": update.user_friendly_error or update.error,
    }
    text = f"{update.run_id}: {update.status.value}"
    for name in ("progress", "video_url", "cost", "error"):
        if data[name] is not None:
            text += f"\n  {name}: {data[name]}"
    _print(args, data, text)
    return EXIT_OK


async def cmd_resolve(args: argparse.Namespace) -> int:
    """Make one candidate run an ambiguous line's result (journal and results file)."""
    return _resolve(args)


def _resolve(args: argparse.Namespace) -> int:
    manifest = Path(args.manifest)
    journal_path = Path(args.journal or _default_beside(manifest, ".journal"))
    results_path = Path(args.results or _default_beside(manifest, ".results.jsonl"))
    if not journal_path.exists():
        raise UsageError(f"no journal at {journal_path}: resolve lines of a batch that ran")
    try:
        with Journal(journal_path) as journal:
            outcome = resolve_line(journal, args.line, args.run_id, results_path)
    except JournalError as exc:
        raise UsageError(str(exc)) from None
    text = f"line {args.line}: {outcome['status']} {args.run_id}"
    if outcome.get("video_url"):
        text += f" {outcome['video_url']}"
    _print(args, {"line": args.line, **outcome}, text)
    return EXIT_OK


async def cmd_wait(args: argparse.Namespace) -> int:
    async with _session(args) as session:
        return await _wait_and_report(session, args, args.run_id, args.model)


async def cmd_download(args: argparse.Namespace) -> int:
    args.download = args.dir
    async with _session(args) as session:
        return await _wait_and_report(session, args, args.run_id, args.model)


async def cmd_emulator(args: argparse.Namespace) -> int:
    from .testing._serve import serve  # noqa: PLC0415

    await serve(args)
    return EXIT_OK  # pragma: no cover - serve() runs until interrupted


# --- the parser --------------------------------------------------------------------------------


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _connection_options(parser: argparse.ArgumentParser, *, json_flag: bool = True) -> None:
    add = parser.add_argument
    add("--base-url", default=None, help="API base URL (default: $NANOGPT_BASE_URL or NanoGPT)")
    add(
        "--api-key-env",
        default="NANOGPT_API_KEY",
        metavar="NAME",
        help="environment variable holding the API key (default: %(default)s)",
    )
    add(
        "--time-scale",
        type=float,
        default=1.0,
        metavar="N",
        help="the server's clock runs N times faster (emulators); default 1",
    )
    if json_flag:
        add("--json", action="store_true", help="machine-readable JSON output")


def _money(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more USD, got {value}")
    return number


def _batch_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--download", metavar="DIR", help="download completed videos into DIR")
    add("--max-in-flight", type=_positive_int, metavar="N", help="jobs running at once")
    add(
        "--max-cost",
        type=_money,
        metavar="USD",
        help="stop submitting once the batch's precharges would pass USD; counts across reruns: "
        "everything the journal recorded for this batch counts (failed jobs are refunded)",
    )
    add("--min-balance", type=float, metavar="USD", help="stop before the balance drops below")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aiovideoextend",
        description="Extend videos with NanoGPT: batches with progress, single jobs, a demo.",
        epilog="The API key is read from $NANOGPT_API_KEY (never from the command line).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    batch = sub.add_parser("batch", help="run a manifest of extends; rerun to resume")
    batch.add_argument("manifest", help="JSONL or CSV, one request per line")
    batch.add_argument("--results", metavar="PATH", help="JSONL results (default: beside it)")
    batch.add_argument("--journal", metavar="PATH", help="journal (default: beside the manifest)")
    batch.add_argument(
        "--reuse-journal",
        action="store_true",
        help="use a journal that records none of this manifest's requests (another batch's); "
        "its precharges count toward --max-cost",
    )
    shared = batch.add_argument_group(
        "scale-out", "run N copies of the same command (on N hosts) to split the batch"
    )
    shared.add_argument(
        "--redis", metavar="URL", help="share the rate budget and the journal in this Redis"
    )
    shared.add_argument(
        "--batch-id", metavar="ID", help="the shared batch's name (default: manifest hash)"
    )
    shared.add_argument(
        "--redis-prefix", default="aiovideoextend", metavar="PREFIX", help="key prefix"
    )
    shared.add_argument(
        "--lease",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="a dead worker's jobs pass to the others this long after it stops (default: 30)",
    )
    _batch_options(batch)
    _connection_options(batch)
    batch.set_defaults(handler=cmd_batch)

    resolve = sub.add_parser(
        "resolve", help="make a candidate run the result of an ambiguous batch line"
    )
    resolve.add_argument("manifest", help="the batch's manifest (finds its journal and results)")
    resolve.add_argument("line", type=_positive_int, help="the ambiguous line's number")
    resolve.add_argument("run_id", help="one of the line's candidates")
    resolve.add_argument("--results", metavar="PATH", help="JSONL results (default: beside it)")
    resolve.add_argument("--journal", metavar="PATH", help="journal (default: beside it)")
    resolve.add_argument("--json", action="store_true", help="machine-readable JSON output")
    resolve.set_defaults(handler=cmd_resolve)

    demo = sub.add_parser("demo", help="a batch of 30 extends against the bundled emulator")
    demo.add_argument("--time-scale", type=float, default=60.0, metavar="N")
    demo.add_argument("--count", type=_positive_int, default=30, metavar="N")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--json", action="store_true")
    _batch_options(demo)
    demo.set_defaults(handler=cmd_demo)

    extend = sub.add_parser("extend", help="submit one extend, wait, print the result")
    mj = extend.add_argument_group("Midjourney")
    mj.add_argument("--run-id")
    mj.add_argument("--index", type=int)
    src = extend.add_argument_group("source video")
    for name in (
        "model",
        "prompt",
        "video-url",
        "video-file",
        "video-data-url",
        "video-attachment-id",
        "video",
        "resolution",
        "negative-prompt",
        "aspect-ratio",
    ):
        src.add_argument(f"--{name}")
    src.add_argument("--duration", type=lambda v: int(v) if v.isdigit() else v)
    src.add_argument("--seed", type=int)
    extend.add_argument("--no-wait", action="store_true", help="print the run id and exit")
    extend.add_argument("--download", metavar="DIR")
    extend.add_argument("--timeout", type=float, help="seconds to wait (default: policy)")
    _connection_options(extend)
    extend.set_defaults(handler=cmd_extend)

    status = sub.add_parser("status", help="poll a run once")
    status.add_argument("run_id")
    _connection_options(status)
    status.set_defaults(handler=cmd_status)

    for name, handler, text in (
        ("wait", cmd_wait, "wait for a run to finish"),
        ("download", cmd_download, "wait for a run, then download its video"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("run_id")
        if name == "download":
            command.add_argument("dir", nargs="?", default=".", help="directory (default: .)")
        command.add_argument("--model", help="the run's model, if known")
        command.add_argument("--timeout", type=float, help="seconds to wait (default: policy)")
        _connection_options(command)
        command.set_defaults(handler=handler)

    from .testing._serve import add_emulator_arguments  # noqa: PLC0415

    emulator = sub.add_parser("emulator", help="serve the bundled NanoGPT emulator")
    add_emulator_arguments(emulator)
    emulator.set_defaults(handler=cmd_emulator)
    return parser


async def _main(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def on_signal() -> None:
        if _interrupt.requested:
            # A second Ctrl-C: the journal is consistent after every commit, so leave now.
            os._exit(EXIT_INTERRUPTED)
        _interrupt.requested = True
        print("\nstopping... (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        if task is not None:
            task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    handler: Any = args.handler
    coro: Coroutine[Any, Any, int] = handler(args)
    return await coro


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    _interrupt.requested = False
    try:
        return asyncio.run(_main(args))
    except UsageError as exc:
        print(f"aiovideoextend: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (asyncio.CancelledError, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except VideoExtendError as exc:
        print(f"aiovideoextend: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
