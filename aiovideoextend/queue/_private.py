"""The private helpers of the package the queue uses (so that a rename is one edit here): the
session's submit with a hook, and the batch's snapshot of a model's runs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiovideoextend.batch._recovery import snapshot

if TYPE_CHECKING:
    from aiovideoextend import Job, MidjourneyExtend, Session, SourceExtend

__all__ = ["snapshot", "submit_with"]


async def submit_with(
    session: Session,
    request: MidjourneyExtend | SourceExtend,
    before_send: Callable[[], Awaitable[None]],
) -> Job:
    """``session.submit(request)``, awaiting ``before_send`` right before each attempt leaves
    (rate-limit slots held); what it raises stops the submit with nothing sent. A lost answer
    is not matched to a run by the session (it cannot see the other workers' submits): it
    raises, and the journal's reconciliation settles it."""
    return await session._submit_with(request, before_send, reconcile=False)
