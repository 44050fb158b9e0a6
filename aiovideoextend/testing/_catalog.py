"""The models the emulator knows: what each costs and which source-video fields it takes."""

from __future__ import annotations

import re
from typing import Final

#: The source-video extend models that go through ``POST /api/generate-video`` (REFERENCE §3).
EXTEND_MODELS: Final = (
    "bytedance-seedance-v1.5-pro-extend",
    "veo3-1-extend",
    "veo3-1-fast-extend",
    "wan-wavespeed-22-spicy-extend",
    "wan-wavespeed-25-extend",
)

#: The only model the task-based ``POST /api/generate-video/extend`` route works on.
MIDJOURNEY_MODEL: Final = "midjourney-video"

#: Precharge in USD for a 5-second clip; real prices are not published per model, these only
#: need to differ so that tests can tell the models apart in the ledger.
BASE_PRICES: Final[dict[str, float]] = {
    "bytedance-seedance-v1.5-pro-extend": 0.45,
    "veo3-1-extend": 1.2,
    "veo3-1-fast-extend": 0.6,
    "wan-wavespeed-22-spicy-extend": 0.35,
    "wan-wavespeed-25-extend": 0.5,
    MIDJOURNEY_MODEL: 0.4,
}

#: Every model takes these; ``video`` is the odd one out (see `VIDEO_FIELD_MODELS`).
COMMON_SOURCE_FIELDS: Final = ("videoUrl", "videoDataUrl", "videoAttachmentId")
ALL_SOURCE_FIELDS: Final = (*COMMON_SOURCE_FIELDS, "video")

#: The docs name only ``wan-wavespeed-25-extend`` as taking the alternate ``video`` field.
VIDEO_FIELD_MODELS: Final = frozenset({"wan-wavespeed-25-extend"})

_LEADING_NUMBER = re.compile(r"\s*(\d+(?:\.\d+)?)")


def duration_seconds(duration: object) -> float:
    """The extension a ``duration`` field asks for (``5``, ``"8"``, ``"10s"``); 5 s otherwise."""
    seconds = 0.0
    if isinstance(duration, int) and not isinstance(duration, bool):
        seconds = float(duration)
    elif isinstance(duration, str) and (match := _LEADING_NUMBER.match(duration)):
        seconds = float(match.group(1))
    return seconds if seconds > 0 else 5.0


def precharge_for(model: str, duration: object = None) -> float:
    """The precharge for one job: the model's 5-second price scaled by the requested duration."""
    return round(BASE_PRICES[model] * duration_seconds(duration) / 5.0, 4)
