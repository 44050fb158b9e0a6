"""The ``aiovideoextend`` command: batch runs, single jobs, the demo and the emulator.

Exit codes: 0 everything completed, 1 something failed or did not run, 2 a usage, manifest or
journal error (or invalid manifest lines), 130 interrupted. The API key is read from the
environment only, so it never shows up in ``ps``, in the resume command or in any output.

An error is one line on stderr (``aiovideoextend: error: ...``); under ``--json`` it is one JSON
object on stdout instead: ``{"event": "error", "error": {"type", "message"}, "exit_code"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import shlex
import signal
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from ._journal import Journal, JournalEntry
from ._manifest import ManifestLine, parse_manifest, request_from_fields
from ._progress import Display, Tally, make_display
from ._resolve import resolve_line
from ._results import ResultsFile
from .exceptions import (
    APIConnectionError,
    AuthenticationError,
    EndpointNotFoundError,
    InvalidRequestError,
    JobError,
    JobTimeoutError,
    JournalError,
    ManifestError,
    PermissionDeniedError,
    VideoExtendError,
)

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


class _JsonErrors:
    """Set from the raw arguments before parsing: argparse's own errors are JSON then too."""

    wanted = False


def _error_record(kind: str, message: str, code: int) -> str:
    error = {"type": kind, "message": message}
    return json.dumps({"event": "error", "error": error, "exit_code": code})


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        if _JsonErrors.wanted:
            print(_error_record("UsageError", message, EXIT_USAGE), flush=True)
            self.exit(EXIT_USAGE)
        super().error(message)


def _base_url(args: argparse.Namespace) -> str:
    from ._session import DEFAULT_BASE_URL  # noqa: PLC0415

    base = getattr(args, "base_url", None) or os.environ.get("NANOGPT_BASE_URL")
    return (base or DEFAULT_BASE_URL).rstrip("/")


