"""The batch journal: durable, locked, never silently recreated."""

from __future__ import annotations

import shutil
import sqlite3

import pytest

from aiovideoextend._journal import SCHEMA_VERSION, Journal
from aiovideoextend.exceptions import JournalError


def _intent(journal: Journal, entry_id: str, model: str = "veo3-1-extend") -> None:
    journal.record_intent(
        entry_id, request_key=entry_id.split(":", maxsplit=1)[0], model=model, position=0
    )


def test_life_cycle_round_trips(tmp_path):
    """Intent, run id and outcome survive closing and reopening the journal."""
    path = tmp_path / "j"
    with Journal(path) as journal:
        _intent(journal, "a:0")
        journal.record_submitted("a:0", "vid_1", 0.5)
        _intent(journal, "b:0")
        journal.record_finished("a:0", {"status": "completed", "video_url": "https://x/1.mp4"})
    with Journal(path) as journal:
        entries = journal.entries()
    assert entries["a:0"].state == "finished"
    assert entries["a:0"].run_id == "vid_1"
    assert entries["a:0"].outcome == {"status": "completed", "video_url": "https://x/1.mp4"}
    assert entries["b:0"].state == "intent"
    assert entries["b:0"].run_id is None
    assert entries["b:0"].intent_seq > entries["a:0"].submitted_seq  # type: ignore[operator]


def test_forget_intent_only_drops_open_intents(tmp_path):
    """Forgetting removes an intent but never a submitted entry."""
    with Journal(tmp_path / "j") as journal:
        _intent(journal, "a:0")
        _intent(journal, "b:0")
        journal.record_submitted("b:0", "vid_b", None)
        journal.forget_intent("a:0")
        journal.forget_intent("b:0")
        assert set(journal.entries()) == {"b:0"}


def test_intent_cannot_rewind_a_submitted_entry(tmp_path):
    """Recording an intent over an entry that already has a run id is an error."""
    with Journal(tmp_path / "j") as journal:
        _intent(journal, "a:0")
        journal.record_submitted("a:0", "vid_a", None)
        with pytest.raises(JournalError, match="past its intent"):
            _intent(journal, "a:0")


def test_total_precharge_and_snapshots(tmp_path):
    """Precharges add up; snapshots remember runs and whether the list was complete."""
    with Journal(tmp_path / "j") as journal:
        for name, cost in (("a:0", 0.5), ("b:0", 0.25)):
            _intent(journal, name)
            journal.record_submitted(name, f"vid_{name[0]}", cost)
        journal.record_known_runs("m", ["vid_old"], complete=False)
        assert journal.complete_snapshot_seq("m") is None
        journal.record_known_runs("m", ["vid_old", "vid_older"], complete=True)
        assert journal.total_precharge() == pytest.approx(0.75)
        assert set(journal.known_runs("m")) == {"vid_old", "vid_older"}
        assert journal.complete_snapshot_seq("m") is not None
        assert journal.known_runs("other") == {}


def test_second_process_is_locked_out(tmp_path):
    """Two runs of one batch at once could pay twice: the second open fails clearly."""
    with Journal(tmp_path / "j"), pytest.raises(JournalError, match="in use"):
        Journal(tmp_path / "j")


def test_newer_schema_is_refused(tmp_path):
    """A journal from a newer version is never read or overwritten."""
    path = tmp_path / "j"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="newer aiovideoextend"):
        Journal(path)


def test_garbage_file_is_corrupt_not_replaced(tmp_path):
    """A file that is not a journal raises and is left exactly as it was."""
    path = tmp_path / "j"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="corrupt"):
        Journal(path)
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_foreign_database_is_refused(tmp_path):
    """A SQLite file with other tables is not mistaken for an empty journal."""
    path = tmp_path / "j"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE unrelated (x)")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="corrupt"):
        Journal(path)


def test_truncated_database_is_corrupt(tmp_path):
    """A journal cut short on disk raises instead of starting over."""
    path = tmp_path / "j"
    with Journal(path) as journal:
        for n in range(200):
            _intent(journal, f"k{n}:0")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(JournalError, match="corrupt"):
        Journal(path).entries()


def test_torn_wal_write_keeps_every_earlier_commit(tmp_path):
    """A crash mid-commit (a torn WAL frame) loses at most that commit, never earlier ones."""
    path = tmp_path / "j"
    copy = tmp_path / "copy"
    journal = Journal(path)
    _intent(journal, "a:0")
    journal.record_submitted("a:0", "vid_a", 0.4)
    wal = path.with_name("j-wal")
    size_before = wal.stat().st_size
    _intent(journal, "b:0")
    torn = wal.read_bytes()
    # Copy the files as a crash would leave them: the last commit only half written.
    shutil.copy(path, copy)
    cut = size_before + (len(torn) - size_before) // 2
    copy.with_name("copy-wal").write_bytes(torn[:cut])
    journal.close()
    with Journal(copy) as recovered:
        entries = recovered.entries()
    assert entries["a:0"].run_id == "vid_a"
    assert "b:0" not in entries


def test_closed_journal_raises(tmp_path):
    """Using a closed journal is a clear error; closing twice is fine."""
    journal = Journal(tmp_path / "j")
    journal.close()
    journal.close()
    with pytest.raises(RuntimeError, match="closed"):
        journal.entries()
