"""The whole App path on loopback: signed webhook → real uvicorn server → SQLite queue → worker → engine →
GitHub emulator (every exchange checked against GitHub's OpenAPI description by the emulator fixture)."""

from __future__ import annotations

from emulator.state import BAD_GATEWAY, NOT_FOUND, SECONDARY_RATE_LIMIT

from bot.queue import JobState
from e2e.harness import GOOD_DIAGRAM, INSTALLATION_ID, REPO, comment_payload, pull_request_payload

REVIEWS = "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
PULL_FILES = "GET /repos/{owner}/{repo}/pulls/{pull_number}/files"
CHECK_RUNS = "POST /repos/{owner}/{repo}/check-runs"
MAX_WRITES_PER_PR = 6


TOKENS = "POST /app/installations/{installation_id}/access_tokens"


def endpoints(requests) -> list[str]:
    """Endpoints of the content writes (the installation token exchange is authentication, not content)."""
    return [r.endpoint for r in requests if r.endpoint != TOKENS]


def test_pull_request_is_reviewed_once_and_a_rerun_writes_nothing(github_emulator, sample, bot_factory) -> None:
    sample.pr_branch("checkout", 3, broken=1)
    number = github_emulator.add_pull(REPO, "checkout")
    bot = bot_factory()
    payload = pull_request_payload(github_emulator, REPO, number, "opened")

    assert bot.deliver("pull_request", payload, "delivery-1").status_code == 202
    assert bot.wait_idle()
    [job] = bot.jobs()
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    writes = endpoints(github_emulator.writes())
    assert writes.count(REVIEWS) == 1
    assert writes.count(CHECK_RUNS) == 1
    assert "POST /repos/{owner}/{repo}/issues/{issue_number}/comments" in writes  # sticky summary
    assert len(writes) <= MAX_WRITES_PER_PR, writes
    assert any(label.startswith("atlas:") for label in github_emulator.state.labels_on(REPO, number))

    mark = github_emulator.mark()
    redelivered = bot.deliver("pull_request", payload, "delivery-1")
    assert redelivered.status_code == 200 and redelivered.json() == {"status": "duplicate"}
    assert bot.deliver("pull_request", {**payload, "action": "synchronize"}, "delivery-2").status_code == 202
    assert bot.wait_idle()
    assert len(bot.jobs(JobState.DONE)) == 2
    assert endpoints(github_emulator.writes(since=mark)) == []


def test_ten_rapid_synchronize_events_review_only_the_newest_head(github_emulator, sample, bot_factory) -> None:
    heads = [sample.pr_branch("scaling", 1)]
    number = github_emulator.add_pull(REPO, "scaling")
    bot = bot_factory(start_workers=False)
    for i in range(9):
        sample.git("checkout", "-q", "scaling")
        sample.write("docs/systems/scaling.md", f"# scaling\n\nRevision {i}\n")
        heads.append(sample.commit(f"revision {i}"))
        sample.git("checkout", "-q", "main")
    for i, head in enumerate(heads):
        github_emulator.push(REPO, number, head)
        action = "opened" if i == 0 else "synchronize"
        assert bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, action)).status_code \
            == 202
    bot.start_workers()
    assert bot.wait_idle()
    assert len(bot.jobs(JobState.SUPERSEDED)) == 9
    assert len(bot.jobs(JobState.DONE)) == 1
    check_runs = [r for r in github_emulator.writes() if r.endpoint == CHECK_RUNS]
    assert [r.body["head_sha"] for r in check_runs] == [heads[-1]]
    assert endpoints(github_emulator.writes()).count(REVIEWS) <= 1


