"""Extend requests: every documented rejection is an InvalidRequestError before anything is sent,
and valid requests produce exactly the documented wire body (REFERENCE §3, §4)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiovideoextend import EXTEND_MODELS, MIDJOURNEY_MODEL, InvalidRequestError
from aiovideoextend._requests import (
    MAX_DATA_URL_BYTES,
    MAX_SOURCE_SECONDS,
    OPTION_FIELDS,
    MidjourneyExtend,
    SourceExtend,
    sniff_video,
)

from .mp4util import box, make_mp4

MODEL = "veo3-1-extend"
VIDEO_URL = "https://cdn.example.com/clip.mp4"
SHORT_MP4 = make_mp4(5.0, payload=b"\x00" * 64)


def data_url(data: bytes = SHORT_MP4, mime: str = "video/mp4", params: str = "") -> str:
    return f"data:{mime}{params};base64,{base64.b64encode(data).decode()}"


def source(**kwargs: Any) -> SourceExtend:
    kwargs.setdefault("model", MODEL)
    kwargs.setdefault("prompt", "the camera keeps panning")
    if not any(
        k in kwargs
        for k in ("video_url", "video_file", "video_data_url", "video_attachment_id", "video")
    ):
        kwargs["video_url"] = VIDEO_URL
    return SourceExtend(**kwargs)


class BytesPath:
    """A PathLike whose path is bytes (accepted by os, not by a JSON data URL builder)."""

    def __fspath__(self) -> bytes:
        return b"/tmp/clip.mp4"


# --- MidjourneyExtend ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_midjourney_payload(index: int) -> None:
    """The body carries runId AND taskId (prose vs OpenAPI) and the index."""
    request = MidjourneyExtend("vid_m1abc123def456", index)
    assert request.payload() == {
        "runId": "vid_m1abc123def456",
        "taskId": "vid_m1abc123def456",
        "index": index,
    }
    assert (request.route, request.model) == ("extend", MIDJOURNEY_MODEL)


def test_midjourney_default_index() -> None:
    """The index defaults to the first of the four videos."""
    assert MidjourneyExtend("vid_1").index == 0


@pytest.mark.parametrize("run_id", ["", "   ", None, 5, b"vid_1"])
def test_midjourney_bad_run_id(run_id: Any) -> None:
    """The run id must be a non-empty string."""
    with pytest.raises(InvalidRequestError, match="run_id"):
        MidjourneyExtend(run_id)


@pytest.mark.parametrize("index", [-1, 4, 100, True, False, 1.0, "1", None])
def test_midjourney_bad_index(index: Any) -> None:
    """The index is an int 0-3: not a bool, float, string or None."""
    with pytest.raises(InvalidRequestError, match="index"):
        MidjourneyExtend("vid_1", index)


def test_midjourney_key() -> None:
    """The key is stable for equal requests and differs when the run or the index differs."""
    key = MidjourneyExtend("vid_1", 2).key
    assert key == MidjourneyExtend("vid_1", 2).key
    assert len(key) == 32
    assert int(key, 16) >= 0
    assert key != MidjourneyExtend("vid_1", 3).key
    assert key != MidjourneyExtend("vid_2", 2).key


def test_midjourney_is_frozen_and_hashable() -> None:
    """A Midjourney request is immutable and can go in a set."""
    request = MidjourneyExtend("vid_1")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.index = 2  # type: ignore[misc]
    assert len({request, MidjourneyExtend("vid_1")}) == 1


# --- SourceExtend: model, prompt and the source rule ----------------------------------------------


@pytest.mark.parametrize("model", ["", " ", None, 3])
def test_bad_model(model: Any) -> None:
    """The model must be a non-empty string."""
    with pytest.raises(InvalidRequestError, match="model"):
        source(model=model)


def test_midjourney_model_is_refused() -> None:
    """midjourney-video is extended through the task-based route, not generate-video."""
    with pytest.raises(InvalidRequestError, match="extend_midjourney"):
        source(model=MIDJOURNEY_MODEL)


@pytest.mark.parametrize("prompt", ["", "\n\t ", None, 7, ["a"]])
def test_bad_prompt(prompt: Any) -> None:
    """The prompt is required and must be a non-empty string."""
    with pytest.raises(InvalidRequestError, match="prompt"):
        source(prompt=prompt)


def test_unknown_extend_model_is_allowed() -> None:
    """The docs call their model list examples: an unknown model name is sent as is."""
    assert source(model="brand-new-extend").payload()["model"] == "brand-new-extend"


def test_no_source() -> None:
    """Without a source video the request is refused, naming every source field."""
    with pytest.raises(InvalidRequestError, match=r"exactly one source video .*got none"):
        SourceExtend(MODEL, "p")


@pytest.mark.parametrize(
    "extra",
    [
        {"video_file": "/tmp/a.mp4"},
        {"video_data_url": data_url()},
        {"video_attachment_id": "att_1"},
    ],
)
def test_two_sources(extra: dict[str, Any]) -> None:
    """Two sources at once are refused: the API takes exactly one."""
    with pytest.raises(InvalidRequestError, match="got video_url, "):
        source(video_url=VIDEO_URL, **extra)


@pytest.mark.parametrize("model", sorted(EXTEND_MODELS - {"wan-wavespeed-25-extend"}))
def test_video_field_refused_for_models_that_reject_it(model: str) -> None:
    """Known models other than wan-wavespeed-25-extend do not get the alternate ``video`` field."""
    with pytest.raises(InvalidRequestError, match="does not take the 'video' field"):
        source(model=model, video=VIDEO_URL)


@pytest.mark.parametrize("model", ["wan-wavespeed-25-extend", "some-future-extend"])
def test_video_field_for_models_that_take_it(model: str) -> None:
    """wan-wavespeed-25-extend (and unknown models) send ``video`` and no other source field."""
    body = source(model=model, video=VIDEO_URL).payload()
    assert body == {"model": model, "prompt": "the camera keeps panning", "video": VIDEO_URL}


def test_video_field_data_url() -> None:
    """The ``video`` field may hold a data URL; it is checked like videoDataUrl."""
    assert (
        source(model="wan-wavespeed-25-extend", video=data_url()).payload()["video"] == data_url()
    )
    with pytest.raises(InvalidRequestError, match="video is not valid base64"):
        source(model="wan-wavespeed-25-extend", video="data:video/mp4;base64,@@@@")


@pytest.mark.parametrize("value", ["", "clip.mp4", "ftp://x/y.mp4", 5])
def test_video_field_must_be_a_url(value: Any) -> None:
    """A ``video`` value that is neither an http(s) URL nor a data URL is refused."""
    with pytest.raises(InvalidRequestError, match="video"):
        source(model="wan-wavespeed-25-extend", video=value)


# --- video_url ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        VIDEO_URL,
        "http://127.0.0.1:8080/a.mp4",
        "HTTPS://CDN.EXAMPLE.COM/A.MP4",
        "https://d1q70pf5vjeyhc.cloudfront.net/predictions/abc/0.mp4?sig=a%20b&x=1",
        "https://[::1]:8443/v.mp4",
        "https://user:pw@host.example/v",
    ],
)
def test_good_video_urls(url: str) -> None:
    """http and https URLs with a host are sent unchanged as videoUrl."""
    assert source(video_url=url).payload() == {
        "model": MODEL,
        "prompt": "the camera keeps panning",
        "videoUrl": url,
    }


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "cdn.example.com/clip.mp4",
        "/clip.mp4",
        "ftp://cdn.example.com/clip.mp4",
        "file:///tmp/clip.mp4",
        "data:video/mp4;base64,AAAA",
        "javascript:alert(1)",
        "https://",
        "https:///clip.mp4",
        "https://cdn example.com/clip.mp4",
        "https://cdn.example.com/my clip.mp4",
        " https://cdn.example.com/clip.mp4",
        "https://cdn.example.com/clip.mp4\n",
        "https://cdn.example.com/\x00.mp4",
        "https://[::1/clip.mp4",
        "https://:443/clip.mp4",
        7,
        b"https://cdn.example.com/clip.mp4",
    ],
)
def test_bad_video_urls(url: Any) -> None:
    """Anything but an http(s) URL with a host and no whitespace is refused."""
    with pytest.raises(InvalidRequestError, match="video_url"):
        source(video_url=url)


# --- video_data_url ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        data_url(),
        data_url(mime="video/quicktime"),
        data_url(mime="video/webm", data=b"\x1a\x45\xdf\xa3webm"),
        data_url(params=";codecs=avc1.42E01E"),
        data_url(mime="VIDEO/MP4"),
    ],
)
def test_good_data_urls(value: str) -> None:
    """A base64 data URL with a video MIME type is sent as videoDataUrl."""
    assert source(video_data_url=value).payload()["videoDataUrl"] == value


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", "non-empty"),
        (5, "non-empty"),
        ("https://cdn.example.com/a.mp4", "must look like"),
        ("data:video/mp4,AAAA", "must look like"),
        ("data:;base64,AAAA", "must look like"),
        ("data:video;base64,AAAA", "must look like"),
        ("data:image/png;base64,AAAA", "video MIME type"),
        ("data:application/octet-stream;base64,AAAA", "video MIME type"),
        ("data:video/mp4;base64,AAA", "not valid base64"),
        ("data:video/mp4;base64,AA AA", "not valid base64"),
        ("data:video/mp4;base64,****", "not valid base64"),
        ("data:video/mp4;base64,", "holds no video"),
    ],
)
def test_bad_data_urls(value: Any, match: str) -> None:
    """Malformed, non-video, non-base64 or empty data URLs are refused."""
    with pytest.raises(InvalidRequestError, match=match):
        source(video_data_url=value)


def test_data_url_at_the_size_limit() -> None:
    """A data URL of exactly 4 MB of video is accepted."""
    value = data_url(b"\x00" * MAX_DATA_URL_BYTES)
    assert source(video_data_url=value).source == "video_data_url"


def test_data_url_over_the_size_limit() -> None:
    """One byte over 4 MB is refused before decoding."""
    with pytest.raises(InvalidRequestError, match="4 MB"):
        source(video_data_url=data_url(b"\x00" * (MAX_DATA_URL_BYTES + 1)))


def test_data_url_over_120_seconds() -> None:
    """An inline MP4 longer than 120 s is refused (read from its header)."""
    with pytest.raises(InvalidRequestError, match="120"):
        source(video_data_url=data_url(make_mp4(MAX_SOURCE_SECONDS + 0.5)))


def test_data_url_of_exactly_120_seconds() -> None:
    """An inline MP4 of exactly 120 s is accepted."""
    source(video_data_url=data_url(make_mp4(MAX_SOURCE_SECONDS, version=1, moov_last=True)))


# --- video_file ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("clip.mp4", "video/mp4"),
        ("CLIP.MP4", "video/mp4"),
        ("clip.m4v", "video/mp4"),
        ("clip.mov", "video/quicktime"),
        ("clip.mpg", "video/mpeg"),
    ],
)
def test_video_file_becomes_a_data_url(tmp_path: Path, name: str, mime: str) -> None:
    """A local file is read into a videoDataUrl whose MIME type comes from the extension."""
    path = tmp_path / name
    path.write_bytes(SHORT_MP4)
    body = source(video_file=path).payload()
    assert body == {
        "model": MODEL,
        "prompt": "the camera keeps panning",
        "videoDataUrl": f"data:{mime};base64,{base64.b64encode(SHORT_MP4).decode()}",
    }


def test_video_file_as_str(tmp_path: Path) -> None:
    """A path given as a string works the same as a Path."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(SHORT_MP4)
    assert source(video_file=str(path)).payload() == source(video_file=path).payload()


