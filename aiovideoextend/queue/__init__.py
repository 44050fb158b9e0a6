"""Scale-out on a task queue (``[queue]`` extra: taskiq with its Redis-streams broker).

``aiovideoextend worker --queue URL`` on every host, ``aiovideoextend batch MANIFEST --queue
URL`` once: each manifest line is a short *submit* task (guarded by the journal's intent
record, so a task delivered twice never pays twice) and then *follow* tasks that poll it to
its end in bounded slices. For a queue of your own, :func:`submit_step` and
:func:`follow_step` are the engine-agnostic steps. See ``docs/scale-out.md``.
"""

from __future__ import annotations

from ._steps import follow_step, submit_step
from ._store import LineJournal, QueueJournal

__all__ = ["LineJournal", "QueueJournal", "follow_step", "submit_step"]
