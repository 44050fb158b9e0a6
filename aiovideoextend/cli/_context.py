"""What every command shares: exit codes, usage errors, the settings of one run, its interrupt.

One run of the command is one :class:`Context`: the :class:`Settings` derived from the parsed
arguments (which stay as argparse made them) and the :class:`Interrupt` that its signal handler
sets. Nothing here is global, so ``main()`` can run many times in one process (tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from aiovideoextend.exceptions import InvalidRequestError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiovideoextend._limiter_api import Limiter
    from aiovideoextend._session import Session

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130
DEFAULT_KEY_ENV: Final = "NANOGPT_API_KEY"


class UsageError(Exception):
    """A problem with how the command was called: exit 2 with the message."""


@attrs.frozen(kw_only=True)
class Settings:
    """The options the commands share, read once from the parsed arguments.

    Options only one command has (a manifest, a run id, the request's fields) are read from the
    arguments by that command; neither is ever changed.
    """

    #: the arguments as given, for the command that resumes this one
    argv: tuple[str, ...] = ()
    json: bool = False
    base_url: str | None = None
    api_key_env: str = DEFAULT_KEY_ENV
    time_scale: float = 1.0
    tag_submits: bool = False
    pace_submits: bool = False
    #: where videos go (``--download DIR``, or the ``download`` command's DIR)
    download: str | None = None
    timeout: float | None = None
    max_in_flight: int | None = None
    max_cost: float | None = None
    min_balance: float | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, argv: Sequence[str] = ()) -> Settings:
        values = {
            field.name: getattr(args, field.name)
            for field in attrs.fields(cls)
            if field.name != "argv" and getattr(args, field.name, None) is not None
        }
        if getattr(args, "command", None) == "download":
            values["download"] = args.dir
        return cls(argv=tuple(argv), **values)


class Interrupt:
    """Ctrl-C (or SIGTERM) during one run: set by its signal handler, so that a command tells
    the person's interrupt from any other cancellation."""

    def __init__(self) -> None:
        self.requested = False

    def signal(self, task: asyncio.Task[Any] | None) -> None:
        """The signal handler: cancel ``task`` the first time, leave at once the second."""
        if self.requested:
            # A second Ctrl-C: the journal is consistent after every commit, so leave now.
            os._exit(EXIT_INTERRUPTED)
        self.requested = True
        print("\nstopping... (Ctrl-C again to quit at once)", file=sys.stderr, flush=True)
        if task is not None:
            task.cancel()

    def caught(self) -> bool:
        """In an ``except CancelledError``: True (and the current task uncancelled) when the
        cancellation is this interrupt, so the command can report and exit 130; else re-raise."""
        task = asyncio.current_task()
        if task is None or not self.requested:
            return False
        task.uncancel()
        return True


@attrs.frozen
class Context:
    """One run of the command."""

    settings: Settings
    interrupt: Interrupt = attrs.field(factory=Interrupt)


def base_url(settings: Settings) -> str:
    from aiovideoextend._session import DEFAULT_BASE_URL  # noqa: PLC0415

    base = settings.base_url or os.environ.get("NANOGPT_BASE_URL")
    return (base or DEFAULT_BASE_URL).rstrip("/")


def output_path(path: Path, what: str) -> Path:
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


def default_beside(manifest: Path, suffix: str) -> Path:
    return manifest.with_name(manifest.name + suffix)


def api_key(settings: Settings) -> str:
    key = os.environ.get(settings.api_key_env, "").strip()
    if not key:
        raise UsageError(f"no API key: set the {settings.api_key_env} environment variable")
    return key


def open_session(settings: Settings, limiter: Limiter | None = None) -> Session:
    from aiovideoextend._config import Retries  # noqa: PLC0415
    from aiovideoextend._session import Session  # noqa: PLC0415

    key = api_key(settings)
    retries = Retries(tag_submits=settings.tag_submits, pace_submits=settings.pace_submits)
    try:
        return Session(
            key,
            base_url=settings.base_url,
            time_scale=settings.time_scale,
            limiter=limiter,
            retries=retries,
        )
    except InvalidRequestError as exc:
        raise UsageError(str(exc)) from None


def hide_password(arg: str) -> str:
    """``redis://user:secret@host`` -> ``redis://user:***@host`` (for anything printed)."""
    if "://" not in arg or "@" not in arg:
        return arg
    parts = urllib.parse.urlsplit(arg)
    if parts.password is None:
        return arg
    user = f"{parts.username}:***" if parts.username else ":***"
    netloc = user + "@" + parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def resume_command(argv: Sequence[str]) -> str:
    prog = Path(sys.argv[0]).name
    command = (
        ["aiovideoextend"] if prog == "aiovideoextend" else [sys.executable, "-m", "aiovideoextend"]
    )
    return shlex.join([*command, *(hide_password(arg) for arg in argv)])


def show(settings: Settings, data: dict[str, Any], text: str) -> None:
    """The command's result on stdout: ``data`` as JSON with ``--json``, else ``text``."""
    print(json.dumps(data) if settings.json else text, flush=True)


def note(text: str) -> None:
    """Progress and advice: stderr, so that stdout holds only the result."""
    print(text, file=sys.stderr, flush=True)
