"""The ``aiovideoextend`` command: batch runs, single jobs, the demo and the emulator.

Install it with the ``[cli]`` extra (rich, for the progress bars; without it the command logs
plain lines). The library itself never imports this package.

Exit codes: 0 everything completed, 1 something failed or did not run, 2 a usage, manifest or
journal error (or invalid manifest lines), 130 interrupted. The API key is read from the
environment only, so it never shows up in ``ps``, in the resume command or in any output.

An error is one line on stderr (``aiovideoextend: error: ...``); under ``--json`` it is one JSON
object on stdout instead: ``{"event": "error", "error": {"type", "message"}, "exit_code"}``.

The modules: ``_main`` (``main()``: parse, run, errors to exit codes), ``_parser`` (the
arguments), ``_context`` (settings, interrupt, exit codes of one run), the commands (``_batch``,
``_demo``, ``_jobs``), and what a batch shows and writes (``_tally``, ``_progress``,
``_results``).
"""

from __future__ import annotations

from ._main import main
from ._parser import build_parser

__all__ = ["build_parser", "main"]
