"""The durable job queue between the webhook endpoint and the workers: a small interface and its SQLite form.

Semantics every implementation keeps (``bot.queue_pg`` keeps them on PostgreSQL; ``tests/test_queue.py`` is
the contract both pass):
- ``enqueue`` is idempotent by delivery id: GitHub redelivering the same delivery never makes a second job.
- ``lease`` hands a job to one worker until the lease expires; a live worker keeps extending it (``extend``),
  a worker killed at any moment loses nothing, because the job becomes leasable again after expiry (each
  lease counts as an attempt). Every lease has its own random token: ``extend``, ``complete``, ``fail``,
  ``release`` and ``holds`` succeed only for the current lease, never for a stale holder of the same job.
- ``fail`` puts the job back with exponential backoff, or dead-letters it after ``max_attempts`` with its
  error kept for ``atlas-bot jobs`` (and its payload trimmed to what a replay, ``retry``, needs).
- Jobs with the same ``key`` (one pull request, one repository's progress issue) run one at a time, and a new
  job supersedes the queued, not yet leased, ones with its key: ten rapid pushes to a PR review one head.
- ``prune`` deletes finished jobs (and with them their delivery ids) after ``Retention.done_seconds`` and
  dead letters after ``Retention.dead_seconds``; workers call it continuously.
"""

from __future__ import annotations

import enum
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bot.settings import Settings, SettingsError
from bot.sqlite import write_transaction
from bot.webhooks import Delivery

SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id   TEXT NOT NULL UNIQUE,
    event         TEXT NOT NULL,
    action        TEXT,
    repository    TEXT,
    pr_number     INTEGER,
    key           TEXT,
    state         TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    run_after     REAL NOT NULL,
    lease_owner   TEXT,
    lease_token   TEXT,
    lease_expires REAL,
    received_at   REAL NOT NULL,
    updated_at    REAL NOT NULL,
    last_error    TEXT,
    superseded_by TEXT,
    payload       TEXT
);
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (state, run_after);
CREATE INDEX IF NOT EXISTS jobs_key ON jobs (key, state);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (state, updated_at);
"""
# Backoff doubles per attempt from the configured base, capped so a job is retried at least hourly.
MAX_BACKOFF_SECONDS = 3600.0
LEASE_LOST_ERROR = "worker lost its lease {attempts} time(s) (killed or stuck); last error: {last}"
BUSY_TIMEOUT_MS = 10_000
# A job a worker may take now: queued and due, or leased by a worker whose lease ran out.
READY = "((state = 'queued' AND run_after <= :now) OR (state = 'leased' AND lease_expires <= :now))"
# Payload parts no handler reads: dropped from a dead letter's payload so that keeping it costs little.
BULKY_PAYLOAD_KEYS = frozenset({"sender", "organization", "enterprise", "commits", "head_commit", "_links"})
BULKY_PAYLOAD_PARENTS = {"body": frozenset({"pull_request", "issue"})}


class JobState(str, enum.Enum):
    QUEUED = "queued"
    LEASED = "leased"
    DONE = "done"
    DEAD = "dead"
    SUPERSEDED = "superseded"


@dataclass(frozen=True)
class Retention:
    """How long finished jobs stay: done/superseded ones (their delivery ids recognise GitHub's redeliveries,
    which it offers for three days) and dead letters (for people to read and replay)."""

    done_seconds: float = 7 * 86400.0
    dead_seconds: float = 30 * 86400.0


@dataclass(frozen=True)
class Job:
    """A leased job: the delivery to process and what the queue knows about earlier attempts.

    ``lease_token`` is unique to this lease; the queue accepts this job's outcome only while it is current.
    """

    id: int
    delivery: Delivery
    key: str | None
    attempts: int
    received_at: float
    lease_owner: str
    lease_expires: float
    lease_token: str = ""
    last_error: str | None = None


@dataclass(frozen=True)
class JobRecord:
    """One row as ``atlas-bot jobs`` shows it (no payload)."""

    id: int
    delivery_id: str
    event: str
    action: str | None
    repository: str | None
    pr_number: int | None
    key: str | None
    state: JobState
    attempts: int
    received_at: float
    updated_at: float
    run_after: float
    last_error: str | None
    superseded_by: str | None


@dataclass(frozen=True)
class Enqueued:
    """What ``enqueue`` did: ``created`` is False for a redelivery; ``superseded`` lists replaced deliveries."""

    created: bool
    superseded: tuple[str, ...] = ()


class JobQueue(Protocol):
    """The interface workers and the app use; see the module docstring for the guarantees."""

    def enqueue(self, delivery: Delivery, *, key: str | None = None) -> Enqueued: ...

    def lease(self, worker_id: str, lease_seconds: float) -> Job | None: ...

    def extend(self, job: Job, lease_seconds: float) -> bool: ...

    def holds(self, job: Job) -> bool:
        """True while ``job``'s lease is current and unexpired (the worker's "still mine?")."""

    def complete(self, job: Job) -> bool: ...

    def fail(self, job: Job, error: str, *, retry_after: float | None = None, permanent: bool = False) -> JobState: ...

    def release(self, job: Job) -> bool:
        """Give a leased job back unfinished (graceful shutdown): queued at once, the attempt not counted."""

    def retry(self, job_id: int) -> bool:
        """Queue a dead letter again with fresh attempts (``atlas-bot jobs --retry ID``)."""

    def depth(self) -> int: ...

    def oldest_age(self) -> float | None: ...

    def counts(self) -> dict[JobState, int]: ...

    def list_jobs(self, *, state: JobState | None = None, limit: int = 50) -> list[JobRecord]: ...

    def prune(self) -> int: ...

    def close(self) -> None: ...


def new_lease_token() -> str:
    return secrets.token_hex(16)


def backoff_seconds(base: float, attempts: int, retry_after: float | None) -> float:
    """Exponential backoff from ``base`` per attempt (capped), never sooner than GitHub's ``retry_after``."""
    return max(min(base * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS), retry_after or 0.0)


