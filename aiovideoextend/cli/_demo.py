"""``aiovideoextend demo``: a batch against the bundled emulator, with no key and no network."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any, Final

from aiovideoextend._journal import Journal
from aiovideoextend._manifest import ManifestLine, request_from_fields
from aiovideoextend.exceptions import InvalidRequestError

from ._batch import run_with_display
from ._context import EXIT_INTERRUPTED, EXIT_OK, Context
from ._progress import make_display
from ._tally import Tally

__all__ = ["DEMO_KEY", "cmd_demo"]

DEMO_KEY: Final = "sk-nano-demo-0000"


def _demo_lines(midjourney: list[str], count: int) -> list[ManifestLine]:
    from aiovideoextend._requests import EXTEND_MODELS  # noqa: PLC0415

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


async def cmd_demo(args: argparse.Namespace, context: Context) -> int:
    from aiovideoextend._session import Session  # noqa: PLC0415
    from aiovideoextend.testing import Emulator  # noqa: PLC0415

    settings = context.settings

    async with Emulator(
        users={DEMO_KEY: 1000.0}, time_scale=settings.time_scale, seed=args.seed, midjourney_runs=6
    ) as emu:
        lines = _demo_lines(emu.midjourney_run_ids(DEMO_KEY), args.count)
        tally = Tally(total=len(lines))
        display = make_display(tally, json_output=settings.json, title="Demo")
        display.message(
            f"aiovideoextend demo: {len(lines)} extends against the bundled emulator at "
            f"{emu.base_url} ({settings.time_scale:g}x time; no key, no network)"
        )
        with tempfile.TemporaryDirectory() as tmp, Journal(Path(tmp) / "demo.journal") as journal:
            async with Session(
                DEMO_KEY, base_url=emu.base_url, time_scale=settings.time_scale
            ) as s:
                code, interrupted = await run_with_display(
                    s, lines, display=display, journal=journal, results=None, context=context
                )
        display.message(
            f"emulator ledger: {len(emu.ledger)} paid submits, "
            f"{emu.duplicate_charges()} duplicate charges"
        )
    if interrupted:
        display.message("demo interrupted")
    # The demo's invalid line is there on purpose, to show how one is reported.
    return EXIT_INTERRUPTED if interrupted else EXIT_OK if code in (0, 2) else code