def test_video_file_over_4_mb(tmp_path: Path) -> None:
    """A file over 4 MB is refused without being read."""
    path = tmp_path / "big.mp4"
    with path.open("wb") as f:
        f.truncate(MAX_DATA_URL_BYTES + 1)
    with pytest.raises(InvalidRequestError, match=r"big\.mp4 is over the 4 MB limit"):
        source(video_file=path).payload()


def test_video_file_of_exactly_4_mb(tmp_path: Path) -> None:
    """A file of exactly 4 MB is sent."""
    path = tmp_path / "edge.mp4"
    path.write_bytes(make_mp4(10, payload=b""))
    with path.open("r+b") as f:
        f.truncate(MAX_DATA_URL_BYTES)
    assert source(video_file=path).payload()["videoDataUrl"].startswith("data:video/mp4;base64,")


def test_video_file_empty(tmp_path: Path) -> None:
    """An empty file is refused."""
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(InvalidRequestError, match="empty"):
        source(video_file=path).payload()


@pytest.mark.parametrize("moov_last", [False, True])
def test_video_file_over_120_seconds(tmp_path: Path, moov_last: bool) -> None:
    """An MP4 longer than 120 s is refused by reading its duration, wherever moov sits."""
    path = tmp_path / "long.mp4"
    path.write_bytes(make_mp4(121.0, payload=b"\x00" * 100, moov_last=moov_last))
    with pytest.raises(
        InvalidRequestError, match=r"long\.mp4 is 121\.0 s long; the limit is 120 s"
    ):
        source(video_file=path).payload()


