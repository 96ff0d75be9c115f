"""A scaled-out deployment under fire: N webhook servers (`atlas-bot serve --no-workers`) and M worker processes
(`atlas-bot worker`) on one PostgreSQL, against the GitHub emulator, with bursts of ``synchronize``, redelivered
webhooks and workers killed with SIGKILL at random moments. Shared by tests/e2e/test_chaos.py (small) and
bench/bench_chaos.py (50 pull requests, N runs).

Afterwards :func:`verify` checks what the issue asks: every pull request's newest head has exactly one review,
one sticky summary and one check run; no head has two; every delivery answered 202 became exactly one job; and
the content-creating requests of the installation never came faster than the pacing interval allows.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bot.app import WORKER_READY
from bot.queue import JobState
from bot.queue_pg import PostgresJobQueue
from bot.review import SUMMARY_MARKER
from bot.webhooks import signature_for
from e2e.harness import APP_ID, BROKEN_DIAGRAM, REPO, WEBHOOK_SECRET, SampleRepo, pull_request_payload
from pgserver import free_port

TOKENS = "POST /app/installations/{installation_id}/access_tokens"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass
class ChaosPlan:
    pull_requests: int = 50
    synchronize_per_pr: int = 2  # heads pushed after the first, each delivered at once (a burst)
    redeliver_share: float = 0.3  # deliveries sent a second time, to the other server
    servers: int = 2
    workers: int = 3
    # Seconds between SIGKILLs, uniform: a restarted worker needs a few seconds on a loaded machine to load
    # mermaid before it takes a job, so much faster kills only measure start-up.
    kill_every: tuple[float, float] = (3.0, 8.0)
    write_interval: float = 0.05
    lease_seconds: float = 3.0
    # Every kill costs the job it hit an attempt; enough that random kills alone never dead-letter one.
    max_attempts: int = 20
    seed: int = 0


@dataclass
class ChaosResult:
    deliveries: int = 0
    redeliveries: int = 0
    kills: int = 0
    jobs: int = 0
    lost: list[str] = field(default_factory=list)  # PRs whose newest head misses a review, summary or check run
    duplicated: list[str] = field(default_factory=list)  # heads with two reviews or check runs, PRs with two summaries
    max_writes_per_window: int = 0
    allowed_writes_per_window: int = 0
    window_seconds: float = 0.0
    unclean_exits: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (not self.lost and not self.duplicated and not self.unclean_exits
                and self.max_writes_per_window <= self.allowed_writes_per_window)


class Process:
    """One `atlas-bot` process in its own process group (its mermaid Node workers die with it)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.args, self.env, self.log = name, args, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def ready(self) -> bool:
        """A worker process has logged that it leases, once per start (its log is appended to)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text.count(WORKER_READY) >= self.starts

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "bot.cli", *self.args], env=self.env,
                                         stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self) -> int | None:
        """SIGTERM, then the exit code (None if it had to be killed)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group's leftovers (mermaid's Node workers)
            except ProcessLookupError:
                pass


