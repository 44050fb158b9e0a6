"""Extend requests of both flows, validated before anything is sent.

A request object that exists is valid: the constructors raise :class:`InvalidRequestError` for
anything the API documents as a rejection, so nothing is sent and nothing is charged. Their
bodies are written by the converter, with every other wire rule.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import mimetypes
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final, TypedDict

import attrs

from ._converter import OPTION_WIRE_NAMES, SOURCE_WIRE_NAMES, midjourney_body, source_body
from ._mp4 import mp4_duration
from .exceptions import InvalidRequestError

__all__ = [
    "EXTEND_MODELS",
    "MAX_DATA_URL_BYTES",
    "MAX_SOURCE_SECONDS",
    "MIDJOURNEY_MODEL",
    "OPTION_FIELDS",
    "ExtendOptions",
    "ExtendRequest",
    "MidjourneyExtend",
    "SourceExtend",
    "check_video_file",
    "sniff_video",
]

MIDJOURNEY_MODEL: Final = "midjourney-video"
#: Source-video extend models named in NanoGPT's docs (the docs call the list examples).
EXTEND_MODELS: Final = frozenset(
    {
        "wan-wavespeed-22-spicy-extend",
        "wan-wavespeed-25-extend",
        "veo3-1-extend",
        "veo3-1-fast-extend",
        "bytedance-seedance-v1.5-pro-extend",
    }
)
# Models documented to take the alternate ``video`` field; the other known ones reject it.
_VIDEO_FIELD_MODELS: Final = frozenset({"wan-wavespeed-25-extend"})
MAX_DATA_URL_BYTES: Final = 4 * 1024 * 1024
MAX_SOURCE_SECONDS: Final = 120.0

#: Documented optional fields of ``POST generate-video``: Python name -> (wire name, types).
OPTION_FIELDS: Final[Mapping[str, tuple[str, tuple[type, ...]]]] = {
    name: (OPTION_WIRE_NAMES[name], types)
    for name, types in {
        "duration": (str, int),
        "resolution": (str,),
        "seed": (int,),
        "negative_prompt": (str,),
        "aspect_ratio": (str,),
        "conversation_uuid": (str,),
        "generate_audio": (bool,),
        "mode": (str,),
    }.items()
}


class ExtendOptions(TypedDict, total=False):
    """The documented optional fields of a source-video extend, by their Python names.

    ``session.extend(model, prompt, video_url=..., **options)`` takes these as keyword
    arguments, so a type checker rejects a misspelt one (``duraton=5``) or a wrong type; at run
    time an unknown option still raises :class:`InvalidRequestError`. None means "not sent".
    """

    duration: str | int | None
    resolution: str | None
    seed: int | None
    negative_prompt: str | None
    aspect_ratio: str | None
    conversation_uuid: str | None
    generate_audio: bool | None
    mode: str | None


#: A source-video extend takes exactly one of these.
_SOURCES: Final = tuple(SOURCE_WIRE_NAMES)
_DATA_URL = re.compile(
    r"\Adata:(?P<mime>[\w.+-]+/[\w.+-]+)(?P<params>(?:;[\w.+-]+=[\w.+-]+)*);base64,"
)
# Whitespace and control characters: a URL carrying them is a paste error, not a video.
_BAD_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
_VIDEO_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}


def _nonempty_str(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRequestError(f"{name} must be a non-empty string, got {value!r:.80}")
    return value


def _http_url(value: object, name: str = "video_url") -> str:
    url = _nonempty_str(name, value)
    bad = InvalidRequestError(f"{name} must be an http(s) URL, got {url!r:.80}")
    if _BAD_URL_CHARS.search(url):
        raise bad
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise bad from None
    if parts.scheme.lower() not in ("http", "https") or not host:
        raise bad
    return url


def _check_duration(seconds: float | None, what: str) -> None:
    if seconds is not None and seconds > MAX_SOURCE_SECONDS:
        raise InvalidRequestError(
            f"{what} is {seconds:.1f} s long; the limit is {MAX_SOURCE_SECONDS:g} s"
        )


def _check_data_url(value: object, name: str = "video_data_url") -> str:
    data_url = _nonempty_str(name, value)
    match = _DATA_URL.match(data_url)
    if match is None:
        raise InvalidRequestError(f"{name} must look like 'data:video/mp4;base64,...'")
    if not match["mime"].lower().startswith("video/"):
        raise InvalidRequestError(f"{name} must carry a video MIME type, not {match['mime']}")
    encoded = data_url[match.end() :]
    # 4 bytes of base64 carry 3 of data: reject a too-large source without decoding it.
    if len(encoded) // 4 * 3 - encoded.count("=") > MAX_DATA_URL_BYTES:
        raise InvalidRequestError(f"{name} is over the 4 MB limit")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequestError(f"{name} is not valid base64") from None
    if not data:
        raise InvalidRequestError(f"{name} holds no video")
    # The 120 s limit holds for inline videos too; non-MP4 data reads as "unknown" (None).
    _check_duration(mp4_duration(io.BytesIO(data)), name)
    return data_url


def _check_path(value: object) -> str | os.PathLike[str]:
    if not isinstance(value, (str, os.PathLike)):
        raise InvalidRequestError(f"video_file must be a path, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str) or not text or "\x00" in text:
        raise InvalidRequestError(f"video_file must be a non-empty path, got {value!r:.80}")
    return value


#: ISO base media (MP4, MOV, M4V, 3GP) files start with one of these boxes.
_ISO_BOXES: Final = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_HEAD_BYTES: Final = 512


def sniff_video(head: bytes) -> str | None:
    """The MIME type of a video container from its first bytes, or None when it is none."""
    if head[4:8] in _ISO_BOXES:
        return "video/quicktime" if head[8:12] == b"qt  " else "video/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo"
    if head[:4] in (b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3"):
        return "video/mpeg"
    if head[:1] == b"\x47" and head[188:189] == b"\x47":
        return "video/mp2t"
    if head[:3] == b"FLV":
        return "video/x-flv"
    if head[:4] == b"OggS":
        return "video/ogg"
    if head[:8] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11":
        return "video/x-ms-asf"
    return None


def check_video_file(value: object) -> str:
    """Check a local video before anything is sent: it exists, is a file, is not empty or over
    the limit, and its content (not its name) is a video container. Returns its MIME type.

    Messages name the full path (a manifest's relative paths are taken beside it)."""
    path = Path(_check_path(value))
    shown = str(path.absolute())
    try:
        with path.open("rb") as f:
            return _check_open_file(f, path, shown)
    except FileNotFoundError:
        raise InvalidRequestError(f"video_file {shown}: no such file") from None
    except IsADirectoryError:
        raise InvalidRequestError(f"video_file {shown} is a folder, not a file") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InvalidRequestError(f"cannot read video_file {shown}: {reason}") from None


def _check_open_file(f: Any, path: Path, shown: str) -> str:
    f.seek(0, 2)
    size = f.tell()
    if size > MAX_DATA_URL_BYTES:
        raise InvalidRequestError(f"video_file {shown} is over the 4 MB limit")
    if size == 0:
        raise InvalidRequestError(f"video_file {shown} is empty")
    f.seek(0)
    sniffed = sniff_video(f.read(_HEAD_BYTES))
    if sniffed is None:
        raise InvalidRequestError(
            f"video_file {shown} is not a video file (its content is not MP4, MOV, WebM, "
            "MPEG, AVI, FLV or Ogg)"
        )
    named = _VIDEO_MIME.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or ""
    mime = named if named.startswith("video/") else sniffed
    if sniffed in ("video/mp4", "video/quicktime"):
        _check_duration(mp4_duration(f), f"video_file {shown}")
    return mime


def _load_file(value: object) -> str:
    """Read a local video into a data URL, checking size, content and duration first."""
    path = Path(_check_path(value))
    shown = str(path.absolute())
    try:
        with path.open("rb") as f:
            mime = _check_open_file(f, path, shown)
            f.seek(0)
            data = f.read()
    except OSError:
        check_video_file(value)  # raises with the reason, in the same words
        raise  # pragma: no cover - the file came back in between
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _check_options(options: Mapping[str, Any]) -> None:
    for name, value in options.items():
        if value is None:
            continue
        if name not in OPTION_FIELDS:
            known = ", ".join(sorted(OPTION_FIELDS))
            raise InvalidRequestError(f"unknown option {name!r}; known options: {known}")
        _, types = OPTION_FIELDS[name]
        # bool is an int in Python but not in JSON Schema's eyes.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise InvalidRequestError(f"option {name} must be {expected}, got {value!r:.80}")


def _copy_options(options: Mapping[str, Any]) -> dict[str, Any]:
    # A copy: the caller's dict changing later must not change a validated, frozen request.
    if not isinstance(options, Mapping):
        raise InvalidRequestError(f"options must be a mapping, got {type(options).__name__}")
    return dict(options)


def _key(payload: Mapping[str, Any], route: str) -> str:
    blob = json.dumps([route, payload], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@attrs.frozen
class MidjourneyExtend:
    """Extend one of the four videos of a completed ``midjourney-video`` run."""

    run_id: str
    index: int = 0

    route: ClassVar[str] = "extend"
    model: ClassVar[str] = MIDJOURNEY_MODEL

    def __attrs_post_init__(self) -> None:
        _nonempty_str("run_id", self.run_id)
        if isinstance(self.index, bool) or not isinstance(self.index, int):
            raise InvalidRequestError(f"index must be an int 0-3, got {self.index!r:.40}")
        if not 0 <= self.index <= 3:
            raise InvalidRequestError(f"index must be 0-3, got {self.index}")

    def payload(self) -> dict[str, Any]:
        """The JSON body."""
        return midjourney_body(self.run_id, self.index)

    @property
    def key(self) -> str:
        """A stable hash of the request's content (for journals and deduplication)."""
        return _key(self.payload(), self.route)


@attrs.frozen
class SourceExtend:
    """Extend a source video with an extend model through ``POST generate-video``.

    Exactly one source: ``video_url``, ``video_file`` (a local path, sent as ``videoDataUrl``),
    ``video_data_url``, ``video_attachment_id`` or ``video`` (only for models that take it).
    ``options`` holds the documented optional fields by their Python names (see
    :data:`OPTION_FIELDS`).
    """

    model: str
    prompt: str
    video_url: str | None = None
    video_file: str | os.PathLike[str] | None = None
    video_data_url: str | None = None
    video_attachment_id: str | None = None
    video: str | None = None
    # Not part of the hash (a dict is unhashable) but still of ==, which keeps them consistent.
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_copy_options, hash=False)

    route: ClassVar[str] = "generate"

    def __attrs_post_init__(self) -> None:
        model = _nonempty_str("model", self.model)
        if model == MIDJOURNEY_MODEL:
            raise InvalidRequestError("midjourney-video is extended with extend_midjourney()")
        _nonempty_str("prompt", self.prompt)
        given = [name for name in _SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            names = ", ".join(_SOURCES)
            detail = "none" if not given else ", ".join(given)
            raise InvalidRequestError(f"give exactly one source video ({names}); got {detail}")
        (source,) = given
        if source == "video" and model in EXTEND_MODELS and model not in _VIDEO_FIELD_MODELS:
            raise InvalidRequestError(
                f"{model} does not take the 'video' field; use video_url, video_file, "
                "video_data_url or video_attachment_id"
            )
        value = getattr(self, source)
        if source == "video_url":
            _http_url(value)
        elif source == "video_data_url":
            _check_data_url(value)
        elif source == "video":
            # The alternate field takes a URL or a data URL, under the same rules.
            if isinstance(value, str) and value.startswith("data:"):
                _check_data_url(value, "video")
            else:
                _http_url(value, "video")
        elif source == "video_attachment_id":
            _nonempty_str(source, value)
        else:
            _check_path(value)
        _check_options(self.options)

    @property
    def source(self) -> str:
        return next(name for name in _SOURCES if getattr(self, name) is not None)

    def payload(self) -> dict[str, Any]:
        """The JSON body. Reads ``video_file`` (blocking I/O: call it off the event loop)."""
        source = self.source
        value = getattr(self, source)
        value = _load_file(value) if source == "video_file" else value
        _check_options(self.options)  # again: the dict may have been changed since
        return source_body(self.model, self.prompt, source, value, self.options)

    @property
    def key(self) -> str:
        """A stable hash of the request's content (a file counts by its path and size)."""
        described: dict[str, Any] = attrs.asdict(self, recurse=False)
        # An option set to None is not sent, so it is not content either.
        described["options"] = {k: v for k, v in self.options.items() if v is not None}
        if self.video_file is not None:
            path = Path(self.video_file)
            described["video_file"] = str(path.resolve())
            try:
                described["video_file_size"] = path.stat().st_size
            except OSError:
                described["video_file_size"] = None
        return _key(described, self.route)


#: Either kind of extend request (what ``Session.submit`` and ``run_batch`` take).
ExtendRequest = MidjourneyExtend | SourceExtend
