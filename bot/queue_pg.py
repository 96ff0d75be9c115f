"""``JobQueue`` on PostgreSQL, for many webhook servers and workers on one shared engine.

The same table and the same rules as the SQLite queue (``bot.queue``), on PostgreSQL's own primitives:
- leases are rows claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, so workers never wait on each other's
  candidates, and every lease gets its own random token;
- per-key serialisation and coalescing take a transaction-scoped advisory lock on the key: ``enqueue`` (insert
  the newest job, supersede the queued older ones), ``fail`` and ``lease`` (which only *tries* it and moves on
  to another job) never interleave for one pull request or one repository's progress issue, and a lease's
  "no other live lease of this key" check runs after the lock, so it sees every committed lease;
- delivery-id de-duplication is the ``UNIQUE`` constraint every server inserts against.

Times are the processes' own clocks (epoch seconds, as in SQLite), so hosts must keep NTP time; leases are a
minute long, so skew of a second costs nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool, PoolTimeout

from bot.queue import (
    LEASE_LOST_ERROR,
    RECORD_COLUMNS,
    Enqueued,
    Job,
    JobRecord,
    JobState,
    Retention,
    failure_outcome,
    job_record,
    new_lease_token,
    payload_text,
    trim_payload,
)
from bot.settings import SettingsError
from bot.webhooks import Delivery

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS atlas_jobs (
        id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        delivery_id   TEXT NOT NULL UNIQUE,
        event         TEXT NOT NULL,
        action        TEXT,
        repository    TEXT,
        pr_number     BIGINT,
        key           TEXT,
        state         TEXT NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        run_after     DOUBLE PRECISION NOT NULL,
        lease_owner   TEXT,
        lease_token   TEXT,
        lease_expires DOUBLE PRECISION,
        received_at   DOUBLE PRECISION NOT NULL,
        updated_at    DOUBLE PRECISION NOT NULL,
        last_error    TEXT,
        superseded_by TEXT,
        payload       TEXT)""",
    "CREATE INDEX IF NOT EXISTS atlas_jobs_ready ON atlas_jobs (state, run_after)",
    "CREATE INDEX IF NOT EXISTS atlas_jobs_key ON atlas_jobs (key, state)",
    "CREATE INDEX IF NOT EXISTS atlas_jobs_finished ON atlas_jobs (state, updated_at)",
)
# Every process creates the schema at start; concurrent CREATE … IF NOT EXISTS can still collide in the
# catalogue, so creation is serialised by one advisory lock.
SCHEMA_LOCK = "atlas:schema"
KEY_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('atlas-job:' || %s, 0))"
KEY_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('atlas-job:' || %s, 0))"
READY = ("((state = 'queued' AND run_after <= %(now)s) OR (state = 'leased' AND lease_expires <= %(now)s))")
# Candidates one lease looks at: enough that a few keys busy elsewhere do not hide the rest.
LEASE_CANDIDATES = 16
POOL_MAX_CONNECTIONS = 16
CONNECT_TIMEOUT_SECONDS = 10.0


def connection_pool(url: str, *, autocommit: bool = False, max_size: int = POOL_MAX_CONNECTIONS,
                    timeout: float = CONNECT_TIMEOUT_SECONDS) -> ConnectionPool:
    """An open pool for ``url``; its first connection is made now, so a wrong URL fails at start-up with a
    ``SettingsError`` (which never repeats the URL: it carries the password)."""
    pool = ConnectionPool(url, min_size=1, max_size=max_size, open=False, kwargs={"autocommit": autocommit},
                          name="atlas-autocommit" if autocommit else "atlas")
    try:
        pool.open(wait=True, timeout=timeout)
    except PoolTimeout:
        pool.close()
        raise SettingsError(f"ATLAS_QUEUE_URL: no connection to PostgreSQL within {timeout:g} s (is the server "
                            "up, the database created, the user and password right?)") from None
    return pool


def create_schema(pool: ConnectionPool, statements: tuple[str, ...]) -> None:
    with pool.connection() as db, db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (SCHEMA_LOCK,))
        for statement in statements:
            db.execute(statement)


