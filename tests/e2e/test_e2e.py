"""The whole App path on loopback: signed webhook → real uvicorn server → SQLite queue → worker → engine →
GitHub emulator (every exchange checked against GitHub's OpenAPI description by the emulator fixture)."""

from __future__ import annotations

from emulator.state import BAD_GATEWAY, LATE_WRITE, NOT_FOUND, SECONDARY_RATE_LIMIT

from bot.queue import JobState
from e2e.harness import BROKEN_DIAGRAM, GOOD_DIAGRAM, INSTALLATION_ID, REPO, comment_payload, pull_request_payload

REVIEWS = "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews"
ISSUE_COMMENTS = "POST /repos/{owner}/{repo}/issues/{issue_number}/comments"
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


def test_github_faults_502_and_403_retry_after_are_survived(github_emulator, sample, bot_factory) -> None:
    sample.pr_branch("incidents", 2, broken=1, folder="incidents")
    number = github_emulator.add_pull(REPO, "incidents")
    github_emulator.inject_fault(REVIEWS, BAD_GATEWAY)
    github_emulator.inject_fault(CHECK_RUNS, SECONDARY_RATE_LIMIT, retry_after=1)
    bot = bot_factory()
    assert bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "opened")).status_code \
        == 202
    assert bot.wait_idle()
    [job] = bot.jobs()
    # 502 and 403 were retried inside the client.
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    faults = [(r.endpoint, r.fault) for r in github_emulator.requests if r.fault]
    assert sorted(faults) == sorted([(REVIEWS, BAD_GATEWAY), (CHECK_RUNS, SECONDARY_RATE_LIMIT)])
    repo = github_emulator.state.repos[REPO]
    assert len(repo.reviews[number]) == 1
    assert len(repo.check_runs) == 1


def test_a_404_is_dead_lettered_at_once_with_its_reason(github_emulator, sample, bot_factory) -> None:
    sample.pr_branch("incidents", 1, folder="incidents")
    number = github_emulator.add_pull(REPO, "incidents")
    github_emulator.inject_fault(PULL_FILES, NOT_FOUND)
    bot = bot_factory()
    bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "opened"))
    assert bot.wait_idle()
    [job] = bot.jobs()
    assert (job.state, job.attempts) == (JobState.DEAD, 1)
    assert "404" in job.last_error and "files" in job.last_error


def test_a_revoked_installation_token_costs_one_401_not_the_job(github_emulator, sample, bot_factory) -> None:
    sample.pr_branch("revoked", 1)
    number = github_emulator.add_pull(REPO, "revoked")
    bot = bot_factory()
    bot.deliver("issue_comment", comment_payload(github_emulator, REPO, number, "/atlas help", "reader"))
    assert bot.wait_idle()
    github_emulator.state.revoke_tokens(INSTALLATION_ID)
    mark = github_emulator.mark()
    bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "opened"))
    assert bot.wait_idle()
    assert [job.state for job in bot.jobs()] == [JobState.DONE, JobState.DONE]
    assert [r.status for r in github_emulator.requests[mark:]].count(401) == 1
    assert len(github_emulator.state.repos[REPO].reviews[number]) == 1


def test_writes_github_commits_late_are_found_not_posted_twice(github_emulator, sample, bot_factory) -> None:
    """Each content-creating POST gets no answer and lands later (the unit tests cover 20 s with a fake clock;
    here the emulator's real delay is short so the suite stays fast)."""
    sample.pr_branch("late", 2, broken=1)
    number = github_emulator.add_pull(REPO, "late")
    for endpoint in (REVIEWS, ISSUE_COMMENTS, CHECK_RUNS):
        github_emulator.inject_fault(endpoint, LATE_WRITE, delay=0.5)
    bot = bot_factory()
    bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "opened"))
    assert bot.wait_idle(timeout=120)
    [job] = bot.jobs()
    assert (job.state, job.attempts) == (JobState.DONE, 1)
    repo = github_emulator.state.repos[REPO]
    assert len(repo.reviews[number]) == 1
    assert len(repo.issue_comments[number]) == 1
    assert len(repo.check_runs) == 1
    assert sorted(r.fault for r in github_emulator.requests if r.fault) == [LATE_WRITE] * 3


def new_head(sample, branch: str, text: str) -> str:
    sample.git("checkout", "-q", branch)
    sample.write(f"docs/systems/{branch}.md", f"# {branch}\n\n## Newer\n\n{text}")
    head = sample.commit(f"newer {branch}")
    sample.git("checkout", "-q", "main")
    return head


