"""What the App does for each webhook: the (event, action) → handler table and the short handlers themselves.

Each handler is fetch → compute → publish. Everything that talks to the outside (GitHub, git, the mermaid
pool, the progress updater) arrives in ``Services``, so tests hand in fakes and the worker hands in the real
clients. ``route()`` also decides, before anything is queued, whether a delivery is worth a job at all
(pushes to other branches, ordinary comments and bots' own comments are acknowledged and dropped) and which
key serialises and coalesces it: one pull request's reviews, one repository's progress issue.

Two rules keep a pull request showing its newest head whatever order events arrive in. A review job reviews
the head the pull request has *now* (read from the API), not the one its event named, so a late event for an
older head re-checks the newest one (which writes nothing when it is already published); and the publisher
writes nothing when the head moved on while the gates ran (the newer head's job is queued behind this one).
A ``/atlas recheck`` is queued under no key at first: only once its author is known to have write access is
the review itself queued under the pull request's key, so an unauthorised command never supersedes a queued
``synchronize``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.changes import texts_at
from bot.config import ConfigError
from bot.github.transport import PermanentError
from bot.gitrepo import GitError
from bot.progress import REGION_START
from bot.webhooks import Delivery

log = logging.getLogger(__name__)

REPO_CONFIG_PATH = ".github/atlas-bot.yml"
REVIEW_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")
INSTALLATION_EVENTS = ("installation", "installation_repositories")
# The Checks tab's "Re-run" on the bot's check run, or on the whole suite.
RERUN_EVENTS = ("check_run", "check_suite")
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
COMMAND_RE = re.compile(r"^\s*/atlas(?:\s+(?P<command>[A-Za-z-]+))?\s*$", re.MULTILINE | re.IGNORECASE)
PR_KEY = "pr:{repo}#{number}"
# Not a GitHub event: the review an authorised /atlas recheck queues under the pull request's key.
RECHECK_EVENT = "atlas_recheck"
RECHECK_REFUSED = ("@{login} `/atlas recheck` needs write access to this repository; a maintainer can run it, "
                   "and every push is checked anyway.")
PROGRESS_KEY = "progress:{repo}"
NEUTRAL_TITLE = "Invalid atlas-bot configuration"
NEUTRAL_TEXT = (
    "The configuration on the base branch could not be read, so no gate ran.\n\n"
    "**{source}{line}**: {reason}\n\n"
    "Fix `{source}` on the base branch; the check runs again on the next push or on `/atlas recheck`."
)
HELP_TEXT = (
    "**atlas-bot** checks the mermaid diagrams this pull request adds or changes against the quality gates "
    "and keeps one summary comment, labels and the *Atlas quality gates* check up to date.\n\n"
    "Commands (one per comment):\n"
    "- `/atlas recheck`: run the gates again on the current head (needs write access)\n"
    "- `/atlas progress`: refresh the repository's progress issue\n"
    "- `/atlas help`: this message\n\n"
    "Configuration is read from `" + REPO_CONFIG_PATH + "` on the base branch."
)


class MalformedPayload(PermanentError, ValueError):
    """A field the handler needs is missing or of the wrong type: retrying the delivery cannot help."""


def payload_field(payload: Mapping[str, Any], *path: str, kind: type = str) -> Any:
    """``payload[path[0]][path[1]]...`` checked to be a ``kind`` (a bool is no int)."""
    value: Any = payload
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedPayload(f"payload field {'.'.join(path)} is not a {kind.__name__}")
    return value


class RepoClientLike(Protocol):
    """The part of ``bot.github.RepoClient`` the handlers use."""

    def pull_request(self, number: int) -> Any: ...

    def pr_patches(self, number: int) -> dict[str, str]: ...

    def posted_fingerprints(self, number: int) -> frozenset[str]: ...

    def read_file(self, ref: str, path: str) -> str | None: ...

    def permission(self, login: str) -> str: ...

    def publish(self, number: int, publication: Any) -> Any: ...

    def post_comment(self, number: int, body: str) -> Any: ...

    def publish_neutral_check(self, head_sha: str, title: str, text: str) -> Any: ...


@dataclass(frozen=True)
class PullTarget:
    """The pull request head to review, from the webhook payload or (for a recheck) from the API."""

    number: int
    base_ref: str
    head_sha: str
    draft: bool


@dataclass(frozen=True)
class ProgressJob:
    """What the progress updater is handed: the repository at its default branch, its config and client."""

    repository: str
    default_branch: str
    head_sha: str
    reason: str
    config: Any
    repo: Any
    client: RepoClientLike


@dataclass
class Services:
    """The outside world, injected: GitHub, git mirrors, the mermaid pool, the engine and the progress updater.

    ``repo_client(installation_id, full_name, on_call)`` returns a client whose every call reports
    ``(endpoint, status)`` to ``on_call``; ``git_token(installation_id)`` the token git fetches with;
    ``mirror(full_name, clone_url, token)`` a ``GitRepo`` mirror.
    ``enqueue(delivery, key)`` puts a follow-up job in the job queue; ``mirrors()`` lists the git mirrors and
    ``remove_mirror(full_name)`` deletes one.
    """

    repo_client: Callable[[int | None, str, Callable[[str, int], None]], RepoClientLike]
    git_token: Callable[[int | None], str | None]
    mirror: Callable[[str, str, str | None], Any]
    pool: Any
    load_config: Callable[..., Any]
    run_check: Callable[..., Any]
    build_publication: Callable[..., Any]
    update_progress: Callable[[ProgressJob], Any] | None = None
    # (delivery, key): queue a follow-up job (the review of an authorised /atlas recheck).
    enqueue: Callable[[Delivery, str | None], Any] | None = None
    # The git mirrors kept ("owner/name"), and removing one when the App is uninstalled from its repository.
    mirrors: Callable[[], list[str]] | None = None
    remove_mirror: Callable[[str], Any] | None = None


@dataclass
class CallTally:
    """GitHub calls made for one job (the ``on_call`` of its client): total and content-changing writes."""

    calls: int = 0
    writes: int = 0
    forward: Callable[[str, int], None] | None = None

    def __call__(self, endpoint: str, status: int) -> None:
        self.calls += 1
        if not endpoint.upper().startswith(("GET ", "HEAD ")):
            self.writes += 1
        if self.forward is not None:
            self.forward(endpoint, status)


@dataclass
class Context:
    """One job's view: the delivery, the services and the tally its GitHub calls are counted in.

    ``still_mine()`` is the worker's cheap check that the job still holds its lease; code about to write to
    GitHub asks it first (every write slot does) and stops with ``bot.coordination.LeaseLost`` when not.
    """

    delivery: Delivery
    services: Services
    tally: CallTally = field(default_factory=CallTally)
    github: RepoClientLike | None = None
    still_mine: Callable[[], bool] = field(default=lambda: True)

    @property
    def payload(self) -> Mapping[str, Any]:
        return self.delivery.payload

    def client(self) -> RepoClientLike:
        """The job's one client for the delivery's repository (one transport: listings are reused)."""
        if self.github is None:
            self.github = self.services.repo_client(self.delivery.installation_id, str(self.delivery.repository),
                                                    self.tally)
        return self.github

    def fetch(self, *refs: str) -> Any:
        """The repository's git mirror with ``refs`` fetched into it under their own names."""
        token = self.services.git_token(self.delivery.installation_id)
        repo = self.services.mirror(str(self.delivery.repository),
                                    payload_field(self.payload, "repository", "clone_url"), token)
        repo.fetch([f"+{ref}:{ref}" for ref in refs], token)
        return repo


