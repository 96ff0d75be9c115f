"""The router table and the handlers, against fake GitHub, git and engine services."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot import handlers
from bot.config import ConfigError
from bot.gitrepo import GitError
from bot.handlers import HELP_TEXT, PROGRESS_KEY, CallTally, Context, ProgressJob, Services, command_of, route
from bot.progress import REGION_END, REGION_START
from bot.webhooks import Delivery

OCTOKIT = Path(__file__).parent / "fixtures" / "webhooks" / "octokit"
HEAD, BASE = "b" * 40, "a" * 40


@dataclass
class FakeRepoClient:
    """Records what a handler asked GitHub for; answers from its fields."""

    config_text: str | None = None
    permission_of: str = "write"
    pull: Any = None
    calls: list[tuple] = field(default_factory=list)
    rate_limit_remaining: int = 4321

    def pull_request(self, number: int) -> Any:
        self.calls.append(("pull_request", number))
        return self.pull or SimpleNamespace(number=number, base_ref="main", head_sha=HEAD, draft=False,
                                            state="open")

    def pr_patches(self, number: int) -> dict[str, str]:
        self.calls.append(("pr_patches", number))
        return {"docs/a.md": "@@ -1 +1 @@\n+x"}

    def posted_fingerprints(self, number: int) -> frozenset[str]:
        return frozenset({"f1"})

    def read_file(self, ref: str, path: str) -> str | None:
        self.calls.append(("read_file", ref, path))
        return self.config_text

    def permission(self, login: str) -> str:
        self.calls.append(("permission", login))
        return self.permission_of

    def publish(self, number: int, publication: Any) -> Any:
        self.calls.append(("publish", number, publication))
        return SimpleNamespace(writes=3)

    def post_comment(self, number: int, body: str) -> int:
        self.calls.append(("post_comment", number, body))
        return 1

    def publish_neutral_check(self, head_sha: str, title: str, text: str) -> Any:
        self.calls.append(("neutral", head_sha, title, text))

    def named(self, name: str) -> list[tuple]:
        return [c for c in self.calls if c[0] == name]


@dataclass
class FakeGitRepo:
    known: set[str] = field(default_factory=lambda: {HEAD, "refs/heads/main"})
    fetched: list[list[str]] = field(default_factory=list)

    def fetch(self, refspecs: list[str], token: str | None) -> None:
        self.fetched.append(refspecs)

    def resolve(self, rev: str) -> str:
        if rev not in self.known and not rev.startswith("refs/heads/"):
            raise GitError(f"unknown revision {rev}")
        return BASE if rev.startswith("refs/") else rev

    def read_blob(self, rev: str, path: str) -> bytes | None:
        return b"# text\n"


def fake_config(*, repo_config_text: str | None, repo_config_source: str) -> Any:
    if repo_config_text == "bad":
        raise ConfigError(repo_config_source, 3, "unknown key 'gatez'")
    drafts = repo_config_text == "review_drafts"
    return SimpleNamespace(review=SimpleNamespace(review_drafts=drafts), source=repo_config_source)


@dataclass
class World:
    client: FakeRepoClient = field(default_factory=FakeRepoClient)
    repo: FakeGitRepo = field(default_factory=FakeGitRepo)
    checks: list[dict] = field(default_factory=list)
    publications: list[dict] = field(default_factory=list)
    progress: list[ProgressJob] = field(default_factory=list)
    mirrors: list[tuple] = field(default_factory=list)
    queued: list[tuple[Delivery, str | None]] = field(default_factory=list)

    def services(self, *, with_progress: bool = True) -> Services:
        def run_check(repo: Any, config: Any, pool: Any, *, base: str, head: str) -> Any:
            self.checks.append({"base": base, "head": head})
            finding = SimpleNamespace(path="docs/a.md")
            return SimpleNamespace(diagrams=(1,), findings=(finding,))

        def build_publication(result: Any, config: Any, **kwargs: Any) -> Any:
            self.publications.append(kwargs)
            return {"publication": kwargs["head_sha"]}

        def mirror(full_name: str, clone_url: str, token: str | None) -> FakeGitRepo:
            self.mirrors.append((full_name, clone_url, token))
            return self.repo

        return Services(repo_client=lambda inst, name, on_call: self.client, git_token=lambda inst: "tok",
                        mirror=mirror, pool="pool", load_config=fake_config, run_check=run_check,
                        build_publication=build_publication,
                        update_progress=self.progress.append if with_progress else None,
                        enqueue=lambda d, key: self.queued.append((d, key)))


def delivery(event: str, payload: dict, delivery_id: str = "d1") -> Delivery:
    return Delivery.from_payload(delivery_id, event, payload)


def pr_payload(action: str = "synchronize", *, draft: bool = False, state: str = "open", head: str = HEAD) -> dict:
    return {"action": action, "number": 7, "installation": {"id": 9},
            "repository": {"full_name": "octo/atlas", "clone_url": "https://example.test/octo/atlas.git",
                           "default_branch": "main"},
            "pull_request": {"number": 7, "state": state, "draft": draft, "base": {"ref": "main", "sha": BASE},
                             "head": {"sha": head, "ref": "feature"}}}


def comment_payload(body: str, *, on_pr: bool = True, user_type: str = "User") -> dict:
    issue: dict = {"number": 7}
    if on_pr:
        issue["pull_request"] = {"url": "https://example.test/pulls/7"}
    return {"action": "created", "installation": {"id": 9}, "issue": issue,
            "comment": {"body": body, "user": {"login": "alice", "type": user_type}},
            "repository": {"full_name": "octo/atlas", "clone_url": "https://example.test/octo/atlas.git",
                           "default_branch": "main"}}


def run(world: World, d: Delivery, **kwargs: Any) -> str:
    found = route(d)
    assert found is not None
    return found.handler(Context(delivery=d, services=world.services(**kwargs)))


# -- routing ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "command"), [
    ("/atlas recheck", "recheck"), ("/ATLAS Recheck\n", "recheck"), ("thanks!\n/atlas help", "help"),
    ("/atlas", "help"), ("/atlas frobnicate", "help"), ("/atlas progress", "progress"),
    ("see /atlas recheck", None), ("", None), (None, None), ("/atlasrecheck", None),
])
def test_command_of(body: str | None, command: str | None) -> None:
    assert command_of(body) == command


@pytest.mark.parametrize(("event", "payload", "key"), [
    ("pull_request", pr_payload("opened"), "pr:octo/atlas#7"),
    ("pull_request", pr_payload("ready_for_review"), "pr:octo/atlas#7"),
    ("pull_request", pr_payload("closed"), None),
    ("pull_request", pr_payload("labeled"), None),
    # Permission is checked by a job under no key; only an authorised recheck is queued under the PR's.
    ("issue_comment", comment_payload("/atlas recheck"), ""),
    ("issue_comment", comment_payload("/atlas recheck", on_pr=False), None),
    ("issue_comment", comment_payload("/atlas progress", on_pr=False), "progress:octo/atlas"),
    ("issue_comment", comment_payload("/atlas help", on_pr=False), ""),
    ("issue_comment", comment_payload("/atlas help", user_type="Bot"), None),
    ("issue_comment", comment_payload("LGTM"), None),
    ("issue_comment", {**comment_payload("/atlas help"), "action": "edited"}, None),
    ("push", {"ref": "refs/heads/main", "repository": {"full_name": "o/r", "default_branch": "main"}},
     "progress:o/r"),
    ("push", {"ref": "refs/heads/dev", "repository": {"full_name": "o/r", "default_branch": "main"}}, None),
    ("push", {"ref": "refs/heads/main", "deleted": True,
              "repository": {"full_name": "o/r", "default_branch": "main"}}, None),
    ("installation", {"action": "created", "installation": {"id": 1}}, ""),
    ("star", {"action": "created", "repository": {"full_name": "o/r"}}, None),
    ("pull_request", {"action": "opened", "number": 1}, None),
    ("pull_request", {"action": "opened", "repository": {"full_name": "o/r"}}, None),
])
def test_route(event: str, payload: dict, key: str | None) -> None:
    found = route(delivery(event, payload))
    if key is None:
        assert found is None
    else:
        assert found is not None and found.key == (key or None)


EXAMPLES = sorted(OCTOKIT.glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_octokit_example_is_handled_or_cleanly_ignored(path: Path) -> None:
    payload = json.loads(path.read_text())
    d = delivery(path.name.split(".")[0], payload)
    found = route(d)
    if found is None:
        return
    world = World()
    world.repo.known.add(str(payload.get("pull_request", {}).get("head", {}).get("sha")))
    outcome = found.handler(Context(delivery=d, services=world.services()))
    assert outcome.split(":")[0] in {"published", "skipped", "acknowledged", "progress-updated", "replied"}


# -- pull requests ----------------------------------------------------------------------------------------


def test_synchronize_fetches_pull_ref_checks_and_publishes_once() -> None:
    world = World()
    assert run(world, delivery("pull_request", pr_payload())) == "published"
    assert world.mirrors == [("octo/atlas", "https://example.test/octo/atlas.git", "tok")]
    assert world.repo.fetched == [["+refs/heads/main:refs/heads/main", "+refs/pull/7/head:refs/pull/7/head"]]
    assert world.checks == [{"base": "refs/heads/main", "head": HEAD}]
    assert world.client.named("read_file") == [("read_file", "main", ".github/atlas-bot.yml")]
    [publication] = world.publications
    assert publication["head_sha"] == HEAD
    assert publication["already_posted"] == frozenset({"f1"})
    assert publication["sources"] == {"docs/a.md": "# text\n"}
    assert world.client.named("publish") == [("publish", 7, {"publication": HEAD})]


def draft_pull(number: int = 7, head: str = HEAD, state: str = "open") -> SimpleNamespace:
    return SimpleNamespace(number=number, base_ref="main", head_sha=head, draft=True, state=state)


def test_draft_is_skipped_unless_configured() -> None:
    world = World(client=FakeRepoClient(pull=draft_pull()))
    assert run(world, delivery("pull_request", pr_payload(draft=True))) == "skipped:draft"
    assert world.client.named("publish") == []
    world.client.config_text = "review_drafts"
    assert run(world, delivery("pull_request", pr_payload(draft=True))) == "published"


def test_closed_pull_request_is_skipped() -> None:
    world = World(client=FakeRepoClient(pull=SimpleNamespace(number=7, base_ref="main", head_sha=HEAD,
                                                             draft=False, state="closed")))
    assert run(world, delivery("pull_request", pr_payload("reopened"))) == "skipped:closed"


def test_invalid_base_config_gives_a_neutral_check_naming_file_and_line() -> None:
    world = World(client=FakeRepoClient(config_text="bad"))
    assert run(world, delivery("pull_request", pr_payload())) == "neutral:config"
    [(_, sha, title, text)] = world.client.named("neutral")
    assert sha == HEAD
    assert "configuration" in title.lower()
    assert ".github/atlas-bot.yml, line 3" in text and "unknown key 'gatez'" in text
    assert world.checks == []


def test_head_gone_after_force_push_is_skipped() -> None:
    world = World(client=FakeRepoClient(pull=SimpleNamespace(number=7, base_ref="main", head_sha="c" * 40,
                                                             draft=False, state="open")))
    assert run(world, delivery("pull_request", pr_payload(head="c" * 40))) == "skipped:stale-head"
    assert world.client.named("publish") == []


def test_an_event_for_an_older_head_reviews_the_current_head() -> None:
    """Out of order: the event names head ``c``, but the pull request is at HEAD already."""
    world = World()
    assert run(world, delivery("pull_request", pr_payload(head="c" * 40))) == "published"
    assert world.checks == [{"base": "refs/heads/main", "head": HEAD}]
    assert world.client.named("publish") == [("publish", 7, {"publication": HEAD})]


def test_a_head_that_moves_while_the_gates_run_publishes_nothing() -> None:
    client = FakeRepoClient()
    client.publish = lambda number, publication: SimpleNamespace(writes=0, stale=True)  # type: ignore[method-assign]
    assert run(World(client=client), delivery("pull_request", pr_payload())) == "skipped:stale-head"


def test_recheck_by_a_writer_queues_a_review_under_the_pull_request_key() -> None:
    world = World()
    assert run(world, delivery("issue_comment", comment_payload("/atlas recheck"))) == "queued:recheck"
    assert world.client.named("permission") == [("permission", "alice")]
    assert world.checks == []
    [(follow_up, key)] = world.queued
    assert key == "pr:octo/atlas#7"
    assert (follow_up.id, follow_up.event, follow_up.installation_id) == ("d1:recheck", handlers.RECHECK_EVENT, 9)
    # What the queue stores is the payload; the restored delivery routes to the review of the current head.
    restored = Delivery.from_payload(follow_up.id, follow_up.event, json.loads(json.dumps(follow_up.payload)))
    assert route(restored).key == "pr:octo/atlas#7"
    world.client.pull = draft_pull()
    assert run(world, restored) == "published"  # a recheck reviews drafts too
    assert world.checks == [{"base": "refs/heads/main", "head": HEAD}]


@pytest.mark.parametrize("permission", ["read", "none", "triage"])
def test_recheck_without_write_access_is_answered_and_queues_nothing(permission: str) -> None:
    world = World(client=FakeRepoClient(permission_of=permission))
    assert run(world, delivery("issue_comment", comment_payload("/atlas recheck"))) == "refused:permission"
    assert world.queued == [] and world.checks == [] and world.client.named("publish") == []
    [(_, number, body)] = world.client.named("post_comment")
    assert number == 7 and "@alice" in body and "write access" in body


@pytest.mark.parametrize(("event", "payload"), [
    ("issue_comment", {**comment_payload("/atlas recheck"), "comment": {"body": "/atlas recheck",
                                                                     "user": {"login": 5, "type": "User"}}}),
    ("issue_comment", {**comment_payload("/atlas help", on_pr=False), "issue": {"number": "7"}}),
    ("push", {"ref": "refs/heads/main", "installation": {"id": 9},
              "repository": {"full_name": "octo/atlas", "clone_url": 5, "default_branch": "main"}}),
])
def test_a_malformed_payload_is_a_permanent_error(event: str, payload: dict) -> None:
    from bot.github.transport import PermanentError

    with pytest.raises(PermanentError, match="payload field"):
        run(World(), delivery(event, payload))


def test_help_replies_in_the_thread() -> None:
    world = World()
    assert run(world, delivery("issue_comment", comment_payload("/atlas help", on_pr=False))) == "replied:help"
    assert world.client.named("post_comment") == [("post_comment", 7, HELP_TEXT)]


# -- progress and installations ---------------------------------------------------------------------------


def test_push_to_default_branch_updates_progress_at_the_branch_tip() -> None:
    world = World()
    push = {"ref": "refs/heads/main", "after": "f" * 40, "installation": {"id": 9},
            "repository": {"full_name": "octo/atlas", "clone_url": "u", "default_branch": "main"}}
    assert run(world, delivery("push", push)) == "progress-updated"
    [job] = world.progress
    assert (job.repository, job.default_branch, job.head_sha, job.reason) == ("octo/atlas", "main", BASE, "push")
    assert job.repo is world.repo and job.client is world.client
    assert world.repo.fetched == [["+refs/heads/main:refs/heads/main"]]


def test_progress_command_and_missing_updater() -> None:
    world = World()
    d = delivery("issue_comment", comment_payload("/atlas progress", on_pr=False))
    assert run(world, d) == "progress-updated"
    assert world.progress[0].reason == "comment"
    assert run(World(), d, with_progress=False) == "skipped:no-progress-updater"


def reopened_payload(*, author: str = "Bot", sender: str = "User", body: str | None = None) -> dict:
    """GitHub's own `issues` reopened example, turned into the bot's progress issue reopened by ``sender``."""
    payload = json.loads((OCTOKIT / "issues.20.reopened.json").read_text())
    payload["issue"]["user"]["type"] = author
    payload["issue"]["body"] = body if body is not None else f"Progress\n{REGION_START}\n|table|\n{REGION_END}\n"
    payload["sender"]["type"] = sender
    return payload


def test_a_person_reopening_the_progress_issue_brings_it_up_to_date() -> None:
    world = World()
    d = delivery("issues", reopened_payload())
    found = route(d)
    assert found is not None and found.key == PROGRESS_KEY.format(repo=d.repository)
    assert run(world, d) == "progress-updated"
    assert [job.reason for job in world.progress] == ["reopened"]


@pytest.mark.parametrize("payload", [
    reopened_payload(sender="Bot"),  # the bot reopened it itself (when_closed: reopen)
    reopened_payload(author="User"),  # a person's issue that quotes the marker
    reopened_payload(body="An ordinary bug report"),
], ids=["bot-reopened", "person-authored", "no-marker"])
def test_other_reopened_issues_are_ignored(payload: dict) -> None:
    assert route(delivery("issues", payload)) is None


def test_progress_with_invalid_config_is_skipped() -> None:
    world = World(client=FakeRepoClient(config_text="bad"))
    assert run(world, delivery("issue_comment", comment_payload("/atlas progress"))) == "skipped:config"
    assert world.progress == []


def test_installation_is_acknowledged() -> None:
    payload = {"action": "added", "installation": {"id": 5, "account": {"login": "octo"}},
               "repositories_added": [{"full_name": "octo/atlas"}], "repositories_removed": []}
    assert run(World(), delivery("installation_repositories", payload)) == "acknowledged"


@pytest.mark.parametrize(("event", "payload", "removed"), [
    ("installation_repositories", {"action": "removed", "installation": {"id": 5, "account": {"login": "octo"}},
                                   "repositories_added": [], "repositories_removed": [{"full_name": "octo/atlas"}]},
     ["octo/atlas"]),
    # Installed on all repositories: the deletion lists none, so every mirror of the account goes.
    ("installation", {"action": "deleted", "installation": {"id": 5, "account": {"login": "octo"}}},
     ["octo/atlas", "octo/docs"]),
    ("installation", {"action": "deleted", "installation": {"id": 5, "account": {"login": "octo"}},
                      "repositories": [{"full_name": "octo/new"}]}, ["octo/atlas", "octo/docs", "octo/new"]),
])
def test_uninstalled_repositories_lose_their_mirrors(event: str, payload: dict, removed: list[str]) -> None:
    gone: list[str] = []
    services = World().services()
    services.mirrors = lambda: ["acme/atlas", "octo/atlas", "octo/docs"]
    services.remove_mirror = gone.append
    d = delivery(event, payload)
    assert route(d).handler(Context(delivery=d, services=services)) == f"removed:{len(removed)}"
    assert sorted(gone) == removed


def test_call_tally_counts_writes_and_forwards() -> None:
    seen: list[tuple[str, int]] = []
    tally = CallTally(forward=lambda e, s: seen.append((e, s)))
    tally("GET /repos/{owner}/{repo}", 200)
    tally("POST /repos/{owner}/{repo}/check-runs", 201)
    tally("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", 200)
    assert (tally.calls, tally.writes) == (3, 2)
    assert len(seen) == 3


def test_context_makes_one_client_per_job() -> None:
    made: list[str] = []
    services = World().services()
    services.repo_client = lambda inst, name, on_call: made.append(name) or FakeRepoClient()
    ctx = Context(delivery=delivery("pull_request", pr_payload()), services=services)
    assert ctx.client() is ctx.client()
    assert made == ["octo/atlas"]


def test_routes_cover_the_subscribed_events() -> None:
    events = {event for event, _ in handlers.ROUTES} - {handlers.RECHECK_EVENT}  # queued by the bot itself
    assert events == {"pull_request", "issue_comment", "push", "issues", "installation", "installation_repositories",
                      "check_run", "check_suite"}
