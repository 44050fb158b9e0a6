"""Manifests: JSON Lines and CSV, line numbers, bad lines that do not stop the others."""

from __future__ import annotations

import json

import pytest

import aiovideoextend as ave
from aiovideoextend._manifest import parse_manifest, request_from_fields
from aiovideoextend.exceptions import ManifestError

from .mp4util import make_mp4


def test_jsonl_both_flows_with_line_numbers(tmp_path):
    """Each JSONL object becomes the request of its flow; blank and # lines are skipped."""
    path = tmp_path / "m.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"run_id": "vid_a", "index": 2}),
                "",
                "# a comment",
                json.dumps(
                    {
                        "model": "veo3-1-extend",
                        "prompt": "p",
                        "video_url": "https://x/a.mp4",
                        "duration": 5,
                        "seed": 3,
                    }
                ),
            ]
        )
    )
    lines = parse_manifest(path)
    assert [line.line for line in lines] == [1, 4]
    assert lines[0].request == ave.MidjourneyExtend("vid_a", 2)
    source = lines[1].request
    assert isinstance(source, ave.SourceExtend)
    assert dict(source.options) == {"duration": 5, "seed": 3}


def test_bad_jsonl_lines_are_reported_and_the_rest_kept(tmp_path):
    """Broken JSON, a non-object, unknown fields and invalid values each name their line."""
    path = tmp_path / "m.jsonl"
    path.write_text(
        "{not json\n"
        "[1, 2]\n"
        '{"run_id": "vid_a", "index": 9}\n'
        '{"model": "veo3-1-extend", "prompt": "p", "video_url": "https://x", "colour": 1}\n'
        '{"model": "veo3-1-extend", "prompt": "p", "video_url": "ftp://x"}\n'
        '{"index": 1}\n'
        '{"run_id": "vid_ok"}\n'
    )
    lines = parse_manifest(path)
    errors = {line.line: line.error for line in lines if line.error}
    assert set(errors) == {1, 2, 3, 4, 5, 6}
    assert "not valid JSON" in errors[1]
    assert "JSON object" in errors[2]
    assert "0-3" in errors[3]
    assert "colour" in errors[4]
    assert "http" in errors[5]
    assert lines[-1].request == ave.MidjourneyExtend("vid_ok", 0)


def test_csv_uses_the_same_names_and_types(tmp_path):
    """CSV columns are the argument names; empty cells are absent; numbers become numbers."""
    path = tmp_path / "m.csv"
    path.write_text(
        "run_id,index,model,prompt,video_url,duration,generate_audio\n"
        "vid_a,3,,,,,\n"
        ',,veo3-1-extend,"a, quoted prompt",https://x/a.mp4,8,yes\n'
        ",,veo3-1-extend,p,https://x/b.mp4,5s,\n"
        "vid_b,two,,,,,\n"
        ",,veo3-1-extend,p,https://x/c.mp4,,maybe\n"
    )
    lines = parse_manifest(path)
    assert [line.line for line in lines] == [2, 3, 4, 5, 6]
    assert lines[0].request == ave.MidjourneyExtend("vid_a", 3)
    second = lines[1].request
    assert isinstance(second, ave.SourceExtend)
    assert second.prompt == "a, quoted prompt"
    assert dict(second.options) == {"duration": 8, "generate_audio": True}
    third = lines[2].request
    assert isinstance(third, ave.SourceExtend)
    assert dict(third.options) == {"duration": "5s"}
    assert "integer" in (lines[3].error or "")
    assert "true or false" in (lines[4].error or "")


def test_csv_extra_cells_and_bad_header(tmp_path):
    """A row longer than the header is a bad line; a broken header breaks the manifest."""
    path = tmp_path / "m.csv"
    path.write_text("run_id,index\nvid_a,1,extra\n")
    assert "cells" in (parse_manifest(path)[0].error or "")
    path.write_text("run_id,run_id\nvid_a,vid_b\n")
    with pytest.raises(ManifestError, match="header"):
        parse_manifest(path)
    path.write_text("\n\n")
    with pytest.raises(ManifestError, match="no header"):
        parse_manifest(path)


def test_unreadable_or_empty_manifest(tmp_path):
    """A missing file or one with no requests is a manifest error, not an empty batch."""
    with pytest.raises(ManifestError, match="cannot read"):
        parse_manifest(tmp_path / "missing.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n# nothing\n")
    with pytest.raises(ManifestError, match="no requests"):
        parse_manifest(empty)