class Deployment:
    """The servers and worker processes of one deployment. With ``queue_url`` (PostgreSQL) the servers only take
    webhooks and ``workers`` processes run ``threads`` workers each; without it (SQLite) one ``serve`` process
    runs ``threads`` workers itself, the embedded default."""

    def __init__(self, root: Path, *, queue_url: str | None, api_url: str, private_key: str, servers: int,
                 workers: int, threads: int = 1, write_interval: float = 0.05, lease_seconds: float = 3.0,
                 max_attempts: int = 5) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        base.update({
            "GITHUB_API_URL": api_url, "ATLAS_APP_ID": str(APP_ID), "ATLAS_PRIVATE_KEY": private_key,
            "ATLAS_WEBHOOK_SECRET": WEBHOOK_SECRET, "ATLAS_WORKERS": str(threads),
            "ATLAS_LEASE_SECONDS": str(lease_seconds), "ATLAS_POLL_SECONDS": "0.05",
            "ATLAS_RETRY_BASE_SECONDS": "0.2", "ATLAS_WRITE_INTERVAL_SECONDS": str(write_interval),
            "ATLAS_MAX_ATTEMPTS": str(max_attempts),
            "ATLAS_LOG_FORMAT": "text", "ATLAS_LOG_LEVEL": "INFO"})
        if queue_url is not None:
            base["ATLAS_QUEUE_URL"] = queue_url
        self.server_urls: list[str] = []
        self.servers: list[Process] = []
        for i in range(servers if queue_url is not None else 1):
            port = free_port()
            role = ["serve", "--no-workers"] if queue_url is not None else ["serve"]
            env = {**base, "ATLAS_DATA_DIR": str(root / f"server{i}")}
            self.servers.append(Process(f"server{i}", [*role, "--port", str(port)], env, root / f"server{i}.log"))
            self.server_urls.append(f"http://127.0.0.1:{port}")
        self.workers = [Process(f"worker{i}", ["worker"], {**base, "ATLAS_DATA_DIR": str(root / f"worker{i}")},
                                root / f"worker{i}.log") for i in range(workers if queue_url is not None else 0)]

    def start(self) -> None:
        for process in self.servers + self.workers:
            process.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for url in self.server_urls:
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server {url} did not start; see {self.root}/server*.log")
                time.sleep(0.05)

    def stop(self) -> list[str]:
        """SIGTERM everything once each worker has started up; the names of processes that did not exit 0.

        (A process signalled while Python is still importing dies of the signal, holding nothing: that is not
        the shutdown under test.)"""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not all(w.ready() for w in self.workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        return [p.name for p in self.servers + self.workers if p.terminate() != 0]


class Killer:
    """SIGKILLs a random worker every few seconds and starts it again at once, until stopped."""

    def __init__(self, workers: list[Process], every: tuple[float, float], rng: random.Random) -> None:
        self.workers, self.every, self.rng = workers, every, rng
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-killer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(*self.every)):
            victim = self.rng.choice(self.workers)
            victim.kill()
            self.kills += 1
            victim.start()


def prepare(sample: SampleRepo, emulator: Any, plan: ChaosPlan) -> dict[int, list[str]]:
    """Pull requests with every head committed up front: {number: [head, ...]} (oldest first).

    Each head's page has a broken diagram of its own, so every head gets a review of its own.
    """
    heads: dict[int, list[str]] = {}
    for i in range(plan.pull_requests):
        name = f"chaos{i}"
        first = sample.pr_branch(name, 1, broken=1)
        number = emulator.add_pull(REPO, name)
        heads[number] = [first]
        sample.git("checkout", "-q", name)
        for revision in range(plan.synchronize_per_pr):
            tag = f"{name} revision {revision}"  # on every line: the finding is new to the pull request
            diagram = BROKEN_DIAGRAM
            for label in ("Client", "Load balancer", "API server", "Primary DB"):
                diagram = diagram.replace(label, f"{label} {tag}")
            sample.write(f"docs/systems/{name}.md", f"# {name}\n\n## Revision {revision}\n\n{diagram}")
            heads[number].append(sample.commit(f"{name} revision {revision}"))
        sample.git("checkout", "-q", "main")
    return heads


def deliver(client: httpx.Client, url: str, payload: dict[str, Any], delivery_id: str) -> int:
    body = httpx.Request("POST", "/", json=payload).content
    return client.post(url + "/webhook", content=body, headers={
        "X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery_id, "Content-Type": "application/json",
        "X-Hub-Signature-256": signature_for(body, WEBHOOK_SECRET)}).status_code


