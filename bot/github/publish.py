"""Publishing a :class:`~bot.review.Publication` on a pull request as a difference against what it shows.

Reads come first (the pull request, the bot's reviews, the conversation, the head's check runs), then only what
differs is written. Nothing at all is written when the pull request's head is no longer the head the
publication was computed for: the job for the newer head is queued behind this one, and writing now would
show a stale verdict and minimise the newer head's still-valid comments. Otherwise, in this order:

1. **check run** "Atlas quality gates" on the head: skipped when a run there already carries the digest of the
   same output; otherwise a new run (annotations go 50 per request: the create carries the first 50, each
   further 50 cost one update). A changed result on the same head gets a new run rather than an update,
   because an update *appends* annotations to the old ones.
2. **review**: only findings whose fingerprint no earlier bot review carries; nothing new → no review. Once no
   blocking finding is left, the bot's reviews that requested changes are dismissed (one request each), so
   they no longer block the merge.
3. **fixed findings**: the bot's inline comments whose fingerprint is gone are minimised as OUTDATED with
   GraphQL ``minimizeComment``. Minimising rather than replying "Fixed in <sha>": any number of comments are
   minimised by one request (aliased mutations), where replies cost one write each and notify everyone in the
   thread; a minimised comment stays one click away. REST does not say whether a comment is minimised, so the
   sticky summary keeps a hidden list of the fingerprints already marked, which is what makes a re-run write
   nothing. A finding whose comment GitHub did not minimise stays off that list and is tried again next run.
4. **sticky summary** comment, found by its hidden marker: created once, edited only when its text changed.
5. **labels** as a set difference (only ``atlas:`` labels are ever removed): one request adding the missing
   ones, one per label removed. Never the whole set replaced: a label a person adds meanwhile survives.
   Missing repository labels are created with colour and description first.

A POST that got no answer is looked for before it is sent again, by what makes it this very write: the review
by its head commit and body, the check run by an ``external_id`` unique to the attempt; an annotation update
(which appends) by the run's annotation count.

Write budget on a new head: 1 check run + 1 review + 1 minimise + 1 summary + 1 label added + 1 per label
removed (usually 1), whatever the number of findings, plus one check-run update per 50 annotations beyond the
first 50, once per repository one request per label that does not exist yet, and one dismissal per review that
requested changes once its findings are fixed. A re-run on an unchanged head writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.github.transport import GitHubError, NotFound
from bot.review import (
    ANNOTATIONS_PER_REQUEST,
    BOT_LABEL_PREFIX,
    CHECK_SUMMARY_LIMIT,
    COMMENT_BODY_LIMIT,
    REVIEW_MARKER,
    SUMMARY_MARKER,
    CheckRunDraft,
    InlineComment,
    Publication,
    cap_text,
    fingerprints_in,
)

if TYPE_CHECKING:
    from bot.github.client import RepoClient

PULL = "/repos/{owner}/{repo}/pulls/{pull_number}"
REVIEWS = PULL + "/reviews"
REVIEW_DISMISSALS = REVIEWS + "/{review_id}/dismissals"
REVIEW_COMMENTS = PULL + "/comments"
ISSUE_COMMENTS = "/repos/{owner}/{repo}/issues/{issue_number}/comments"
ISSUE_COMMENT = "/repos/{owner}/{repo}/issues/comments/{comment_id}"
ISSUE_LABELS = "/repos/{owner}/{repo}/issues/{issue_number}/labels"
ISSUE_LABEL = ISSUE_LABELS + "/{name}"
REPO_LABELS = "/repos/{owner}/{repo}/labels"
CHECK_RUNS = "/repos/{owner}/{repo}/check-runs"
CHECK_RUN = CHECK_RUNS + "/{check_run_id}"
COMMIT_CHECK_RUNS = "/repos/{owner}/{repo}/commits/{ref}/check-runs"

MINIMIZE_PER_REQUEST = 50
MINIMIZE_CLASSIFIER = "OUTDATED"
BOT_USER_TYPE = "Bot"
CHANGES_REQUESTED = "CHANGES_REQUESTED"
DISMISS_MESSAGE = "No blocking finding is left at {sha}; this review no longer requests changes."
RESOLVED_COMMENT = "<!-- atlas-bot:resolved {} -->"
CHECK_DIGEST_COMMENT = "<!-- atlas-bot:check-run {} -->"
MISPLACED_HEADING = "**Comments GitHub would not place on the diff**"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishReport:
    """Requests one publish sent (attempts, retries included) and what it changed, for logs and benchmarks."""

    writes: int
    reads: int
    actions: tuple[str, ...] = ()
    stale: bool = False  # the pull request's head moved on: nothing was written


@dataclass(frozen=True)
class _Posted:
    """What the bot already shows on a pull request."""

    fingerprints: frozenset[str]  # in the bot's reviews
    resolved: frozenset[str]  # already marked fixed (hidden list in the summary)
    summary: dict[str, Any] | None  # the sticky summary comment
    requesting_changes: tuple[int, ...] = ()  # ids of the bot's reviews that still request changes

    @property
    def live(self) -> frozenset[str]:
        """Posted and not marked fixed: a finding among these is not posted again."""
        return self.fingerprints - self.resolved


# ------------------------------------------------------------------------------------------------- entry points


def posted_fingerprints(repo: RepoClient, number: int) -> frozenset[str]:
    """Fingerprints already posted on the PR and not marked fixed (``build_publication(already_posted=...)``).

    The listings read here are kept for the :func:`publish_pull` of the same pull request that follows.
    """
    return _read_posted(repo, number, keep=True).live


def publish_pull(repo: RepoClient, number: int, publication: Publication) -> PublishReport:
    """Make pull request ``number`` show ``publication``, writing only the difference (see the module doc)."""
    actions: list[str] = []
    head_sha = publication.check_run.head_sha
    with repo.transport.tally() as tally:
        # Read now rather than taken from the job's start: the head may have moved while the gates ran.
        pull = repo.pull_request(number)
        if pull.head_sha != head_sha:
            log.info("%s#%d: head is %s now, not %s; publishing nothing", repo.full_name, number,
                     pull.head_sha[:12], head_sha[:12])
            return PublishReport(writes=tally.writes, reads=tally.reads, actions=("stale head",), stale=True)
        posted = _read_posted(repo, number, keep=False)
        _sync_check_run(repo, publication.check_run, actions)
        if publication.review is not None:
            _post_review(repo, number, publication, posted, actions)
        _dismiss_fixed_requests(repo, number, publication, posted, actions)
        resolved = _mark_fixed(repo, number, publication, posted, actions)
        _sync_summary(repo, number, publication.summary, resolved, posted.summary, actions)
        _sync_labels(repo, number, pull.labels, publication, actions)
    report = PublishReport(writes=tally.writes, reads=tally.reads, actions=tuple(actions))
    log.info("published %s#%d at %s: %d writes, %d reads (%s)", repo.full_name, number,
             publication.check_run.head_sha[:12], report.writes, report.reads, "; ".join(actions))
    return report


def publish_check_run(repo: RepoClient, draft: CheckRunDraft) -> PublishReport:
    """Only the check run (e.g. the neutral one for an invalid configuration), unless it is already there."""
    actions: list[str] = []
    with repo.transport.tally() as tally:
        _sync_check_run(repo, draft, actions)
    return PublishReport(writes=tally.writes, reads=tally.reads, actions=tuple(actions))


# ------------------------------------------------------------------------------------------------------- reads


def _read_posted(repo: RepoClient, number: int, *, keep: bool) -> _Posted:
    reviews = _cached_list(repo, REVIEWS, {"pull_number": number}, keep=keep)
    comments = _cached_list(repo, ISSUE_COMMENTS, {"issue_number": number}, keep=keep)
    fingerprints: set[str] = set()
    requesting: list[int] = []
    for review in _by_bot(reviews, REVIEW_MARKER):
        fingerprints |= fingerprints_in(review["body"])
        if review.get("state") == CHANGES_REQUESTED:
            requesting.append(int(review["id"]))
    summary = next(_by_bot(comments, SUMMARY_MARKER), None)
    resolved = _resolved_in(summary["body"]) if summary else frozenset()
    return _Posted(frozenset(fingerprints), resolved, summary, tuple(requesting))


def _cached_list(repo: RepoClient, template: str, params: dict[str, Any], *, keep: bool) -> list[Any]:
    key = (template, *params.values())
    cached = repo.listing_cache.pop(key, None)
    items = cached if cached is not None else repo.list(template, params)
    if keep:
        repo.listing_cache[key] = items
    return items


def _is_bot(item: dict[str, Any]) -> bool:
    return (item.get("user") or {}).get("type") == BOT_USER_TYPE


def _by_bot(items: Iterable[dict[str, Any]], marker: str) -> Iterator[dict[str, Any]]:
    """The bot's items whose body carries ``marker`` (a person quoting the marker does not count)."""
    return (item for item in items if _is_bot(item) and marker in (item.get("body") or ""))