def test_out_of_order_synchronize_leaves_the_newest_head_reviewed(github_emulator, sample, bot_factory) -> None:
    """Ten pull requests, each with the older head's event delivered last (half of them while the newer head's
    job is still queued, half after it ran): every one shows the newest head's review and check run, and none
    of the newest head's comments is minimised."""
    bot = bot_factory(start_workers=False)
    pulls = []
    for i in range(10):
        name = f"ooo{i}"
        older = sample.pr_branch(name, 1, broken=1)
        number = github_emulator.add_pull(REPO, name)
        older_event = pull_request_payload(github_emulator, REPO, number, "opened")
        newest = github_emulator.push(REPO, number, new_head(sample, name, BROKEN_DIAGRAM.replace("Client", name)))
        newer_event = pull_request_payload(github_emulator, REPO, number, "synchronize")
        pulls.append((number, older, newest, older_event, newer_event))
    for number, _, _, older_event, newer_event in pulls[:5]:  # both queued: the older one arrives last
        bot.deliver("pull_request", newer_event)
        bot.deliver("pull_request", older_event)
    bot.start_workers()
    for number, _, _, older_event, newer_event in pulls[5:]:  # the newer one already published
        bot.deliver("pull_request", newer_event)
        assert bot.wait_idle()
        bot.deliver("pull_request", older_event)
    assert bot.wait_idle(timeout=180)
    repo = github_emulator.state.repos[REPO]
    shown = 0
    for number, older, newest, _, _ in pulls:
        reviews = repo.reviews[number]
        runs = [r for r in repo.check_runs.values() if r["head_sha"] in (older, newest)]
        comments = repo.review_comments[number]
        if ([r["commit_id"] for r in reviews] == [newest] and {r["head_sha"] for r in runs} == {newest}
                and comments and not any(c["node_id"] in github_emulator.state.minimized for c in comments)):
            shown += 1
    assert shown == 10


def test_an_unauthorised_recheck_does_not_supersede_a_queued_push(github_emulator, sample, bot_factory) -> None:
    head = sample.pr_branch("guarded", 1)
    number = github_emulator.add_pull(REPO, "guarded")
    github_emulator.state.set_permission(REPO, "reader", "read")
    bot = bot_factory(start_workers=False)
    bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "synchronize"))
    bot.deliver("issue_comment", comment_payload(github_emulator, REPO, number, "/atlas recheck", "reader"))
    assert bot.jobs(JobState.SUPERSEDED) == []
    bot.start_workers()
    assert bot.wait_idle()
    assert [r.body["head_sha"] for r in github_emulator.writes() if r.endpoint == CHECK_RUNS] == [head]
    replies = [c["body"] for c in github_emulator.state.repos[REPO].issue_comments[number]
               if "write access" in c["body"]]
    assert len(replies) == 1 and "@reader" in replies[0]


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
    [refusal] = [w for w in github_emulator.writes() if w.endpoint != TOKENS]
    assert refusal.endpoint == ISSUE_COMMENTS and "needs write access" in refusal.body["body"]
    bot.deliver("issue_comment", comment_payload(github_emulator, REPO, number, "/atlas recheck", "maintainer"))
    assert bot.wait_idle()
    assert endpoints(github_emulator.writes()).count(CHECK_RUNS) == 1
    mark = github_emulator.mark()
    bot.deliver("issue_comment", comment_payload(github_emulator, REPO, number, "/atlas help", "reader"))
    assert bot.wait_idle()
    [reply] = github_emulator.writes(since=mark)
    assert reply.endpoint == ISSUE_COMMENTS
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


def test_store_sizes_are_gauged_and_an_uninstalled_repository_loses_its_mirror(github_emulator, sample,
                                                                               bot_factory) -> None:
    sample.pr_branch("gauged", 1)
    number = github_emulator.add_pull(REPO, "gauged")
    bot = bot_factory()
    bot.deliver("pull_request", pull_request_payload(github_emulator, REPO, number, "opened"))
    assert bot.wait_idle()
    metrics = bot.http.get("/metrics").text
    assert 'atlas_store_size{store="mirrors"} 1.0' in metrics
    assert 'atlas_store_size{store="mirror_pull_refs"} 1.0' in metrics
    assert 'atlas_store_size{store="redaction_secrets"}' in metrics
    assert 'atlas_store_size{store="progress_blob_counts"}' in metrics

    with github_emulator.state.lock:
        repository = dict(github_emulator.state.repos[REPO].data)
    removed = {"action": "removed", "installation": {"id": INSTALLATION_ID, "account": {"login": "atlas"}},
               "repository_selection": "selected", "repositories_added": [],
               "repositories_removed": [{"full_name": repository["full_name"]}]}
    assert bot.deliver("installation_repositories", removed).status_code == 202
    assert bot.wait_idle()
    assert 'atlas_store_size{store="mirrors"} 0.0' in bot.http.get("/metrics").text