class _FailurePolicy(Protocol):
    max_attempts: int
    retry_base_seconds: float


def failure_outcome(queue: _FailurePolicy, job: Job, payload: str | None, newer: str | None, *, now: float,
                    permanent: bool, retry_after: float | None) -> tuple[JobState, float, str | None]:
    """What a failed attempt becomes (both backends): its state, when it may run, and the payload kept.

    Out of attempts (or ``permanent``): a dead letter with a trimmed payload; a newer job of its key exists:
    superseded; else queued again after the backoff.
    """
    if permanent or job.attempts >= queue.max_attempts:
        return JobState.DEAD, now, trim_payload(payload)
    if newer is not None:
        return JobState.SUPERSEDED, now, None
    return JobState.QUEUED, now + backoff_seconds(queue.retry_base_seconds, job.attempts, retry_after), payload


def trim_payload(text: str | None) -> str | None:
    """A dead letter's payload with the parts no handler reads removed (what ``retry`` needs stays)."""
    if text is None:
        return None
    try:
        payload = json.loads(text)
    except ValueError:
        return text
    return json.dumps(_trimmed(payload, parent=None), separators=(",", ":"), ensure_ascii=False)


def _trimmed(value: Any, *, parent: str | None) -> Any:
    if isinstance(value, list):
        return [_trimmed(item, parent=parent) for item in value]
    if not isinstance(value, dict):
        return value
    kept = {}
    for key, item in value.items():
        if key in BULKY_PAYLOAD_KEYS or parent in BULKY_PAYLOAD_PARENTS.get(key, ()):
            continue
        if key.endswith("_url") and key != "clone_url":
            continue  # API and web links: the bot builds its own from the repository name
        kept[key] = _trimmed(item, parent=key)
    return kept


