"""Logging: the ``aiovideoextend`` logger, ``$AIOVIDEOEXTEND_LOG`` and the command's ``-v``.

Like ``OPENAI_LOG``: ``AIOVIDEOEXTEND_LOG=debug`` (or ``info``, ``warning``, ``error``) makes the
library log to stderr without any setup of the program's own. The command line always installs
the handler, so the library's warnings never go to Python's bare last-resort handler.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Final

__all__ = ["ENV_VAR", "configure", "env_level", "setup_from_env"]

ENV_VAR: Final = "AIOVIDEOEXTEND_LOG"
_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_logger = logging.getLogger("aiovideoextend")


class _Formatter(logging.Formatter):
    """``aiovideoextend: warning: <message>``, one line per record (a traceback after it)."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"aiovideoextend: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (a progress display may wrap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


def env_level() -> int | None:
    """The level ``$AIOVIDEOEXTEND_LOG`` asks for, or None (unset or not a level name)."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    return _LEVELS.get(value)


def _handler() -> _StderrHandler:
    for handler in _logger.handlers:
        if isinstance(handler, _StderrHandler):
            return handler
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    _logger.addHandler(handler)
    return handler


def setup_from_env() -> None:
    """At import: log to stderr when ``$AIOVIDEOEXTEND_LOG`` names a level."""
    level = env_level()
    if level is not None:
        _handler()
        _logger.setLevel(level)


def configure(verbosity: int = 0) -> Callable[[], None]:
    """The command line's logging: warnings always, ``-v`` info, ``-vv`` debug (or the
    environment variable's level when it shows more). Returns what undoes it (``main()`` may
    run inside another program, such as a test)."""
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    env = env_level()
    if env is not None:
        level = min(level, env)
    before = (_logger.level, _logger.propagate, list(_logger.handlers))
    _handler()
    _logger.setLevel(level)
    # The command owns the process: its messages are not repeated by a root handler.
    _logger.propagate = False

    def restore() -> None:
        _logger.setLevel(before[0])
        _logger.propagate = before[1]
        _logger.handlers[:] = before[2]

    return restore
