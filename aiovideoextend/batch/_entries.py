"""The batch's entries: one per request given to ``run_batch``, named the same way on every run.

An entry's id is its request's key and the copy number (``KEY:0``, ``KEY:1``... for identical
requests), so that a rerun, a queue's next try and ``aiovideoextend resolve`` find it in the
journal. Its submits' ``conversationUUID`` tag is derived from that id too.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from aiovideoextend._manifest import ManifestLine, request_from_fields
from aiovideoextend._requests import ExtendRequest, MidjourneyExtend, SourceExtend
from aiovideoextend.exceptions import InvalidRequestError

from ._records import BatchItem, BatchOutcome

__all__ = ["TAGS", "Entry", "conversation", "excluded", "items"]

#: batch lines' conversationUUID tags (Retries.tag_submits) are uuid5 of their entry id in this
TAGS: Final = uuid.UUID("6f1c9a52-0d4e-4c59-9a51-3b7e2f0c8d11")


@attrs.define(eq=False)
class Entry:
    index: int
    line: int | None
    request: ExtendRequest | None
    error: str | None
    entry_id: str = ""
    #: it counts against max_in_flight (submitted or followed, not ended yet)
    holds_slot: bool = False
    #: the budget its submit was last reported waiting for (None: not waiting)
    waiting_on: str | None = None

    def outcome(self, status: str, **fields: Any) -> BatchOutcome:
        """How it ended (its request's model and key unless ``fields`` say otherwise)."""
        if self.request is not None:
            fields.setdefault("model", self.request.model)
            fields.setdefault("key", self.request.key)
        return BatchOutcome(self.index, status, line=self.line, **fields)

    def sending(self, tagging: bool) -> ExtendRequest:
        """The request to submit: with the entry's own conversationUUID tag, not a fresh one
        the session would pick (so that a rerun knows it)."""
        request = self.request
        assert request is not None  # noqa: S101  (invalid entries are never sent)
        tag = conversation(self, tagging)
        if tag is None or not isinstance(request, SourceExtend):
            return request
        return attrs.evolve(request, options={**request.options, "conversation_uuid": tag})


def items(requests: Iterable[Any]) -> list[Entry]:
    """One entry per request (request objects, BatchItem, ManifestLine or manifest fields)."""
    entries = []
    seen: collections.Counter[str] = collections.Counter()
    for index, item in enumerate(requests):
        if isinstance(item, (MidjourneyExtend, SourceExtend)):
            item = BatchItem(item)  # noqa: PLW2901
        elif isinstance(item, ManifestLine):
            item = BatchItem(item.request, item.line, item.error)  # noqa: PLW2901
        elif isinstance(item, Mapping):
            try:
                item = BatchItem(request_from_fields(item))  # noqa: PLW2901
            except InvalidRequestError as exc:
                item = BatchItem(error=str(exc))  # noqa: PLW2901
        elif not isinstance(item, BatchItem):
            item = BatchItem(error=f"not a request: {type(item).__name__}")  # noqa: PLW2901
        entry = Entry(index, item.line, item.request, item.error)
        if item.request is not None:
            # Identical requests are distinct entries: the n-th copy is the n-th submit.
            key = item.request.key
            entry.entry_id = f"{key}:{seen[key]}"
            seen[key] += 1
        elif entry.error is None:
            entry.error = "no request"
        entries.append(entry)
    return entries


def conversation(entry: Entry, tagging: bool) -> str | None:
    """The conversationUUID the entry's submits carry: its request's own, or with tagging on,
    one derived from the entry id (so that a rerun after a crash knows it)."""
    request = entry.request
    if not isinstance(request, SourceExtend):
        return None
    tag = request.options.get("conversation_uuid")
    if tag is not None:
        return tag if isinstance(tag, str) else None
    return str(uuid.uuid5(TAGS, entry.entry_id)) if tagging else None


def excluded(request: ExtendRequest | None) -> frozenset[str]:
    """The run a Midjourney extend extends: never its result."""
    if isinstance(request, MidjourneyExtend):
        return frozenset((request.run_id,))
    return frozenset()