def test_video_file_mov_over_120_seconds(tmp_path: Path) -> None:
    """A QuickTime .mov is checked the same way."""
    path = tmp_path / "long.mov"
    path.write_bytes(make_mp4(600.0, version=1))
    with pytest.raises(InvalidRequestError, match="120 s"):
        source(video_file=path).payload()


def test_video_file_unreadable_duration_is_sent(tmp_path: Path) -> None:
    """An MP4 without a movie header (no length to read) is sent anyway: the server decides."""
    path = tmp_path / "odd.mp4"
    path.write_bytes(box(b"ftyp", b"isom\x00\x00\x02\x00") + box(b"mdat", b"frames"))
    assert source(video_file=path).payload()["videoDataUrl"].startswith("data:video/mp4;base64,")


def test_mp4_content_is_length_checked_whatever_its_name(tmp_path: Path) -> None:
    """The 120 s limit is read from MP4 content, even under another video extension."""
    path = tmp_path / "clip.mpeg"
    path.write_bytes(make_mp4(500.0))
    with pytest.raises(InvalidRequestError, match="120 s"):
        source(video_file=path).payload()


@pytest.mark.parametrize("name", ["fake.mp4", "fake.mov", "notes.txt", "noextension"])
def test_video_file_not_a_video(tmp_path: Path, name: str) -> None:
    """A file whose content is not a video container is refused, whatever its name."""
    path = tmp_path / name
    path.write_bytes(b"just some notes, not a video\n" * 20)
    with pytest.raises(InvalidRequestError, match="not a video file") as caught:
        source(video_file=path).payload()
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\x1a\x45\xdf\xa3" + bytes(12), "video/webm"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "video/x-msvideo"),
        (b"\x00\x00\x01\xba" + bytes(12), "video/mpeg"),
        (b"\x47" + bytes(187) + b"\x47", "video/mp2t"),
        (b"FLV\x01" + bytes(12), "video/x-flv"),
        (b"OggS" + bytes(12), "video/ogg"),
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11" + bytes(8), "video/x-ms-asf"),
        (box(b"ftyp", b"qt  \x00\x00\x00\x00"), "video/quicktime"),
        (SHORT_MP4, "video/mp4"),
        (b"%PDF-1.7" + bytes(12), None),
    ],
)
def test_sniff_video(head: bytes, mime: str | None) -> None:
    """Containers are known by their first bytes."""
    assert sniff_video(head) == mime


