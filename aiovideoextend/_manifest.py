"""Batch manifests: JSON Lines or CSV, one extend request per line, the library's argument names.

A bad line never stops the others: it becomes a :class:`ManifestLine` with an ``error`` (and later
an ``invalid`` outcome). Only a manifest that cannot be read at all raises :class:`ManifestError`.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from ._requests import (
    MIDJOURNEY_MODEL,
    OPTION_FIELDS,
    ExtendRequest,
    MidjourneyExtend,
    SourceExtend,
    check_video_file,
)
from .exceptions import InvalidRequestError, ManifestError

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = ["ManifestError", "ManifestLine", "parse_manifest", "request_from_fields"]

_SOURCE: Final = ("video_url", "video_file", "video_data_url", "video_attachment_id", "video")
_MIDJOURNEY_FIELDS: Final = frozenset({"run_id", "index", "model"})
_SOURCE_FIELDS: Final = frozenset({"model", "prompt", "options", *_SOURCE, *OPTION_FIELDS})
#: Accepted, but not offered in "known fields" lists: the options may also come nested.
_UNLISTED: Final = frozenset({"options"})
#: The API's camelCase names (people copy them from NanoGPT's docs) -> ours.
_WIRE_NAMES: Final = {
    "runId": "run_id",
    "taskId": "run_id",
    "videoUrl": "video_url",
    "videoDataUrl": "video_data_url",
    "videoAttachmentId": "video_attachment_id",
    "negativePrompt": "negative_prompt",
    "aspectRatio": "aspect_ratio",
    "conversationUUID": "conversation_uuid",
    "generateAudio": "generate_audio",
}
_INT_FIELDS: Final = frozenset({"index", "seed"})
_TRUE: Final = frozenset({"true", "yes", "1"})
#: bytes that are not UTF-8, as decoding with "surrogateescape" leaves them
_UNDECODABLE: Final = re.compile("[\udc80-\udcff]")
_FALSE: Final = frozenset({"false", "no", "0"})
#: What spreadsheets write instead of commas (one header cell holding them all gives it away).
_OTHER_SEPARATORS: Final = ((";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars"))


@attrs.frozen
class ManifestLine:
    """One request line: the parsed request, or why it is invalid."""

    #: 1-based line number in the manifest file
    line: int
    request: ExtendRequest | None = None
    error: str | None = None


def _suggest(name: str, allowed: frozenset[str]) -> str | None:
    """The known field a misspelt or camelCase ``name`` most likely means."""
    wire = _WIRE_NAMES.get(name)
    if wire in allowed:
        return wire
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    if snake in allowed:
        return snake
    close = difflib.get_close_matches(snake, sorted(allowed - _UNLISTED), n=1, cutoff=0.7)
    return close[0] if close else None


def _unknown(fields: Mapping[str, Any], allowed: frozenset[str], flow: str | None) -> None:
    unknown = sorted(set(fields) - allowed, key=str)
    if unknown:
        name = unknown[0]
        names = ", ".join(sorted(allowed - _UNLISTED))
        guess = _suggest(name, allowed) if isinstance(name, str) else None
        hint = f"; did you mean {guess!r}?" if guess else ""
        where = f" for a {flow} extend" if flow else ""
        raise InvalidRequestError(f"unknown field {name!r}{where}{hint} (fields: {names})")


def request_from_fields(
    fields: Mapping[str, Any], *, base_dir: Path | None = None
) -> ExtendRequest:
    """Build a request from manifest fields; raises :class:`InvalidRequestError`.

    ``{"run_id": ..., "index": n}`` is a Midjourney extend; anything with a ``prompt`` is a
    source-video extend. A relative ``video_file`` is taken relative to ``base_dir``.
    """
    if "run_id" in fields and "prompt" not in fields:
        _unknown(fields, _MIDJOURNEY_FIELDS, "Midjourney")
        model = fields.get("model", MIDJOURNEY_MODEL)
        if model != MIDJOURNEY_MODEL:
            raise InvalidRequestError(f"a run_id/index line is a {MIDJOURNEY_MODEL} extend")
        return MidjourneyExtend(run_id=fields["run_id"], index=fields.get("index", 0))
    if "prompt" not in fields and "model" not in fields:
        # {"runId": ...} or {"promt": ...}: name the misspelt field, not the missing one.
        _unknown(fields, _MIDJOURNEY_FIELDS | _SOURCE_FIELDS, None)
        raise InvalidRequestError(
            "need run_id (+ index) for a Midjourney extend, or model + prompt + a source video"
        )
    _unknown(fields, _SOURCE_FIELDS, "source-video")
    nested = fields.get("options")
    nested = {} if nested is None else nested
    if not isinstance(nested, dict):
        raise InvalidRequestError("options must be an object")
    options = {name: fields[name] for name in OPTION_FIELDS if name in fields} | nested
    sources = {name: fields[name] for name in _SOURCE if name in fields}
    video_file = sources.get("video_file")
    if isinstance(video_file, str) and base_dir is not None and video_file:
        sources["video_file"] = str(base_dir / video_file)
    request = SourceExtend(
        model=fields.get("model"),  # type: ignore[arg-type]  # validated by SourceExtend
        prompt=fields.get("prompt"),  # type: ignore[arg-type]
        options=options,
        **sources,
    )
    if request.video_file is not None:
        # Now, not when it is sent: a missing or fake video is an invalid line, never a
        # submit whose outcome is unknown.
        check_video_file(request.video_file)
    return request


def _coerce_csv(name: str, value: str) -> Any:
    """CSV cells are text: turn the numeric and boolean fields into what the API expects."""
    if name in _INT_FIELDS or name == "duration":
        try:
            return int(value)
        except ValueError:
            if name == "duration":
                return value  # some models take "5s"-style strings
            raise InvalidRequestError(f"{name} must be an integer, got {value!r:.40}") from None
    if name == "generate_audio":
        lowered = value.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise InvalidRequestError(f"generate_audio must be true or false, got {value!r:.40}")
    return value


def _jsonl(text: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    # Only "\n" ends a line: splitlines() would also split at U+2028, U+0085 and friends,
    # which JSON allows raw inside strings.
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if _UNDECODABLE.search(stripped):
            yield number, "not valid UTF-8"
            continue
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        if not isinstance(value, dict):
            yield number, f"expected a JSON object, got {type(value).__name__}"
            continue
        yield number, value


def _csv_rows(reader: Any) -> Iterator[list[str] | csv.Error]:
    """The rows, with a row the csv module rejects (a field over its size limit) in its place:
    the reader goes on with the next line after it."""
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield exc


def _csv(text: str, name: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    start = 1
    for row in _csv_rows(reader):
        line, start = start, reader.line_num + 1
        if isinstance(row, csv.Error) or any(_UNDECODABLE.search(cell) for cell in row):
            problem = f"not valid CSV ({row})" if isinstance(row, csv.Error) else "not valid UTF-8"
            if header is None:
                raise ManifestError(f"{name}: line {line}: the header is {problem}")
            yield line, problem
            continue
        if not any(cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            separator = next((n for c, n in _OTHER_SEPARATORS if c in header[0]), None)
            if len(header) == 1 and separator is not None:
                raise ManifestError(
                    f"{name}: line {line}: the CSV header is separated by {separator}; "
                    "manifests use commas (save it as comma-separated CSV)"
                )
            if len(set(header)) != len(header) or not all(header):
                raise ManifestError(f"{name}: line {line}: CSV header has empty or repeated names")
            continue
        if len(row) > len(header):
            yield line, f"{len(row)} cells but the header names {len(header)} columns"
            continue
        try:
            fields = {
                column: _coerce_csv(column, cell)
                for column, cell in zip(header, row, strict=False)
                if cell.strip()
            }
        except InvalidRequestError as exc:
            yield line, str(exc)
            continue
        yield line, fields
    if header is None:
        raise ManifestError(f"{name}: an empty CSV manifest (no header)")


def parse_manifest(path: str | Path) -> list[ManifestLine]:
    """Read a manifest; ``.csv`` is CSV with a header row, anything else JSON Lines."""
    path = Path(path)
    try:
        # Bytes that are not UTF-8 spoil their own line only (see _UNDECODABLE).
        text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from None
    is_csv = path.suffix.lower() == ".csv"
    rows = _csv(text, path.name) if is_csv else _jsonl(text)
    lines = []
    for number, fields in rows:
        if isinstance(fields, str):
            lines.append(ManifestLine(number, error=fields))
            continue
        try:
            request = request_from_fields(fields, base_dir=path.parent)
        except InvalidRequestError as exc:
            lines.append(ManifestLine(number, error=str(exc)))
        except Exception as exc:  # a wrong type the validators did not expect
            lines.append(ManifestLine(number, error=f"{type(exc).__name__}: {exc}"))
        else:
            lines.append(ManifestLine(number, request=request))
    if not lines:
        raise ManifestError(f"manifest {path} holds no requests")
    return lines
