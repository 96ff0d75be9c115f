"""A hostile pull request through the whole App: it cannot stall the server or the other pull requests.

One PR adds every page of tests/hostile.py (100k-character labels, deep nesting, a 1 MB diagram, 5,000
fences); another, ordinary PR is opened right after it. While both are processed, the webhook endpoint keeps
answering, the ordinary PR is reviewed without waiting for the hostile one, and each head gets exactly one
review, one sticky summary and one check run. Bounds are generous: they separate "bounded" from "stalled"
(one backtracking regex used to freeze every thread for minutes), not fast from slow.
"""

from __future__ import annotations

import time

from bot.queue import JobState
from e2e.harness import REPO, pull_request_payload
from hostile import hostile_pages

REVIEWS = "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
CHECK_RUNS = "POST /repos/{owner}/{repo}/check-runs"
SUMMARIES = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
PING = {"zen": "Keep it logically awesome.", "hook_id": 1}
WEBHOOK_ANSWER_BOUND_SECONDS = 2.0
ORDINARY_PR_BOUND_SECONDS = 60.0
HOSTILE_PR_BOUND_SECONDS = 240.0


def test_a_hostile_pull_request_stalls_neither_the_server_nor_other_reviews(github_emulator, sample,
                                                                            bot_factory) -> None:
    sample.branch("hostile")
    for name, text in hostile_pages().items():
        sample.write(f"docs/systems/{name}", text)
    hostile_head = sample.commit("add hostile pages")
    sample.git("checkout", "-q", "main")
    ordinary_head = sample.pr_branch("ordinary", 3, broken=1)
    hostile = github_emulator.add_pull(REPO, "hostile")
    ordinary = github_emulator.add_pull(REPO, "ordinary")
    bot = bot_factory()

    assert bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, hostile, "opened")).status_code \
        == 202
    time.sleep(0.5)  # the hostile job is leased and running
    started = time.monotonic()
    assert bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, ordinary, "opened")).status_code \
        == 202

    heads = {hostile: hostile_head, ordinary: ordinary_head}

    def reviewed(number: int) -> bool:
        return any(r.endpoint == CHECK_RUNS and r.body.get("head_sha") == heads[number]
                   for r in github_emulator.writes())

    slowest_answer = 0.0
    while not reviewed(ordinary) and time.monotonic() - started < ORDINARY_PR_BOUND_SECONDS:
        sent = time.monotonic()
        assert bot.deliver("ping", PING).status_code == 202
        slowest_answer = max(slowest_answer, time.monotonic() - sent)
        time.sleep(0.1)
    assert reviewed(ordinary), "the ordinary pull request waited behind the hostile one"
    assert slowest_answer < WEBHOOK_ANSWER_BOUND_SECONDS, f"a webhook answer took {slowest_answer:.1f} s"

    assert bot.wait_idle(HOSTILE_PR_BOUND_SECONDS), "the hostile pull request was not done in time"
    assert {job.state for job in bot.jobs()} == {JobState.DONE}
    writes = github_emulator.writes()
    for number in (hostile, ordinary):
        mine = [r for r in writes if f"/pulls/{number}/" in r.path or f"/issues/{number}/" in r.path
                or r.body and r.body.get("head_sha") == heads[number]]
        assert [r.endpoint for r in mine].count(REVIEWS) == 1, number
        assert [r.endpoint for r in mine].count(SUMMARIES) == 1, number
        assert [r.endpoint for r in mine].count(CHECK_RUNS) == 1, number
