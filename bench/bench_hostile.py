"""Webhook latency and other pull requests' reviews while a hostile pull request is being processed.

The bot runs for real (uvicorn on 127.0.0.1, SQLite queue, worker threads, mermaid pool) against the GitHub
emulator. First the webhook's acknowledgement latency is sampled with the bot idle; then a pull request adding
the pages of tests/hostile.py (100k-character labels, deep nesting, a 1 MB diagram, 5,000 fences) is opened,
an ordinary pull request right after it, and the same latency is sampled while both are processed. Reported:
webhook p50/p99 idle and during, how long the ordinary PR waited for its review, how long the hostile one
took, and the reviews / summaries / check runs each head got (exactly one each is the goal).

    .venv/bin/python bench/bench_hostile.py [--rate 50] [--idle-samples 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from emulator.fixtures import EmulatorServer  # noqa: E402

from e2e.harness import APP_ID, INSTALLATION_ID, BotServer, SampleRepo, app_key_pair, pull_request_payload  # noqa: E402
from hostile import hostile_pages  # noqa: E402

REPO = "atlas/hostile"
PING = {"zen": "Keep it logically awesome.", "hook_id": 1}
REVIEWS = "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
CHECK_RUNS = "POST /repos/{owner}/{repo}/check-runs"
SUMMARIES = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
TARGET_P99_MS = 25.0
DONE_TIMEOUT_SECONDS = 600.0


def sample_latency(bot: BotServer, seconds_between: float, until) -> list[float]:
    """Acknowledgement latencies (ms) of ping deliveries, one every ``seconds_between``, until
    ``until(latencies so far)``."""
    latencies: list[float] = []
    while not until(latencies):
        sent = time.perf_counter()
        response = bot.deliver("ping", PING)
        latencies.append((time.perf_counter() - sent) * 1000)
        if response.status_code != 202:
            raise RuntimeError(f"webhook answered {response.status_code}")
        time.sleep(max(0.0, seconds_between - (time.perf_counter() - sent)))
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="ping deliveries per second (default 50)")
    parser.add_argument("--idle-samples", type=int, default=300, help="latency samples with the bot idle")
    args = parser.parse_args(argv)
    gap = 1.0 / args.rate
    private_key, public_key = app_key_pair()
    emulator_server = EmulatorServer().start()
    try:
        emulator = emulator_server.fresh()
        with tempfile.TemporaryDirectory(prefix="atlas-bench-hostile-") as tmp:
            sample = SampleRepo(Path(tmp) / "origin")
            emulator.add_repo(REPO, sample.path)
            emulator.register_app(APP_ID, public_key, INSTALLATION_ID)
            sample.branch("hostile")
            for name, text in hostile_pages().items():
                sample.write(f"docs/systems/{name}", text)
            heads = {"hostile": sample.commit("add hostile pages")}
            sample.git("checkout", "-q", "main")
            heads["ordinary"] = sample.pr_branch("ordinary", 3, broken=1)
            numbers = {name: emulator.add_pull(REPO, name) for name in heads}
            bot = BotServer(Path(tmp) / "data", emulator.base_url, private_key)
            try:
                idle = sample_latency(bot, gap, lambda taken: len(taken) >= args.idle_samples)

                def checked(name: str) -> float | None:
                    for request in emulator.writes():
                        if request.endpoint == CHECK_RUNS and request.body.get("head_sha") == heads[name]:
                            return time.perf_counter()
                    return None

                started = time.perf_counter()
                bot.deliver("pull_request", pull_request_payload(emulator, REPO, numbers["hostile"], "opened"))
                time.sleep(0.5)
                ordinary_sent = time.perf_counter()
                bot.deliver("pull_request", pull_request_payload(emulator, REPO, numbers["ordinary"], "opened"))
                finished: dict[str, float] = {}

                def all_done(_taken: list[float]) -> bool:
                    for name in heads:
                        if name not in finished and (at := checked(name)) is not None:
                            finished[name] = at
                        if time.perf_counter() - started > DONE_TIMEOUT_SECONDS:
                            raise RuntimeError("pull requests not reviewed in time")
                    return len(finished) == len(heads) and bot.runtime.queue.depth() == 0

                during = sample_latency(bot, gap, all_done)
            finally:
                bot.stop()
            writes = emulator.writes()
        emulator.check_valid()
    finally:
        emulator_server.stop()

    counts = {}
    for name, number in numbers.items():
        mine = [r.endpoint for r in writes if f"/pulls/{number}/" in r.path or f"/issues/{number}/" in r.path
                or isinstance(r.body, dict) and r.body.get("head_sha") == heads[name]]
        counts[name] = (mine.count(REVIEWS), mine.count(SUMMARIES), mine.count(CHECK_RUNS))
    print(f"hostile pull request: {len(hostile_pages())} pages (100k-character labels, deep nesting, 1 MB diagram, "
          f"5,000 fences) + an ordinary 3-diagram PR opened 0.5 s later; pings at {args.rate:.0f}/s")
    print(f"  webhook ack idle:   p50 {statistics.median(idle):.1f} ms  p99 {percentile(idle, 0.99):.1f} ms  "
          f"({len(idle)} samples)")
    print(f"  webhook ack during: p50 {statistics.median(during):.1f} ms  p99 {percentile(during, 0.99):.1f} ms  "
          f"max {max(during):.1f} ms  ({len(during)} samples)")
    print(f"  ordinary PR reviewed {finished['ordinary'] - ordinary_sent:.1f} s after its delivery; hostile PR "
          f"reviewed {finished['hostile'] - started:.1f} s after its delivery")
    for name, (reviews, summaries, runs) in counts.items():
        print(f"  {name}: {reviews} review(s), {summaries} summary comment(s), {runs} check run(s)")
    load = os.getloadavg()[0]
    print(f"  load average at the end: {load:.1f} on {os.cpu_count()} cores")
    met = percentile(during, 0.99) <= TARGET_P99_MS and all(c == (1, 1, 1) for c in counts.values())
    print(f"  target: p99 during <= {TARGET_P99_MS:.0f} ms and exactly one of each per head: "
          f"{'met' if met else 'NOT met'}")
    print(f"reproduce: .venv/bin/python bench/bench_hostile.py --rate {args.rate:g} --idle-samples {args.idle_samples}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
