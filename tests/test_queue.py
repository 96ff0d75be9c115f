"""SQLiteJobQueue: idempotent enqueue, leases and their expiry, retries, dead letters, coalescing, listing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot.queue import JobState, SQLiteJobQueue, format_jobs, jobs_command
from bot.settings import Settings
from bot.webhooks import Delivery

ROOT = Path(__file__).resolve().parent.parent


class Clock:
    """A settable clock: leases and backoff are tested by moving time, never by sleeping (test_worker.py too)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sync(delivery_id: str, head: str = "head", number: int = 7) -> Delivery:
    """A pull_request.synchronize delivery (test_worker.py builds its jobs with it too)."""
    payload = {"action": "synchronize", "number": number, "repository": {"full_name": "octo/atlas"},
               "pull_request": {"number": number, "head": {"sha": head}}, "installation": {"id": 1}}
    return Delivery.from_payload(delivery_id, "pull_request", payload)


def pr_key(number: int = 7) -> str:
    return f"pr:octo/atlas#{number}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(tmp_path: Path, clock: Clock) -> SQLiteJobQueue:
    q = SQLiteJobQueue(tmp_path / "jobs.sqlite3", max_attempts=3, retry_base_seconds=10, clock=clock)
    yield q
    q.close()


def test_enqueue_is_idempotent_by_delivery_id(queue: SQLiteJobQueue) -> None:
    assert queue.enqueue(sync("d1", "a")).created
    assert not queue.enqueue(sync("d1", "a")).created
    assert queue.depth() == 1
    job = queue.lease("w", 60)
    assert queue.complete(job)
    # A redelivery after the job finished is still recognised.
    assert not queue.enqueue(sync("d1", "a")).created
    assert queue.lease("w", 60) is None


def test_lease_restores_the_delivery_and_hands_it_out_once(queue: SQLiteJobQueue) -> None:
    original = sync("d1", "abc")
    queue.enqueue(original, key=pr_key())
    job = queue.lease("w1", 60)
    assert job.delivery == original
    assert (job.attempts, job.key, job.lease_owner) == (1, pr_key(), "w1")
    assert queue.lease("w2", 60) is None
    assert queue.complete(job)
    assert queue.counts()[JobState.DONE] == 1
    assert queue.depth() == 0


def test_expired_lease_is_leased_again_and_the_old_holder_cannot_complete(queue, clock) -> None:
    queue.enqueue(sync("d1", "a"))
    first = queue.lease("w1", 30)
    clock.now += 29
    assert queue.lease("w2", 30) is None
    clock.now += 2
    second = queue.lease("w2", 30)
    assert (second.id, second.attempts) == (first.id, 2)
    assert not queue.complete(first)
    assert queue.complete(second)


def test_extend_keeps_a_live_workers_lease(queue, clock) -> None:
    queue.enqueue(sync("d1", "a"))
    job = queue.lease("w1", 30)
    clock.now += 25
    assert queue.extend(job, 30)
    clock.now += 25
    assert queue.lease("w2", 30) is None
    clock.now += 6
    stolen = queue.lease("w2", 30)
    assert stolen is not None
    assert not queue.extend(job, 30)
    assert queue.extend(stolen, 30)


def test_failure_retries_with_exponential_backoff_then_dead_letters(queue, clock) -> None:
    queue.enqueue(sync("d1", "a"))
    job = queue.lease("w", 60)
    assert queue.fail(job, "boom 1") is JobState.QUEUED
    assert queue.lease("w", 60) is None
    clock.now += 10
    job = queue.lease("w", 60)
    assert (job.attempts, job.last_error) == (2, "boom 1")
    assert queue.fail(job, "boom 2") is JobState.QUEUED
    clock.now += 19
    assert queue.lease("w", 60) is None
    clock.now += 1
    job = queue.lease("w", 60)
    assert queue.fail(job, "boom 3") is JobState.DEAD
    clock.now += 10_000
    assert queue.lease("w", 60) is None
    [dead] = queue.list_jobs(state=JobState.DEAD)
    assert (dead.delivery_id, dead.attempts, dead.last_error) == ("d1", 3, "boom 3")
    assert queue.depth() == 0


def test_retry_after_from_github_is_honoured(queue, clock) -> None:
    queue.enqueue(sync("d1", "a"))
    job = queue.lease("w", 60)
    queue.fail(job, "rate limited", retry_after=120)
    clock.now += 119
    assert queue.lease("w", 60) is None
    clock.now += 1
    assert queue.lease("w", 60) is not None


def test_permanent_failure_dead_letters_at_once(queue) -> None:
    queue.enqueue(sync("d1", "a"))
    assert queue.fail(queue.lease("w", 60), "bad payload", permanent=True) is JobState.DEAD


def test_worker_lost_every_time_ends_as_dead_letter(queue, clock) -> None:
    queue.enqueue(sync("d1", "a"))
    for _ in range(3):
        assert queue.lease("w", 30) is not None
        clock.now += 31
    assert queue.lease("w", 30) is None
    [dead] = queue.list_jobs(state=JobState.DEAD)
    assert "lost its lease 3 time(s)" in dead.last_error


def test_ten_rapid_synchronize_events_collapse_to_the_newest_head(queue) -> None:
    superseded: list[str] = []
    for i in range(10):
        superseded += queue.enqueue(sync(f"d{i}", f"sha{i}"), key=pr_key()).superseded
    assert superseded == [f"d{i}" for i in range(9)]
    job = queue.lease("w", 60)
    assert job.delivery.payload["pull_request"]["head"]["sha"] == "sha9"
    assert queue.lease("w", 60) is None
    assert queue.counts()[JobState.SUPERSEDED] == 9
    records = {r.delivery_id: r for r in queue.list_jobs(limit=20)}
    assert records["d0"].superseded_by == "d1"


