"""Delivery → review posted, through the whole App path, and the GitHub write calls each pull request costs.

A sample Atlas repository is served by the GitHub emulator (tests/emulator) as an installed App's repository;
the bot runs for real (uvicorn on 127.0.0.1, SQLite queue, worker threads, mermaid pool with a cold verdict
cache and a cold git mirror). A sequence of pull requests with 1 to 20 diagrams each (some with syntax errors)
is opened one after another; for each, the time from the signed webhook's delivery to the job's completion
(review, summary, labels and check run all written) and the write calls the emulator saw are recorded. Then
every pull request is delivered again (a new delivery, same head): a re-run must write nothing.

    .venv/bin/python bench/bench_pipeline.py [--prs 20] [--max-diagrams 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from emulator.fixtures import EmulatorServer  # noqa: E402

from bot.queue import JobState  # noqa: E402
from e2e.harness import APP_ID, INSTALLATION_ID, BotServer, SampleRepo, app_key_pair, pull_request_payload  # noqa: E402

REPO = "atlas/bench"
FOLDERS = ("systems", "incidents", "patterns", "scaling", "costs", "mechanisms")
TOKENS = "POST /app/installations/{installation_id}/access_tokens"
TARGET_P95_SECONDS = 1.5
TARGET_WRITES = 6
JOB_TIMEOUT_SECONDS = 120.0


def diagram_counts(prs: int, largest: int) -> list[int]:
    """1 .. ``largest`` diagrams spread over the pull requests, the largest ones included."""
    if prs == 1:
        return [largest]
    return [max(1, round(1 + (largest - 1) * i / (prs - 1))) for i in range(prs)]


def content_writes(emulator, since: int) -> list[str]:
    return [r.endpoint for r in emulator.writes(since) if r.endpoint != TOKENS]


def deliver_and_wait(bot: BotServer, emulator, number: int, action: str) -> tuple[float, list[str]]:
    """Seconds from delivery to the job's completion, and the content writes it caused."""
    mark = emulator.mark()
    done_before = len(bot.jobs(JobState.DONE))
    started = time.perf_counter()
    response = bot.deliver("pull_request", pull_request_payload(emulator, REPO, number, action))
    if response.status_code != 202:
        raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")
    if not bot.wait_until(lambda: len(bot.jobs(JobState.DONE)) > done_before, JOB_TIMEOUT_SECONDS):
        raise RuntimeError(f"PR #{number} was not processed: {bot.jobs()[:3]}")
    return time.perf_counter() - started, content_writes(emulator, mark)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prs", type=int, default=20, help="pull requests to replay (default 20)")
    parser.add_argument("--max-diagrams", type=int, default=20, help="diagrams in the largest PR (default 20)")
    args = parser.parse_args(argv)
    private_key, public_key = app_key_pair()
    emulator_server = EmulatorServer().start()
    try:
        emulator = emulator_server.fresh()
        with tempfile.TemporaryDirectory(prefix="atlas-bench-pipeline-") as tmp:
            sample = SampleRepo(Path(tmp) / "origin")
            emulator.add_repo(REPO, sample.path)
            emulator.register_app(APP_ID, public_key, INSTALLATION_ID)
            plan = []
            for i, count in enumerate(diagram_counts(args.prs, args.max_diagrams)):
                name = f"bench-{i:02d}"
                sample.pr_branch(name, count, broken=count // 4, folder=FOLDERS[i % len(FOLDERS)])
                plan.append((emulator.add_pull(REPO, name, title=f"Add {count} diagrams"), count))
            bot = BotServer(Path(tmp) / "data", emulator.base_url, private_key)
            try:
                first = [(number, count, *deliver_and_wait(bot, emulator, number, "opened")) for number, count in plan]
                rerun = [deliver_and_wait(bot, emulator, number, "synchronize") for number, _ in plan]
            finally:
                bot.stop()
        emulator.check_valid()
    finally:
        emulator_server.stop()

    latencies = sorted(seconds for _, _, seconds, _ in first)
    writes = [len(w) for _, _, _, w in first]
    p50, p95 = statistics.median(latencies), latencies[min(int(0.95 * len(latencies)), len(latencies) - 1)]
    rerun_writes = sum(len(w) for _, w in rerun)
    print(f"pipeline: {len(plan)} pull requests of 1-{args.max_diagrams} diagrams (a quarter broken), cold "
          f"verdict cache and git mirror, webhook -> queue -> worker -> emulator")
    for (number, count, seconds, endpoints), (_, again) in zip(first, rerun, strict=True):
        print(f"  PR #{number:<3} {count:>2} diagrams  {seconds * 1000:7.0f} ms  {len(endpoints)} writes")
        if len(endpoints) > TARGET_WRITES or again:
            print(f"      writes: {', '.join(endpoints)}; on re-run: {', '.join(again) or 'none'}")
    print(f"  delivery -> review posted: p50 {p50 * 1000:.0f} ms  p95 {p95 * 1000:.0f} ms  "
          f"max {latencies[-1] * 1000:.0f} ms (first PR includes the mirror clone)")
    print(f"  GitHub write calls per PR: max {max(writes)}  mean {statistics.fmean(writes):.1f}  "
          f"(installation token exchanges not counted)")
    print(f"  re-run of every PR on the same head: {rerun_writes} write calls; "
          f"p50 {statistics.median(s for s, _ in rerun) * 1000:.0f} ms")
    verdict = p95 <= TARGET_P95_SECONDS and max(writes) <= TARGET_WRITES and rerun_writes == 0
    print(f"  targets p95 <= {TARGET_P95_SECONDS} s, <= {TARGET_WRITES} writes per PR, 0 on re-run: "
          f"{'met' if verdict else 'NOT met'}")
    print(f"reproduce: .venv/bin/python bench/bench_pipeline.py --prs {args.prs} --max-diagrams {args.max_diagrams}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
