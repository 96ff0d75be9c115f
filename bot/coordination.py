"""State that every process of one deployment must share: write pacing, installation tokens, named locks.

One process (the embedded default) keeps it in memory (:class:`InProcessCoordinator`). A deployment with several
servers and workers keeps it in the engine its job queue runs on, so that GitHub's limits for content-creating
requests hold for the whole deployment, not per process, and two processes never race on one pull request's
sticky comment or one repository's progress issue. Everything that needs such state is handed a
:class:`Coordinator`; nothing else holds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

# GitHub's REST best practices: "If you're making a large number of POST, PATCH, PUT, or DELETE requests for a
# single user or client ID, wait at least one second between each request"; the secondary limits also cap
# content-creating requests at 80 a minute. One second start to start keeps an installation at 60 a minute.
# https://docs.github.com/rest/using-the-rest-api/best-practices-for-using-the-rest-api
DEFAULT_WRITE_INTERVAL_SECONDS = 1.0


class LeaseLost(Exception):
    """The job's lease passed to another worker: this worker must not write anything more for it."""


# The "still mine?" check of the job this thread runs (set by the worker), consulted before every write.
_lease_check: ContextVar[Callable[[], bool] | None] = ContextVar("atlas_lease_check", default=None)


@contextmanager
def lease_guard(still_mine: Callable[[], bool]) -> Iterator[None]:
    """While the block runs, every write slot entered in this thread first asks ``still_mine()``."""
    token = _lease_check.set(still_mine)
    try:
        yield
    finally:
        _lease_check.reset(token)


def ensure_lease() -> None:
    """Raise :class:`LeaseLost` when the job running in this thread no longer holds its lease."""
    check = _lease_check.get()
    if check is not None and not check():
        raise LeaseLost("the job's lease was lost; another worker runs it now")


class Coordinator(Protocol):
    """What the GitHub seam and the jobs share across processes."""

    def write_slot(self, installation_id: int) -> AbstractContextManager[None]:
        """A reusable context manager held around one content-creating request of the installation.

        Across every process, at most one holder per installation at a time, and successive entries are spaced
        by the pacing interval. Hold it for one request, never across a sleep.
        """

    def cached_token(self, installation_id: int) -> tuple[str, float] | None:
        """The installation token and its expiry (epoch seconds) last stored, if any."""

    def store_token(self, installation_id: int, token: str, expires_at: float) -> None: ...

    def drop_token(self, installation_id: int, token: str) -> None:
        """Forget the token (GitHub refused it), unless another process already replaced it."""

    def lock(self, name: str) -> AbstractContextManager[None]:
        """A reusable mutual-exclusion lock shared by every process (``progress:owner/repo``, ...)."""


