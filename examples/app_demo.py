"""The GitHub App path of the demo: the real server and workers against the GitHub API emulator, on loopback.

The emulator (tests/emulator) serves the sample repository as an installed App's repository and checks every
request the bot makes against GitHub's OpenAPI description; the bot (tests/e2e/harness.BotServer) is the same
runtime `atlas-bot serve` starts. One signed `pull_request` delivery goes in; what the bot posted comes out.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FULL_NAME = "atlas/sample-atlas"
PR_BRANCH = "add-netflix-storage"
RULE = "-" * 100


def run_app_demo(repo: Path, workdir: Path) -> str:
    """Deliver the sample pull request to a locally running bot; return a report of what it posted."""
    sys.path.insert(0, str(ROOT / "tests"))
    from e2e.harness import APP_ID, INSTALLATION_ID, BotServer, app_key_pair, pull_request_payload
    from emulator.fixtures import EmulatorServer

    private_key, public_key = app_key_pair()
    emulator = EmulatorServer().start()
    try:
        github = emulator.fresh()
        github.add_repo(FULL_NAME, repo, default_branch="main")
        github.register_app(APP_ID, public_key, INSTALLATION_ID)
        number = github.add_pull(FULL_NAME, PR_BRANCH, title="Add Netflix storage and cost diagrams")
        bot = BotServer(workdir / "bot-data", github.base_url, private_key)
        try:
            answer = bot.deliver("pull_request", pull_request_payload(github, FULL_NAME, number, "opened"))
            if not bot.wait_idle(timeout=120):
                raise RuntimeError("the bot did not finish the review within 120 s")
            first_writes = [w.endpoint for w in github.writes()]
            mark = github.mark()
            bot.deliver("pull_request", pull_request_payload(github, FULL_NAME, number, "synchronize"))
            bot.wait_idle(timeout=120)
            rerun_writes = len(github.writes(since=mark))
            failed = [job for job in bot.jobs() if job.state.value != "done"]
        finally:
            bot.stop()
        report = _report(github, number, answer.status_code, first_writes, rerun_writes, failed)
    finally:
        emulator.stop()
    return report


def _report(github, number: int, status: int, first_writes: list[str], rerun_writes: int, failed: list) -> str:
    state = github.state
    repo = state.repos[FULL_NAME]
    lines = [f"webhook answered {status}; pull request #{number} of {FULL_NAME}", ""]
    for review in repo.reviews[number]:
        lines += [RULE, f"REVIEW ({review['state']}) by {review['user']['login']}", RULE,
                  textwrap.indent(_strip_hidden(review["body"]), "  ")]
    for comment in repo.review_comments[number]:
        where = comment["path"] + ":" + (f"{comment['start_line']}-" if comment.get("start_line") else "") \
            + str(comment["line"])
        lines += ["", f"  ── inline comment on {where}", textwrap.indent(_strip_hidden(comment["body"]), "     ")]
    for comment in repo.issue_comments[number]:
        lines += ["", RULE, "STICKY SUMMARY COMMENT", RULE, textwrap.indent(_strip_hidden(comment["body"]), "  ")]
    lines += ["", RULE, "LABELS: " + ", ".join(sorted(state.labels_on(FULL_NAME, number))), RULE]
    for run in repo.check_runs.values():
        output = run.get("output") or {}
        lines += ["", RULE, f"CHECK RUN \"{run['name']}\" on {run['head_sha'][:12]}: {run.get('conclusion')}", RULE,
                  f"  {output.get('title', '')}",
                  f"  annotations: {len(state.annotations_of(FULL_NAME, run['id']))}"]
    invalid = list(state.validation_errors)
    once = [w for w in first_writes if w.endswith(("/access_tokens", "/{repo}/labels"))]
    lines += ["", RULE,
              f"GitHub write requests for the review: {len(first_writes)} ({len(once)} of them once per "
              f"installation or repository: the token, labels the repository did not have yet)",
              *(f"  {write}" for write in first_writes),
              f"GitHub write requests when the same head was delivered again: {rerun_writes}",
              f"requests outside GitHub's OpenAPI description: {len(invalid)}",
              f"jobs not done: {len(failed)}", RULE]
    if invalid or failed:
        raise RuntimeError("\n".join(lines + invalid + [str(job) for job in failed]))
    return "\n".join(lines)


def _strip_hidden(body: str) -> str:
    """Drop the bot's hidden HTML comments (markers, fingerprints) from what a person would see."""
    kept = [line for line in body.splitlines() if not line.strip().startswith("<!--")]
    return "\n".join(kept).strip()
