"""Scaling: reviews per minute with 1, 2 and 4 workers on each backend, and queue operations per second.

Reviews per minute: a sample repository served by the GitHub emulator; ``--prs`` pull requests (3 diagrams
each, one of them broken, so every one gets a review, a summary, labels and a check run) are all delivered at
once, and the time until the queue is empty is measured. SQLite: one ``atlas-bot serve`` process running N
worker threads (the embedded default). PostgreSQL: one ``atlas-bot serve --no-workers`` and N ``atlas-bot
worker`` processes of one thread each (the scaled-out shape). Every worker process has its own mirror and
mermaid pool, as in production. The pacing of writes is switched off (0 s) to measure the bot itself; with
GitHub's 1 s pacing one installation is capped by its writes (see BENCHMARKS.md).

Queue operations per second: enqueue → lease → complete cycles on the queue alone, from 1 and 4 threads.

    .venv/bin/python bench/bench_scale.py [--prs 24] [--workers 1 2 4] [--cycles 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
from emulator.fixtures import EmulatorServer  # noqa: E402
from pgserver import PostgresServer, server_bin_dir  # noqa: E402

from bot.queue import SQLiteJobQueue  # noqa: E402
from bot.queue_pg import PostgresJobQueue  # noqa: E402
from bot.webhooks import Delivery  # noqa: E402
from e2e.chaos import Deployment, deliver  # noqa: E402
from e2e.harness import APP_ID, INSTALLATION_ID, REPO, SampleRepo, app_key_pair, pull_request_payload  # noqa: E402

DRAIN_TIMEOUT_SECONDS = 900.0


def reviews_per_minute(emulator_server: EmulatorServer, engine: PostgresServer | None, workers: int, prs: int,
                       keys: tuple[str, str]) -> tuple[float, float]:
    """(reviews per minute, seconds) for ``prs`` pull requests delivered at once."""
    emulator = emulator_server.fresh()
    with tempfile.TemporaryDirectory(prefix="atlas-bench-scale-") as scratch:
        sample = SampleRepo(Path(scratch) / "origin")
        emulator.add_repo(REPO, sample.path)
        emulator.register_app(APP_ID, keys[1], INSTALLATION_ID)
        numbers = []
        for i in range(prs):
            sample.pr_branch(f"scale{i}", 3, broken=1)
            numbers.append(emulator.add_pull(REPO, f"scale{i}"))
        if engine is not None:
            engine.reset()
        deployment = Deployment(Path(scratch) / "deployment", queue_url=None if engine is None else engine.url,
                                api_url=emulator.base_url, private_key=keys[0], servers=1,
                                workers=workers, threads=1 if engine is not None else workers,
                                write_interval=0.0, lease_seconds=60.0)
        deployment.start()
        try:
            time.sleep(3.0)  # let every process load mermaid before the clock starts
            queue = (PostgresJobQueue(engine.url) if engine is not None
                     else SQLiteJobQueue(Path(scratch) / "deployment" / "server0" / "jobs.sqlite3"))
            started = time.perf_counter()
            with httpx.Client(timeout=30) as client:
                for number in numbers:
                    payload = pull_request_payload(emulator, REPO, number, "opened")
                    assert deliver(client, deployment.server_urls[0], payload, f"scale-{number}") == 202
            deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
            while queue.depth() and time.monotonic() < deadline:
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
            queue.close()
        finally:
            deployment.stop()
        reviewed = sum(1 for number in numbers if emulator.state.repos[REPO].reviews[number])
        if reviewed != prs:
            raise RuntimeError(f"only {reviewed} of {prs} pull requests were reviewed")
    return prs / elapsed * 60, elapsed


def queue_ops(make_queue, cycles: int, threads: int) -> float:
    """enqueue + lease + complete cycles per second (each cycle is three queue operations)."""
    queue = make_queue()
    per_thread = cycles // threads

    def cycle(worker: int) -> None:
        for i in range(per_thread):
            delivery = Delivery.from_payload(f"ops-{worker}-{i}", "pull_request",
                                             {"action": "opened", "number": i, "repository": {"full_name": "o/r"}})
            queue.enqueue(delivery, key=f"pr:o/r#{worker}-{i}")
            job = queue.lease(f"w{worker}", 60)
            if job is not None:
                queue.complete(job)

    started = time.perf_counter()
    runners = [threading.Thread(target=cycle, args=(w,)) for w in range(threads)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    elapsed = time.perf_counter() - started
    queue.close()
    return per_thread * threads * 3 / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prs", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--cycles", type=int, default=2000)
    args = parser.parse_args(argv)
    bin_dir = server_bin_dir()
    if bin_dir is None:
        print("PostgreSQL server not installed: apt-get install postgresql", file=sys.stderr)
        return 2
    engine = PostgresServer(bin_dir)
    engine.start()
    emulator_server = EmulatorServer().start()
    keys = app_key_pair()
    try:
        print(f"reviews per minute, {args.prs} pull requests of 3 diagrams delivered at once, pacing off:")
        print("| workers | SQLite (threads of one serve) | PostgreSQL (worker processes) |")
        print("|---|---|---|")
        for workers in args.workers:
            sqlite_rate, sqlite_s = reviews_per_minute(emulator_server, None, workers, args.prs, keys)
            pg_rate, pg_s = reviews_per_minute(emulator_server, engine, workers, args.prs, keys)
            print(f"| {workers} | {sqlite_rate:.0f} ({sqlite_s:.1f} s) | {pg_rate:.0f} ({pg_s:.1f} s) |"
                  f"  load {os.getloadavg()[0]:.1f}", flush=True)
        print("\nqueue operations per second (enqueue + lease + complete cycles):")
        print("| threads | SQLite | PostgreSQL |")
        print("|---|---|---|")
        with tempfile.TemporaryDirectory(prefix="atlas-bench-ops-") as scratch:
            for threads in (1, 4):
                engine.reset()
                sqlite = queue_ops(lambda: SQLiteJobQueue(Path(scratch) / f"ops{threads}.sqlite3"), args.cycles,
                                   threads)
                pg = queue_ops(lambda: PostgresJobQueue(engine.url), args.cycles, threads)
                print(f"| {threads} | {sqlite:.0f} | {pg:.0f} |", flush=True)
    finally:
        emulator_server.stop()
        engine.stop()
    print(f"\nmachine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"reproduce: .venv/bin/python bench/bench_scale.py --prs {args.prs} --workers "
          f"{' '.join(map(str, args.workers))} --cycles {args.cycles}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