def test_mp4_content_under_another_name_is_sent_as_mp4(tmp_path: Path) -> None:
    """MP4 content in a file without a video extension is sent, typed by its content."""
    path = tmp_path / "clip"
    path.write_bytes(SHORT_MP4)
    assert source(video_file=path).payload()["videoDataUrl"].startswith("data:video/mp4;base64,")


def test_video_file_missing(tmp_path: Path) -> None:
    """A missing file is an InvalidRequestError when the body is built, with its full path."""
    request = source(video_file=tmp_path / "missing.mp4")
    with pytest.raises(InvalidRequestError, match="no such file") as caught:
        request.payload()
    assert str(tmp_path / "missing.mp4") in str(caught.value)


def test_video_file_is_a_directory(tmp_path: Path) -> None:
    """A directory is not a video."""
    folder = tmp_path / "dir.mp4"
    folder.mkdir()
    with pytest.raises(InvalidRequestError, match=r"dir\.mp4 is a folder"):
        source(video_file=folder).payload()


def test_video_file_os_error_without_strerror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError without a strerror still gives a readable message."""

    def broken_open(*_args: Any, **_kwargs: Any) -> Any:
        raise OSError("boom")

    monkeypatch.setattr(Path, "open", broken_open)
    with pytest.raises(InvalidRequestError, match=r"cannot read video_file \S*a\.mp4: OSError"):
        source(video_file=tmp_path / "a.mp4").payload()


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (5, "must be a path"),
        (b"/tmp/a.mp4", "must be a path"),
        ("", "non-empty path"),
        ("a\x00b.mp4", "non-empty path"),
        (BytesPath(), "non-empty path"),
    ],
)
def test_bad_video_file_values(value: Any, match: str) -> None:
    """A video_file that cannot be a path is refused when the request is built."""
    with pytest.raises(InvalidRequestError, match=match):
        source(video_file=value)


# --- video_attachment_id --------------------------------------------------------------------------


def test_attachment_id() -> None:
    """An attachment id is sent as videoAttachmentId."""
    assert source(video_attachment_id="att_123").payload()["videoAttachmentId"] == "att_123"


@pytest.mark.parametrize("value", ["", "  ", 12])
def test_bad_attachment_id(value: Any) -> None:
    """An attachment id must be a non-empty string."""
    with pytest.raises(InvalidRequestError, match="video_attachment_id"):
        source(video_attachment_id=value)


# --- options -------------------------------------------------------------------------------------


def test_options_use_wire_names() -> None:
    """Every option is sent under its documented wire name."""
    options = {
        "duration": 5,
        "resolution": "480p",
        "seed": -1,
        "negative_prompt": "blur",
        "aspect_ratio": "16:9",
        "conversation_uuid": "c-1",
        "generate_audio": True,
        "mode": "pro",
    }
    body = source(options=options).payload()
    assert body == {
        "model": MODEL,
        "prompt": "the camera keeps panning",
        "videoUrl": VIDEO_URL,
        "duration": 5,
        "resolution": "480p",
        "seed": -1,
        "negative_prompt": "blur",
        "aspect_ratio": "16:9",
        "conversationUUID": "c-1",
        "generateAudio": True,
        "mode": "pro",
    }
    assert {OPTION_FIELDS[name][0] for name in options} <= set(body)


def test_duration_as_string() -> None:
    """duration may be a string (the format depends on the model)."""
    assert source(options={"duration": "5s"}).payload()["duration"] == "5s"


def test_none_options_are_left_out() -> None:
    """An option set to None is not sent at all."""
    body = source(options={"seed": None, "resolution": "720p"}).payload()
    assert "seed" not in body
    assert body["resolution"] == "720p"


def test_unknown_option() -> None:
    """An unknown option is refused, listing the known ones."""
    with pytest.raises(
        InvalidRequestError, match="unknown option 'fps'; known options: aspect_ratio"
    ):
        source(options={"fps": 24})


def test_wire_name_is_not_an_option_name() -> None:
    """Options go by their Python names: the camelCase wire name is unknown."""
    with pytest.raises(InvalidRequestError, match="conversationUUID"):
        source(options={"conversationUUID": "c"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("duration", 5.5),
        ("duration", True),
        ("duration", [5]),
        ("seed", "42"),
        ("seed", True),
        ("seed", 1.0),
        ("resolution", 480),
        ("negative_prompt", b"x"),
        ("aspect_ratio", 1.77),
        ("conversation_uuid", 1),
        ("generate_audio", 1),
        ("generate_audio", "true"),
        ("mode", {"x": 1}),
    ],
)
def test_option_types(name: str, value: Any) -> None:
    """Each option has its JSON type; bool is not an int, and ints are not bools."""
    with pytest.raises(InvalidRequestError, match=f"option {name} must be"):
        source(options={name: value})


def test_options_must_be_a_mapping() -> None:
    """options must be a mapping."""
    with pytest.raises(InvalidRequestError, match="options must be a mapping"):
        source(options=[("seed", 1)])


def test_options_are_copied() -> None:
    """Changing the caller's dict afterwards changes neither the request nor its key."""
    options: dict[str, Any] = {"seed": 1}
    request = source(options=options)
    key = request.key
    options["seed"] = "not an int"
    options["fps"] = 30
    assert request.payload()["seed"] == 1
    assert "fps" not in request.payload()
    assert request.key == key