Handler = Callable[[Context], str]


@dataclass(frozen=True)
class Route:
    """A delivery worth a job: its handler and the key that serialises and coalesces it (None: neither)."""

    handler: Handler
    key: str | None


# -- routing -------------------------------------------------------------------------------------------------


def command_of(body: str | None) -> str | None:
    """The ``/atlas <command>`` a comment asks for (lower case; ``help`` for a bare or unknown one)."""
    match = COMMAND_RE.search(body or "")
    if match is None:
        return None
    command = (match.group("command") or "help").lower()
    return command if command in COMMANDS else "help"


def route(delivery: Delivery) -> Route | None:
    """The handler and key for a delivery, or None when the bot has nothing to do with it."""
    handler = ROUTES.get((delivery.event, delivery.action)) or ROUTES.get((delivery.event, None))
    if handler is None or (delivery.repository is None and delivery.event not in INSTALLATION_EVENTS):
        return None
    payload = delivery.payload
    if delivery.event in ("pull_request", RECHECK_EVENT, *RERUN_EVENTS):
        number = pr_number(delivery)
        if number is None:
            return None  # a re-run of a check with no pull request of this repository behind it (a fork's head)
        return Route(handler, PR_KEY.format(repo=delivery.repository, number=number))
    if delivery.event == "push":
        default = payload.get("repository", {}).get("default_branch")
        if payload.get("deleted") or payload.get("ref") != f"refs/heads/{default}":
            return None
        return Route(handler, PROGRESS_KEY.format(repo=delivery.repository))
    if delivery.event == "issues":
        issue = payload.get("issue") or {}
        if (issue.get("user") or {}).get("type") != "Bot" or REGION_START not in (issue.get("body") or ""):
            return None  # only the bot's own progress issue: a person's issue quoting the marker is not it
        if (payload.get("sender") or {}).get("type") == "Bot":
            return None  # the bot reopening it (when_closed: reopen) already wrote the current numbers
        return Route(handler, PROGRESS_KEY.format(repo=delivery.repository))
    if delivery.event == "issue_comment":
        comment = payload.get("comment") or {}
        if (comment.get("user") or {}).get("type") == "Bot":
            return None  # never answer a bot, ourselves included
        command = command_of(comment.get("body"))
        if command is None:
            return None
        if command == "recheck" and delivery.pr_number is None:
            return None  # a recheck in an ordinary issue has no pull request to review
        if command == "progress":
            return Route(handler, PROGRESS_KEY.format(repo=delivery.repository))
        return Route(handler, None)
    return Route(handler, None)


