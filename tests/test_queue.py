"""The ``JobQueue`` contract, run unchanged against SQLite and PostgreSQL: idempotent enqueue, leases (one
token each) and their expiry, retries, dead letters and their replay, coalescing, per-key serialisation,
retention, listing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bot.queue import JobState, Retention, SQLiteJobQueue, format_jobs, jobs_command
from bot.queue_pg import PostgresJobQueue
from bot.settings import Settings, SettingsError
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


BACKENDS = ("sqlite", "postgres")


def open_queue_at(where: str, **options):
    """The queue at ``where``: a PostgreSQL URL or an SQLite file (the child processes below use it too)."""
    if where.startswith("postgresql://"):
        return PostgresJobQueue(where, **options)
    return SQLiteJobQueue(Path(where), **options)


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path: Path) -> str:
    """Where the queue under test lives: an SQLite file, or a real PostgreSQL server (tests/pgserver.py)."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return str(tmp_path / "jobs.sqlite3")


@pytest.fixture
def make_queue(engine: str, clock: Clock):
    """Open (another handle on) the queue under test; every handle is closed afterwards."""
    opened = []

    def make(**options):
        q = open_queue_at(engine, **{"max_attempts": 3, "retry_base_seconds": 10, "clock": clock, **options})
        opened.append(q)
        return q

    yield make
    for q in opened:
        q.close()


@pytest.fixture
def queue(make_queue):
    return make_queue()


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


def test_prune_drops_finished_jobs_then_dead_letters_after_their_retention(make_queue, clock) -> None:
    queue = make_queue(retention=Retention(done_seconds=50, dead_seconds=500))
    for name in ("done", "dead", "queued"):
        queue.enqueue(sync(name, "a"))
    queue.complete(queue.lease("w", 60))
    queue.fail(queue.lease("w", 60), "x", permanent=True)
    clock.now += 100
    assert queue.prune() == 1
    assert {r.delivery_id for r in queue.list_jobs()} == {"dead", "queued"}
    # A pruned delivery id is forgotten: the store does not grow with every delivery ever seen.
    assert queue.enqueue(sync("done", "a")).created
    clock.now += 500
    assert queue.prune() == 1
    assert {r.delivery_id for r in queue.list_jobs()} == {"done", "queued"}


def test_prune_runs_while_jobs_flow_and_the_store_stays_flat(make_queue, clock) -> None:
    queue = make_queue(retention=Retention(done_seconds=60, dead_seconds=60))
    sizes = []
    for minute in range(10):
        for i in range(20):
            queue.enqueue(sync(f"m{minute}-{i}", "a", number=i), key=pr_key(i))
        while (job := queue.lease("w", 60)) is not None:
            queue.complete(job)
        queue.prune()
        sizes.append(sum(queue.counts().values()))
        clock.now += 60
    assert sizes[2:] == [sizes[2]] * 8
    assert sizes[-1] <= 40


def test_dead_letters_keep_a_trimmed_payload_and_can_be_replayed(queue, clock) -> None:
    payload = {"action": "synchronize", "number": 7, "repository": {"full_name": "octo/atlas",
               "clone_url": "https://github.invalid/octo/atlas.git", "hooks_url": "https://api.invalid/x"},
               "pull_request": {"number": 7, "body": "x" * 50_000, "head": {"sha": "abc"}, "base": {"ref": "main"},
                                "_links": {"self": {"href": "https://api.invalid/y"}}},
               "sender": {"login": "octocat"}, "installation": {"id": 1}}
    queue.enqueue(Delivery.from_payload("d1", "pull_request", payload), key=pr_key())
    assert queue.fail(queue.lease("w", 60), "boom", permanent=True) is JobState.DEAD
    [dead] = queue.list_jobs(state=JobState.DEAD)
    assert queue.retry(dead.id)
    assert not queue.retry(dead.id)  # no longer a dead letter
    clock.now += 1
    replay = queue.lease("w", 60)
    assert replay.attempts == 1
    assert replay.delivery.payload == {
        "action": "synchronize", "number": 7,
        "repository": {"full_name": "octo/atlas", "clone_url": "https://github.invalid/octo/atlas.git"},
        "pull_request": {"number": 7, "head": {"sha": "abc"}, "base": {"ref": "main"}}, "installation": {"id": 1}}
    assert (replay.delivery.repository, replay.delivery.pr_number, replay.key) == ("octo/atlas", 7, pr_key())
    assert queue.complete(replay)


def test_retry_refuses_jobs_that_are_not_dead_letters(queue) -> None:
    queue.enqueue(sync("d1", "a"))
    [queued] = queue.list_jobs()
    assert not queue.retry(queued.id)
    assert not queue.retry(9999)


def test_a_stale_holder_of_the_same_worker_name_cannot_touch_the_new_lease(queue, clock) -> None:
    """Regression (issue 8.4): two processes both call their first thread ``worker-0``; ownership was checked
    by that name only, so the stale holder's heartbeat and completion succeeded on the other's lease."""
    queue.enqueue(sync("d1", "a"))
    stale = queue.lease("worker-0", 30)
    clock.now += 31
    current = queue.lease("worker-0", 30)
    assert current.lease_token != stale.lease_token
    assert not queue.holds(stale)
    assert not queue.extend(stale, 30)
    assert not queue.complete(stale)
    assert queue.fail(stale, "late failure") is JobState.LEASED
    assert not queue.release(stale)
    assert queue.holds(current)
    assert queue.complete(current)