def test_source_extend_is_hashable() -> None:
    """A SourceExtend (options included) is hashable, and equal requests hash alike."""
    one = source(options={"seed": 1})
    assert hash(one) == hash(source(options={"seed": 1}))
    assert len({one, source(options={"seed": 1}), source(options={"seed": 2})}) == 2


def test_source_property() -> None:
    """``source`` names the one source field given."""
    assert source().source == "video_url"
    assert source(video_attachment_id="a").source == "video_attachment_id"
    assert source(video_file="x.mp4").source == "video_file"


def test_route_and_frozen() -> None:
    """SourceExtend goes to generate-video and cannot be changed after validation."""
    request = source()
    assert request.route == "generate"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        request.prompt = ""  # type: ignore[misc]


# --- key -----------------------------------------------------------------------------------------


def test_key_stable() -> None:
    """Equal requests have equal keys, whatever the option order."""
    one = source(options={"seed": 1, "resolution": "720p"})
    two = source(options={"resolution": "720p", "seed": 1})
    assert one.key == two.key
    assert len(one.key) == 32


@pytest.mark.parametrize(
    "change",
    [
        {"model": "veo3-1-fast-extend"},
        {"prompt": "something else"},
        {"video_url": "https://cdn.example.com/other.mp4"},
        {"video_url": None, "video_attachment_id": VIDEO_URL},
        {"options": {"seed": 2}},
        {"options": {"seed": 1, "resolution": "720p"}},
    ],
)
def test_key_content_sensitive(change: dict[str, Any]) -> None:
    """Any change of model, prompt, source or options changes the key."""
    base = {"options": {"seed": 1}}
    assert source(**base).key != source(**{**base, **change}).key