class PacedSlot:
    """A lock whose successive acquisitions are at least ``interval`` seconds apart (start to start)."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_start: float | None = None

    def __enter__(self) -> None:
        ensure_lease()
        self._lock.acquire()
        if self._last_start is not None:
            wait = self._last_start + self._interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        try:
            ensure_lease()  # the wait may have outlasted the lease
        except LeaseLost:
            self._lock.release()
            raise
        self._last_start = self._clock()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class InProcessCoordinator:
    """The embedded default: one process, state in memory."""

    def __init__(self, *, write_interval: float = 0.0) -> None:
        self._write_interval = write_interval
        self._guard = threading.Lock()
        self._slots: dict[int, PacedSlot] = {}
        self._tokens: dict[int, tuple[str, float]] = {}
        self._locks: dict[str, threading.Lock] = {}

    def write_slot(self, installation_id: int) -> PacedSlot:
        with self._guard:
            return self._slots.setdefault(installation_id, PacedSlot(self._write_interval))

    def cached_token(self, installation_id: int) -> tuple[str, float] | None:
        with self._guard:
            return self._tokens.get(installation_id)

    def store_token(self, installation_id: int, token: str, expires_at: float) -> None:
        with self._guard:
            self._tokens[installation_id] = (token, expires_at)

    def drop_token(self, installation_id: int, token: str) -> None:
        with self._guard:
            if self._tokens.get(installation_id, ("",))[0] == token:
                del self._tokens[installation_id]

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())


# -- the shared engine ---------------------------------------------------------------------------------------

COORDINATION_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS atlas_write_pacing ("
    " installation_id BIGINT PRIMARY KEY, last_start DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS atlas_tokens ("
    " installation_id BIGINT PRIMARY KEY, token TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)",
)
SERVER_EPOCH = "extract(epoch FROM clock_timestamp())"


class PostgresCoordinator:
    """The coordinator of a deployment whose queue is on PostgreSQL (``ATLAS_QUEUE_URL``).

    Write slots and named locks are session-scoped advisory locks, so a process killed while it holds one
    releases it with its connection. A write slot records its start time in ``atlas_write_pacing`` (committed
    before the request is sent, by the database's own clock, so hosts' clocks never matter), and the next
    holder waits out the interval from it. Tokens sit in ``atlas_tokens``.
    """

    def __init__(self, url: str, *, write_interval: float = DEFAULT_WRITE_INTERVAL_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        from bot.queue_pg import connection_pool, create_schema

        self._write_interval = write_interval
        self._sleep = sleep
        self._pool = connection_pool(url, autocommit=True)
        create_schema(self._pool, COORDINATION_SCHEMA)

    def write_slot(self, installation_id: int) -> AbstractContextManager[None]:
        return self._held(f"atlas-write:{installation_id}", paced=installation_id)

    def lock(self, name: str) -> AbstractContextManager[None]:
        return self._held(f"atlas-lock:{name}", paced=None)

    def cached_token(self, installation_id: int) -> tuple[str, float] | None:
        with self._pool.connection() as db:
            row = db.execute("SELECT token, expires_at FROM atlas_tokens WHERE installation_id = %s",
                             (installation_id,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def store_token(self, installation_id: int, token: str, expires_at: float) -> None:
        with self._pool.connection() as db:
            db.execute("INSERT INTO atlas_tokens (installation_id, token, expires_at) VALUES (%s, %s, %s)"
                       " ON CONFLICT (installation_id) DO UPDATE SET token = excluded.token,"
                       " expires_at = excluded.expires_at", (installation_id, token, expires_at))

    def drop_token(self, installation_id: int, token: str) -> None:
        with self._pool.connection() as db:
            db.execute("DELETE FROM atlas_tokens WHERE installation_id = %s AND token = %s",
                       (installation_id, token))

    def close(self) -> None:
        self._pool.close()

    def _held(self, name: str, *, paced: int | None) -> _AdvisoryLock:
        return _AdvisoryLock(self._pool, name, pace=None if paced is None else (lambda db: self._pace(db, paced)))

    def _pace(self, db: Any, installation_id: int) -> None:
        row = db.execute(f"SELECT last_start + %s - {SERVER_EPOCH} FROM atlas_write_pacing"
                         " WHERE installation_id = %s", (self._write_interval, installation_id)).fetchone()
        if row is not None and row[0] > 0:
            self._sleep(float(row[0]))
        ensure_lease()  # the wait may have outlasted the lease
        db.execute(f"INSERT INTO atlas_write_pacing (installation_id, last_start) VALUES (%s, {SERVER_EPOCH})"
                   f" ON CONFLICT (installation_id) DO UPDATE SET last_start = {SERVER_EPOCH}", (installation_id,))


class _AdvisoryLock:
    """A reusable context manager holding advisory lock ``name`` on a pooled connection while entered.

    ``pace(db)`` runs with the lock held, before the block (a write slot's wait). Several threads may use one
    instance: each entry's connection is kept per thread.
    """

    def __init__(self, pool: Any, name: str, *, pace: Callable[[Any], None] | None) -> None:
        self._pool = pool
        self._name = name
        self._pace = pace
        self._held = threading.local()

    def __enter__(self) -> None:
        if self._pace is not None:
            ensure_lease()
        db = self._pool.getconn()
        try:
            db.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (self._name,))
        except BaseException:
            self._pool.putconn(db)
            raise
        try:
            if self._pace is not None:
                self._pace(db)
        except BaseException:
            self._release(db)
            raise
        self._held.db = db

    def __exit__(self, *exc_info: object) -> None:
        db, self._held.db = self._held.db, None
        self._release(db)

    def _release(self, db: Any) -> None:
        try:
            db.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (self._name,))
        finally:
            self._pool.putconn(db)
