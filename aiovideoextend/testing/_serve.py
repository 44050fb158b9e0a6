"""Run the emulator from a command line: ``python -m aiovideoextend.testing`` or the CLI."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
from typing import TYPE_CHECKING

from ._emulator import CREATED_AT_MODES, Emulator
from ._lengths import JOB_LENGTHS

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_KEY = "sk-nano-test-0001"
DEFAULT_BALANCE = 1000.0


def _key(value: str) -> tuple[str, float]:
    """``KEY`` or ``KEY=BALANCE``."""
    key, sep, balance = value.partition("=")
    if not key:
        raise argparse.ArgumentTypeError("the key must not be empty")
    if not sep:
        return key, DEFAULT_BALANCE
    try:
        return key, float(balance)
    except ValueError:
        raise argparse.ArgumentTypeError(f"balance {balance!r} is not a number") from None


def _pair(value: str) -> tuple[float, float]:
    """``SECONDS`` or ``LOW,HIGH``."""
    try:
        parts = [float(part) for part in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not SECONDS or LOW,HIGH") from None
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[1]
    raise argparse.ArgumentTypeError(f"{value!r} is not SECONDS or LOW,HIGH")


def _finite(value: str) -> float:
    """A finite number of seconds, negative allowed."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{value!r} is not a finite number of seconds")
    return number


def _positive(value: str) -> float:
    number = _finite(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number > 0")
    return number


def add_emulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    add("--port", type=int, default=8765, help="port to bind, 0 for any (default: %(default)s)")
    add(
        "--time-scale",
        type=_positive,
        default=1.0,
        help="emulated seconds per real second (default: %(default)g)",
    )
    add("--seed", type=int, default=0, help="seed for ids, durations and failures")
    add(
        "--envelope",
        choices=("nested", "flat", "mixed"),
        default="nested",
        help="the status answer's shape (default: %(default)s)",
    )
    add(
        "--error-shape",
        choices=("guide", "simple", "oas", "mixed"),
        default="guide",
        help="which documented error envelope errors use (default: %(default)s)",
    )
    add(
        "--limit-algorithm",
        choices=("sliding", "fixed", "token"),
        default="sliding",
        help="how the server counts its rate limits (default: %(default)s)",
    )
    add(
        "--no-retry-after",
        dest="retry_after",
        action="store_false",
        help="leave Retry-After off 429 responses",
    )
    add(
        "--key",
        dest="keys",
        metavar="KEY[=BALANCE]",
        type=_key,
        action="append",
        help=f"an API key and its USD balance; repeatable (default: {DEFAULT_KEY}=1000)",
    )
    add("--midjourney-runs", type=int, default=2, help="completed midjourney runs per key")
    add("--failure-rate", type=float, default=0.05, help="share of jobs that fail")
    add(
        "--latency",
        type=_pair,
        default=(0.0, 0.0),
        metavar="SECONDS|LOW,HIGH",
        help="real seconds of delay before each answer",
    )
    add(
        "--created-at",
        choices=CREATED_AT_MODES,
        default="exact",
        help="createdAt in milliseconds, whole seconds, or left out (default: %(default)s)",
    )
    add(
        "--clock-skew",
        type=_finite,
        default=0.0,
        metavar="SECONDS",
        help="how far the server's clock runs ahead (negative: behind) in its timestamps",
    )
    add(
        "--job-lengths",
        choices=JOB_LENGTHS,
        default="uniform",
        help="the shape of job lengths (default: %(default)s)",
    )
    add("--admin", action="store_true", help="serve GET /api/_emulator/state")


def emulator_from_arguments(args: argparse.Namespace) -> Emulator:
    """An (unstarted) Emulator configured from parsed arguments."""
    return Emulator(
        users=dict(args.keys or [(DEFAULT_KEY, DEFAULT_BALANCE)]),
        time_scale=args.time_scale,
        seed=args.seed,
        envelope=args.envelope,
        error_shape=args.error_shape,
        limit_algorithm=args.limit_algorithm,
        retry_after=args.retry_after,
        midjourney_runs=args.midjourney_runs,
        failure_rate=args.failure_rate,
        latency=args.latency,
        created_at=args.created_at,
        clock_skew=args.clock_skew,
        job_lengths=args.job_lengths,
        host=args.host,
        port=args.port,
        admin=args.admin,
    )


async def serve(args: argparse.Namespace) -> None:
    """Serve until cancelled, after printing the base URL, keys and seeded Midjourney runs."""
    async with emulator_from_arguments(args) as emu:
        print(f"NanoGPT emulator at {emu.base_url}", flush=True)
        for key in emu.users:
            runs = ", ".join(emu.midjourney_run_ids(key)) or "none"
            print(f"  key {key}  balance {emu.balance(key):.2f} USD  midjourney runs: {runs}")
        print("Press Ctrl+C to stop.", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aiovideoextend.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m aiovideoextend.testing", description="Run a local NanoGPT video API."
    )
    add_emulator_arguments(parser)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0
