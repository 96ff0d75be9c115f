"""WorkerPool: lease → handler → complete/fail, metrics, log context, threads processing each job once."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from bot.coordination import InProcessCoordinator, LeaseLost
from bot.github.transport import NotFound, Unauthorized
from bot.handlers import Context, MalformedPayload, Route, Services
from bot.logs import configure_logging
from bot.metrics import Metrics
from bot.queue import JobState, Retention, SQLiteJobQueue
from bot.webhooks import Delivery
from bot.worker import HeldLease, WorkerPool, process_name
from test_queue import Clock, sync


class RateLimitedError(Exception):
    def __init__(self, retry_at: float) -> None:
        super().__init__("secondary rate limit")
        self.retry_at = retry_at


# Services for handlers that touch none of them (test_app.py uses it too).
NO_SERVICES = Services(repo_client=lambda *a: None, git_token=lambda i: None, mirror=lambda *a: None, pool=None,
                       load_config=lambda **k: None, run_check=lambda *a, **k: None,
                       build_publication=lambda *a, **k: None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> SQLiteJobQueue:
    q = SQLiteJobQueue(tmp_path / "jobs.sqlite3", max_attempts=2, retry_base_seconds=10, clock=clock)
    yield q
    q.close()


def pool_with(queue, handler, clock, **kwargs) -> WorkerPool:
    return WorkerPool(queue, NO_SERVICES, router=lambda d: Route(handler, None), clock=clock, **kwargs)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_success_completes_the_job_and_counts_it(queue, clock) -> None:
    seen: list[str] = []

    def handler(ctx: Context) -> str:
        seen.append(ctx.delivery.id)
        ctx.tally("GET /repos/{owner}/{repo}", 200)
        clock.now += 1.5
        return "published"

    metrics = Metrics()
    queue.enqueue(sync("d1"))
    workers = pool_with(queue, handler, clock, metrics=metrics)
    assert workers.run_once("w0")
    assert not workers.run_once("w0")
    assert seen == ["d1"]
    assert queue.counts()[JobState.DONE] == 1
    assert sample(metrics, "atlas_jobs_total", event="pull_request.synchronize", outcome="done") == 1
    assert sample(metrics, "atlas_job_duration_seconds_sum", event="pull_request.synchronize") == 1.5
    assert sample(metrics, "atlas_github_calls_total", endpoint="GET /repos/{owner}/{repo}", status="200") == 1


def test_failure_retries_then_dead_letters_with_the_error(queue, clock) -> None:
    def handler(ctx: Context) -> str:
        raise RuntimeError("GitHub answered 502 on POST /reviews")

    metrics = Metrics()
    queue.enqueue(sync("d1"))
    workers = pool_with(queue, handler, clock, metrics=metrics)
    workers.run_once("w0")
    assert queue.counts()[JobState.QUEUED] == 1
    clock.now += 10
    workers.run_once("w0")
    [dead] = queue.list_jobs(state=JobState.DEAD)
    assert dead.last_error == "RuntimeError: GitHub answered 502 on POST /reviews"
    assert sample(metrics, "atlas_jobs_total", event="pull_request.synchronize", outcome="retry") == 1
    assert sample(metrics, "atlas_jobs_total", event="pull_request.synchronize", outcome="dead") == 1


@pytest.mark.parametrize("error", [
    NotFound("Not Found", status=404, endpoint="GET /repos/{owner}/{repo}/pulls/{pull_number}/files"),
    Unauthorized("Bad credentials", status=401, endpoint="GET /repos/{owner}/{repo}"),
    MalformedPayload("payload field repository.clone_url is not a str"),
])
def test_a_permanent_error_is_dead_lettered_at_once_with_its_reason(queue, clock, error: Exception) -> None:
    def handler(ctx: Context) -> str:
        raise error

    queue.enqueue(sync("d1"))
    pool_with(queue, handler, clock).run_once("w0")
    [dead] = queue.list_jobs(state=JobState.DEAD)
    assert dead.attempts == 1 and str(error) in dead.last_error


def test_rate_limit_reset_delays_the_retry(queue, clock) -> None:
    def handler(ctx: Context) -> str:
        raise RateLimitedError(clock.now + 300)

    queue.enqueue(sync("d1"))
    workers = pool_with(queue, handler, clock)
    workers.run_once("w0")
    clock.now += 299
    assert queue.lease("probe", 1) is None
    clock.now += 1
    assert queue.lease("probe", 1) is not None


def test_error_text_is_redacted_before_it_is_stored(queue, clock) -> None:
    token = "ghs_" + "A" * 36

    def handler(ctx: Context) -> str:
        raise RuntimeError(f"fetch failed for https://x-access-token:{token}@github.com/o/r.git")

    queue.enqueue(sync("d1"))
    pool_with(queue, handler, clock).run_once("w0")
    [record] = queue.list_jobs()
    assert token not in record.last_error and "[REDACTED]" in record.last_error


def test_delivery_no_longer_routed_is_completed_as_ignored(queue, clock) -> None:
    metrics = Metrics()
    queue.enqueue(sync("d1"))
    WorkerPool(queue, NO_SERVICES, router=lambda d: None, clock=clock, metrics=metrics).run_once("w0")
    assert queue.counts()[JobState.DONE] == 1
    assert sample(metrics, "atlas_jobs_total", event="pull_request.synchronize", outcome="ignored") == 1


def test_rate_limit_gauge_follows_the_jobs_client(queue, clock) -> None:
    class Client:
        rate_limit_remaining = 4711

    def handler(ctx: Context) -> str:
        ctx.github = Client()
        return "published"

    metrics = Metrics()
    queue.enqueue(sync("d1"))
    pool_with(queue, handler, clock, metrics=metrics).run_once("w0")
    assert sample(metrics, "atlas_github_rate_limit_remaining") == 4711


def test_job_logs_carry_delivery_repo_and_pr(queue, clock) -> None:
    stream = io.StringIO()
    handler_logger = logging.getLogger("atlas.test.handler")

    def handler(ctx: Context) -> str:
        handler_logger.info("working on it")
        return "published"

    installed = configure_logging(level="INFO", fmt="json", stream=stream)
    try:
        queue.enqueue(sync("delivery-77", number=12))
        pool_with(queue, handler, clock).run_once("w3")
    finally:
        logging.getLogger().removeHandler(installed)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    working = next(line for line in lines if line["msg"] == "working on it")
    assert (working["delivery_id"], working["repo"], working["pr"], working["worker"]) == \
        ("delivery-77", "octo/atlas", 12, "w3")
    assert any(line["msg"].startswith("job done: published") for line in lines)


def test_heartbeat_extends_the_running_jobs_lease(queue, clock) -> None:
    started, release = threading.Event(), threading.Event()

    def handler(ctx: Context) -> str:
        started.set()
        release.wait(10)
        return "done"

    queue.enqueue(sync("d1"))
    workers = pool_with(queue, handler, clock, lease_seconds=30)
    runner = threading.Thread(target=workers.run_once, args=("w0",))
    runner.start()
    assert started.wait(10)
    clock.now += 29
    assert workers.beat() == 1
    clock.now += 29
    assert queue.lease("thief", 30) is None  # without the beat the lease would have expired
    release.set()
    runner.join(10)
    assert workers.beat() == 0
    assert queue.counts()[JobState.DONE] == 1


def test_threads_process_every_job_exactly_once(tmp_path: Path) -> None:
    queue = SQLiteJobQueue(tmp_path / "jobs.sqlite3")
    counts: dict[str, int] = {}
    lock = threading.Lock()
    finished = threading.Event()
    total = 40

    def handler(ctx: Context) -> str:
        with lock:
            counts[ctx.delivery.id] = counts.get(ctx.delivery.id, 0) + 1
            if sum(counts.values()) == total:
                finished.set()
        return "ok"

    workers = WorkerPool(queue, NO_SERVICES, router=lambda d: Route(handler, None), workers=3, poll_seconds=0.05)
    workers.start()
    try:
        for i in range(total):
            queue.enqueue(Delivery.from_payload(f"d{i}", "push", {"repository": {"full_name": f"o/r{i % 5}"}}))
            workers.wake()
        assert finished.wait(30)
    finally:
        workers.stop()
        queue.close()
    assert counts == {f"d{i}": 1 for i in range(total)}


def test_a_worker_that_lost_its_lease_stops_before_its_next_write(queue, clock) -> None:
    """Regression (issue 8.4): a worker whose lease was lost only logged it and went on publishing."""
    coordinator = InProcessCoordinator()
    writes: list[str] = []
    stolen: list[object] = []

    def handler(ctx: Context) -> str:
        for name in ("review", "summary", "check run"):
            with coordinator.write_slot(1):
                writes.append(name)
            if name == "review":
                # The worker stalls past its lease; another process takes the job; the next beat fails.
                clock.now += 31
                stolen.append(queue.lease("other-process:worker-0", 30))
                assert workers.beat() == 0
                assert not ctx.still_mine()
        return "published"

    queue.enqueue(sync("d1"))
    workers = pool_with(queue, handler, clock, lease_seconds=30)
    job = queue.lease("this-process:worker-0", 30)
    held = HeldLease(job, clock)
    with workers._running_lock:
        workers._running["this-process:worker-0"] = held
    assert workers.process(job, "this-process:worker-0", held) == "lease-lost"
    assert writes == ["review"]
    assert queue.holds(stolen[0])
    assert queue.counts()[JobState.LEASED] == 1  # neither completed nor failed by the stale worker


def test_still_mine_turns_false_when_the_lease_runs_out_without_a_beat(queue, clock) -> None:
    queue.enqueue(sync("d1"))
    held = HeldLease(queue.lease("w", 30), clock)
    assert held.still_mine()
    clock.now += 30
    assert not held.still_mine()


def test_worker_ids_name_the_process_so_replicas_never_share_one(queue, clock) -> None:
    """Regression (issue 8.4): every process called its threads worker-0, worker-1."""
    finished = threading.Event()

    def handler(ctx: Context) -> str:
        finished.set()
        return "ok"

    queue.enqueue(sync("d1"))
    seen: list[str] = []
    original = queue.lease

    def spying_lease(worker_id: str, seconds: float):
        seen.append(worker_id)
        return original(worker_id, seconds)

    queue.lease = spying_lease
    workers = pool_with(queue, handler, clock, workers=2, poll_seconds=0.01)
    workers.start()
    try:
        assert finished.wait(10)
        deadline = time.monotonic() + 10
        while len(set(seen)) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # both threads poll: wait until each has asked for a lease once
    finally:
        workers.stop()
    assert {w.rsplit(":", 1)[0] for w in seen} == {process_name()}
    assert {w.rsplit(":", 1)[1] for w in seen} == {"worker-0", "worker-1"}
    assert process_name() == f"{socket.gethostname()}:{os.getpid()}"


def test_stop_releases_an_unfinished_job_which_then_writes_nothing_more(queue, clock) -> None:
    coordinator = InProcessCoordinator()
    started, resume, done = threading.Event(), threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def handler(ctx: Context) -> str:
        started.set()
        resume.wait(10)
        try:
            with coordinator.write_slot(1):
                pass
        except LeaseLost as exc:
            outcome.append(exc)
            raise
        finally:
            done.set()
        return "published"

    queue.enqueue(sync("d1"))
    workers = pool_with(queue, handler, clock, workers=1, poll_seconds=0.01)
    workers.start()
    assert started.wait(10)
    assert workers.stop(timeout=0.1) == 1
    again = queue.lease("next-process:worker-0", 30)
    assert (again.delivery.id, again.attempts) == ("d1", 1)  # released: the attempt was not spent
    resume.set()
    assert done.wait(10)
    assert outcome and isinstance(outcome[0], LeaseLost)


def test_the_pool_prunes_continuously_not_only_at_start(tmp_path: Path, clock) -> None:
    queue = SQLiteJobQueue(tmp_path / "jobs.sqlite3", retention=Retention(done_seconds=10, dead_seconds=10),
                           clock=clock)
    queue.enqueue(sync("d1"))
    queue.complete(queue.lease("w", 30))
    workers = pool_with(queue, lambda ctx: "ok", clock, workers=1, prune_interval=0.02)
    workers.start()
    try:
        clock.now += 11
        deadline = time.monotonic() + 10
        while sum(queue.counts().values()) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        workers.stop()
        queue.close()
    assert sum(queue.counts().values()) == 0