def test_an_expired_lease_is_no_longer_held_even_before_another_worker_takes_it(queue, clock) -> None:
    queue.enqueue(sync("d1", "a"))
    job = queue.lease("w", 30)
    assert queue.holds(job)
    clock.now += 31
    assert not queue.holds(job)
    assert not queue.extend(job, 30)


def test_release_gives_the_job_back_at_once_without_spending_an_attempt(queue) -> None:
    queue.enqueue(sync("d1", "a"), key=pr_key())
    job = queue.lease("w1", 60)
    assert queue.release(job)
    again = queue.lease("w2", 60)
    assert (again.id, again.attempts) == (job.id, 1)


def test_two_handles_share_delivery_ids_and_keys(make_queue) -> None:
    """Two servers on one engine: a redelivery to the other server is still a duplicate, and one PR's jobs
    still run one at a time across both."""
    first, second = make_queue(), make_queue()
    assert first.enqueue(sync("d1", "old"), key=pr_key()).created
    assert not second.enqueue(sync("d1", "old"), key=pr_key()).created
    running = first.lease("server-a", 60)
    second.enqueue(sync("d2", "new"), key=pr_key())
    assert second.lease("server-b", 60) is None
    assert first.complete(running)
    assert second.lease("server-b", 60).delivery.id == "d2"


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


def test_concurrent_producers_and_workers_never_run_one_key_twice_at_once(make_queue) -> None:
    """Four workers on their own handles, two producers pushing bursts to five keys: at no moment do two
    workers hold jobs of one key, and each key's newest delivery is the last one that ran for it."""
    handles = [make_queue(clock=__import__("time").time) for _ in range(6)]
    running: dict[str, str] = {}
    last_run: dict[str, str] = {}
    overlaps: list[str] = []
    lock = threading.Lock()
    produced = threading.Event()

    def produce(q, name: str) -> None:
        for i in range(40):
            q.enqueue(sync(f"{name}-{i}", f"{name}-{i}", number=i % 5), key=pr_key(i % 5))

    def work(q, worker: str) -> None:
        while True:
            job = q.lease(worker, 60)
            if job is None:
                if produced.is_set() and q.depth() == 0:
                    return
                continue
            with lock:
                if job.key in running:
                    overlaps.append(job.key)
                running[job.key] = worker
            with lock:
                del running[job.key]
                last_run[job.key] = job.delivery.id
            assert q.complete(job)

    producers = [threading.Thread(target=produce, args=(handles[i], f"p{i}")) for i in range(2)]
    workers = [threading.Thread(target=work, args=(handles[2 + i], f"w{i}")) for i in range(4)]
    for t in producers + workers:
        t.start()
    for t in producers:
        t.join()
    produced.set()
    for t in workers:
        t.join()
    assert overlaps == []
    newest = {}
    for record in sorted(handles[0].list_jobs(limit=500), key=lambda r: r.id):
        newest[record.key] = record.delivery_id
    assert last_run == newest


KILLED_WORKER = """
import sys, time
sys.path.insert(0, sys.argv[2])
from test_queue import open_queue_at
queue = open_queue_at(sys.argv[1])
job = queue.lease("doomed", 60)
print(job.delivery.id, flush=True)
time.sleep(600)
"""


def test_worker_killed_mid_job_loses_nothing(engine: str, make_queue) -> None:
    producer = make_queue(clock=__import__("time").time)
    producer.enqueue(sync("d1", "a"))
    child = subprocess.Popen([sys.executable, "-c", KILLED_WORKER, engine, str(ROOT / "tests")], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert child.stdout.readline().strip() == "d1"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert producer.lease("survivor", 60) is None  # still leased by the dead process
    later = make_queue(clock=lambda: __import__("time").time() + 61)
    job = later.lease("survivor", 60)
    assert (job.delivery.id, job.attempts) == ("d1", 2)
    assert later.complete(job)


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


def test_jobs_command_retries_one_dead_letter(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    q = SQLiteJobQueue(settings.queue_path)
    q.enqueue(sync("d1", "a"))
    q.fail(q.lease("w", 60), "boom", permanent=True)
    [dead] = q.list_jobs(state=JobState.DEAD)
    assert jobs_command(settings, retry=dead.id) == f"job {dead.id} queued again\n"
    with pytest.raises(SettingsError, match="no dead letter"):
        jobs_command(settings, retry=dead.id)
    assert q.lease("w", 60).delivery.id == "d1"
    q.close()


def test_jobs_command_reads_the_shared_engine_when_a_queue_url_is_set(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings.load(data_dir=tmp_path / "nothing-here", queue_url=postgres_url)
    q = PostgresJobQueue(postgres_url)
    q.enqueue(sync("d1", "a"))
    q.close()
    assert "delivery d1" in jobs_command(settings)


def test_an_unreachable_engine_is_one_clear_error_without_the_password() -> None:
    from bot.queue_pg import connection_pool

    from pgserver import free_port

    with pytest.raises(SettingsError, match="no connection to PostgreSQL") as caught:
        connection_pool(f"postgresql://atlas:s3cret@127.0.0.1:{free_port()}/atlas", timeout=0.5)
    assert "s3cret" not in str(caught.value)


def test_stored_payload_round_trips_unicode(queue) -> None:
    delivery = Delivery.from_payload("u", "issue_comment", {"comment": {"body": "/atlas help ✅ — ok"}})
    queue.enqueue(delivery)
    assert json.dumps(queue.lease("w", 1).delivery.payload) == json.dumps(delivery.payload)
