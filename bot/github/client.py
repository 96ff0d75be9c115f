"""Reading from and writing to one repository: pull requests, files, permissions, comments.

:class:`RepoClient` is what the handlers hold. The diffing publishers live beside it
(:mod:`bot.github.publish` for pull requests, :mod:`bot.github.progress_issue` for the progress issue); every
request of all of them goes through the client's one :class:`~bot.github.transport.Transport`.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from bot.github import progress_issue
from bot.github.publish import PublishReport, posted_fingerprints, publish_check_run, publish_pull
from bot.github.transport import (
    DEFAULT_API_URL,
    MAX_RATE_WAIT_SECONDS,
    GitHubError,
    NotFound,
    OnCall,
    Response,
    TokenAuth,
    Transport,
)
from bot.review import CHECK_RUN_NAME, CheckRunDraft, Publication

REPO = "/repos/{owner}/{repo}"
PULL = REPO + "/pulls/{pull_number}"
PULL_FILES = PULL + "/files"
ISSUE_COMMENTS = REPO + "/issues/{issue_number}/comments"
CONTENTS = REPO + "/contents/{path}"
LABELS = REPO + "/labels"
PERMISSION = REPO + "/collaborators/{username}/permission"
NO_PERMISSION = "none"
# The login GitHub Actions' built-in token acts as: the progress workflow's issue is the App's too.
ACTIONS_BOT_LOGIN = "github-actions[bot]"

@dataclass(frozen=True)
class PullInfo:
    """The facts about a pull request the handlers need; ``clone_url`` is the base repository's."""

    number: int
    base_sha: str
    base_ref: str
    head_sha: str
    head_ref: str
    draft: bool
    clone_url: str
    author: str
    state: str = "open"
    labels: frozenset[str] = frozenset()