class SQLiteJobQueue:
    """``JobQueue`` in one SQLite file in WAL mode; safe across threads and processes on one machine.

    Each thread gets its own connection; state changes run in ``BEGIN IMMEDIATE`` transactions, so two
    workers (threads or processes) can never lease the same job.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_attempts: int = 5,
        retry_base_seconds: float = 5.0,
        retention: Retention = Retention(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.retention = retention
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._db()
        if db.execute("PRAGMA user_version").fetchone()[0] == 1:
            db.execute("ALTER TABLE jobs ADD COLUMN lease_token TEXT")  # version 1 checked the owner's name only
        # executescript commits on its own, so the schema is created outside an explicit transaction.
        db.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")

    # -- producer side -------------------------------------------------------------------------------------

    def enqueue(self, delivery: Delivery, *, key: str | None = None) -> Enqueued:
        now = self.clock()
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO jobs (delivery_id, event, action, repository, pr_number, key, state,"
                " run_after, received_at, updated_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (delivery.id, delivery.event, delivery.action, delivery.repository, delivery.pr_number, key,
                 JobState.QUEUED.value, now, now, now, payload_text(delivery)),
            )
            if cursor.rowcount == 0:
                return Enqueued(created=False)
            if key is None:
                return Enqueued(created=True)
            older = [row[0] for row in db.execute(
                "SELECT delivery_id FROM jobs WHERE key = ? AND state = ? AND id < ?",
                (key, JobState.QUEUED.value, cursor.lastrowid))]
            if older:
                db.execute(
                    "UPDATE jobs SET state = ?, superseded_by = ?, payload = NULL, updated_at = ?"
                    " WHERE key = ? AND state = ? AND id < ?",
                    (JobState.SUPERSEDED.value, delivery.id, now, key, JobState.QUEUED.value, cursor.lastrowid))
            return Enqueued(created=True, superseded=tuple(older))

    def retry(self, job_id: int) -> bool:
        return self._change(
            "UPDATE jobs SET state = 'queued', attempts = 0, run_after = ?, updated_at = ? WHERE id = ?"
            " AND state = 'dead' AND payload IS NOT NULL", (self.clock(), self.clock(), job_id)) == 1

    # -- consumer side -------------------------------------------------------------------------------------

    def lease(self, worker_id: str, lease_seconds: float) -> Job | None:
        now = self.clock()
        # A read first: idle workers polling must not take the write lock the webhook endpoint needs.
        ready = self._db().execute(f"SELECT 1 FROM jobs WHERE {READY} LIMIT 1", {"now": now}).fetchone()
        if ready is None:
            return None
        with self._transaction() as db:
            self._expire_leases(db, now)
            row = db.execute(
                "SELECT id, delivery_id, event, key, attempts, received_at, last_error, payload FROM jobs j"
                f" WHERE {READY}"
                "   AND (key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs b WHERE b.key = j.key AND b.id != j.id"
                "        AND b.state = 'leased' AND b.lease_expires > :now))"
                " ORDER BY run_after, id LIMIT 1",
                {"now": now},
            ).fetchone()
            if row is None:
                return None
            job_id, delivery_id, event, key, attempts, received_at, last_error, payload = row
            expires, token = now + lease_seconds, new_lease_token()
            db.execute(
                "UPDATE jobs SET state = 'leased', lease_owner = ?, lease_token = ?, lease_expires = ?,"
                " attempts = attempts + 1, updated_at = ? WHERE id = ?",
                (worker_id, token, expires, now, job_id),
            )
        delivery = Delivery.from_payload(delivery_id, event, json.loads(payload))
        return Job(id=job_id, delivery=delivery, key=key, attempts=attempts + 1, received_at=received_at,
                   lease_owner=worker_id, lease_expires=expires, lease_token=token, last_error=last_error)

    def extend(self, job: Job, lease_seconds: float) -> bool:
        """Keep a running job's lease alive (the worker's heartbeat); False when the lease was already lost."""
        now = self.clock()
        return self._change(
            "UPDATE jobs SET lease_expires = ? WHERE id = ? AND state = 'leased' AND lease_token = ?"
            " AND lease_expires > ?", (now + lease_seconds, job.id, job.lease_token, now)) == 1

    def holds(self, job: Job) -> bool:
        row = self._db().execute("SELECT 1 FROM jobs WHERE id = ? AND state = 'leased' AND lease_token = ?"
                                 " AND lease_expires > ?", (job.id, job.lease_token, self.clock())).fetchone()
        return row is not None

    def complete(self, job: Job) -> bool:
        """Mark done; False when the lease was lost meanwhile (the job was re-leased or superseded)."""
        return self._change(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_token = NULL, lease_expires = NULL,"
            " payload = NULL, updated_at = ? WHERE id = ? AND state = 'leased' AND lease_token = ?",
            (self.clock(), job.id, job.lease_token),
        ) == 1

    def release(self, job: Job) -> bool:
        now = self.clock()
        return self._change(
            "UPDATE jobs SET state = 'queued', run_after = ?, attempts = max(attempts - 1, 0), lease_owner = NULL,"
            " lease_token = NULL, lease_expires = NULL, updated_at = ? WHERE id = ? AND state = 'leased'"
            " AND lease_token = ?", (now, now, job.id, job.lease_token)) == 1

    def fail(self, job: Job, error: str, *, retry_after: float | None = None, permanent: bool = False) -> JobState:
        """Record a failed attempt: retry later, supersede (a newer job for its key exists) or dead-letter."""
        now = self.clock()
        with self._transaction() as db:
            owned = db.execute("SELECT payload FROM jobs WHERE id = ? AND state = 'leased' AND lease_token = ?",
                               (job.id, job.lease_token)).fetchone()
            if owned is None:
                state = db.execute("SELECT state FROM jobs WHERE id = ?", (job.id,)).fetchone()
                return JobState(state[0]) if state else JobState.DEAD
            newer = self._newer_for_key(db, job.id, job.key)
            state, run_after, payload = failure_outcome(self, job, owned[0], newer, now=now, permanent=permanent,
                                                        retry_after=retry_after)
            db.execute(
                "UPDATE jobs SET state = ?, run_after = ?, last_error = ?, lease_owner = NULL, lease_token = NULL,"
                " lease_expires = NULL, superseded_by = ?, updated_at = ?, payload = ? WHERE id = ?",
                (state.value, run_after, error, newer, now, payload, job.id),
            )
            return state

    # -- inspection ----------------------------------------------------------------------------------------

    def depth(self) -> int:
        row = self._db().execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased')").fetchone()
        return int(row[0])

    def oldest_age(self) -> float | None:
        row = self._db().execute("SELECT min(received_at) FROM jobs WHERE state IN ('queued', 'leased')").fetchone()
        return None if row[0] is None else max(self.clock() - row[0], 0.0)

    def counts(self) -> dict[JobState, int]:
        found = dict(self._db().execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        return {state: int(found.get(state.value, 0)) for state in JobState}

    def list_jobs(self, *, state: JobState | None = None, limit: int = 50) -> list[JobRecord]:
        if state is None:
            rows = self._db().execute(f"SELECT {RECORD_COLUMNS} FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db().execute(f"SELECT {RECORD_COLUMNS} FROM jobs WHERE state = ? ORDER BY id DESC LIMIT ?",
                                      (JobState(state).value, limit))
        return [job_record(row) for row in rows.fetchall()]

    def prune(self) -> int:
        """Delete done and superseded jobs and dead letters past their retention; returns how many."""
        now = self.clock()
        return self._change(
            "DELETE FROM jobs WHERE (state IN ('done', 'superseded') AND updated_at < ?)"
            " OR (state = 'dead' AND updated_at < ?)",
            (now - self.retention.done_seconds, now - self.retention.dead_seconds))

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # -- internals -----------------------------------------------------------------------------------------

    def _expire_leases(self, db: sqlite3.Connection, now: float) -> None:
        """Expired leases of jobs out of attempts become dead letters; of superseded jobs, superseded."""
        for job_id, attempts, key, last_error, payload in db.execute(
            "SELECT id, attempts, key, last_error, payload FROM jobs WHERE state = 'leased' AND lease_expires <= ?",
            (now,)
        ).fetchall():
            newer = self._newer_for_key(db, job_id, key)
            if newer is not None:
                db.execute("UPDATE jobs SET state = 'superseded', superseded_by = ?, payload = NULL,"
                           " lease_owner = NULL, lease_token = NULL, updated_at = ? WHERE id = ?",
                           (newer, now, job_id))
            elif attempts >= self.max_attempts:
                error = LEASE_LOST_ERROR.format(attempts=attempts, last=last_error or "none")
                db.execute("UPDATE jobs SET state = 'dead', last_error = ?, lease_owner = NULL, lease_token = NULL,"
                           " payload = ?, updated_at = ? WHERE id = ?", (error, trim_payload(payload), now, job_id))

    @staticmethod
    def _newer_for_key(db: sqlite3.Connection, job_id: int, key: str | None) -> str | None:
        if key is None:
            return None
        row = db.execute(
            "SELECT delivery_id FROM jobs WHERE key = ? AND id > ? AND state IN ('queued', 'leased', 'done')"
            " ORDER BY id DESC LIMIT 1", (key, job_id)).fetchone()
        return None if row is None else row[0]

    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                                         check_same_thread=False)
            connection.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode: a commit survives any process kill (the guarantee the queue gives); only an
            # OS crash can lose the last commits. FULL would fsync on every enqueue, lease and completion,
            # which serialises the queue at about 150 jobs/s on an ordinary disk.
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _change(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run one data-changing statement in its own write transaction; returns how many rows it changed."""
        with self._transaction() as db:
            return db.execute(sql, params).rowcount

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with write_transaction(self._db()) as db:
            yield db


