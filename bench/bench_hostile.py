"""Webhook latency and other pull requests' reviews while a hostile pull request is being processed.

The bot runs as real `atlas-bot` processes (tests/e2e/chaos.py's Deployment) against the GitHub emulator, in
two shapes: the embedded default (one `serve` process with its worker threads, SQLite) and the scaled-out roles
(`serve --no-workers` + one `atlas-bot worker` process on PostgreSQL), where the request path never shares a
process with gate work. This process is only the load generator. For each shape: webhook acknowledgement
latency is sampled with the bot idle; then a pull request adding the pages of tests/hostile.py (100k-character
labels, deep nesting, a 1 MB diagram, 5,000 fences) is opened, an ordinary 3-diagram pull request 0.5 s after
it, and the same latency is sampled until both are reviewed. Reported: p50/p99 idle and during, how long each
pull request took, and the reviews / summaries / check runs each head got (exactly one each is the goal).

    .venv/bin/python bench/bench_hostile.py [--rate 50] [--idle-samples 300] [--shapes embedded,roles]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from emulator.fixtures import EmulatorServer  # noqa: E402
from pgserver import PostgresServer, server_bin_dir  # noqa: E402

from bot.webhooks import signature_for  # noqa: E402
from e2e.chaos import Deployment  # noqa: E402
from e2e.harness import APP_ID, INSTALLATION_ID, REPO, WEBHOOK_SECRET, SampleRepo, app_key_pair, \
    pull_request_payload  # noqa: E402
from hostile import hostile_pages  # noqa: E402

PING = {"zen": "Keep it logically awesome.", "hook_id": 1}
REVIEWS = "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
CHECK_RUNS = "POST /repos/{owner}/{repo}/check-runs"
SUMMARIES = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
TARGET_P99_MS = 25.0
DONE_TIMEOUT_SECONDS = 600.0


def post(client: httpx.Client, url: str, event: str, payload: dict, delivery: str) -> int:
    body = httpx.Request("POST", "/", json=payload).content
    return client.post(url + "/webhook", content=body, headers={
        "X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json",
        "X-Hub-Signature-256": signature_for(body, WEBHOOK_SECRET)}).status_code


def sample_latency(client: httpx.Client, url: str, gap: float, until: Callable[[list[float]], bool]) -> list[float]:
    """Acknowledgement latencies (ms) of ping deliveries, one every ``gap`` s, until ``until(latencies)``."""
    latencies: list[float] = []
    while not until(latencies):
        sent = time.perf_counter()
        status = post(client, url, "ping", PING, f"ping-{time.monotonic_ns()}")
        latencies.append((time.perf_counter() - sent) * 1000)
        if status != 202:
            raise RuntimeError(f"webhook answered {status}")
        time.sleep(max(0.0, gap - (time.perf_counter() - sent)))
    return latencies


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def measure(shape: str, emulator, private_key: str, root: Path, queue_url: str | None, args) -> dict:
    sample = SampleRepo(root / "origin")
    emulator.add_repo(REPO, sample.path)
    sample.branch("hostile")
    for name, text in hostile_pages().items():
        sample.write(f"docs/systems/{name}", text)
    heads = {"hostile": sample.commit("add hostile pages")}
    sample.git("checkout", "-q", "main")
    heads["ordinary"] = sample.pr_branch("ordinary", 3, broken=1)
    numbers = {name: emulator.add_pull(REPO, name) for name in heads}
    deployment = Deployment(root / "deployment", queue_url=queue_url, api_url=emulator.base_url,
                            private_key=private_key, servers=1, workers=1, threads=2, lease_seconds=60.0)
    deployment.start()
    url = deployment.server_urls[0]
    gap = 1.0 / args.rate
    finished: dict[str, float] = {}
    try:
        with httpx.Client(timeout=60) as client:
            # Wait for the worker process to load mermaid, so "idle" is idle.
            while not all(w.ready() for w in deployment.workers):
                time.sleep(0.1)
            idle = sample_latency(client, url, gap, lambda taken: len(taken) >= args.idle_samples)
            sent = {"hostile": time.perf_counter()}
            post(client, url, "pull_request", pull_request_payload(emulator, REPO, numbers["hostile"], "opened"),
                 "hostile-1")
            time.sleep(0.5)
            sent["ordinary"] = time.perf_counter()
            post(client, url, "pull_request", pull_request_payload(emulator, REPO, numbers["ordinary"], "opened"),
                 "ordinary-1")

            def both_reviewed(_taken: list[float]) -> bool:
                done = {r.body.get("head_sha") for r in emulator.writes() if r.endpoint == CHECK_RUNS}
                for name, head in heads.items():
                    if name not in finished and head in done:
                        finished[name] = time.perf_counter() - sent[name]
                if time.perf_counter() - sent["hostile"] > DONE_TIMEOUT_SECONDS:
                    raise RuntimeError(f"{shape}: pull requests not reviewed in time ({finished})")
                return len(finished) == len(heads)

            during = sample_latency(client, url, gap, both_reviewed)
            time.sleep(2)  # any late, duplicate write would show up now
    finally:
        deployment.stop()
    writes = emulator.writes()
    counts = {}
    for name, number in numbers.items():
        mine = [r.endpoint for r in writes if f"/pulls/{number}/" in r.path or f"/issues/{number}/" in r.path
                or isinstance(r.body, dict) and r.body.get("head_sha") == heads[name]]
        counts[name] = (mine.count(REVIEWS), mine.count(SUMMARIES), mine.count(CHECK_RUNS))
    return {"idle": idle, "during": during, "finished": finished, "counts": counts}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="ping deliveries per second (default 50)")
    parser.add_argument("--idle-samples", type=int, default=300, help="latency samples with the bot idle")
    parser.add_argument("--shapes", default="embedded,roles", help="embedded, roles or both (default)")
    args = parser.parse_args(argv)
    shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
    private_key, public_key = app_key_pair()
    engine = None
    if "roles" in shapes:
        bin_dir = server_bin_dir()
        if bin_dir is None:
            print("PostgreSQL server not installed (apt-get install postgresql); measuring the embedded shape only",
                  file=sys.stderr)
            shapes = [s for s in shapes if s != "roles"]
        else:
            engine = PostgresServer(bin_dir)
            engine.start()
    emulator_server = EmulatorServer().start()
    results = {}
    try:
        for shape in shapes:
            emulator = emulator_server.fresh()
            emulator.register_app(APP_ID, public_key, INSTALLATION_ID)
            if engine is not None:
                engine.reset()
            with tempfile.TemporaryDirectory(prefix=f"atlas-bench-hostile-{shape}-") as tmp:
                results[shape] = measure(shape, emulator, private_key, Path(tmp),
                                         engine.url if shape == "roles" and engine else None, args)
            emulator.check_valid()
    finally:
        emulator_server.stop()
        if engine is not None:
            engine.stop()

    print(f"hostile pull request: {len(hostile_pages())} pages (100k-character labels, deep nesting, 1 MB diagram, "
          f"5,000 fences) + an ordinary 3-diagram PR opened 0.5 s later; pings at {args.rate:g}/s from a separate "
          "process")
    met = True
    for shape, r in results.items():
        p99 = percentile(r["during"], 0.99)
        print(f"  {shape}:")
        print(f"    webhook ack idle:   p50 {statistics.median(r['idle']):.1f} ms  p99 "
              f"{percentile(r['idle'], 0.99):.1f} ms  ({len(r['idle'])} samples)")
        print(f"    webhook ack during: p50 {statistics.median(r['during']):.1f} ms  p99 {p99:.1f} ms  "
              f"max {max(r['during']):.1f} ms  ({len(r['during'])} samples)")
        print(f"    ordinary PR reviewed {r['finished']['ordinary']:.1f} s after its delivery; hostile PR "
              f"{r['finished']['hostile']:.1f} s after its delivery")
        for name, (reviews, summaries, runs) in r["counts"].items():
            print(f"    {name}: {reviews} review(s), {summaries} summary comment(s), {runs} check run(s)")
        met = met and all(c == (1, 1, 1) for c in r["counts"].values())
        if shape == "roles":
            met = met and p99 <= TARGET_P99_MS
    print(f"  load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  target: exactly one review, summary and check run per head; p99 during <= {TARGET_P99_MS:.0f} ms with "
          f"the request path in its own process (roles): {'met' if met else 'NOT met'}")
    print(f"reproduce: .venv/bin/python bench/bench_hostile.py --rate {args.rate:g} --idle-samples "
          f"{args.idle_samples} --shapes {','.join(results)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