class PostgresJobQueue:
    """``JobQueue`` in table ``atlas_jobs`` of the database at ``url``; see the module docstring."""

    def __init__(
        self,
        url: str,
        *,
        max_attempts: int = 5,
        retry_base_seconds: float = 5.0,
        retention: Retention = Retention(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.retention = retention
        self.clock = clock
        self._pool = connection_pool(url)
        create_schema(self._pool, SCHEMA)

    # -- producer side -------------------------------------------------------------------------------------

    def enqueue(self, delivery: Delivery, *, key: str | None = None) -> Enqueued:
        now = self.clock()
        with self._pool.connection() as db:
            if key is not None:
                db.execute(KEY_LOCK, (key,))
            row = db.execute(
                "INSERT INTO atlas_jobs (delivery_id, event, action, repository, pr_number, key, state, run_after,"
                " received_at, updated_at, payload) VALUES (%s, %s, %s, %s, %s, %s, 'queued', %s, %s, %s, %s)"
                " ON CONFLICT (delivery_id) DO NOTHING RETURNING id",
                (delivery.id, delivery.event, delivery.action, delivery.repository, delivery.pr_number, key,
                 now, now, now, payload_text(delivery)),
            ).fetchone()
            if row is None:
                return Enqueued(created=False)
            if key is None:
                return Enqueued(created=True)
            older = db.execute(
                "UPDATE atlas_jobs SET state = 'superseded', superseded_by = %s, payload = NULL, updated_at = %s"
                " WHERE key = %s AND state = 'queued' AND id < %s RETURNING id, delivery_id",
                (delivery.id, now, key, row[0])).fetchall()
            return Enqueued(created=True, superseded=tuple(d for _, d in sorted(older)))

    def retry(self, job_id: int) -> bool:
        now = self.clock()
        return self._change(
            "UPDATE atlas_jobs SET state = 'queued', attempts = 0, run_after = %s, updated_at = %s"
            " WHERE id = %s AND state = 'dead' AND payload IS NOT NULL", (now, now, job_id)) == 1

    # -- consumer side -------------------------------------------------------------------------------------

    def lease(self, worker_id: str, lease_seconds: float) -> Job | None:
        now = self.clock()
        with self._pool.connection() as db:
            # A plain read first: idle workers polling take no row locks.
            if db.execute(f"SELECT 1 FROM atlas_jobs WHERE {READY} LIMIT 1", {"now": now}).fetchone() is None:
                return None
            self._expire_leases(db, now)
            candidates = db.execute(
                "SELECT id, delivery_id, event, key, attempts, received_at, last_error, payload FROM atlas_jobs j"
                f" WHERE {READY}"
                "   AND (key IS NULL OR NOT EXISTS (SELECT 1 FROM atlas_jobs b WHERE b.key = j.key AND b.id != j.id"
                "        AND b.state = 'leased' AND b.lease_expires > %(now)s))"
                " ORDER BY run_after, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED",
                {"now": now, "limit": LEASE_CANDIDATES},
            ).fetchall()
            for job_id, delivery_id, event, key, attempts, received_at, last_error, payload in candidates:
                if key is not None and not self._key_is_free(db, key, job_id, now):
                    continue
                expires, token = now + lease_seconds, new_lease_token()
                db.execute(
                    "UPDATE atlas_jobs SET state = 'leased', lease_owner = %s, lease_token = %s, lease_expires = %s,"
                    " attempts = attempts + 1, updated_at = %s WHERE id = %s",
                    (worker_id, token, expires, now, job_id))
                delivery = Delivery.from_payload(delivery_id, event, json.loads(payload))
                return Job(id=job_id, delivery=delivery, key=key, attempts=attempts + 1, received_at=received_at,
                           lease_owner=worker_id, lease_expires=expires, lease_token=token, last_error=last_error)
        return None

    def extend(self, job: Job, lease_seconds: float) -> bool:
        now = self.clock()
        return self._change(
            "UPDATE atlas_jobs SET lease_expires = %s WHERE id = %s AND state = 'leased' AND lease_token = %s"
            " AND lease_expires > %s", (now + lease_seconds, job.id, job.lease_token, now)) == 1

    def holds(self, job: Job) -> bool:
        with self._pool.connection() as db:
            return db.execute(
                "SELECT 1 FROM atlas_jobs WHERE id = %s AND state = 'leased' AND lease_token = %s"
                " AND lease_expires > %s", (job.id, job.lease_token, self.clock())).fetchone() is not None

    def complete(self, job: Job) -> bool:
        return self._change(
            "UPDATE atlas_jobs SET state = 'done', lease_owner = NULL, lease_token = NULL, lease_expires = NULL,"
            " payload = NULL, updated_at = %s WHERE id = %s AND state = 'leased' AND lease_token = %s",
            (self.clock(), job.id, job.lease_token)) == 1

    def release(self, job: Job) -> bool:
        now = self.clock()
        return self._change(
            "UPDATE atlas_jobs SET state = 'queued', run_after = %s, attempts = greatest(attempts - 1, 0),"
            " lease_owner = NULL, lease_token = NULL, lease_expires = NULL, updated_at = %s"
            " WHERE id = %s AND state = 'leased' AND lease_token = %s", (now, now, job.id, job.lease_token)) == 1

    def fail(self, job: Job, error: str, *, retry_after: float | None = None, permanent: bool = False) -> JobState:
        now = self.clock()
        with self._pool.connection() as db:
            if job.key is not None:
                db.execute(KEY_LOCK, (job.key,))
            owned = db.execute(
                "SELECT payload FROM atlas_jobs WHERE id = %s AND state = 'leased' AND lease_token = %s FOR UPDATE",
                (job.id, job.lease_token)).fetchone()
            if owned is None:
                found = db.execute("SELECT state FROM atlas_jobs WHERE id = %s", (job.id,)).fetchone()
                return JobState(found[0]) if found else JobState.DEAD
            newer = self._newer_for_key(db, job.id, job.key)
            state, run_after, payload = failure_outcome(self, job, owned[0], newer, now=now, permanent=permanent,
                                                        retry_after=retry_after)
            db.execute(
                "UPDATE atlas_jobs SET state = %s, run_after = %s, last_error = %s, lease_owner = NULL,"
                " lease_token = NULL, lease_expires = NULL, superseded_by = %s, updated_at = %s, payload = %s"
                " WHERE id = %s", (state.value, run_after, error, newer, now, payload, job.id))
            return state

    # -- inspection ----------------------------------------------------------------------------------------

    def depth(self) -> int:
        return int(self._one("SELECT count(*) FROM atlas_jobs WHERE state IN ('queued', 'leased')"))

    def oldest_age(self) -> float | None:
        oldest = self._one("SELECT min(received_at) FROM atlas_jobs WHERE state IN ('queued', 'leased')")
        return None if oldest is None else max(self.clock() - oldest, 0.0)

    def counts(self) -> dict[JobState, int]:
        with self._pool.connection() as db:
            found = dict(db.execute("SELECT state, count(*) FROM atlas_jobs GROUP BY state").fetchall())
        return {state: int(found.get(state.value, 0)) for state in JobState}

    def list_jobs(self, *, state: JobState | None = None, limit: int = 50) -> list[JobRecord]:
        with self._pool.connection() as db:
            if state is None:
                rows = db.execute(f"SELECT {RECORD_COLUMNS} FROM atlas_jobs ORDER BY id DESC LIMIT %s", (limit,))
            else:
                rows = db.execute(f"SELECT {RECORD_COLUMNS} FROM atlas_jobs WHERE state = %s ORDER BY id DESC"
                                  " LIMIT %s", (JobState(state).value, limit))
            return [job_record(row) for row in rows.fetchall()]

    def prune(self) -> int:
        now = self.clock()
        return self._change(
            "DELETE FROM atlas_jobs WHERE (state IN ('done', 'superseded') AND updated_at < %s)"
            " OR (state = 'dead' AND updated_at < %s)",
            (now - self.retention.done_seconds, now - self.retention.dead_seconds))

    def close(self) -> None:
        self._pool.close()

    # -- internals -----------------------------------------------------------------------------------------

    def _expire_leases(self, db: Connection[Any], now: float) -> None:
        """Expired leases of superseded jobs become superseded; of jobs out of attempts, dead letters."""
        for job_id, attempts, key, last_error, payload in db.execute(
            "SELECT id, attempts, key, last_error, payload FROM atlas_jobs WHERE state = 'leased'"
            " AND lease_expires <= %s FOR UPDATE SKIP LOCKED", (now,)).fetchall():
            newer = self._newer_for_key(db, job_id, key)
            if newer is not None:
                db.execute("UPDATE atlas_jobs SET state = 'superseded', superseded_by = %s, payload = NULL,"
                           " lease_owner = NULL, lease_token = NULL, updated_at = %s WHERE id = %s",
                           (newer, now, job_id))
            elif attempts >= self.max_attempts:
                error = LEASE_LOST_ERROR.format(attempts=attempts, last=last_error or "none")
                db.execute("UPDATE atlas_jobs SET state = 'dead', last_error = %s, lease_owner = NULL,"
                           " lease_token = NULL, payload = %s, updated_at = %s WHERE id = %s",
                           (error, trim_payload(payload), now, job_id))

    @staticmethod
    def _key_is_free(db: Connection[Any], key: str, job_id: int, now: float) -> bool:
        """Take the key's lock (or give up at once), then check no other job of the key holds a live lease."""
        if not db.execute(KEY_TRY_LOCK, (key,)).fetchone()[0]:
            return False
        busy = db.execute("SELECT 1 FROM atlas_jobs WHERE key = %s AND id != %s AND state = 'leased'"
                          " AND lease_expires > %s LIMIT 1", (key, job_id, now)).fetchone()
        return busy is None

    @staticmethod
    def _newer_for_key(db: Connection[Any], job_id: int, key: str | None) -> str | None:
        if key is None:
            return None
        row = db.execute(
            "SELECT delivery_id FROM atlas_jobs WHERE key = %s AND id > %s AND state IN ('queued', 'leased', 'done')"
            " ORDER BY id DESC LIMIT 1", (key, job_id)).fetchone()
        return None if row is None else row[0]

    def _one(self, sql: str) -> Any:
        with self._pool.connection() as db:
            return db.execute(sql).fetchone()[0]

    def _change(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._pool.connection() as db:
            return db.execute(sql, params).rowcount