RECORD_COLUMNS = ("id, delivery_id, event, action, repository, pr_number, key, state, attempts, received_at,"
                  " updated_at, run_after, last_error, superseded_by")


def job_record(row: tuple[Any, ...]) -> JobRecord:
    """A ``RECORD_COLUMNS`` row as a record (both backends select the same columns)."""
    return JobRecord(*row[:7], JobState(row[7]), *row[8:])


def payload_text(delivery: Delivery) -> str:
    if delivery.body:
        try:
            return delivery.body.decode("utf-8")
        except UnicodeDecodeError:
            pass  # JSON with a stray encoding: store the re-serialised payload instead
    return json.dumps(delivery.payload, separators=(",", ":"))


def open_queue(settings: Settings) -> JobQueue:
    """The queue every process of the deployment shares: PostgreSQL at ``ATLAS_QUEUE_URL`` when it is set,
    else ``jobs.sqlite3`` under the data directory."""
    retention = Retention(done_seconds=settings.keep_done_days * 86400.0,
                          dead_seconds=settings.keep_dead_days * 86400.0)
    if settings.queue_url is not None:
        from bot.queue_pg import PostgresJobQueue

        return PostgresJobQueue(settings.queue_url_value(), max_attempts=settings.max_attempts,
                                retry_base_seconds=settings.retry_base_seconds, retention=retention)
    return SQLiteJobQueue(settings.queue_path, max_attempts=settings.max_attempts,
                          retry_base_seconds=settings.retry_base_seconds, retention=retention)