def pr_number(delivery: Delivery) -> int | None:
    """The pull request a review job is for (a queued recheck carries it as the payload's ``number``)."""
    if delivery.event == RECHECK_EVENT:
        number = delivery.payload.get("number")
        return number if isinstance(number, int) and not isinstance(number, bool) else None
    if delivery.event in RERUN_EVENTS:
        return rerun_pull_number(delivery.event, delivery.payload)
    return delivery.pr_number


# -- pull requests -------------------------------------------------------------------------------------------


def on_pull_request(ctx: Context) -> str:
    """opened / synchronize / reopened / ready_for_review: review the pull request's current head."""
    pull = ctx.payload.get("pull_request")
    head = pull.get("head") if isinstance(pull, dict) else None
    return review_current_head(ctx, named=head.get("sha") if isinstance(head, dict) else None)


def on_authorised_recheck(ctx: Context) -> str:
    """The review an authorised ``/atlas recheck`` queued: the current head again, drafts included."""
    return review_current_head(ctx, recheck=True)


def review_current_head(ctx: Context, *, named: str | None = None, recheck: bool = False) -> str:
    """Review the head the pull request has now: an event delivered late may name an older one."""
    info = ctx.client().pull_request(int(pr_number(ctx.delivery) or 0))
    if info.state == "closed":
        return "skipped:closed"
    if named is not None and named != info.head_sha:
        log.info("event names head %s, the pull request is at %s now: reviewing that", str(named)[:12],
                 info.head_sha[:12])
    target = PullTarget(number=info.number, base_ref=info.base_ref, head_sha=info.head_sha, draft=info.draft)
    return review(ctx, target, recheck=recheck)


