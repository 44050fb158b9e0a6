"""``worker --queue URL`` and ``batch MANIFEST --queue URL``: scale-out on a task queue."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiovideoextend.exceptions import ManifestError

from ._context import Context, UsageError, api_key, note
from ._results import ResultsFile

if TYPE_CHECKING:
    from aiovideoextend.batch import BatchOutcome, ManifestLine

    from ._progress import Display

__all__ = ["add_queue_options", "batch_on_queue", "cmd_worker"]


def _config(args: argparse.Namespace, context: Context, **worker: Any) -> Any:
    try:
        from aiovideoextend.queue._taskiq import QueueConfig  # noqa: PLC0415
    except ImportError:
        raise UsageError("--queue needs taskiq: pip install 'aiovideoextend[queue]'") from None
    try:
        return QueueConfig(
            args.queue,
            prefix=args.redis_prefix,
            time_scale=context.settings.time_scale,
            redeliver_after=args.redeliver_after,
            follow_slice=args.follow_slice,
            **worker,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_queue_options(parser: argparse.ArgumentParser | Any, *, worker: bool) -> None:
    add = parser.add_argument
    if worker:
        add("--queue", required=True, metavar="URL", help="the Redis URL of the task queue")
        add("--redis-prefix", default="aiovideoextend", metavar="PREFIX", help="key prefix")
        add("--concurrency", type=int, default=32, metavar="N", help="tasks at once (default 32)")
        add(
            "--untagged-submits",
            action="store_true",
            help="send source-video submits without a conversationUUID of their own (by default "
            "a worker tags each one: only a tag tells a lost answer's run from a run another "
            "worker created meanwhile)",
        )
    else:
        add("--queue", metavar="URL", help="enqueue the lines for `aiovideoextend worker`s")
    add(
        "--redeliver-after",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="a task whose worker stopped its heartbeat this long ago goes to another worker "
        "(default 20; keep it well under the time the account takes to create 50 runs of a "
        "model, the most recover lists)",
    )
    add(
        "--follow-slice",
        type=float,
        default=120.0,
        metavar="SECONDS",
        help="a follow task polls this long, then enqueues itself again (default 120)",
    )


async def cmd_worker(args: argparse.Namespace, context: Context) -> int:
    from aiovideoextend import Retries  # noqa: PLC0415

    settings = context.settings
    config = _config(
        args,
        context,
        api_key=api_key(settings),
        base_url=settings.base_url,
        download=settings.download,
        concurrency=args.concurrency,
        retries=Retries(
            tag_submits=settings.tag_submits or not args.untagged_submits,
            pace_submits=settings.pace_submits,
        ),
    )
    from aiovideoextend.queue._taskiq import run_worker  # noqa: PLC0415

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Graceful: no new tasks; the running ones (each bounded) finish and are acknowledged.
        loop.add_signal_handler(signum, stop.set)
    note(f"worker on {args.redis_prefix} queue; SIGTERM stops it gracefully")
    await run_worker(config, stop)
    return 0


async def batch_on_queue(
    args: argparse.Namespace,
    context: Context,
    *,
    manifest: Path,
    lines: list[ManifestLine],
    display: Display,
    results_path: Path,
) -> tuple[int, bool]:
    """Enqueue the manifest, show the workers' progress, write one result per line."""
    from ._batch import exit_code  # noqa: PLC0415

    for option in ("journal", "max_cost", "min_balance", "max_in_flight", "download"):
        if getattr(args, option, None) is not None:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} does not go with --queue (the workers' options decide)")
    config = _config(args, context)
    from aiovideoextend.queue._client import batch_id_of, run_queued  # noqa: PLC0415

    try:
        content = await asyncio.to_thread(manifest.read_bytes)
    except OSError as exc:
        raise ManifestError(str(exc)) from None
    batch_id = args.batch_id or batch_id_of(content)
    display.message(f"queued batch {batch_id}", batch_id=batch_id)
    expected = [(ln.line, ln.request.key if ln.request else None) for ln in lines]
    outcomes: list[BatchOutcome] = []
    interrupted = False
    display.start()
    try:
        with ResultsFile(results_path, expected) as results:
            async for outcome in run_queued(config, manifest, lines, batch_id=batch_id):
                outcomes.append(outcome)
                results.write(outcome)
                display.outcome(outcome)
    except asyncio.CancelledError:
        if not context.interrupt.caught():
            raise
        interrupted = True  # the workers go on; rerun to collect the results
    finally:
        display.stop()
    display.tally.interrupted = interrupted
    display.summary()
    return exit_code(outcomes, len(lines), interrupted=interrupted), interrupted
