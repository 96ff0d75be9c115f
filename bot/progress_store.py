"""Persistence for progress: diagram counts cached by blob and by commit, history, last published region.

One SQLite file (``progress.sqlite3`` under the bot's data directory, or any path; ``None`` keeps everything in
memory for one run). Counts are keyed by a counting scheme, so a change to the counting rules never reuses a
number produced by the old rules. Safe to share between threads of one process (one connection behind a lock);
WAL and a busy timeout let a second process (a CLI run next to the App) use the same file.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from bot.progress import History, history_from_json, history_to_json
from bot.sqlite import write_transaction

STORE_FILENAME = "progress.sqlite3"
# Commit results kept per scheme; older ones are dropped (blob counts make recounting them cheap anyway).
COMMITS_KEEP = 512
# Blob counts kept: the least recently used beyond this go (a large Atlas has ~10,000 Markdown blobs per
# revision, so this keeps a few dozen revisions' worth of changed pages).
BLOB_COUNTS_KEEP = 200_000
# A blob's last use is recorded at most this often: a lookup must not turn into a write every time.
TOUCH_INTERVAL_SECONDS = 24 * 3600.0
# SQLite's default limit on host parameters in one statement is 999 in older builds.
QUERY_BATCH = 500
BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_counts (
    scheme TEXT NOT NULL, blob TEXT NOT NULL, count INTEGER NOT NULL, used_at REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (scheme, blob)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commit_counts (
    scheme TEXT NOT NULL, sha TEXT NOT NULL, counted_at REAL NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (scheme, sha)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    repo TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS published (
    repo TEXT PRIMARY KEY, digest TEXT NOT NULL, updated_at REAL NOT NULL) WITHOUT ROWID;
"""


class ProgressStore:
    """The counter's caches and the progress history of each repository (``owner/name`` keys).

    Bounded: at most ``max_blob_counts`` blob counts (least recently used dropped), ``COMMITS_KEEP`` commit
    counts, and only the counting scheme in use (rows of older counting rules are dropped when new ones come).
    """

    def __init__(self, path: Path | str | None = None, *, max_blob_counts: int = BLOB_COUNTS_KEEP) -> None:
        target = ":memory:" if path is None else str(path)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if path is not None:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(blob_counts)")}
        if "used_at" not in columns:  # a store written before retention existed
            self._db.execute("ALTER TABLE blob_counts ADD COLUMN used_at REAL NOT NULL DEFAULT 0")
        self._db.execute("CREATE INDEX IF NOT EXISTS blob_counts_used ON blob_counts (used_at)")
        self.max_blob_counts = max_blob_counts
        # Schemes whose predecessors' rows this store has already dropped (once per process is enough).
        self._current_schemes: set[str] = set()

    @classmethod
    def in_data_dir(cls, directory: Path | None = None, **limits: int) -> ProgressStore:
        """The store in ``directory`` (default: ``bot.paths.data_dir()``); ``limits`` as for the constructor."""
        if directory is None:
            from bot.paths import data_dir

            directory = data_dir()
        return cls(Path(directory) / STORE_FILENAME, **limits)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> ProgressStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock."""
        with self._lock, write_transaction(self._db) as db:
            yield db

    # ---------------------------------------------------------------------------------------------- counts

    def blob_counts(self, scheme: str, blobs: Iterable[str]) -> dict[str, int]:
        """Known diagram counts of these blobs (unknown blobs are absent from the result)."""
        wanted = list(dict.fromkeys(blobs))
        found: dict[str, int] = {}
        stale: list[str] = []
        now = time.time()
        with self._lock:
            for i in range(0, len(wanted), QUERY_BATCH):
                chunk = wanted[i:i + QUERY_BATCH]
                marks = ",".join("?" * len(chunk))
                for blob, count, used_at in self._db.execute(
                        f"SELECT blob, count, used_at FROM blob_counts WHERE scheme = ? AND blob IN ({marks})",
                        (scheme, *chunk)):
                    found[blob] = count
                    if used_at < now - TOUCH_INTERVAL_SECONDS:
                        stale.append(blob)
        if stale:
            with self._write() as db:
                db.executemany("UPDATE blob_counts SET used_at = ? WHERE scheme = ? AND blob = ?",
                               [(now, scheme, blob) for blob in stale])
        return found

    def put_blob_counts(self, scheme: str, counts: Mapping[str, int]) -> None:
        """Store fresh counts; drops rows of other counting schemes and the least recently used beyond the cap."""
        if not counts:
            return
        now = time.time()
        with self._write() as db:
            db.executemany("INSERT OR REPLACE INTO blob_counts VALUES (?, ?, ?, ?)",
                           [(scheme, blob, count, now) for blob, count in counts.items()])
            self._drop_other_schemes(db, scheme)
            excess = db.execute("SELECT count(*) FROM blob_counts").fetchone()[0] - self.max_blob_counts
            if excess > 0:
                db.execute("DELETE FROM blob_counts WHERE blob IN "
                           "(SELECT blob FROM blob_counts ORDER BY used_at LIMIT ?)", (excess,))

    def _drop_other_schemes(self, db: sqlite3.Connection, scheme: str) -> None:
        """Counts made by other counting rules are never read again once ``scheme`` is in use."""
        if scheme not in self._current_schemes:
            for table in ("blob_counts", "commit_counts"):
                db.execute(f"DELETE FROM {table} WHERE scheme != ?", (scheme,))
            self._current_schemes.add(scheme)

    def sizes(self) -> dict[str, int]:
        """Rows per table (the ``/metrics`` gauges)."""
        with self._lock:
            return {table: int(self._db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                    for table in ("blob_counts", "commit_counts", "history", "published")}

    def commit_counts(self, scheme: str, sha: str) -> dict[str, int] | None:
        """The per-file counts recorded for a commit, or None when it was never counted."""
        with self._lock:
            row = self._db.execute("SELECT data FROM commit_counts WHERE scheme = ? AND sha = ?",
                                   (scheme, sha)).fetchone()
        return None if row is None else json.loads(zlib.decompress(row[0]))

    def put_commit_counts(self, scheme: str, sha: str, counts: Mapping[str, int]) -> None:
        data = zlib.compress(json.dumps(dict(counts), separators=(",", ":")).encode(), 6)
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO commit_counts VALUES (?, ?, ?, ?)", (scheme, sha, time.time(), data))
            self._drop_other_schemes(db, scheme)
            db.execute(
                "DELETE FROM commit_counts WHERE scheme = ? AND sha NOT IN "
                "(SELECT sha FROM commit_counts WHERE scheme = ? ORDER BY counted_at DESC LIMIT ?)",
                (scheme, scheme, COMMITS_KEEP))

    # --------------------------------------------------------------------------------------------- history

    def load_history(self, repo: str) -> History:
        with self._lock:
            row = self._db.execute("SELECT data FROM history WHERE repo = ?", (repo,)).fetchone()
        return History() if row is None else history_from_json(row[0])

    def save_history(self, repo: str, history: History) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO history VALUES (?, ?, ?)", (repo, history_to_json(history), time.time()))

    # ------------------------------------------------------------------------------------------- published

    def published_digest(self, repo: str) -> str | None:
        """Digest of the region last published for ``repo`` (None: nothing published from this store)."""
        with self._lock:
            row = self._db.execute("SELECT digest FROM published WHERE repo = ?", (repo,)).fetchone()
        return None if row is None else row[0]

    def set_published_digest(self, repo: str, digest: str) -> None:
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO published VALUES (?, ?, ?)", (repo, digest, time.time()))