def on_recheck(ctx: Context) -> str:
    """``/atlas recheck``: from someone with write access, queue a review of the current head under the pull
    request's key; from anyone else, a short reply and nothing queued."""
    client = ctx.client()
    login = payload_field(ctx.payload, "comment", "user", "login")
    number = int(ctx.delivery.pr_number or 0)
    permission = client.permission(login)
    if permission not in WRITE_PERMISSIONS:
        log.info("recheck by %s refused: permission %r is not write", login, permission)
        client.post_comment(number, RECHECK_REFUSED.format(login=login))
        return "refused:permission"
    if ctx.services.enqueue is None:
        raise RuntimeError("no job queue to put the recheck in")
    delivery = ctx.delivery
    follow_up = Delivery(
        id=f"{delivery.id}:recheck", event=RECHECK_EVENT, action=None,
        payload={"number": number, "repository": delivery.payload["repository"],
                 "installation": {"id": delivery.installation_id}, "sender": {"login": login}},
        installation_id=delivery.installation_id, repository=delivery.repository)
    ctx.services.enqueue(follow_up, PR_KEY.format(repo=delivery.repository, number=number))
    return "queued:recheck"


def rerun_pull_number(event: str, payload: Mapping[str, Any]) -> int | None:
    """The pull request a check_run / check_suite event belongs to (GitHub lists none for a fork's head)."""
    pulls = (payload.get(event) or {}).get("pull_requests") or []
    number = pulls[0].get("number") if pulls and isinstance(pulls[0], dict) else None
    return number if isinstance(number, int) and not isinstance(number, bool) else None


def on_rerun(ctx: Context) -> str:
    """check_run / check_suite ``rerequested`` ("Re-run" in the Checks tab): review the current head again."""
    return review_current_head(ctx, recheck=True)


def review(ctx: Context, target: PullTarget, *, recheck: bool = False) -> str:
    """Fetch base and head into the mirror, run the gates on the diff, publish the difference."""
    services, client = ctx.services, ctx.client()
    try:
        config = load_repo_config(services, client, target.base_ref)
    except ConfigError as exc:
        client.publish_neutral_check(target.head_sha, NEUTRAL_TITLE, neutral_text(exc))
        log.warning("invalid configuration on %s: %s", target.base_ref, exc)
        return "neutral:config"
    if target.draft and not recheck and not config.review.review_drafts:
        return "skipped:draft"
    started = time.monotonic()
    base_ref = f"refs/heads/{target.base_ref}"
    pull_ref = f"refs/pull/{target.number}/head"
    # refs/pull/N/head lives in the base repository, so fork pull requests need no access to the fork.
    repo = ctx.fetch(base_ref, pull_ref)
    fetched = time.monotonic()
    try:
        repo.resolve(target.head_sha)
    except GitError:
        # A force-push removed this head; the event for the new head is (or will be) queued behind us.
        log.info("head %s is gone from %s; a newer push replaced it", target.head_sha, pull_ref)
        return "skipped:stale-head"
    result = services.run_check(repo, config, services.pool, base=base_ref, head=target.head_sha)
    checked = time.monotonic()
    publication = services.build_publication(
        result, config, pr_patches=client.pr_patches(target.number), head_sha=target.head_sha,
        sources=texts_at(repo, target.head_sha, (f.path for f in result.findings)),
        already_posted=client.posted_fingerprints(target.number),
        repository_url=(ctx.payload.get("repository") or {}).get("html_url"),
    )
    report = client.publish(target.number, publication)
    if getattr(report, "stale", False):
        return "skipped:stale-head"
    log.info("published review of %s: %d diagrams, %d findings, %s writes (git %.0f ms, check %.0f ms, "
             "publish %.0f ms)", target.head_sha[:12], len(result.diagrams), len(result.findings),
             getattr(report, "writes", "?"), (fetched - started) * 1000, (checked - fetched) * 1000,
             (time.monotonic() - checked) * 1000)
    return "published"


def load_repo_config(services: Services, client: RepoClientLike, base_ref: str) -> Any:
    """Rules defaults ← ``.github/atlas-bot.yml`` on the base branch (never the PR head: no self-exemption)."""
    text = client.read_file(base_ref, REPO_CONFIG_PATH)
    return services.load_config(repo_config_text=text, repo_config_source=REPO_CONFIG_PATH)


def neutral_text(exc: ConfigError) -> str:
    """The neutral check's text: which file, which line, what is wrong."""
    line = exc.line
    return NEUTRAL_TEXT.format(source=exc.source or REPO_CONFIG_PATH, line=f", line {line}" if line else "",
                               reason=exc.reason)


# -- comments, pushes, installations -------------------------------------------------------------------------


