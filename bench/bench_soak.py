"""Soak: 1,000 deliveries over a few minutes to a real server, and every store's size along the way.

The bot's runtime (uvicorn on 127.0.0.1, SQLite queue, worker threads, mermaid pool) against the GitHub
emulator, with a short retention (``--keep-seconds`` for finished jobs and dead letters, pruned every
``--prune-seconds``) so that "flat after retention" shows within minutes rather than days. The deliveries mix
synchronize events of a few pull requests (each a new delivery id; most are re-runs of a head already
reviewed), pushes to the default branch (progress updates; each a new commit, the page cycling through a few
versions) and redeliveries of earlier delivery ids. Every
``--every`` deliveries the queue's rows by state and the size of each entry of the data directory (job queue,
progress store, verdict cache, git mirrors) are printed.

    .venv/bin/python bench/bench_soak.py [--deliveries 1000] [--rate 5] [--keep-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from emulator.fixtures import EmulatorServer  # noqa: E402

from bot.queue import JobState  # noqa: E402
from e2e.harness import (  # noqa: E402
    APP_ID,
    GOOD_DIAGRAM,
    INSTALLATION_ID,
    REPO,
    BotServer,
    SampleRepo,
    app_key_pair,
    pull_request_payload,
)

PULL_REQUESTS = 8
PAGE_VERSIONS = 4
DRAIN_TIMEOUT_SECONDS = 600.0


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def store_sizes(data_dir: Path) -> dict[str, int]:
    """Bytes per store: SQLite files with their -wal/-shm counted together, directories whole."""
    sizes: dict[str, int] = {}
    for entry in sorted(data_dir.iterdir()):
        name = entry.name.removesuffix("-wal").removesuffix("-shm")
        sizes[name] = sizes.get(name, 0) + size_of(entry)
    return sizes


def push_payload(emulator, sha: str) -> dict:
    with emulator.state.lock:
        repository = dict(emulator.state.repos[REPO].data)
    return {"ref": f"refs/heads/{repository['default_branch']}", "before": "0" * 40, "after": sha,
            "deleted": False, "repository": repository, "installation": {"id": INSTALLATION_ID},
            "sender": {"login": "maintainer", "type": "User"}}


def report(label: str, bot: BotServer, data_dir: Path) -> str:
    counts = bot.runtime.queue.counts()
    rows = sum(counts.values())
    states = ", ".join(f"{s.value} {counts[s]}" for s in JobState if counts[s])
    sizes = "  ".join(f"{name} {size / 1024:.0f} KiB" for name, size in store_sizes(data_dir).items()
                      if name != "github-app")
    return f"| {label} | {rows} ({states}) | {sizes} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=5.0, help="deliveries per second")
    parser.add_argument("--keep-seconds", type=float, default=30.0, help="retention of finished jobs")
    parser.add_argument("--prune-seconds", type=float, default=5.0, help="pruning interval")
    parser.add_argument("--every", type=int, default=100, help="report sizes every N deliveries")
    args = parser.parse_args(argv)
    rng = random.Random(1)
    private_key, public_key = app_key_pair()
    emulator_server = EmulatorServer().start()
    emulator = emulator_server.fresh()
    keep_days = args.keep_seconds / 86400
    with tempfile.TemporaryDirectory(prefix="atlas-soak-") as scratch:
        sample = SampleRepo(Path(scratch) / "origin")
        emulator.add_repo(REPO, sample.path)
        emulator.register_app(APP_ID, public_key, INSTALLATION_ID)
        numbers = []
        for i in range(PULL_REQUESTS):
            sample.pr_branch(f"soak{i}", 2, broken=1)
            numbers.append(emulator.add_pull(REPO, f"soak{i}"))
        data_dir = Path(scratch) / "data"
        bot = BotServer(data_dir, emulator.base_url, private_key, keep_done_days=keep_days,
                        keep_dead_days=keep_days, prune_interval_seconds=args.prune_seconds)
        sent: list[str] = []
        pushes = 0
        print(f"soak: {args.deliveries} deliveries at {args.rate:g}/s, retention {args.keep_seconds:g} s, "
              f"pruned every {args.prune_seconds:g} s")
        print("| after | queue rows | stores (data directory) |")
        print("|---|---|---|")
        started = time.monotonic()
        try:
            for index in range(args.deliveries):
                time.sleep(max(started + index / args.rate - time.monotonic(), 0))
                roll = rng.random()
                if sent and roll < 0.1:
                    delivery_id = rng.choice(sent)  # a redelivery: answered 200, never a second job
                    bot.deliver("pull_request", pull_request_payload(emulator, REPO, numbers[0], "synchronize"),
                                delivery_id)
                elif roll < 0.25:
                    pushes += 1  # a merge: the page cycles through a few versions, so its diagrams recur
                    version = pushes % PAGE_VERSIONS
                    sample.write("docs/systems/payments.md",
                                 f"# Payments\n\nVersion {version}.\n\n"
                                 + GOOD_DIAGRAM.replace("API", f"API v{version}"))
                    head = sample.commit(f"payments {index}")
                    response = bot.deliver("push", push_payload(emulator, head))
                    sent.append(response.request.headers["X-GitHub-Delivery"])
                else:
                    number = rng.choice(numbers)
                    response = bot.deliver("pull_request",
                                           pull_request_payload(emulator, REPO, number, "synchronize"))
                    sent.append(response.request.headers["X-GitHub-Delivery"])
                if (index + 1) % args.every == 0:
                    print(report(f"{index + 1} deliveries, {time.monotonic() - started:.0f} s", bot, data_dir),
                          flush=True)
            bot.wait_idle(DRAIN_TIMEOUT_SECONDS)
            time.sleep(args.keep_seconds + 2 * args.prune_seconds)
            print(report("drained + one retention period", bot, data_dir))
        finally:
            bot.stop()
            emulator_server.stop()
    print(f"\nmachine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"reproduce: .venv/bin/python bench/bench_soak.py --deliveries {args.deliveries} --rate {args.rate:g} "
          f"--keep-seconds {args.keep_seconds:g} --prune-seconds {args.prune_seconds:g} --every {args.every}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