def test_key_ignores_none_options() -> None:
    """An option set to None is not sent, so its key is that of the request without it."""
    assert source(options={"seed": None}).key == source().key
    assert source(options={"seed": None}).payload() == source().payload()


def test_key_of_a_file_follows_its_path_and_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file counts by its resolved path and size: relative and absolute spellings agree."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(SHORT_MP4)
    monkeypatch.chdir(tmp_path)
    key = source(video_file=path).key
    assert source(video_file="clip.mp4").key == key
    assert source(video_file=str(path)).key == key
    path.write_bytes(SHORT_MP4 + b"\x00")
    assert source(video_file=path).key != key
    other = tmp_path / "other.mp4"
    other.write_bytes(SHORT_MP4)
    assert source(video_file=other).key != source(video_file=path).key


def test_key_of_a_missing_file(tmp_path: Path) -> None:
    """A missing file still has a stable key (the error comes when the body is built)."""
    request = source(video_file=tmp_path / "gone.mp4")
    assert request.key == source(video_file=tmp_path / "gone.mp4").key
    assert request.key != source(video_file=tmp_path / "other.mp4").key


def test_key_differs_between_routes() -> None:
    """A Midjourney extend and a source extend never share a key."""
    assert MidjourneyExtend("vid_1").key != source(video_attachment_id="vid_1").key