def run(root: Path, *, sample: SampleRepo, emulator: Any, queue_url: str, private_key: str,
        plan: ChaosPlan, idle_timeout: float = 600.0) -> ChaosResult:
    """Prepare, deploy, send every burst with kills going on, wait for the queue to drain, stop, verify."""
    rng = random.Random(plan.seed)
    heads = prepare(sample, emulator, plan)
    writes: list[tuple[float, Any]] = []
    record = emulator.state.record

    def timed_record(request: Any) -> None:
        writes.append((time.monotonic(), request))
        record(request)

    emulator.state.record = timed_record
    deployment = Deployment(root, queue_url=queue_url, api_url=emulator.base_url, private_key=private_key,
                            servers=plan.servers, workers=plan.workers, write_interval=plan.write_interval,
                            lease_seconds=plan.lease_seconds, max_attempts=plan.max_attempts)
    result = ChaosResult()
    started = time.monotonic()
    deployment.start()
    killer = Killer(deployment.workers, plan.kill_every, rng)
    killer.start()
    accepted: set[str] = set()
    try:
        with httpx.Client(timeout=30) as client:
            for revision in range(plan.synchronize_per_pr + 1):
                for number, shas in heads.items():
                    if revision:
                        emulator.push(REPO, number, shas[revision])
                    action = "opened" if revision == 0 else "synchronize"
                    payload = pull_request_payload(emulator, REPO, number, action)
                    delivery_id = f"chaos-{number}-{revision}"
                    target = rng.randrange(plan.servers)
                    assert deliver(client, deployment.server_urls[target], payload, delivery_id) == 202
                    accepted.add(delivery_id)
                    result.deliveries += 1
                    if rng.random() < plan.redeliver_share:
                        other = deployment.server_urls[(target + 1) % plan.servers]
                        assert deliver(client, other, payload, delivery_id) == 200  # a duplicate, not a job
                        result.redeliveries += 1
        queue = PostgresJobQueue(queue_url)
        try:
            deadline = time.monotonic() + idle_timeout
            while queue.depth() and time.monotonic() < deadline:
                time.sleep(0.2)
            killer.stop()
            while queue.depth() and time.monotonic() < deadline:
                time.sleep(0.2)
            records = queue.list_jobs(limit=100_000)
        finally:
            queue.close()
    finally:
        killer.stop()
        result.unclean_exits = deployment.stop()
        emulator.state.record = record
    result.kills = killer.kills
    result.seconds = time.monotonic() - started
    verify(result, emulator, heads, accepted, records, writes, plan)
    return result


def verify(result: ChaosResult, emulator: Any, heads: dict[int, list[str]], accepted: set[str],
           records: list[Any], writes: list[tuple[float, Any]], plan: ChaosPlan) -> None:
    repo = emulator.state.repos[REPO]
    result.jobs = len(records)
    jobs_by_delivery = Counter(r.delivery_id for r in records)
    result.lost += [f"delivery {d}: no job" for d in sorted(accepted - set(jobs_by_delivery))]
    result.duplicated += [f"delivery {d}: {n} jobs" for d, n in jobs_by_delivery.items() if n > 1]
    result.lost += [f"job {r.id} {r.state.value}" for r in records
                    if r.state not in (JobState.DONE, JobState.SUPERSEDED)]
    check_runs = Counter(run["head_sha"] for run in repo.check_runs.values())
    for number, shas in heads.items():
        reviews = Counter(review["commit_id"] for review in repo.reviews[number])
        summaries = [c for c in repo.issue_comments[number] if SUMMARY_MARKER in (c.get("body") or "")]
        newest = shas[-1]
        for kind, count in (("review", reviews[newest]), ("check run", check_runs[newest]),
                            ("summary", len(summaries))):
            if count == 0:
                result.lost.append(f"#{number}: no {kind} for the newest head")
        for sha in shas:
            for kind, count in (("reviews", reviews[sha]), ("check runs", check_runs[sha])):
                if count > 1:
                    result.duplicated.append(f"#{number}: {count} {kind} for head {sha[:8]}")
        if len(summaries) > 1:
            result.duplicated.append(f"#{number}: {len(summaries)} summaries")
    # The pacing: starts of one installation's writes are write_interval apart, so any window of ten
    # intervals holds at most eleven (plus one for the jitter between a request's start and its recording).
    result.window_seconds = 10 * plan.write_interval
    result.allowed_writes_per_window = 12
    times = sorted(t for t, request in writes if request.write and request.endpoint != TOKENS)
    first = 0
    for last, moment in enumerate(times):
        while moment - times[first] > result.window_seconds:
            first += 1
        result.max_writes_per_window = max(result.max_writes_per_window, last - first + 1)