def _resolved_in(body: str) -> frozenset[str]:
    prefix, suffix = RESOLVED_COMMENT.split("{}")
    start = body.find(prefix)
    if start < 0:
        return frozenset()
    end = body.find(suffix, start + len(prefix))
    return frozenset(body[start + len(prefix): end].split()) if end >= 0 else frozenset()


# ------------------------------------------------------------------------------------------------ check run


def check_digest(draft: CheckRunDraft) -> str:
    """A short hash of everything the run shows, so an identical run is recognised without its annotations."""
    content = json.dumps([draft.name, draft.conclusion, draft.title, draft.summary, list(draft.annotations)],
                         sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def _sync_check_run(repo: RepoClient, draft: CheckRunDraft, actions: list[str]) -> None:
    marker = CHECK_DIGEST_COMMENT.format(check_digest(draft))
    runs = _head_check_runs(repo, draft)
    if any(marker in _run_summary(run) for run in runs):
        actions.append("check run: unchanged")
        return
    batches = _chunks(draft.annotations, ANNOTATIONS_PER_REQUEST) or [()]
    # The digest goes in with the last batch, so a run left half-annotated by a crash is never taken as done.
    final_summary = cap_text(draft.summary, CHECK_SUMMARY_LIMIT - len(marker) - 2) + "\n\n" + marker

    def output(index: int) -> dict[str, Any]:
        last = index == len(batches) - 1
        return {"title": draft.title, "summary": final_summary if last else draft.summary,
                "annotations": list(batches[index])}

    # Unique to this write, so that confirming a lost POST can only ever find this very run.
    external_id = f"atlas-bot-{secrets.token_hex(8)}"
    created = repo.call(
        "POST", CHECK_RUNS,
        body={"name": draft.name, "head_sha": draft.head_sha, "status": "completed",
              "conclusion": draft.conclusion, "external_id": external_id, "output": output(0)},
        confirm=lambda: next((r for r in _head_check_runs(repo, draft) if r.get("external_id") == external_id),
                             None),
    ).data
    for index in range(1, len(batches)):
        # An update appends its annotations, so a lost answer is confirmed by the run's count, never resent.
        expected = min(ANNOTATIONS_PER_REQUEST * (index + 1), len(draft.annotations))
        repo.call("PATCH", CHECK_RUN, {"check_run_id": created["id"]}, body={"output": output(index)},
                  idempotent=False, confirm=lambda want=expected: _run_with(repo, draft, created["id"], want))
    actions.append(f"check run: {draft.conclusion}, {len(draft.annotations)} annotations "
                   f"in {len(batches)} request{'s' if len(batches) > 1 else ''}")


def _run_with(repo: RepoClient, draft: CheckRunDraft, run_id: int, annotations: int) -> dict[str, Any] | None:
    """The run ``run_id`` once it carries at least ``annotations`` annotations."""
    return next((r for r in _head_check_runs(repo, draft)
                 if r.get("id") == run_id and (r.get("output") or {}).get("annotations_count", 0) >= annotations),
                None)


def _head_check_runs(repo: RepoClient, draft: CheckRunDraft) -> list[dict[str, Any]]:
    return repo.list(COMMIT_CHECK_RUNS, {"ref": draft.head_sha}, query={"check_name": draft.name},
                     key="check_runs")


def _run_summary(run: dict[str, Any]) -> str:
    return str((run.get("output") or {}).get("summary") or "")


# --------------------------------------------------------------------------------------------------- review


def _post_review(repo: RepoClient, number: int, publication: Publication, posted: _Posted,
                 actions: list[str]) -> None:
    draft = publication.review
    assert draft is not None
    drafted = fingerprints_in(draft.body) | {c.fingerprint for c in draft.comments}
    if not drafted - posted.live:
        actions.append("review: nothing new")
        return
    comments = [c for c in draft.comments if c.fingerprint not in posted.live]
    payload = {"commit_id": publication.check_run.head_sha, "body": draft.body, "event": draft.event,
               "comments": [_comment_payload(c) for c in comments]}
    try:
        _create_review(repo, number, payload)
    except GitHubError as exc:
        if exc.status != 422 or not comments:
            raise
        # The diff moved under us (a push between reading the patches and now): keep the findings, in the body.
        log.warning("review comments rejected on %s#%d (%s); posting them in the review body",
                    repo.full_name, number, exc)
        payload = {**payload, "body": _with_misplaced(draft.body, comments), "comments": []}
        _create_review(repo, number, payload)
        comments = []
    actions.append(f"review: {draft.event.lower()} with {len(comments)} inline comments")


def _create_review(repo: RepoClient, number: int, payload: dict[str, Any]) -> None:
    def landed() -> dict[str, Any] | None:
        # The body carries the marker and the fingerprints; with the commit it names only this review.
        reviews = repo.list(REVIEWS, {"pull_number": number})
        return next((r for r in reviews if _is_bot(r) and r.get("commit_id") == payload["commit_id"]
                     and r.get("body") == payload["body"]), None)

    repo.call("POST", REVIEWS, {"pull_number": number}, body=payload, confirm=landed)


def _comment_payload(comment: InlineComment) -> dict[str, Any]:
    payload: dict[str, Any] = {"path": comment.path, "line": comment.line, "side": comment.side,
                               "body": comment.body}
    if comment.start_line is not None and comment.start_line < comment.line:
        payload.update(start_line=comment.start_line, start_side=comment.side)
    return payload


def _with_misplaced(body: str, comments: Sequence[InlineComment]) -> str:
    parts = [body, "", MISPLACED_HEADING]
    for comment in comments:
        parts += ["", f"`{comment.path}:{comment.line}`", "", comment.body]
    return cap_text("\n".join(parts), COMMENT_BODY_LIMIT)


def _dismiss_fixed_requests(repo: RepoClient, number: int, publication: Publication, posted: _Posted,
                            actions: list[str]) -> None:
    """Dismiss the bot's reviews that requested changes once no blocking finding is left."""
    if publication.check_run.conclusion == "failure" or not posted.requesting_changes:
        return
    message = DISMISS_MESSAGE.format(sha=publication.check_run.head_sha[:12])
    for review_id in posted.requesting_changes:
        repo.call("PUT", REVIEW_DISMISSALS, {"pull_number": number, "review_id": review_id},
                  body={"message": message, "event": "DISMISS"})
    actions.append(f"dismissed {len(posted.requesting_changes)} review(s) requesting changes")


# ------------------------------------------------------------------------------------------- fixed findings


def _mark_fixed(repo: RepoClient, number: int, publication: Publication, posted: _Posted,
                actions: list[str]) -> frozenset[str]:
    """Minimise the comments of findings that are gone; returns every fingerprint now recorded as fixed."""
    fixed = posted.live - publication.fingerprints
    # A finding that came back is no longer fixed: it leaves the record (and is commented again).
    recorded = posted.resolved - publication.fingerprints
    if not fixed:
        return recorded
    comments = repo.list(REVIEW_COMMENTS, {"pull_number": number})
    # node id → the fixed fingerprints its comment carries (a comment a person deleted is not listed at all)
    targets = {c["node_id"]: fingerprints_in(c.get("body") or "") & fixed for c in comments if _is_bot(c)}
    node_ids = [node_id for node_id, fps in targets.items() if fps]
    failed: set[str] = set()
    for chunk in _chunks(node_ids, MINIMIZE_PER_REQUEST):
        query, variables = minimize_mutation(chunk)
        answer = repo.transport.graphql(query, variables)
        missed = _not_minimized(answer, chunk)
        if missed:
            log.warning("minimizeComment on %s#%d failed for %d comments: %s", repo.full_name, number,
                        len(missed), answer.get("errors"))
        failed |= missed
    # A finding whose comment was not minimised is not recorded as fixed, so the next run tries again.
    unresolved = frozenset().union(*(targets[node_id] for node_id in failed))
    actions.append(f"fixed: {len(fixed)} findings, {len(node_ids) - len(failed)} comments minimised"
                   + (f", {len(failed)} left for the next run" if failed else ""))
    return recorded | (fixed - unresolved)


def _not_minimized(answer: dict[str, Any], node_ids: Sequence[str]) -> set[str]:
    """The node ids of a :func:`minimize_mutation` whose alias did not come back minimised."""
    data = answer.get("data") or {}
    return {node_id for i, node_id in enumerate(node_ids)
            if not ((data.get(f"m{i}") or {}).get("minimizedComment") or {}).get("isMinimized")}


def minimize_mutation(node_ids: Sequence[str]) -> tuple[str, dict[str, str]]:
    """One GraphQL document minimising every comment in ``node_ids`` (aliases m0, m1, ...)."""
    declarations = ", ".join(f"$id{i}: ID!" for i in range(len(node_ids)))
    fields = " ".join(
        f"m{i}: minimizeComment(input: {{subjectId: $id{i}, classifier: {MINIMIZE_CLASSIFIER}}}) "
        "{ minimizedComment { isMinimized } }"
        for i in range(len(node_ids))
    )
    return f"mutation({declarations}) {{ {fields} }}", {f"id{i}": node_id for i, node_id in enumerate(node_ids)}


# -------------------------------------------------------------------------------------------------- summary


def _sync_summary(repo: RepoClient, number: int, summary: str, resolved: frozenset[str],
                  existing: dict[str, Any] | None, actions: list[str]) -> None:
    body = summary
    if resolved:
        record = RESOLVED_COMMENT.format(" ".join(sorted(resolved)))
        body = cap_text(summary, COMMENT_BODY_LIMIT - len(record) - 1) + "\n" + record
    if existing is None:
        def landed() -> dict[str, Any] | None:
            return next(_by_bot(repo.list(ISSUE_COMMENTS, {"issue_number": number}), SUMMARY_MARKER), None)

        repo.call("POST", ISSUE_COMMENTS, {"issue_number": number}, body={"body": body}, confirm=landed)
        actions.append("summary: created")
    elif existing.get("body") != body:
        repo.call("PATCH", ISSUE_COMMENT, {"comment_id": existing["id"]}, body={"body": body})
        actions.append("summary: edited")
    else:
        actions.append("summary: unchanged")


# --------------------------------------------------------------------------------------------------- labels


def _sync_labels(repo: RepoClient, number: int, current: frozenset[str], publication: Publication,
                 actions: list[str]) -> None:
    wanted = set(publication.labels)
    add = wanted - current
    remove = {name for name in current - wanted if name.startswith(BOT_LABEL_PREFIX)}
    if not add and not remove:
        return
    if add:
        _create_missing_labels(repo, add, publication)
    params = {"issue_number": number}
    if add:
        # Adding labels a pull request already has changes nothing: safe to send again.
        repo.call("POST", ISSUE_LABELS, params, body={"labels": sorted(add)}, idempotent=True)
    for name in sorted(remove):
        try:
            repo.call("DELETE", ISSUE_LABEL, {**params, "name": name})
        except NotFound:
            log.info("label %s already gone from %s#%d", name, repo.full_name, number)
    actions.append(f"labels: +{sorted(add)} -{sorted(remove)}")


def _create_missing_labels(repo: RepoClient, names: Iterable[str], publication: Publication) -> None:
    # GitHub matches label names without regard to case.
    existing = {label["name"].casefold() for label in repo.list(REPO_LABELS)}
    for name in sorted(n for n in names if n.casefold() not in existing):
        spec = publication.label_specs.get(name)
        if spec is None:
            repo.create_label(name)
        else:
            repo.create_label(name, spec.color, spec.description)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i: i + size] for i in range(0, len(items), size)]