def test_relative_video_file_is_beside_the_manifest(tmp_path):
    """video_file is resolved against the manifest's directory, not the working directory."""
    (tmp_path / "clip.mp4").write_bytes(make_mp4(3.0))
    request = request_from_fields(
        {"model": "veo3-1-extend", "prompt": "p", "video_file": "clip.mp4"}, base_dir=tmp_path
    )
    assert isinstance(request, ave.SourceExtend)
    assert request.video_file == str(tmp_path / "clip.mp4")


def test_nested_options_and_wrong_model_for_midjourney():
    """Options may be nested; a run_id line with another model is rejected."""
    request = request_from_fields(
        {"model": "veo3-1-extend", "prompt": "p", "video_url": "https://x", "options": {"seed": 1}}
    )
    assert isinstance(request, ave.SourceExtend)
    assert dict(request.options) == {"seed": 1}
    with pytest.raises(ave.InvalidRequestError, match="midjourney"):
        request_from_fields({"run_id": "vid_a", "model": "veo3-1-extend"})
    with pytest.raises(ave.InvalidRequestError, match="options"):
        request_from_fields({"model": "m", "prompt": "p", "video_url": "https://x", "options": 1})


def test_missing_or_fake_video_file_is_invalid_when_read(tmp_path):
    """A missing video_file, or a text file named .mp4, is an invalid line with its full path
    as soon as the manifest is read; a real MP4 beside the manifest is a request."""
    (tmp_path / "clip.mp4").write_bytes(make_mp4(3.0))
    (tmp_path / "fake.mp4").write_text("this is not a video\n")
    path = tmp_path / "jobs.jsonl"
    rows = [
        {"model": "veo3-1-extend", "prompt": "p", "video_file": name}
        for name in ("clip.mp4", "gone.mp4", "fake.mp4")
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    good, gone, fake = parse_manifest(path)
    assert good.request is not None
    assert gone.request is None
    assert gone.error == f"video_file {tmp_path / 'gone.mp4'}: no such file"
    assert fake.request is None
    assert fake.error is not None
    assert f"video_file {tmp_path / 'fake.mp4'} is not a video file" in fake.error


@pytest.mark.parametrize(
    ("field", "meant"),
    [
        ("promt", "prompt"),
        ("videoUrl", "video_url"),
        ("negativePrompt", "negative_prompt"),
        ("durration", "duration"),
        ("generateAudio", "generate_audio"),
    ],
)
def test_unknown_field_says_did_you_mean(field, meant):
    """A misspelt or camelCase field is answered with the field it most likely means."""
    fields = {"model": "veo3-1-extend", "prompt": "p", "video_url": "https://x/a.mp4"}
    fields.pop(meant, None)
    fields[field] = "x"
    with pytest.raises(ave.InvalidRequestError) as caught:
        request_from_fields(fields)
    message = str(caught.value)
    assert f"unknown field {field!r}" in message
    assert f"did you mean {meant!r}?" in message
    assert "options" not in message


def test_unknown_midjourney_field_says_did_you_mean():
    """runId (the API's name) is answered with run_id; no guess for something unlike any."""
    with pytest.raises(ave.InvalidRequestError, match="did you mean 'index'"):
        request_from_fields({"run_id": "vid_a", "indx": 1})
    with pytest.raises(ave.InvalidRequestError) as caught:
        request_from_fields({"run_id": "vid_a", "zzzzzz": 1})
    assert "did you mean" not in str(caught.value)


def test_api_names_without_a_known_field_still_get_a_guess():
    """{"runId": ...} (the API's spelling) is answered with run_id, not 'need run_id'."""
    with pytest.raises(
        ave.InvalidRequestError, match="unknown field 'runId'; did you mean 'run_id'"
    ):
        request_from_fields({"runId": "vid_a", "index": 1})


def test_semicolon_csv_says_so(tmp_path):
    """A CSV saved with semicolons (a European spreadsheet's default) is named as such."""
    path = tmp_path / "jobs.csv"
    path.write_text("model;prompt;video_url\nveo3-1-extend;p;https://x/a.mp4\n")
    with pytest.raises(ManifestError, match="separated by semicolons"):
        parse_manifest(path)
    path.write_text("model\tprompt\tvideo_url\nveo3-1-extend\tp\thttps://x/a.mp4\n")
    with pytest.raises(ManifestError, match="separated by tabs"):
        parse_manifest(path)
