"""The chaos run of issue 9, many times: 2 webhook servers and 3 worker processes on one PostgreSQL, 50 pull
requests with bursts of ``synchronize`` and redelivered webhooks, workers killed with SIGKILL at random moments.

Each run starts from a fresh emulated GitHub, a fresh sample repository and empty tables, and records what
tests/e2e/chaos.py verifies: reviews, summaries and check runs lost or duplicated, deliveries that did not
become exactly one job, processes that did not stop cleanly on SIGTERM, and the most content-creating
requests of the installation seen in any window of ten pacing intervals.

    .venv/bin/python bench/bench_chaos.py [--runs 20] [--prs 50] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from emulator.fixtures import EmulatorHandle, EmulatorServer  # noqa: E402
from pgserver import PostgresServer, server_bin_dir  # noqa: E402

from e2e.chaos import ChaosPlan, run  # noqa: E402
from e2e.harness import APP_ID, INSTALLATION_ID, REPO, SampleRepo, app_key_pair  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--prs", type=int, default=50)
    parser.add_argument("--synchronize", type=int, default=2, help="heads pushed after the first, per PR")
    parser.add_argument("--seed", type=int, default=1, help="seed of the first run (run i uses seed + i)")
    args = parser.parse_args(argv)
    bin_dir = server_bin_dir()
    if bin_dir is None:
        print("PostgreSQL server not installed: apt-get install postgresql", file=sys.stderr)
        return 2
    private_key, public_key = app_key_pair()
    engine = PostgresServer(bin_dir)
    engine.start()
    emulator_server = EmulatorServer().start()
    failures = 0
    print("| run | deliveries | redeliveries | SIGKILLs | jobs | lost | duplicated | unclean exits "
          "| max writes / 10 intervals | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    try:
        for index in range(args.runs):
            engine.reset()
            emulator: EmulatorHandle = emulator_server.fresh()
            with tempfile.TemporaryDirectory(prefix="atlas-chaos-") as scratch:
                sample = SampleRepo(Path(scratch) / "origin")
                emulator.add_repo(REPO, sample.path)
                emulator.register_app(APP_ID, public_key, INSTALLATION_ID)
                plan = ChaosPlan(pull_requests=args.prs, synchronize_per_pr=args.synchronize,
                                 seed=args.seed + index)
                result = run(Path(scratch) / "deployment", sample=sample, emulator=emulator,
                             queue_url=engine.url, private_key=private_key, plan=plan)
            failures += not result.ok
            print(f"| {index + 1} | {result.deliveries} | {result.redeliveries} | {result.kills} | {result.jobs} "
                  f"| {len(result.lost)} | {len(result.duplicated)} | {len(result.unclean_exits)} "
                  f"| {result.max_writes_per_window} (≤ {result.allowed_writes_per_window}) "
                  f"| {result.seconds:.0f} |", flush=True)
            for line in result.lost + result.duplicated + result.unclean_exits:
                print(f"  - {line}", flush=True)
    finally:
        emulator_server.stop()
        engine.stop()
    print(f"\n{args.runs - failures} of {args.runs} runs with 0 lost and 0 duplicated; machine load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at {time.strftime('%H:%M')}")
    print(f"reproduce: .venv/bin/python bench/bench_chaos.py --runs {args.runs} --prs {args.prs} "
          f"--synchronize {args.synchronize} --seed {args.seed}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
