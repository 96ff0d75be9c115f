"""bot.progress_store: what it keeps is bounded (blob counts by least recent use, one counting scheme)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bot import progress_store
from bot.progress_store import ProgressStore


def test_blob_counts_beyond_the_cap_go_least_recently_used_first(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_000_000.0]
    monkeypatch.setattr(progress_store.time, "time", lambda: now[0])
    store = ProgressStore(max_blob_counts=3)
    for blob in ("a", "b", "c"):
        now[0] += 100_000  # more than a day apart: every lookup below records its use
        store.put_blob_counts("s1", {blob: 1})
    now[0] += 100_000
    assert store.blob_counts("s1", ["a"]) == {"a": 1}  # a is used again: b is now the least recent
    store.put_blob_counts("s1", {"d": 4})
    assert store.blob_counts("s1", ["a", "b", "c", "d"]) == {"a": 1, "c": 1, "d": 4}
    assert store.sizes()["blob_counts"] == 3


def test_counts_of_older_counting_rules_are_dropped() -> None:
    store = ProgressStore()
    store.put_blob_counts("old", {"a": 1, "b": 2})
    store.put_commit_counts("old", "c" * 40, {"x.md": 1})
    store.put_blob_counts("new", {"a": 3})
    assert store.blob_counts("old", ["a", "b"]) == {}
    assert store.commit_counts("old", "c" * 40) is None
    assert store.sizes()["blob_counts"] == 1 and store.sizes()["commit_counts"] == 0


def test_a_store_written_before_retention_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "progress.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE blob_counts (scheme TEXT NOT NULL, blob TEXT NOT NULL, count INTEGER NOT NULL, "
                   "PRIMARY KEY (scheme, blob)) WITHOUT ROWID")
        db.execute("INSERT INTO blob_counts VALUES ('s', 'a', 7)")
    with ProgressStore(path) as store:
        assert store.blob_counts("s", ["a"]) == {"a": 7}
        store.put_blob_counts("s", {"b": 1})
        assert store.sizes()["blob_counts"] == 2