class GitHubClient:
    """One job's connection to GitHub with a token from ``token_provider`` (called per request; it caches).

    ``drop_token(token)`` is called when GitHub answers 401 to ``token``, before the one retry with a new one.
    ``bot_logins`` are the logins the bot writes as besides the Actions token's (the App's ``<slug>[bot]``).
    """

    def __init__(
        self,
        token_provider: Callable[[], str],
        api_url: str = DEFAULT_API_URL,
        *,
        drop_token: Callable[[str], None] | None = None,
        bot_logins: frozenset[str] = frozenset(),
        on_call: OnCall | None = None,
        write_lock: AbstractContextManager[Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_rate_wait: float = MAX_RATE_WAIT_SECONDS,
    ) -> None:
        self.transport = Transport(TokenAuth(token_provider, drop_token), api_url, on_call=on_call, write_lock=write_lock,
                                   sleep=sleep, clock=clock, max_rate_wait=max_rate_wait)
        self.bot_logins = bot_logins | {ACTIONS_BOT_LOGIN}

    @property
    def rate_limit_remaining(self) -> int | None:
        """``X-RateLimit-Remaining`` of the latest answer (for the metrics gauge)."""
        return self.transport.rate_limit_remaining

    def repo(self, full_name: str) -> RepoClient:
        return RepoClient(self.transport, full_name, bot_logins=self.bot_logins)


class RepoClient:
    """One repository ("owner/name") through one transport; ``bot_logins``: whom the bot writes as."""

    def __init__(self, transport: Transport, full_name: str, *,
                 bot_logins: frozenset[str] = frozenset({ACTIONS_BOT_LOGIN})) -> None:
        owner, _, name = full_name.partition("/")
        if not owner or not name:
            raise ValueError(f"not an owner/name repository: {full_name!r}")
        self.transport = transport
        self.full_name = full_name
        self.bot_logins = bot_logins
        self._params = {"owner": owner, "repo": name}
        self._default_branch: str | None = None
        # Listings read by posted_fingerprints() and reused by the publish() that follows in the same job.
        self.listing_cache: dict[tuple[str, int], list[Any]] = {}

    @property
    def rate_limit_remaining(self) -> int | None:
        return self.transport.rate_limit_remaining

    # ------------------------------------------------------------------------------------ request helpers

    def call(self, method: str, template: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> Response:
        """One request to a repository endpoint (``owner`` and ``repo`` filled in)."""
        return self.transport.request(method, template, {**self._params, **(params or {})}, **kwargs)

    def list(self, template: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> list[Any]:
        return self.transport.paginate(template, {**self._params, **(params or {})}, **kwargs)

    # ------------------------------------------------------------------------------------------------ reads

    @property
    def default_branch(self) -> str:
        if self._default_branch is None:
            self._default_branch = str(self.call("GET", REPO).data["default_branch"])
        return self._default_branch

    def pull_request(self, number: int) -> PullInfo:
        data = self.call("GET", PULL, {"pull_number": number}).data
        return pull_info(data)

    def pr_patches(self, number: int) -> dict[str, str]:
        """Head path → unified-diff patch of each changed file that has one (binary and huge files have none)."""
        files = self.list(PULL_FILES, {"pull_number": number})
        return {f["filename"]: f["patch"] for f in files if f.get("patch")}

    def read_file(self, ref: str, path: str) -> str | None:
        """The text of ``path`` at ``ref``; None when there is no such file."""
        try:
            data = self.call("GET", CONTENTS, {"path": path}, query={"ref": ref}).data
        except NotFound:
            return None
        if not isinstance(data, dict) or data.get("type") != "file":
            return None
        if data.get("encoding") != "base64":
            # Files over 1 MB come without content; nothing the bot reads this way is that large.
            raise GitHubError(f"{path} at {ref} is too large to read through the contents API",
                              status=200, endpoint=f"GET {CONTENTS}")
        try:
            return base64.b64decode(data.get("content") or "").decode("utf-8", errors="replace")
        except binascii.Error as exc:
            raise GitHubError(f"{path}: undecodable content", status=200, endpoint=f"GET {CONTENTS}") from exc

    def permission(self, login: str) -> str:
        """``admin``, ``write``, ``read`` or ``none`` (maintainers report ``write``, triagers ``read``)."""
        try:
            return str(self.call("GET", PERMISSION, {"username": login}).data["permission"])
        except NotFound:
            return NO_PERMISSION

    # ----------------------------------------------------------------------------------------------- writes

    def post_comment(self, number: int, body: str) -> int:
        """A plain comment on an issue or pull request; returns its id."""
        return int(self.call("POST", ISSUE_COMMENTS, {"issue_number": number}, body={"body": body}).data["id"])

    def create_label(self, name: str, color: str | None = None, description: str | None = None) -> None:
        """A repository label with colour and description; one that exists already (maybe created by a
        concurrent job a moment ago) is left as it is."""
        body: dict[str, str] = {"name": name}
        if color is not None:
            body["color"] = color.lstrip("#")
        if description is not None:
            body["description"] = description
        try:
            self.call("POST", LABELS, body=body, idempotent=True)
        except GitHubError as exc:
            if exc.status != 422 or "already_exists" not in exc.error_codes:
                raise

    def posted_fingerprints(self, number: int) -> frozenset[str]:
        """Fingerprints of findings already posted on the PR and not fixed since (``already_posted``)."""
        return posted_fingerprints(self, number)

    def publish(self, number: int, publication: Publication) -> PublishReport:
        """Make the PR show ``publication``, sending only what differs from what it shows now."""
        return publish_pull(self, number, publication)

    def publish_neutral_check(self, head_sha: str, title: str, text: str) -> PublishReport:
        """A neutral check run (e.g. the configuration is invalid), unless the same one is already there."""
        draft = CheckRunDraft(name=CHECK_RUN_NAME, head_sha=head_sha, conclusion="neutral", title=title,
                              summary=text, annotations=())
        return publish_check_run(self, draft)

    def upsert_progress_issue(self, region: progress_issue.RegionSource,
                              settings: progress_issue.ProgressSettingsLike) -> progress_issue.IssueRef:
        """Create or update the progress issue; only the text between the bot's markers is replaced."""
        return progress_issue.upsert(self, region, settings)


def pull_info(data: Mapping[str, Any]) -> PullInfo:
    return PullInfo(
        number=int(data["number"]),
        base_sha=str(data["base"]["sha"]),
        base_ref=str(data["base"]["ref"]),
        head_sha=str(data["head"]["sha"]),
        head_ref=str(data["head"]["ref"]),
        draft=bool(data.get("draft")),
        clone_url=str(data["base"]["repo"]["clone_url"]),
        author=str((data.get("user") or {}).get("login", "")),
        state=str(data.get("state", "open")),
        labels=frozenset(label["name"] for label in data.get("labels") or ()),
    )
