"""The one way atlas-bot's SQLite stores (verdict cache, progress store, job queue) write: IMMEDIATE transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error (``db`` must be in autocommit mode).

    IMMEDIATE takes SQLite's write lock up front, so a second process waits in the busy timeout instead of
    failing when a transaction that started as a read tries to upgrade.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