def format_jobs(queue: JobQueue, *, state: JobState | None = None, limit: int = 50,
                now: float | None = None) -> str:
    """The text ``atlas-bot jobs`` prints: counts per state, then the newest jobs, dead letters with errors."""
    now = time.time() if now is None else now
    counts = queue.counts()
    lines = ["jobs: " + ", ".join(f"{s.value} {counts.get(s, 0)}" for s in JobState)]
    records = queue.list_jobs(state=state, limit=limit)
    if not records:
        lines.append("(no jobs)" if state is None else f"(no {state.value} jobs)")
    for rec in records:
        target = rec.repository or "-"
        if rec.pr_number is not None:
            target += f"#{rec.pr_number}"
        event = rec.event + (f".{rec.action}" if rec.action else "")
        lines.append(f"{rec.id:>6}  {rec.state.value:<10} {event:<28} {target:<40} attempts {rec.attempts}"
                     f"  {_age(now - rec.received_at)} ago  delivery {rec.delivery_id}")
        if rec.state is JobState.SUPERSEDED and rec.superseded_by:
            lines.append(f"        superseded by delivery {rec.superseded_by}")
        if rec.last_error and rec.state in (JobState.DEAD, JobState.QUEUED):
            label = "error" if rec.state is JobState.DEAD else f"retry in {_age(max(rec.run_after - now, 0))}"
            lines.append(f"        {label}: {' '.join(rec.last_error.split())[:500]}")
    return "\n".join(lines) + "\n"


def jobs_command(settings: Settings | None = None, *, state: str | None = None, limit: int = 50,
                 retry: int | None = None) -> str:
    """``atlas-bot jobs [--state S] [--limit N] [--retry ID]``: the queue's contents as text, or one dead
    letter queued again (settings read now if None)."""
    settings = settings or Settings.load()
    try:
        wanted = JobState(state) if state else None
    except ValueError:
        raise SettingsError(f"--state must be one of {', '.join(s.value for s in JobState)}") from None
    if settings.queue_url is None and not settings.queue_path.exists():
        return f"no job queue at {settings.queue_path} (atlas-bot serve creates it)\n"
    queue = open_queue(settings)
    try:
        if retry is not None:
            if not queue.retry(retry):
                raise SettingsError(f"--retry {retry}: no dead letter with that id")
            return f"job {retry} queued again\n"
        return format_jobs(queue, state=wanted, limit=limit)
    finally:
        queue.close()


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"
