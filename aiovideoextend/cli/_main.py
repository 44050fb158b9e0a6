"""``main()``: parse, run the command on an event loop of its own, turn errors into exit codes."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import TYPE_CHECKING

from aiovideoextend._logs import configure
from aiovideoextend.exceptions import (
    APIConnectionError,
    AuthenticationError,
    EndpointNotFoundError,
    InvalidRequestError,
    PermissionDeniedError,
    VideoExtendError,
)

from ._context import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Context,
    Settings,
    UsageError,
    base_url,
)
from ._parser import build_parser, error_record

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

__all__ = ["main"]


async def _run(args: argparse.Namespace, context: Context) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, context.interrupt.signal, task)
    handler: Callable[[argparse.Namespace, Context], Awaitable[int]] = args.handler
    return await handler(args, context)


def _describe_error(exc: Exception, settings: Settings) -> tuple[str, str, int]:
    """(type name, one line for a person, exit code) of an error that ends the command."""
    kind = type(exc).__name__
    if isinstance(exc, UsageError):
        return kind, f"error: {exc}", EXIT_USAGE
    if isinstance(exc, InvalidRequestError):
        # Bad arguments (a missing or fake video file...): like any other argument error.
        return kind, f"error: {exc}", EXIT_USAGE
    base = base_url(settings)
    if isinstance(exc, APIConnectionError):
        text = (
            f"error: cannot reach the server at {base} ({exc.reason}); nothing was sent. "
            "Check --base-url or $NANOGPT_BASE_URL"
        )
        return kind, text, EXIT_FAILED
    if isinstance(exc, EndpointNotFoundError):
        return kind, f"error: {exc}", EXIT_FAILED
    key_env = settings.api_key_env
    if isinstance(exc, AuthenticationError):
        text = f"error: {base} rejected the API key in ${key_env} ({exc}); nothing was submitted"
        return kind, text, EXIT_FAILED
    if isinstance(exc, PermissionDeniedError):
        text = f"error: {base} does not allow the API key in ${key_env} here ({exc})"
        return kind, text, EXIT_FAILED
    return kind, f"{kind}: {exc}", EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """The console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # From the raw arguments: argparse's own errors are JSON too then.
    parser = build_parser(json_errors="--json" in argv)
    args = parser.parse_args(argv)
    context = Context(Settings.from_args(args, argv))
    restore_logging = configure(args.verbose)
    try:
        return asyncio.run(_run(args, context))
    except (asyncio.CancelledError, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    except (UsageError, VideoExtendError) as exc:
        kind, text, code = _describe_error(exc, context.settings)
        if context.settings.json:
            print(error_record(kind, text.removeprefix("error: "), code), flush=True)
        else:
            print(f"aiovideoextend: {text}", file=sys.stderr, flush=True)
        return code
    finally:
        restore_logging()
