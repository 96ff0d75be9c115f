"""Worker threads: lease a job, run its handler, record the outcome; plus the wiring of the real services.

A worker holds at most one lease at a time. Success completes the job; an exception fails it (the queue
retries with backoff, honouring a rate limit's reset time, and dead-letters it after the last attempt). A
worker that dies mid-job loses nothing: its lease expires and another worker takes the job. A worker whose
lease was lost (the heartbeat could not renew it, or it ran out) stops before its next GitHub write: the
job's "still mine?" check (``Context.still_mine``, also consulted by every write slot) turns false and the
write raises :class:`~bot.coordination.LeaseLost`. Worker ids name the host and process, so logs and
``atlas-bot jobs`` tell replicas apart; lease ownership itself is the queue's per-lease token. Every line a
job logs carries its delivery id, repository and PR number.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from bot import handlers
from bot.coordination import LeaseLost, lease_guard
from bot.github.transport import PermanentError
from bot.handlers import CallTally, Context, Route, Services
from bot.logs import log_context, redact
from bot.metrics import Metrics
from bot.queue import Job, JobQueue, JobState
from bot.webhooks import Delivery

log = logging.getLogger(__name__)

Router = Callable[[Delivery], Route | None]
# The stored error of a dead letter is for people: keep the head of it, never a whole payload.
MAX_ERROR_CHARS = 2000
STOP_TIMEOUT_SECONDS = 30.0
DEFAULT_PRUNE_INTERVAL_SECONDS = 600.0


def process_name() -> str:
    """``host:pid``: unique among the processes sharing one engine (prefix of every worker id)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class HeldLease:
    """The worker's own view of one running job's lease: lost once a renewal fails or it runs out.

    ``still_mine()`` costs no round trip to the queue: the heartbeat renews the lease at a third of its
    length and records the outcome here.
    """

    def __init__(self, job: Job, clock: Callable[[], float]) -> None:
        self.job = job
        self._clock = clock
        self._expires = job.lease_expires
        self._lost = threading.Event()

    def renewed(self, expires: float) -> None:
        self._expires = expires

    def lose(self) -> None:
        self._lost.set()

    def still_mine(self) -> bool:
        return not self._lost.is_set() and self._clock() < self._expires


