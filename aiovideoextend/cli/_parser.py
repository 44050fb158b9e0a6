"""The ``aiovideoextend`` command's arguments: one sub-command per job, each with its handler."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any, NoReturn

from ._batch import cmd_batch
from ._context import EXIT_USAGE
from ._demo import cmd_demo
from ._jobs import cmd_download, cmd_emulator, cmd_extend, cmd_resolve, cmd_status, cmd_wait
from ._queue import add_queue_options, cmd_worker

__all__ = ["build_parser", "error_record"]


def error_record(kind: str, message: str, code: int) -> str:
    """An error as the one JSON object ``--json`` prints for it."""
    error = {"type": kind, "message": message}
    return json.dumps({"event": "error", "error": error, "exit_code": code})


class _Parser(argparse.ArgumentParser):
    #: argparse's own errors as JSON (set on every sub-parser when the arguments hold --json)
    json_errors = False

    def error(self, message: str) -> NoReturn:
        if self.json_errors:
            print(error_record("UsageError", message, EXIT_USAGE), flush=True)
            self.exit(EXIT_USAGE)
        super().error(message)


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


def build_parser(*, json_errors: bool = False) -> argparse.ArgumentParser:
    """The parser; with ``json_errors`` its usage errors are JSON records on stdout."""
    from aiovideoextend import __version__  # noqa: PLC0415

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
        "scale-out", "enqueue the lines for `aiovideoextend worker --queue URL` on N hosts"
    )
    shared.add_argument("--redis", metavar="URL", help=argparse.SUPPRESS)  # removed: a hint
    shared.add_argument(
        "--batch-id", metavar="ID", help="with --queue: the batch's name (default: manifest hash)"
    )
    shared.add_argument(
        "--redis-prefix",
        default="aiovideoextend",
        metavar="PREFIX",
        help="with --queue: the Redis key prefix (the workers' --redis-prefix)",
    )
    add_queue_options(shared, worker=False)
    _batch_options(batch)
    _tag_option(batch)
    _connection_options(batch)
    batch.set_defaults(handler=cmd_batch)

    worker = sub.add_parser("worker", help="run queued batch lines (see batch --queue)")
    add_queue_options(worker, worker=True)
    worker.add_argument("--download", metavar="DIR", help="download completed videos into DIR")
    _tag_option(worker)
    _connection_options(worker, json_flag=False)
    worker.set_defaults(handler=cmd_worker)

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

    from aiovideoextend.testing._serve import add_emulator_arguments  # noqa: PLC0415

    emulator = sub.add_parser("emulator", help="serve the bundled NanoGPT emulator")
    add_emulator_arguments(emulator)
    emulator.set_defaults(handler=cmd_emulator)
    parser.json_errors = json_errors
    for command in sub.choices.values():
        _verbose_option(command)
        command.json_errors = json_errors
    return parser
