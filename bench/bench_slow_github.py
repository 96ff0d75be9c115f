"""The App against a GitHub that commits writes late and delivers events out of order, with real waits.

A sample Atlas repository is served by the GitHub emulator (tests/emulator) as an installed App's repository;
the bot runs for real (uvicorn on 127.0.0.1, SQLite queue, worker threads, mermaid pool). Two runs:

- **late writes**: one pull request whose review, summary and check-run POSTs each get no answer (the
  connection drops, as after the client's timeout) and are committed ``--late-seconds`` later by the
  emulator; the pull request must end with exactly one review, one summary and one check run.
- **out of order**: ``--runs`` pull requests, each pushed twice, whose older head's ``synchronize`` is
  delivered after the newer one's (half while the newer job is still queued, half after it published); every
  pull request must end showing the newest head's review and check run, none of its comments minimised.

    .venv/bin/python bench/bench_slow_github.py [--late-seconds 20] [--runs 10]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from emulator.fixtures import EmulatorServer  # noqa: E402
from emulator.state import LATE_WRITE  # noqa: E402

from e2e.harness import (  # noqa: E402
    APP_ID,
    BROKEN_DIAGRAM,
    INSTALLATION_ID,
    BotServer,
    SampleRepo,
    app_key_pair,
    pull_request_payload,
)

REPO = "atlas/bench"
CONTENT_POSTS = ("POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                 "POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
                 "POST /repos/{owner}/{repo}/check-runs")
JOB_TIMEOUT_SECONDS = 600.0


def late_writes(emulator, sample: SampleRepo, bot: BotServer, late_seconds: float) -> tuple[bool, str]:
    sample.pr_branch("late", 2, broken=1)
    number = emulator.add_pull(REPO, "late")
    for endpoint in CONTENT_POSTS:
        emulator.inject_fault(endpoint, LATE_WRITE, delay=late_seconds)
    started = time.perf_counter()
    bot.deliver("pull_request", pull_request_payload(emulator, REPO, number, "opened"))
    if not bot.wait_idle(JOB_TIMEOUT_SECONDS):
        raise RuntimeError("the late-write job did not finish")
    elapsed = time.perf_counter() - started
    repo = emulator.state.repos[REPO]
    counts = (len(repo.reviews[number]), len(repo.issue_comments[number]),
              sum(r["head_sha"] == repo.pulls[number].head_sha for r in repo.check_runs.values()))
    return counts == (1, 1, 1), (f"writes committed {late_seconds:.0f} s late: {counts[0]} review, {counts[1]} "
                                 f"summary, {counts[2]} check run; job {elapsed:.1f} s")


def out_of_order(emulator, sample: SampleRepo, bot: BotServer, runs: int) -> tuple[bool, str]:
    pulls = []
    for i in range(runs):
        name = f"order{i}"
        older = sample.pr_branch(name, 1, broken=1)
        number = emulator.add_pull(REPO, name)
        older_event = pull_request_payload(emulator, REPO, number, "opened")
        sample.git("checkout", "-q", name)
        sample.write(f"docs/systems/{name}.md", f"# {name}\n\n## Newer\n\n" + BROKEN_DIAGRAM.replace("Client", name))
        newest = emulator.push(REPO, number, sample.commit(f"newer {name}"))
        sample.git("checkout", "-q", "main")
        pulls.append((number, older, newest, older_event, pull_request_payload(emulator, REPO, number, "synchronize")))
    for index, (_, _, _, older_event, newer_event) in enumerate(pulls):
        bot.deliver("pull_request", newer_event)
        if index % 2:
            bot.wait_idle(JOB_TIMEOUT_SECONDS)  # the newer head already published when the older event lands
        bot.deliver("pull_request", older_event)
    if not bot.wait_idle(JOB_TIMEOUT_SECONDS):
        raise RuntimeError("the out-of-order jobs did not finish")
    repo, minimized = emulator.state.repos[REPO], emulator.state.minimized
    shown = sum(
        [r["commit_id"] for r in repo.reviews[number]] == [newest]
        and {r["head_sha"] for r in repo.check_runs.values() if r["head_sha"] in (older, newest)} == {newest}
        and not any(c["node_id"] in minimized for c in repo.review_comments[number])
        for number, older, newest, _, _ in pulls)
    return shown == runs, f"out-of-order synchronize: newest head shown on {shown} of {runs} pull requests"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--late-seconds", type=float, default=20.0, help="delay of each late write (default 20)")
    parser.add_argument("--runs", type=int, default=10, help="pull requests delivered out of order (default 10)")
    args = parser.parse_args(argv)
    private_key, public_key = app_key_pair()
    server = EmulatorServer().start()
    results = []
    try:
        for scenario, parameter in ((late_writes, args.late_seconds), (out_of_order, args.runs)):
            emulator = server.fresh()
            with tempfile.TemporaryDirectory(prefix="atlas-bench-slow-github-") as tmp:
                sample = SampleRepo(Path(tmp) / "origin")
                emulator.add_repo(REPO, sample.path)
                emulator.register_app(APP_ID, public_key, INSTALLATION_ID)
                bot = BotServer(Path(tmp) / "data", emulator.base_url, private_key)
                # Each emulated connection drop is an ASGI error to uvicorn: one traceback per late write.
                logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
                try:
                    results.append(scenario(emulator, sample, bot, parameter))
                finally:
                    bot.stop()
            emulator.check_valid()
    finally:
        server.stop()
    for passed, line in results:
        print(f"  {line}: {'ok' if passed else 'FAILED'}")
    print(f"reproduce: .venv/bin/python bench/bench_slow_github.py --late-seconds {args.late_seconds:g} "
          f"--runs {args.runs}")
    return 0 if all(passed for passed, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