class WorkerPool:
    """``workers`` threads leasing from ``queue``; ``wake()`` makes an idle worker look at once."""

    def __init__(
        self,
        queue: JobQueue,
        services: Services,
        *,
        metrics: Metrics | None = None,
        workers: int = 2,
        lease_seconds: float = 60.0,
        poll_seconds: float = 0.2,
        router: Router = handlers.route,
        clock: Callable[[], float] = time.time,
        name: str = "worker",
        prune_interval: float = DEFAULT_PRUNE_INTERVAL_SECONDS,
    ) -> None:
        self.queue = queue
        self.services = services
        self.metrics = metrics or Metrics()
        self.workers = workers
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.router = router
        self.clock = clock
        self.name = name
        self.prune_interval = prune_interval
        self._stop = threading.Event()
        self._wake = threading.Condition()
        self._pending_wakes = 0
        self._threads: list[threading.Thread] = []
        self._running: dict[str, HeldLease] = {}
        self._running_lock = threading.Lock()

    def start(self) -> None:
        self._stop.clear()
        prefix = process_name()
        for index in range(self.workers):
            thread = threading.Thread(target=self._loop, args=(f"{prefix}:{self.name}-{index}",),
                                      name=f"atlas-{self.name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        for target, role in ((self._heartbeat, "heartbeat"), (self._prune_loop, "prune")):
            thread = threading.Thread(target=target, name=f"atlas-{self.name}-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> int:
        """Stop leasing, let running jobs finish for up to ``timeout`` seconds, then release the unfinished
        ones (they stop before their next write and another worker takes them at once); returns how many."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._threads = [t for t in self._threads if t.is_alive()]
        with self._running_lock:
            unfinished = list(self._running.values())
        released = 0
        for held in unfinished:
            held.lose()
            if self.queue.release(held.job):
                released += 1
                log.warning("job %d released unfinished at shutdown", held.job.id)
        return released

    def wake(self) -> None:
        """A job was enqueued: let one idle worker lease it without waiting for its next poll."""
        with self._wake:
            # More pending wakes than workers would only make idle workers spin.
            self._pending_wakes = min(self._pending_wakes + 1, self.workers)
            self._wake.notify()

    def _loop(self, worker_id: str) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once(worker_id)
            except Exception:  # the queue itself failed (disk full, locked): log, back off, go on
                log.exception("worker %s could not lease", worker_id)
                worked = False
            if not worked:
                with self._wake:
                    if self._pending_wakes == 0 and not self._stop.is_set():
                        self._wake.wait(self.poll_seconds)
                    self._pending_wakes = max(self._pending_wakes - 1, 0)

    def beat(self) -> int:
        """Extend the lease of every running job; returns how many are still held."""
        with self._running_lock:
            running = list(self._running.values())
        still_held = 0
        for held in running:
            expires = self.clock() + self.lease_seconds
            if held.still_mine() and self.queue.extend(held.job, self.lease_seconds):
                held.renewed(expires)
                still_held += 1
            else:
                held.lose()
                log.warning("lease of job %d was lost while it ran; it stops before its next write", held.job.id)
        return still_held

    def prune(self) -> int:
        """Drop finished jobs and dead letters past their retention (every process does, every few minutes)."""
        pruned = self.queue.prune()
        if pruned:
            log.info("pruned %d finished jobs past their retention", pruned)
        return pruned

    def _prune_loop(self) -> None:
        while not self._stop.wait(self.prune_interval):
            try:
                self.prune()
            except Exception:  # the queue is briefly unusable: the next round tries again
                log.exception("pruning the queue failed")

    def _heartbeat(self) -> None:
        # Renewing at a third of the lease leaves two chances before a live worker's job looks abandoned.
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                self.beat()
            except Exception:  # the queue is briefly unusable: the next beat tries again
                log.exception("lease heartbeat failed")

    def run_once(self, worker_id: str) -> bool:
        """Lease and process one job; False when nothing was ready."""
        job = self.queue.lease(worker_id, self.lease_seconds)
        if job is None:
            return False
        held = HeldLease(job, self.clock)
        with self._running_lock:
            self._running[worker_id] = held
        try:
            self.process(job, worker_id, held)
        finally:
            with self._running_lock:
                self._running.pop(worker_id, None)
        return True

    def process(self, job: Job, worker_id: str, held: HeldLease | None = None) -> str:
        """Run one leased job to an outcome and tell the queue; returns the outcome."""
        held = held or HeldLease(job, self.clock)
        delivery = job.delivery
        with log_context(delivery_id=delivery.id, event=delivery.kind, repo=delivery.repository,
                         pr=delivery.pr_number, job_id=job.id, worker=worker_id):
            route = self.router(delivery)
            if route is None:
                self.queue.complete(job)
                self._finished(job, "ignored", started=None)
                return "ignored"
            tally = CallTally(forward=self.metrics.github_call)
            context = Context(delivery=delivery, services=self.services, tally=tally, still_mine=held.still_mine)
            started = self.clock()
            try:
                with lease_guard(held.still_mine):
                    outcome = route.handler(context)
            except LeaseLost:
                log.warning("job stopped: its lease was lost, another worker runs it (%d GitHub writes made)",
                            tally.writes)
                self._finished(job, "lease-lost", started=started)
                return "lease-lost"
            except Exception as exc:
                return self._failed(job, exc, started, tally)
            finally:
                self._note_rate_limit(context)
            if not self.queue.complete(job):
                log.warning("job finished after its lease was lost; another worker has it")
            log.info("job done: %s (attempt %d, %d GitHub calls, %d writes, %.0f ms)", outcome, job.attempts,
                     tally.calls, tally.writes, (self.clock() - started) * 1000)
            self._finished(job, "done", started=started)
            return outcome

    def _failed(self, job: Job, exc: Exception, started: float, tally: CallTally) -> str:
        error = redact(f"{type(exc).__name__}: {exc}")[:MAX_ERROR_CHARS]
        state = self.queue.fail(job, error, retry_after=_retry_after(exc, self.clock()),
                                permanent=isinstance(exc, PermanentError))
        outcome = {JobState.DEAD: "dead", JobState.SUPERSEDED: "superseded"}.get(state, "retry")
        if state is JobState.DEAD:
            log.error("job dead-lettered after %d attempts (%d GitHub calls): %s", job.attempts, tally.calls,
                      error, exc_info=exc)
        else:
            log.warning("job attempt %d failed, %s: %s", job.attempts, outcome, error, exc_info=exc)
        self._finished(job, outcome, started=started)
        return outcome

    def _note_rate_limit(self, context: Context) -> None:
        remaining = getattr(context.github, "rate_limit_remaining", None)
        if isinstance(remaining, int):
            self.metrics.rate_limit(remaining)

    def _finished(self, job: Job, outcome: str, *, started: float | None) -> None:
        now = self.clock()
        self.metrics.job_finished(job.delivery.kind, outcome, latency=now - job.received_at,
                                  duration=None if started is None else now - started)


def _retry_after(exc: Exception, now: float) -> float | None:
    """Seconds to wait before retrying when the error says (``RateLimited.retry_at``: Retry-After or reset)."""
    retry_at: Any = getattr(exc, "retry_at", None)
    if isinstance(retry_at, (int, float)) and retry_at > now:
        return float(retry_at - now)
    return None