def on_comment(ctx: Context) -> str:
    """A new comment with an ``/atlas`` command: run that command."""
    command = command_of((ctx.payload.get("comment") or {}).get("body")) or "help"
    return COMMANDS[command](ctx)


def on_help(ctx: Context) -> str:
    """``/atlas help`` (or an unknown command): a short answer in the same thread."""
    ctx.client().post_comment(payload_field(ctx.payload, "issue", "number", kind=int), HELP_TEXT)
    return "replied:help"


def on_push(ctx: Context) -> str:
    """Push to the default branch (a merge): bring the progress issue up to date."""
    return update_progress(ctx, reason="push")


def on_progress_command(ctx: Context) -> str:
    """``/atlas progress``: refresh the progress issue now."""
    return update_progress(ctx, reason="comment")


def on_progress_issue_reopened(ctx: Context) -> str:
    """A person reopened the progress issue: with ``when_closed: leave`` it stood still while closed, so it is
    brought up to date now rather than at the next merge."""
    return update_progress(ctx, reason="reopened")


def update_progress(ctx: Context, *, reason: str) -> str:
    """Fetch the default branch and hand the newest state to the progress updater (serialised per repo)."""
    services = ctx.services
    branch = payload_field(ctx.payload, "repository", "default_branch")
    if services.update_progress is None:
        log.info("no progress updater configured; %s on %s ignored", reason, branch)
        return "skipped:no-progress-updater"
    client = ctx.client()
    try:
        config = load_repo_config(services, client, branch)
    except ConfigError as exc:
        log.warning("progress not updated, invalid configuration: %s", exc)
        return "skipped:config"
    ref = f"refs/heads/{branch}"
    repo = ctx.fetch(ref)
    # The branch tip, not the pushed sha: jobs for this repo are coalesced, so the newest state is what counts.
    head = repo.resolve(ref)
    services.update_progress(ProgressJob(repository=str(ctx.delivery.repository), default_branch=branch,
                                         head_sha=head, reason=reason, config=config, repo=repo, client=client))
    return "progress-updated"


def on_installation(ctx: Context) -> str:
    """installation / installation_repositories: note it (tokens are fetched on demand) and delete the git
    mirrors of the repositories the App no longer has access to."""
    payload, services = ctx.payload, ctx.services
    account = ((payload.get("installation") or {}).get("account") or {}).get("login")
    repos = _full_names(payload, "repositories", "repositories_added")
    removed = _full_names(payload, "repositories_removed")
    log.info("installation %s by %s: %s; repositories %s; removed %s", ctx.delivery.action, account,
             ctx.delivery.installation_id, repos, removed)
    if ctx.delivery.event == "installation" and ctx.delivery.action == "deleted":
        # An installation on all repositories lists none: every mirror of the account goes.
        owned = [m for m in (services.mirrors() if services.mirrors else ()) if m.split("/")[0] == account]
        removed = sorted({*repos, *owned})
    if not removed or services.remove_mirror is None:
        return "acknowledged"
    for full_name in removed:
        try:
            services.remove_mirror(full_name)
        except GitError as exc:
            log.warning("mirror of %s not removed: %s", full_name, exc)
    return f"removed:{len(removed)}"


def _full_names(payload: Mapping[str, Any], *keys: str) -> list[str]:
    return [r["full_name"] for key in keys for r in payload.get(key) or ()
            if isinstance(r, Mapping) and isinstance(r.get("full_name"), str)]


COMMANDS: dict[str, Handler] = {"recheck": on_recheck, "help": on_help, "progress": on_progress_command}

# (event, action) → handler; action None matches every action of the event.
ROUTES: dict[tuple[str, str | None], Handler] = {
    **{("pull_request", action): on_pull_request for action in REVIEW_ACTIONS},
    (RECHECK_EVENT, None): on_authorised_recheck,
    ("issue_comment", "created"): on_comment,
    ("push", None): on_push,
    ("issues", "reopened"): on_progress_issue_reopened,
    ("installation", None): on_installation,
    ("installation_repositories", None): on_installation,
    **{(event, "rerequested"): on_rerun for event in RERUN_EVENTS},
}
