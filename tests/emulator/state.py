"""The emulator's in-memory GitHub: repositories backed by local git repositories, issues, pull requests,
comments, reviews, labels, check runs, tokens; plus what tests need to steer it (faults) and check it
(recorded requests, validation errors).

Objects are kept in GitHub's own JSON shape (built from the OpenAPI schemas by :meth:`Spec.skeleton`), so
answering a request is mostly returning them. Every method takes the state's lock: the server's threads and
the test's thread use it at once.
"""

from __future__ import annotations

import base64
import itertools
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import gitdata
from .spec import Spec

BOT_LOGIN = "atlas-bot[bot]"
TOKEN_LIFETIME_SECONDS = 3600
RATE_LIMIT = 5000
LABEL_DEFAULT_COLOR = "ededed"

# Fault kinds tests can queue per endpoint ("METHOD /template").
BAD_GATEWAY = "bad-gateway"  # 502 before doing anything
BAD_GATEWAY_AFTER_WRITE = "bad-gateway-after-write"  # the request takes effect, the answer is a 502
SECONDARY_RATE_LIMIT = "secondary-rate-limit"  # 403 with Retry-After
PRIMARY_RATE_LIMIT = "primary-rate-limit"  # 403 with X-RateLimit-Remaining: 0
NOT_FOUND = "not-found"  # 404
CONNECTION_CLOSE = "connection-close"  # the connection drops mid-answer
# The client gets no answer (the connection drops, as after its timeout) and the write is committed
# ``delay`` seconds later, as GitHub sometimes does.
LATE_WRITE = "late-write"
FAULTS = frozenset({BAD_GATEWAY, BAD_GATEWAY_AFTER_WRITE, SECONDARY_RATE_LIMIT, PRIMARY_RATE_LIMIT, NOT_FOUND,
                    CONNECTION_CLOSE, LATE_WRITE})