def test_coalescing_is_per_pull_request(queue) -> None:
    queue.enqueue(sync("a", "1", number=1), key=pr_key(1))
    queue.enqueue(sync("b", "2", number=2), key=pr_key(2))
    assert queue.depth() == 2


def test_a_leased_job_is_not_superseded_and_its_key_runs_one_at_a_time(queue) -> None:
    queue.enqueue(sync("d1", "old"), key=pr_key())
    running = queue.lease("w1", 60)
    assert queue.enqueue(sync("d2", "new"), key=pr_key()).superseded == ()
    # The newer job waits for the running one: two reviews of one PR never publish at the same time.
    assert queue.lease("w2", 60) is None
    queue.complete(running)
    assert queue.lease("w2", 60).delivery.id == "d2"


def test_a_failed_job_with_a_newer_one_queued_is_superseded(queue) -> None:
    queue.enqueue(sync("d1", "old"), key=pr_key())
    running = queue.lease("w1", 60)
    queue.enqueue(sync("d2", "new"), key=pr_key())
    assert queue.fail(running, "boom") is JobState.SUPERSEDED
    assert queue.lease("w", 60).delivery.id == "d2"


def test_an_expired_lease_with_a_newer_job_is_superseded_not_rerun(queue, clock) -> None:
    queue.enqueue(sync("d1", "old"), key=pr_key())
    queue.lease("w1", 30)
    queue.enqueue(sync("d2", "new"), key=pr_key())
    clock.now += 31
    assert queue.lease("w2", 30).delivery.id == "d2"
    assert queue.lease("w3", 30) is None
    assert {r.delivery_id: r.state for r in queue.list_jobs()}["d1"] is JobState.SUPERSEDED


def test_depth_and_oldest_age(queue, clock) -> None:
    assert (queue.depth(), queue.oldest_age()) == (0, None)
    queue.enqueue(sync("d1", "a"))
    clock.now += 5
    queue.enqueue(sync("d2", "b"))
    clock.now += 2
    assert queue.depth() == 2
    assert queue.oldest_age() == pytest.approx(7)


def test_prune_keeps_dead_letters_and_recent_jobs(queue, clock) -> None:
    for name in ("done", "dead", "queued"):
        queue.enqueue(sync(name, "a"))
    queue.complete(queue.lease("w", 60))
    queue.fail(queue.lease("w", 60), "x", permanent=True)
    clock.now += 100
    assert queue.prune(older_than=50) == 1
    assert {r.delivery_id for r in queue.list_jobs()} == {"dead", "queued"}


def test_many_threads_lease_each_job_exactly_once(queue) -> None:
    for i in range(60):
        queue.enqueue(sync(f"d{i}", "a", number=i), key=pr_key(i))
    seen: list[str] = []
    lock = threading.Lock()

    def drain(worker: str) -> None:
        while (job := queue.lease(worker, 60)) is not None:
            with lock:
                seen.append(job.delivery.id)
            queue.complete(job)

    threads = [threading.Thread(target=drain, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == sorted(f"d{i}" for i in range(60))


KILLED_WORKER = """
import sys, time
from bot.queue import SQLiteJobQueue
queue = SQLiteJobQueue(sys.argv[1])
job = queue.lease("doomed", 60)
print(job.delivery.id, flush=True)
time.sleep(600)
"""


def test_worker_killed_mid_job_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    producer = SQLiteJobQueue(path)
    producer.enqueue(sync("d1", "a"))
    child = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().strip() == "d1"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert producer.lease("survivor", 60) is None  # still leased by the dead process
    later = SQLiteJobQueue(path, clock=lambda: __import__("time").time() + 61)
    job = later.lease("survivor", 60)
    assert (job.delivery.id, job.attempts) == ("d1", 2)
    assert later.complete(job)
    producer.close()
    later.close()


def test_format_jobs_shows_dead_letters_with_their_error(queue, clock) -> None:
    queue.enqueue(sync("d1", "a"), key=pr_key())
    queue.fail(queue.lease("w", 60), "GitHubError: 502 on POST /repos/octo/atlas/pulls/7/reviews", permanent=True)
    queue.enqueue(sync("d2", "b"), key=pr_key(8))
    text = format_jobs(queue, now=clock.now + 30)
    assert text.splitlines()[0] == "jobs: queued 1, leased 0, done 0, dead 1, superseded 0"
    assert "dead       pull_request.synchronize" in text
    assert "octo/atlas#7" in text
    assert "error: GitHubError: 502 on POST" in text
    assert "30s ago" in text
    assert "d1" not in format_jobs(queue, state=JobState.QUEUED, now=clock.now)


def test_jobs_command_reads_the_queue_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    assert "no job queue" in jobs_command(settings)
    q = SQLiteJobQueue(settings.queue_path)
    q.enqueue(sync("d1", "a"))
    q.close()
    assert "delivery d1" in jobs_command(settings, state="queued")
    assert "(no dead jobs)" in jobs_command(settings, state="dead")


def test_stored_payload_round_trips_unicode(queue) -> None:
    delivery = Delivery.from_payload("u", "issue_comment", {"comment": {"body": "/atlas help ✅ — ok"}})
    queue.enqueue(delivery)
    assert json.dumps(queue.lease("w", 1).delivery.payload) == json.dumps(delivery.payload)
