"""The repository's progress issue: found by label and hidden marker, created when absent, edited in place.

Only an issue the bot itself opened counts (author of type Bot and one of ``repo.bot_logins``: the App's
``<slug>[bot]`` and the Actions token's ``github-actions[bot]``), so nobody can plant an issue with the label and
the marker for the bot to write into, and the App and the Actions workflow on one repository find the same
issue. The body is read again just before the write: when a person edited it since it was rendered around,
the region is rendered around their new text and the check repeated (a few times at most).

The bot owns only the text between its markers (:data:`bot.progress.REGION_START` / ``REGION_END``);
:func:`bot.progress.merge_region` splices the new region into the body so that what people wrote around it
survives. When the issue was closed (by a person: the bot never closes it), ``settings.when_closed`` decides:

- ``reopen``: reopen it with the current numbers (one request);
- ``leave``: leave it closed and untouched (:data:`LEFT_CLOSED` is not a publication: the next update tries
  again), so the bot resumes when someone reopens it;
- ``new``: open a fresh issue; the closed one stays as it is.

Nothing is written when the body would not change. The region may be given as a function of the current body,
because the renderer needs it (the history kept in the issue, the room left by the text around the region).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.github.transport import NotFound
from bot.progress import REGION_START, merge_region

if TYPE_CHECKING:
    from bot.github.client import RepoClient

ISSUES = "/repos/{owner}/{repo}/issues"
ISSUE = ISSUES + "/{issue_number}"
REPO_LABEL = "/repos/{owner}/{repo}/labels/{name}"

ISSUE_TITLE = "Atlas diagram progress"
LABEL_COLOR = "0E8A16"
LABEL_DESCRIPTION = "The Atlas bot keeps this issue's diagram totals current"
WHEN_CLOSED = ("reopen", "leave", "new")
BOT_USER_TYPE = "Bot"
# Renders around a body people keep editing before the write goes ahead with the latest one read.
MAX_RENDERS = 3

CREATED, UPDATED, UNCHANGED, REOPENED, LEFT_CLOSED = "created", "updated", "unchanged", "reopened", "left-closed"

log = logging.getLogger(__name__)

RegionSource = str | Callable[[str | None], str]


class ProgressSettingsLike(Protocol):
    """The slice of ``bot.config.ProgressSettings`` read here."""

    @property
    def label(self) -> str: ...

    @property
    def when_closed(self) -> str: ...


@dataclass(frozen=True)
class IssueRef:
    """The progress issue after the update; ``action`` is one of created, updated, unchanged, reopened,
    left-closed."""

    number: int
    url: str
    state: str
    action: str


def upsert(repo: RepoClient, region: RegionSource, settings: ProgressSettingsLike) -> IssueRef:
    """Bring the progress issue up to date with ``region`` (markers included, as bot.progress renders it).

    ``region`` is the region text or a function of the issue's current body (None for a new issue).
    """
    if settings.when_closed not in WHEN_CLOSED:
        raise ValueError(f"when_closed must be one of {WHEN_CLOSED}, not {settings.when_closed!r}")
    render = region if callable(region) else (lambda _body: region)
    issues = _find(repo, settings.label)
    opened = [i for i in issues if i["state"] == "open"]
    if opened:
        # Two open copies (a person reopened an old one after "new"): the oldest stays the bot's.
        return _update(repo, opened[0], render, reopen=False)
    if issues:
        latest = issues[-1]
        if settings.when_closed == "reopen":
            return _update(repo, latest, render, reopen=True)
        if settings.when_closed == "leave":
            log.info("progress issue %s#%d is closed; leaving it", repo.full_name, latest["number"])
            return _ref(latest, LEFT_CLOSED)
    return _create(repo, render, settings.label)


def _find(repo: RepoClient, label: str) -> list[dict[str, Any]]:
    """The bot's issues with the label and its region, oldest first (the issues API lists pull requests too)."""
    listed = repo.list(ISSUES, query={"labels": label, "state": "all", "sort": "created", "direction": "asc"})
    return sorted((i for i in listed if "pull_request" not in i and REGION_START in (i.get("body") or "")
                   and _by_bot(repo, i)), key=lambda i: i["number"])


def _by_bot(repo: RepoClient, issue: dict[str, Any]) -> bool:
    user = issue.get("user") or {}
    return user.get("type") == BOT_USER_TYPE and user.get("login") in repo.bot_logins


def _update(repo: RepoClient, issue: dict[str, Any], render: Callable[[str | None], str], *,
            reopen: bool) -> IssueRef:
    for attempt in range(MAX_RENDERS):
        current = issue.get("body") or ""
        body = merge_region(current, render(current))
        if body == current and not reopen:
            return _ref(issue, UNCHANGED)
        latest = repo.call("GET", ISSUE, {"issue_number": issue["number"]}).data
        if (latest.get("body") or "") == current or attempt == MAX_RENDERS - 1:
            break
        log.info("progress issue %s#%d was edited meanwhile; rendering around the new text", repo.full_name,
                 issue["number"])
        issue = latest
    change: dict[str, Any] = {"body": body} if body != current else {}
    if reopen:
        change.update(state="open", state_reason="reopened")
    updated = repo.call("PATCH", ISSUE, {"issue_number": issue["number"]}, body=change).data
    action = REOPENED if reopen else UPDATED
    log.info("progress issue %s#%d %s", repo.full_name, issue["number"], action)
    return _ref(updated, action)


def _create(repo: RepoClient, render: Callable[[str | None], str], label: str) -> IssueRef:
    _ensure_label(repo, label)
    body = merge_region(None, render(None))

    def landed() -> dict[str, Any] | None:
        return next((i for i in _find(repo, label) if i["state"] == "open"), None)

    created = repo.call("POST", ISSUES, body={"title": ISSUE_TITLE, "body": body, "labels": [label]},
                        confirm=landed).data
    log.info("progress issue %s#%d created", repo.full_name, created["number"])
    return _ref(created, CREATED)


def _ensure_label(repo: RepoClient, label: str) -> None:
    """Create the label with colour and description (creating the issue would make a bare grey one)."""
    try:
        repo.call("GET", REPO_LABEL, {"name": label})
    except NotFound:
        # Looked up first because an "already exists" answer to the POST would still be a write.
        repo.create_label(label, LABEL_COLOR, LABEL_DESCRIPTION)


def _ref(issue: dict[str, Any], action: str) -> IssueRef:
    return IssueRef(number=int(issue["number"]), url=str(issue.get("html_url", "")), state=str(issue["state"]),
                    action=action)