# --- Hypothesis: arbitrary arguments ---------------------------------------------------------------

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=2),
)
urlish = st.one_of(
    st.just(VIDEO_URL),
    st.from_regex(r"\A(https?|ftp|HTTP|data|file)://[^/]{0,12}(/[ -~]{0,12})?\Z"),
    st.text(max_size=30),
)
data_urlish = st.one_of(
    st.just(data_url()),
    st.builds(
        lambda mime, params, body: f"data:{mime}{params};base64,{body}",
        st.sampled_from(["video/mp4", "video/quicktime", "image/png", "video", ""]),
        st.sampled_from(["", ";codecs=avc1", ";x"]),
        st.one_of(
            st.binary(max_size=30).map(lambda b: base64.b64encode(b).decode()), st.text(max_size=12)
        ),
    ),
    st.text(max_size=30),
)
option_values = st.one_of(anything, st.text(max_size=5), st.integers(-5, 5))
options = st.dictionaries(
    st.sampled_from([*OPTION_FIELDS, "fps", "conversationUUID"]) | st.text(max_size=5),
    option_values,
    max_size=4,
)
MISSING_DIR = Path("/nonexistent-aiovideoextend-test-dir")


@settings(max_examples=200, deadline=None)
@given(
    model=st.one_of(st.sampled_from([*EXTEND_MODELS, MIDJOURNEY_MODEL, "x-extend"]), anything),
    prompt=st.one_of(st.just("go on"), anything),
    video_url=st.none() | urlish | anything,
    video_file=st.none()
    | st.none()
    | st.text(max_size=12).map(lambda s: str(MISSING_DIR / s))
    | st.sampled_from(["", "a\x00b", 5]),
    video_data_url=st.none() | st.none() | data_urlish,
    video_attachment_id=st.none() | st.none() | anything,
    video=st.none() | st.none() | urlish | data_urlish,
    options=options,
)
def test_arbitrary_source_arguments(**kwargs: Any) -> None:
    """Any arguments give a valid request (whose body is JSON) or an InvalidRequestError."""
    try:
        request = SourceExtend(**kwargs)
    except InvalidRequestError:
        return
    assert isinstance(request.key, str)
    try:
        body = request.payload()
    except InvalidRequestError:
        assert request.video_file is not None  # only files are checked late (blocking I/O)
        return
    json.dumps(body)
    assert body["model"] == request.model
    sources = {"videoUrl", "videoDataUrl", "videoAttachmentId", "video"} & set(body)
    assert len(sources) == 1


@settings(max_examples=200, deadline=None)
@given(run_id=st.one_of(st.just("vid_1"), anything), index=st.one_of(st.integers(-2, 6), anything))
def test_arbitrary_midjourney_arguments(run_id: Any, index: Any) -> None:
    """Any arguments give a valid Midjourney request or an InvalidRequestError."""
    try:
        request = MidjourneyExtend(run_id, index)
    except InvalidRequestError:
        return
    body = request.payload()
    assert body["runId"] == body["taskId"] == run_id
    assert body["index"] in (0, 1, 2, 3)
    assert isinstance(request.key, str)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(OPTION_FIELDS)), option_values)
def test_option_type_rule(name: str, value: Any) -> None:
    """An option value is accepted exactly when its type is the documented JSON type."""
    _, types = OPTION_FIELDS[name]
    valid = value is None or (
        isinstance(value, types) and (not isinstance(value, bool) or bool in types)
    )
    try:
        request = source(options={name: value})
    except InvalidRequestError:
        assert not valid
    else:
        assert valid
        assert request.payload().get(OPTION_FIELDS[name][0]) == value


def test_environment_has_no_such_dir() -> None:
    """The Hypothesis file strategy relies on this directory not existing."""
    assert not os.path.exists(MISSING_DIR)  # noqa: PTH110
