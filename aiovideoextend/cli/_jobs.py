"""The commands about one run: ``extend``, ``status``, ``wait``, ``download``, ``resolve``, and
``emulator``."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiovideoextend._journal import Journal
from aiovideoextend._manifest import request_from_fields
from aiovideoextend._requests import OPTION_FIELDS
from aiovideoextend._resolve import resolve_line
from aiovideoextend.exceptions import InvalidRequestError, JobError, JobTimeoutError, JournalError

from ._context import (
    DEFAULT_KEY_ENV,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Context,
    Settings,
    UsageError,
    default_beside,
    note,
    open_session,
    resume_command,
    show,
)

if TYPE_CHECKING:
    from aiovideoextend._session import Session

__all__ = ["cmd_download", "cmd_emulator", "cmd_extend", "cmd_resolve", "cmd_status", "cmd_wait"]

#: the ``extend`` options that are the request's fields
_REQUEST_FIELDS = (
    *("run_id", "index", "model", "prompt"),
    *("video_url", "video_file", "video_data_url", "video_attachment_id", "video"),
    *OPTION_FIELDS,
)


def _wait_command(settings: Settings, run_id: str, model: str | None) -> str:
    """The command that picks up waiting for ``run_id`` where this one stopped."""
    download = settings.download
    argv = ["download", run_id, str(download)] if download else ["wait", run_id]
    if model:
        argv += ["--model", model]
    if settings.base_url:
        argv += ["--base-url", settings.base_url]
    if settings.api_key_env != DEFAULT_KEY_ENV:
        argv += ["--api-key-env", settings.api_key_env]
    if settings.time_scale != 1:
        argv += ["--time-scale", f"{settings.time_scale:g}"]
    return resume_command(argv)


def _unfinished(settings: Settings, run_id: str, status: str, why: str, command: str) -> None:
    text = f"{run_id} is still {status} on the server ({why}); wait for it with:\n  {command}"
    if settings.json:
        show(settings, {"run_id": run_id, "status": status, "error": why, "resume": command}, "")
    else:
        note(text)


async def _wait_and_report(
    session: Session,
    context: Context,
    run_id: str,
    model: str | None,
    *,
    look_now: bool = False,
) -> int:
    settings = context.settings
    job = session.job(run_id, model)
    try:
        if look_now:
            # One poll at once: an unknown run, a wrong key or an unreachable server is told
            # now, and a finished run is reported without waiting for the first poll.
            await job.refresh()
        result = await job.result(timeout=settings.timeout)
    except JobTimeoutError:
        timeout = settings.timeout
        why = f"--timeout {timeout:g}s passed" if timeout else "the wait timed out"
        _unfinished(settings, run_id, job.status.value, why, _wait_command(settings, run_id, model))
        return EXIT_FAILED
    except JobError as exc:
        failed = {"run_id": run_id, "status": job.status.value, "error": str(exc)}
        show(settings, failed, str(exc))
        return EXIT_FAILED
    except asyncio.CancelledError:
        if not context.interrupt.caught():
            raise
        command = _wait_command(settings, run_id, model)
        _unfinished(settings, run_id, job.status.value, "interrupted", command)
        return EXIT_INTERRUPTED
    data: dict[str, Any] = {"run_id": run_id, "status": "completed", "video_url": result.video_url}
    data["cost"] = result.cost
    text = f"{run_id} completed: {result.video_url}"
    if settings.download:
        path = await session.download(result, settings.download)
        data["path"] = str(path)
        text += f"\nsaved {path}"
    show(settings, data, text)
    return EXIT_OK


async def cmd_extend(args: argparse.Namespace, context: Context) -> int:
    settings = context.settings
    fields = {name: value for name in _REQUEST_FIELDS if (value := getattr(args, name)) is not None}
    try:
        request = request_from_fields(fields)
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None
    async with open_session(settings) as session:
        job = await session.submit(request)
        cost = job.submission.cost if job.submission is not None else None
        if not settings.json:
            note(f"submitted {job.run_id} ({request.model}, precharge {cost})")
        if args.no_wait:
            data = {"run_id": job.run_id, "status": "pending", "precharge": cost}
            show(settings, data, job.run_id)
            return EXIT_OK
        return await _wait_and_report(session, context, job.run_id, request.model)


async def cmd_status(args: argparse.Namespace, context: Context) -> int:
    async with open_session(context.settings) as session:
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
    show(context.settings, data, text)
    return EXIT_OK


async def cmd_resolve(args: argparse.Namespace, context: Context) -> int:
    """Make one candidate run an ambiguous line's result (journal and results file)."""
    return _resolve(args, context.settings)


def _resolve(args: argparse.Namespace, settings: Settings) -> int:
    manifest = Path(args.manifest)
    journal_path = Path(args.journal or default_beside(manifest, ".journal"))
    results_path = Path(args.results or default_beside(manifest, ".results.jsonl"))
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
    show(settings, {"line": args.line, **outcome}, text)
    return EXIT_OK


async def cmd_wait(args: argparse.Namespace, context: Context) -> int:
    """``wait RUN_ID`` and ``download RUN_ID [DIR]`` (its settings name the folder)."""
    async with open_session(context.settings) as session:
        return await _wait_and_report(session, context, args.run_id, args.model, look_now=True)


cmd_download = cmd_wait


async def cmd_emulator(args: argparse.Namespace, _context: Context) -> int:
    from aiovideoextend.testing._serve import serve  # noqa: PLC0415

    try:
        await serve(args)
    except OSError as exc:
        # Most often the port is taken: one line, not a traceback.
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {reason}") from None
    return EXIT_OK  # pragma: no cover - serve() runs until interrupted