def test_github_faults_502_403_retry_after_and_404_are_survived(github_emulator, sample, bot_factory) -> None:
    sample.pr_branch("incidents", 2, broken=1, folder="incidents")
    number = github_emulator.add_pull(REPO, "incidents")
    github_emulator.inject_fault(REVIEWS, BAD_GATEWAY)
    github_emulator.inject_fault(CHECK_RUNS, SECONDARY_RATE_LIMIT, retry_after=1)
    github_emulator.inject_fault(PULL_FILES, NOT_FOUND)
    bot = bot_factory()
    assert bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "opened")).status_code \
        == 202
    assert bot.wait_idle()
    [job] = bot.jobs()
    # The 404 failed the first attempt (retried from the queue); 502 and 403 were retried inside the client.
    assert (job.state, job.attempts) == (JobState.DONE, 2)
    faults = [(r.endpoint, r.fault) for r in github_emulator.requests if r.fault]
    assert sorted(faults) == sorted([(REVIEWS, BAD_GATEWAY), (CHECK_RUNS, SECONDARY_RATE_LIMIT),
                                     (PULL_FILES, NOT_FOUND)])
    repo = github_emulator.state.repos[REPO]
    assert len(repo.reviews[number]) == 1
    assert len(repo.check_runs) == 1


def test_invalid_configuration_gives_a_neutral_check_run(github_emulator, sample, bot_factory) -> None:
    sample.write(".github/atlas-bot.yml", "review:\n  max_inline_comments: 5\n  colour: blue\n")
    sample.commit("bad config")
    sample.pr_branch("costs", 1, folder="costs")
    number = github_emulator.add_pull(REPO, "costs")
    bot = bot_factory()
    bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "opened"))
    assert bot.wait_idle()
    [run] = [r for r in github_emulator.writes() if r.endpoint == CHECK_RUNS]
    assert run.body["conclusion"] == "neutral"
    assert ".github/atlas-bot.yml" in run.body["output"]["summary"]
    assert "line 3" in run.body["output"]["summary"]
    assert endpoints(github_emulator.writes()).count(REVIEWS) == 0


def test_comment_commands(github_emulator, sample, bot_factory) -> None:
    sample.pr_branch("patterns", 1, folder="patterns")
    number = github_emulator.add_pull(REPO, "patterns")
    github_emulator.state.set_permission(REPO, "reader", "read")
    github_emulator.state.set_permission(REPO, "maintainer", "write")
    bot = bot_factory()
    bot.deliver("issue_comment", comment_payload(github_emulator, REPO, number, "/atlas recheck", "reader"))
    assert bot.wait_idle()
    assert endpoints(github_emulator.writes()) == []
    bot.deliver("issue_comment", comment_payload(github_emulator, REPO, number, "/atlas recheck", "maintainer"))
    assert bot.wait_idle()
    assert endpoints(github_emulator.writes()).count(CHECK_RUNS) == 1
    mark = github_emulator.mark()
    bot.deliver("issue_comment", comment_payload(github_emulator, REPO, number, "/atlas help", "reader"))
    assert bot.wait_idle()
    [reply] = github_emulator.writes(since=mark)
    assert reply.endpoint == "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
    assert "/atlas recheck" in reply.body["body"]


def push_payload(emulator, full_name: str, after: str) -> dict:
    """A push to the default branch, shaped like GitHub's (the fields the bot reads, from the emulator's repo)."""
    with emulator.state.lock:
        repository = dict(emulator.state.repos[full_name].data)
    return {"ref": f"refs/heads/{repository['default_branch']}", "before": "0" * 40, "after": after,
            "deleted": False, "repository": repository, "installation": {"id": INSTALLATION_ID},
            "sender": {"login": "maintainer", "type": "User"}}


def test_a_merge_brings_the_progress_issue_up_to_date(github_emulator, sample, bot_factory) -> None:
    bot = bot_factory()
    sample.write("docs/incidents/s3.md", "# S3\n\n" + GOOD_DIAGRAM)
    head = sample.commit("Add the S3 incident (#7)")
    assert bot.deliver("push", push_payload(github_emulator, REPO, head)).status_code == 202
    assert bot.wait_idle()
    assert [job.state for job in bot.jobs()] == [JobState.DONE]
    issues = [i for i in github_emulator.state.repos[REPO].issues.values() if "pull_request" not in i]
    [issue] = issues
    assert {label["name"] for label in issue["labels"]} == {"atlas-progress"}
    assert "| Incident Anatomies | 1 | 100 |" in issue["body"] and "#7" in issue["body"]

    mark = github_emulator.mark()
    assert bot.deliver("push", push_payload(github_emulator, REPO, head)).status_code == 202
    assert bot.wait_idle()
    assert endpoints(github_emulator.writes(since=mark)) == []  # nothing changed: nothing written