def now_iso(moment: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if moment is None else moment, timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Fault:
    kind: str
    retry_after: int = 1
    delay: float = 0.0  # LATE_WRITE: seconds until the write is committed


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    body: Any
    status: int
    fault: str | None = None

    @property
    def write(self) -> bool:
        return self.method not in ("GET", "HEAD")


@dataclass
class Token:
    installation_id: int
    user: str
    expires_at: float


@dataclass
class Pull:
    number: int
    title: str
    user: str
    base_ref: str
    head_ref: str
    head_sha: str
    draft: bool
    shas: list[str]  # every head the pull request had, oldest first (review comments may target any)


@dataclass
class Repo:
    full_name: str
    id: int
    path: Path
    default_branch: str
    data: dict[str, Any]
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)  # casefolded name → label
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)  # pull requests are issues too
    pulls: dict[int, Pull] = field(default_factory=dict)
    issue_comments: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    reviews: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    review_comments: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    check_runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    annotations: dict[int, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    collaborators: dict[str, str] = field(default_factory=dict)
    next_number: int = 1


class State:
    """Everything the emulated GitHub knows; ``base_url`` is where the server answers."""

    def __init__(self, spec: Spec, base_url: str) -> None:
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        self.lock = threading.RLock()
        self.repos: dict[str, Repo] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.apps: dict[int, str] = {}  # app id → public key (PEM)
        self.installations: set[int] = set()
        self.tokens: dict[str, Token] = {}
        self.requests: list[RecordedRequest] = []
        self.validation_errors: list[str] = []
        self.faults: dict[str, deque[Fault]] = defaultdict(deque)
        self.minimized: dict[str, str] = {}  # comment node id → classifier
        self.rate_remaining = RATE_LIMIT
        self._ids = itertools.count(1001)
        self.bot = self.user(BOT_LOGIN, "Bot")

    # -------------------------------------------------------------------------------------------- builders

    def next_id(self) -> int:
        return next(self._ids)

    def node_id(self, kind: str, number: int) -> str:
        return base64.b64encode(f"{kind}:{number}".encode()).decode().rstrip("=")

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def user(self, login: str, kind: str = "User") -> dict[str, Any]:
        with self.lock:
            if login not in self.users:
                number = self.next_id()
                self.users[login] = self.spec.skeleton(
                    "simple-user", login=login, id=number, node_id=self.node_id("User", number), type=kind,
                    url=self.url(f"/users/{login}"), html_url=f"https://github.invalid/{login}",
                )
            return self.users[login]

    # -------------------------------------------------------------------------------------- test set-up

    def add_repo(self, full_name: str, path: Path | str, *, default_branch: str | None = None) -> Repo:
        """Serve ``full_name`` from the local git repository at ``path`` (its clone_url is the path's file URL)."""
        path = Path(path).resolve()
        branch = default_branch or gitdata.git(path, "symbolic-ref", "--short", "HEAD").strip()
        owner = full_name.split("/")[0]
        with self.lock:
            number = self.next_id()
            data = self.spec.skeleton(
                "full-repository", id=number, node_id=self.node_id("Repository", number),
                name=full_name.split("/")[1], full_name=full_name, owner=self.user(owner, "Organization"),
                private=False, default_branch=branch, clone_url=path.as_uri(), url=self.url(f"/repos/{full_name}"),
                html_url=f"https://github.invalid/{full_name}", visibility="public",
            )
            repo = Repo(full_name, number, path, branch, data)
            self.repos[full_name] = repo
            return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name]

    def add_pull(self, full_name: str, head: str, *, base: str | None = None, title: str = "Update diagrams",
                 author: str = "contributor", draft: bool = False) -> int:
        """Open a pull request from ``head`` (branch or sha) into ``base`` (default branch); returns its number.

        Like GitHub, the base repository gets ``refs/pull/N/head`` pointing at the head commit.
        """
        with self.lock:
            repo = self.repos[full_name]
            base_ref = base or repo.default_branch
            head_sha = gitdata.resolve(repo.path, head)
            number = self._issue(repo, title, "", author, is_pull=True)["number"]
            head_ref = head if not _is_sha(head) else f"pr-{number}"
            repo.pulls[number] = Pull(number, title, author, base_ref, head_ref, head_sha, draft, [head_sha])
            gitdata.git(repo.path, "update-ref", f"refs/pull/{number}/head", head_sha)
            return number

    def push(self, full_name: str, number: int, head: str) -> str:
        """A new head for the pull request (``head`` a branch or sha); returns the new head sha."""
        with self.lock:
            repo = self.repos[full_name]
            pull = repo.pulls[number]
            pull.head_sha = gitdata.resolve(repo.path, head)
            pull.shas.append(pull.head_sha)
            gitdata.git(repo.path, "update-ref", f"refs/pull/{number}/head", pull.head_sha)
            return pull.head_sha

    def add_issue(self, full_name: str, title: str, body: str, *, labels: tuple[str, ...] = (),
                  author: str = "maintainer") -> int:
        with self.lock:
            repo = self.repos[full_name]
            issue = self._issue(repo, title, body, author, is_pull=False)
            issue["labels"] = [self.ensure_label(repo, name) for name in labels]
            return int(issue["number"])

    def _issue(self, repo: Repo, title: str, body: str, author: str, *, is_pull: bool) -> dict[str, Any]:
        number = repo.next_number
        repo.next_number += 1
        ident = self.next_id()
        path = f"/repos/{repo.full_name}/issues/{number}"
        extra = {"pull_request": {"url": self.url(f"/repos/{repo.full_name}/pulls/{number}"), "html_url": None,
                                  "diff_url": None, "patch_url": None}} if is_pull else {}
        issue = self.spec.skeleton(
            "issue", id=ident, node_id=self.node_id("Issue", ident), number=number, title=title, body=body,
            state="open", user=self.user(author), url=self.url(path), repository_url=self.url(f"/repos/{repo.full_name}"),
            html_url=f"https://github.invalid/{repo.full_name}/issues/{number}", labels_url=self.url(path + "/labels{/name}"),
            comments_url=self.url(path + "/comments"), events_url=self.url(path + "/events"),
            created_at=now_iso(), updated_at=now_iso(), author_association="CONTRIBUTOR", **extra,
        )
        repo.issues[number] = issue
        return issue

    def ensure_label(self, repo: Repo, name: str, color: str = LABEL_DEFAULT_COLOR,
                     description: str | None = None) -> dict[str, Any]:
        with self.lock:
            key = name.casefold()
            if key not in repo.labels:
                ident = self.next_id()
                repo.labels[key] = self.spec.skeleton(
                    "label", id=ident, node_id=self.node_id("Label", ident), name=name, color=color,
                    description=description, default=False, url=self.url(f"/repos/{repo.full_name}/labels/{name}"),
                )
            return repo.labels[key]

    def add_comment(self, full_name: str, number: int, body: str, *, author: str = "maintainer",
                    kind: str = "User") -> dict[str, Any]:
        with self.lock:
            repo = self.repos[full_name]
            ident = self.next_id()
            comment = self.spec.skeleton(
                "issue-comment", id=ident, node_id=self.node_id("IssueComment", ident), body=body,
                user=self.user(author, kind), url=self.url(f"/repos/{full_name}/issues/comments/{ident}"),
                html_url=f"https://github.invalid/{full_name}/issues/{number}#issuecomment-{ident}",
                issue_url=self.url(f"/repos/{full_name}/issues/{number}"), created_at=now_iso(),
                updated_at=now_iso(), author_association="MEMBER",
            )
            repo.issue_comments[number].append(comment)
            return comment

    def close_issue(self, full_name: str, number: int, *, by: str = "maintainer") -> None:
        with self.lock:
            issue = self.repos[full_name].issues[number]
            issue.update(state="closed", state_reason="completed", closed_at=now_iso(), closed_by=self.user(by))

    def edit_issue(self, full_name: str, number: int, body: str) -> None:
        with self.lock:
            self.repos[full_name].issues[number].update(body=body, updated_at=now_iso())

    def set_permission(self, full_name: str, login: str, permission: str) -> None:
        with self.lock:
            self.user(login)
            self.repos[full_name].collaborators[login] = permission

    def register_app(self, app_id: int, public_key_pem: str, installation_id: int) -> None:
        with self.lock:
            self.apps[app_id] = public_key_pem
            self.installations.add(installation_id)

    def issue_token(self, installation_id: int = 1, *, user: str = BOT_LOGIN,
                    lifetime: float = TOKEN_LIFETIME_SECONDS) -> tuple[str, float]:
        with self.lock:
            token = f"ghs_{secrets.token_hex(18)}"
            expires_at = time.time() + lifetime
            self.tokens[token] = Token(installation_id, user, expires_at)
            return token, expires_at

    # ----------------------------------------------------------------------------------------- faults

    def inject_fault(self, endpoint: str, kind: str, *, times: int = 1, retry_after: int = 1,
                     delay: float = 0.0) -> None:
        """Answer the next ``times`` calls to ``endpoint`` ("POST /repos/{owner}/{repo}/check-runs") with a fault."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULTS)}")
        with self.lock:
            self.faults[endpoint].extend(Fault(kind, retry_after, delay) for _ in range(times))

    def revoke_tokens(self, installation_id: int) -> None:
        """Revoke every token of the installation (they answer 401 from now on, before they expire)."""
        with self.lock:
            for token in [t for t, known in self.tokens.items() if known.installation_id == installation_id]:
                del self.tokens[token]

    def take_fault(self, endpoint: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get(endpoint)
            return queue.popleft() if queue else None

    # --------------------------------------------------------------------------------------- inspection

    def record(self, request: RecordedRequest) -> None:
        with self.lock:
            self.requests.append(request)

    def writes(self, since: int = 0) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests[since:] if r.write]

    def labels_on(self, full_name: str, number: int) -> set[str]:
        with self.lock:
            return {label["name"] for label in self.repos[full_name].issues[number]["labels"]}

    def annotations_of(self, full_name: str, run_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.repos[full_name].annotations[run_id])


def _is_sha(value: str) -> bool:
    return len(value) == 40 and all(c in "0123456789abcdef" for c in value)