def _output_path(path: Path, what: str) -> Path:
    """Make sure ``path`` can be written (creating missing folders) before anything is sent."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            reason = f"{blocker} is a file, not a folder"
        raise UsageError(f"cannot create the folder for {what} {path}: {reason}") from None
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder; give a file name")
    target = path if path.exists() else path.parent
    if not os.access(target, os.W_OK):
        raise UsageError(f"cannot write {what} {path}: permission denied")
    return path


def _api_key(args: argparse.Namespace) -> str:
    key = os.environ.get(args.api_key_env, "").strip()
    if not key:
        raise UsageError(f"no API key: set the {args.api_key_env} environment variable")
    return key


def _session(args: argparse.Namespace, limiter: Limiter | None = None) -> Session:
    from ._config import Retries  # noqa: PLC0415
    from ._session import Session  # noqa: PLC0415

    key = _api_key(args)
    retries = Retries(
        tag_submits=getattr(args, "tag_submits", False),
        pace_submits=getattr(args, "pace_submits", False),
    )
    try:
        return Session(
            key,
            base_url=args.base_url,
            time_scale=args.time_scale,
            limiter=limiter,
            retries=retries,
        )
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
    _output_path(results_path, "--results")
    display = make_display(Tally(total=len(lines)), json_output=args.json)
    if args.redis is not None:
        code, interrupted = await _batch_on_redis(args, manifest, lines, display, results_path)
    else:
        if args.batch_id is not None:
            raise UsageError("--batch-id goes with --redis")
        session = _session(args)
        journal_path = _output_path(
            Path(args.journal or _default_beside(manifest, ".journal")), "--journal"
        )
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


def _note(text: str) -> None:
    """Progress and advice: stderr, so that stdout holds only the result."""
    print(text, file=sys.stderr, flush=True)


def _wait_command(args: argparse.Namespace, run_id: str, model: str | None) -> str:
    """The command that picks up waiting for ``run_id`` where this one stopped."""
    download = getattr(args, "download", None)
    argv = ["download", run_id, str(download)] if download else ["wait", run_id]
    if model:
        argv += ["--model", model]
    if args.base_url:
        argv += ["--base-url", args.base_url]
    if args.api_key_env != "NANOGPT_API_KEY":
        argv += ["--api-key-env", args.api_key_env]
    if args.time_scale != 1:
        argv += ["--time-scale", f"{args.time_scale:g}"]
    return _resume_command(argv)


def _unfinished(args: argparse.Namespace, run_id: str, status: str, why: str, command: str) -> None:
    text = f"{run_id} is still {status} on the server ({why}); wait for it with:\n  {command}"
    if args.json:
        _print(args, {"run_id": run_id, "status": status, "error": why, "resume": command}, "")
    else:
        _note(text)


async def _wait_and_report(
    session: Session,
    args: argparse.Namespace,
    run_id: str,
    model: str | None,
    *,
    look_now: bool = False,
) -> int:
    job = session.job(run_id, model)
    try:
        if look_now:
            # One poll at once: an unknown run, a wrong key or an unreachable server is told
            # now, and a finished run is reported without waiting for the first poll.
            await job.refresh()
        result = await job.result(timeout=args.timeout)
    except JobTimeoutError:
        why = f"--timeout {args.timeout:g}s passed" if args.timeout else "the wait timed out"
        _unfinished(args, run_id, job.status.value, why, _wait_command(args, run_id, model))
        return EXIT_FAILED
    except JobError as exc:
        _print(args, {"run_id": run_id, "status": job.status.value, "error": str(exc)}, str(exc))
        return EXIT_FAILED
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or not _interrupt.requested:
            raise
        task.uncancel()
        command = _wait_command(args, run_id, model)
        _unfinished(args, run_id, job.status.value, "interrupted", command)
        return EXIT_INTERRUPTED
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
            "conversation_uuid",
            "generate_audio",
            "mode",
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
            _note(f"submitted {job.run_id} ({request.model}, precharge {cost})")
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
        return await _wait_and_report(session, args, args.run_id, args.model, look_now=True)


async def cmd_download(args: argparse.Namespace) -> int:
    args.download = args.dir
    async with _session(args) as session:
        return await _wait_and_report(session, args, args.run_id, args.model, look_now=True)


async def cmd_emulator(args: argparse.Namespace) -> int:
    from .testing._serve import serve  # noqa: PLC0415

    try:
        await serve(args)
    except OSError as exc:
        # Most often the port is taken: one line, not a traceback.
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {reason}") from None
    return EXIT_OK  # pragma: no cover - serve() runs until interrupted


# --- the parser --------------------------------------------------------------------------------


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _verbose_option(parser: argparse.ArgumentParser, default: Any = argparse.SUPPRESS) -> None:
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="log what the client does: -v info, -vv debug (or set $AIOVIDEOEXTEND_LOG)",
    )


def _positive_number(value: str, what: str = "a number") -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"must be {what} > 0, got {value!r}")
    return number


def _positive_seconds(value: str) -> float:
    return _positive_number(value, "a number of seconds")


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
        type=_positive_number,
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


def _tag_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tag-submits",
        action="store_true",
        help="send each source-video submit with a conversationUUID of its own, so that a lost "
        "answer's run is known by its tag (files the run under that conversation id)",
    )
    parser.add_argument(
        "--pace-submits",
        action="store_true",
        help="send untagged submits of a model (Midjourney extends always) one at a time, so "
        "that lost answers of one burst can be told apart (slower bursts; without it they go "
        "one at a time only after the server lost or refused one)",
    )


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
    add(
        "--min-balance",
        type=_money,
        metavar="USD",
        help="stop submitting before the balance the server reports drops below USD",
    )


def build_parser() -> argparse.ArgumentParser:
    from . import __version__  # noqa: PLC0415

    parser = _Parser(
        prog="aiovideoextend",
        description="Extend videos with NanoGPT: batches with progress, single jobs, a demo.",
        epilog="The API key is read from $NANOGPT_API_KEY (never from the command line).",
    )
    parser.add_argument("--version", action="version", version=f"aiovideoextend {__version__}")
    _verbose_option(parser, default=0)
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
    _tag_option(batch)
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
    demo.add_argument(
        "--time-scale",
        type=_positive_number,
        default=60.0,
        metavar="N",
        help="the emulator's clock runs N times faster (default: %(default)g)",
    )
    demo.add_argument(
        "--count",
        type=_positive_int,
        default=30,
        metavar="N",
        help="how many extends (default: %(default)s)",
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="the emulator's seed (default: %(default)s)"
    )
    demo.add_argument("--json", action="store_true", help="machine-readable JSON output")
    _batch_options(demo)
    demo.set_defaults(handler=cmd_demo)

    extend = sub.add_parser("extend", help="submit one extend, wait, print the result")
    mj = extend.add_argument_group("Midjourney")
    mj.add_argument("--run-id", help="the completed midjourney-video run to extend")
    mj.add_argument("--index", type=int, help="which of its four videos, 0-3 (default: 0)")
    src = extend.add_argument_group("source video (give exactly one source)")
    for name, text in (
        ("model", "the extend model, e.g. veo3-1-extend"),
        ("prompt", "what happens next in the video"),
        ("video-url", "source: an http(s) URL of the video"),
        ("video-file", "source: a local MP4/MOV file (up to 4 MB), sent inline"),
        ("video-data-url", "source: a data:video/...;base64,... URL"),
        ("video-attachment-id", "source: an uploaded attachment's id"),
        ("video", "source: the alternate field some models take (URL or data URL)"),
        ("resolution", "output resolution, e.g. 720p"),
        ("negative-prompt", "what the video should not show"),
        ("aspect-ratio", "output aspect ratio, e.g. 16:9"),
        ("conversation-uuid", "attach the run to this NanoGPT conversation"),
        ("mode", "the model's mode, where it has modes"),
    ):
        src.add_argument(f"--{name}", help=text)
    src.add_argument(
        "--duration",
        type=lambda v: int(v) if v.isdigit() else v,
        help="seconds to add, e.g. 5 (some models take '5s')",
    )
    src.add_argument("--seed", type=int, help="seed, for repeatable results")
    src.add_argument(
        "--generate-audio",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="ask for (or against) a sound track, where the model can make one",
    )
    extend.add_argument(
        "--no-wait",
        action="store_true",
        help="print only the run id on stdout and exit (resume with 'wait RUN_ID')",
    )
    extend.add_argument("--download", metavar="DIR", help="download the video into DIR")
    extend.add_argument(
        "--timeout", type=_positive_seconds, help="seconds to wait (default: policy)"
    )
    _tag_option(extend)
    _connection_options(extend)
    extend.set_defaults(handler=cmd_extend)

    status = sub.add_parser("status", help="poll a run once")
    status.add_argument("run_id", help="the run's id (vid_...)")
    _connection_options(status)
    status.set_defaults(handler=cmd_status)

    for name, handler, text in (
        ("wait", cmd_wait, "wait for a run to finish"),
        ("download", cmd_download, "wait for a run, then download its video"),
    ):
        command = sub.add_parser(name, help=text)
        command.add_argument("run_id", help="the run's id (vid_...)")
        if name == "download":
            command.add_argument("dir", nargs="?", default=".", help="directory (default: .)")
        command.add_argument("--model", help="the run's model, if known")
        command.add_argument(
            "--timeout", type=_positive_seconds, help="seconds to wait (default: policy)"
        )
        _connection_options(command)
        command.set_defaults(handler=handler)

    from .testing._serve import add_emulator_arguments  # noqa: PLC0415

    emulator = sub.add_parser("emulator", help="serve the bundled NanoGPT emulator")
    add_emulator_arguments(emulator)
    emulator.set_defaults(handler=cmd_emulator)
    for command in sub.choices.values():
        _verbose_option(command)
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


def _describe_error(exc: Exception, args: argparse.Namespace) -> tuple[str, str, int]:
    """(type name, one line for a person, exit code) of an error that ends the command."""
    kind = type(exc).__name__
    if isinstance(exc, UsageError):
        return kind, f"error: {exc}", EXIT_USAGE
    if isinstance(exc, InvalidRequestError):
        # Bad arguments (a missing or fake video file...): like any other argument error.
        return kind, f"error: {exc}", EXIT_USAGE
    base = _base_url(args)
    if isinstance(exc, APIConnectionError):
        text = (
            f"error: cannot reach the server at {base} ({exc.reason}); nothing was sent. "
            "Check --base-url or $NANOGPT_BASE_URL"
        )
        return kind, text, EXIT_FAILED
    if isinstance(exc, EndpointNotFoundError):
        return kind, f"error: {exc}", EXIT_FAILED
    key_env = getattr(args, "api_key_env", "NANOGPT_API_KEY")
    if isinstance(exc, AuthenticationError):
        text = f"error: {base} rejected the API key in ${key_env} ({exc}); nothing was submitted"
        return kind, text, EXIT_FAILED
    if isinstance(exc, PermissionDeniedError):
        text = f"error: {base} does not allow the API key in ${key_env} here ({exc})"
        return kind, text, EXIT_FAILED
    return kind, f"{kind}: {exc}", EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    from ._logs import configure  # noqa: PLC0415

    argv = list(sys.argv[1:] if argv is None else argv)
    _JsonErrors.wanted = "--json" in argv
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv
    restore_logging = configure(args.verbose)
    _interrupt.requested = False
    try:
        return asyncio.run(_main(args))
    except (asyncio.CancelledError, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except (UsageError, VideoExtendError) as exc:
        kind, text, code = _describe_error(exc, args)
        if getattr(args, "json", False):
            print(_error_record(kind, text.removeprefix("error: "), code), flush=True)
        else:
            print(f"aiovideoextend: {text}", file=sys.stderr, flush=True)
        return code
    finally:
        restore_logging()
