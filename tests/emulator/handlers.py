"""The emulated GitHub REST operations: one function per operation the bot uses, on the in-memory state.

Each takes a :class:`Call` and returns a :class:`Result` or raises :class:`ApiError` with GitHub's status and
message. Requests reach them already validated against the OpenAPI description (see app.py), so they check
only what the schema cannot say: that objects exist, that review comments sit on the diff, that a check run
starts from a commit that exists.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt

from . import gitdata
from .state import BOT_LOGIN, LABEL_DEFAULT_COLOR, Pull, Repo, State, now_iso

DOCS_URL = "https://docs.github.com/rest"
DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100
ACCESS_TOKENS = "/app/installations/{installation_id}/access_tokens"
APP = "/app"  # authenticated with the App's JWT (the actor is the App's id), as ACCESS_TOKENS is
APP_SLUG = BOT_LOGIN.removesuffix("[bot]")
MINIMIZE_RE = re.compile(r"(\w+): minimizeComment\(input: \{subjectId: \$(\w+), classifier: (\w+)\}\)"
                         r" \{ minimizedComment \{ isMinimized \} \}")
MUTATION_RE = re.compile(r"mutation\(([^)]*)\) \{ (.*) \}", re.DOTALL)
CLASSIFIERS = frozenset({"SPAM", "ABUSE", "OFF_TOPIC", "OUTDATED", "DUPLICATE", "RESOLVED"})
REVIEW_STATES = {"COMMENT": "COMMENTED", "REQUEST_CHANGES": "CHANGES_REQUESTED", "APPROVE": "APPROVED"}
ISSUE_FIELDS = ("title", "body", "state", "state_reason")


class ApiError(Exception):
    """An error answer: GitHub's status, message and (for 422s) errors."""

    def __init__(self, status: int, message: str, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "documentation_url": DOCS_URL}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


@dataclass
class Call:
    """One validated request: path parameters, query pairs, decoded JSON body, the acting login."""

    state: State
    method: str
    template: str
    path: str
    params: dict[str, str]
    query: list[tuple[str, str]]
    body: Any
    actor: str = BOT_LOGIN

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = [value for key, value in self.query if key == name]
        return values[-1] if values else default

    @property
    def repo(self) -> Repo:
        full_name = f"{self.params['owner']}/{self.params['repo']}"
        repo = self.state.repos.get(full_name)
        if repo is None:
            raise ApiError(404, "Not Found")
        return repo

    def number(self, name: str) -> int:
        return int(self.params[name])


@dataclass
class Result:
    """An answer: status, JSON-able data, extra headers."""

    status: int
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Result]
HANDLERS: dict[tuple[str, str], Handler] = {}


def operation(method: str, template: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[(method, template)] = handler
        return handler

    return register


def page(call: Call, items: list[Any], wrap: Callable[[list[Any]], Any] | None = None) -> Result:
    """One page of ``items`` with GitHub's ``Link`` header (``wrap`` builds an object around the page)."""
    per_page = min(int(call.arg("per_page") or DEFAULT_PER_PAGE), MAX_PER_PAGE)
    number = max(int(call.arg("page") or 1), 1)
    last = max((len(items) + per_page - 1) // per_page, 1)
    chunk = items[(number - 1) * per_page: number * per_page]
    headers = {}
    if number < last:
        query = [(k, v) for k, v in call.query if k != "page"]
        links = [(number + 1, "next"), (last, "last")]
        headers["Link"] = ", ".join(
            f'<{call.state.url(call.path)}?{urlencode(query + [("page", str(n))])}>; rel="{rel}"' for n, rel in links)
    return Result(200, wrap(chunk) if wrap else chunk, headers)


# ------------------------------------------------------------------------------------------------ app & repo


@operation("POST", ACCESS_TOKENS)
def create_access_token(call: Call) -> Result:
    state = call.state
    installation_id = call.number("installation_id")
    if installation_id not in state.installations:
        raise ApiError(404, "Not Found")
    token, expires_at = state.issue_token(installation_id)
    return Result(201, state.spec.skeleton("installation-token", token=token, expires_at=now_iso(expires_at),
                                           permissions={"pull_requests": "write"}, repository_selection="all"))


@operation("GET", APP)
def get_app(call: Call) -> Result:
    state = call.state
    app_id = int(call.actor)
    owner = state.user("atlas", "Organization")
    return Result(200, state.spec.skeleton(
        "integration", id=app_id, slug=APP_SLUG, node_id=state.node_id("App", app_id), name=APP_SLUG,
        owner=owner, html_url=f"https://github.invalid/apps/{APP_SLUG}", created_at=now_iso(),
        updated_at=now_iso(), permissions={"issues": "write", "pull_requests": "write"},
        events=["pull_request", "push"]))


def check_app_jwt(state: State, authorization: str) -> int:
    """The App's JWT: RS256, signed by a registered App's key, unexpired, ``iss`` = that App's id (returned)."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "A JSON web token could not be decoded")
    try:
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        key = state.apps[int(issuer)]
        jwt.decode(token, key, algorithms=["RS256"], options={"require": ["exp", "iat", "iss"]})
    except (jwt.PyJWTError, KeyError, TypeError, ValueError) as exc:
        raise ApiError(401, f"A JSON web token could not be decoded ({exc})") from exc
    return int(issuer)


@operation("GET", "/repos/{owner}/{repo}")
def get_repo(call: Call) -> Result:
    return Result(200, call.repo.data)


@operation("GET", "/repos/{owner}/{repo}/contents/{path}")
def get_contents(call: Call) -> Result:
    repo, state = call.repo, call.state
    ref = call.arg("ref") or repo.default_branch
    path = call.params["path"].strip("/")
    try:
        sha = gitdata.resolve(repo.path, ref)
    except gitdata.GitDataError as exc:
        raise ApiError(404, f"No commit found for the ref {ref}") from exc
    blob = gitdata.read_blob(repo.path, sha, path)
    if blob is not None:
        blob_sha = gitdata.git(repo.path, "rev-parse", f"{sha}:{path}").strip()
        encoded = base64.encodebytes(blob).decode()
        return Result(200, state.spec.skeleton(
            "content-file", type="file", encoding="base64", size=len(blob), name=path.rsplit("/", 1)[-1],
            path=path, content=encoded, sha=blob_sha, url=state.url(call.path),
            download_url=None, html_url=None, git_url=None,
        ))
    entries = gitdata.list_tree(repo.path, sha, path)
    if entries is None:
        raise ApiError(404, "Not Found")
    listing = [_directory_entry(state, repo, kind, entry_sha, name) for kind, entry_sha, name in entries]
    return Result(200, listing)


def _directory_entry(state: State, repo: Repo, kind: str, sha: str, name: str) -> dict[str, Any]:
    item_schema = state.spec.schema("content-directory")["items"]
    return state.spec.skeleton(item_schema, type="file" if kind == "blob" else "dir", name=name.rsplit("/", 1)[-1],
                               path=name, sha=sha, size=0, url=state.url(f"/repos/{repo.full_name}/contents/{name}"))


@operation("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission")
def get_permission(call: Call) -> Result:
    repo, state = call.repo, call.state
    login = call.params["username"]
    if login not in state.users:
        raise ApiError(404, "Not Found")
    permission = repo.collaborators.get(login, "none")
    fields = state.spec.schema("nullable-collaborator")["properties"]
    collaborator = state.spec.skeleton("nullable-collaborator",
                                       **{k: v for k, v in state.users[login].items() if k in fields})
    return Result(200, state.spec.skeleton("repository-collaborator-permission", permission=permission,
                                           role_name=permission, user=collaborator))


# ---------------------------------------------------------------------------------------------- pull requests


def _pull(call: Call) -> tuple[Repo, Pull]:
    repo = call.repo
    pull = repo.pulls.get(call.number("pull_number"))
    if pull is None:
        raise ApiError(404, "Not Found")
    return repo, pull


def _small_repo(state: State, repo: Repo) -> dict[str, Any]:
    fields = state.spec.schema("repository")["properties"]
    return state.spec.skeleton("repository", **{k: v for k, v in repo.data.items() if k in fields})


def pull_json(state: State, repo: Repo, pull: Pull) -> dict[str, Any]:
    issue = repo.issues[pull.number]
    base_sha = gitdata.resolve(repo.path, pull.base_ref)
    small = _small_repo(state, repo)
    path = f"/repos/{repo.full_name}/pulls/{pull.number}"
    return state.spec.skeleton(
        "pull-request", id=issue["id"], node_id=state.node_id("PullRequest", issue["id"]), number=pull.number,
        title=pull.title, body=issue.get("body"), state=issue["state"], user=issue["user"], draft=pull.draft,
        labels=issue["labels"], url=state.url(path), html_url=f"https://github.invalid/{repo.full_name}/pull/{pull.number}",
        head={"label": f"{repo.data['owner']['login']}:{pull.head_ref}", "ref": pull.head_ref, "sha": pull.head_sha,
              "repo": small, "user": repo.data["owner"]},
        base={"label": f"{repo.data['owner']['login']}:{pull.base_ref}", "ref": pull.base_ref, "sha": base_sha,
              "repo": small, "user": repo.data["owner"]},
        created_at=issue["created_at"], updated_at=issue["updated_at"], merged=False,
        author_association="CONTRIBUTOR",
    )


@operation("GET", "/repos/{owner}/{repo}/pulls/{pull_number}")
def get_pull(call: Call) -> Result:
    repo, pull = _pull(call)
    return Result(200, pull_json(call.state, repo, pull))


def _diff(repo: Repo, pull: Pull, head: str | None = None) -> tuple[gitdata.DiffFile, ...]:
    base_sha = gitdata.resolve(repo.path, pull.base_ref)
    return gitdata.diff_files(repo.path, base_sha, head or pull.head_sha)


@operation("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/files")
def list_pull_files(call: Call) -> Result:
    repo, pull = _pull(call)
    state = call.state
    files = []
    for f in _diff(repo, pull):
        entry = state.spec.skeleton(
            "diff-entry", sha=f.sha, filename=f.filename, status=f.status, additions=f.additions,
            deletions=f.deletions, changes=f.additions + f.deletions, blob_url=state.url(f"/blob/{f.sha}"),
            raw_url=state.url(f"/raw/{f.sha}"), contents_url=state.url(f"/repos/{repo.full_name}/contents/{f.filename}"),
        )
        if f.patch is not None:
            entry["patch"] = f.patch
        if f.previous_filename:
            entry["previous_filename"] = f.previous_filename
        files.append(entry)
    return page(call, files)


@operation("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews")
def list_reviews(call: Call) -> Result:
    repo, pull = _pull(call)
    return page(call, repo.reviews[pull.number])


@operation("POST", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews")
def create_review(call: Call) -> Result:
    repo, pull = _pull(call)
    state, body = call.state, call.body or {}
    event = body.get("event")
    commit_id = body.get("commit_id") or pull.head_sha
    if commit_id not in pull.shas:
        raise ApiError(422, "Unprocessable Entity", ["commit_id is not part of the pull request"])
    if event in ("COMMENT", "REQUEST_CHANGES") and not body.get("body"):
        raise ApiError(422, "Unprocessable Entity", ["Body is required for this event"])
    if event == "REQUEST_CHANGES" and pull.user == BOT_LOGIN:
        raise ApiError(422, "Can not request changes on your own pull request")
    diff = {f.filename: f for f in _diff(repo, pull, commit_id)}
    for comment in body.get("comments") or ():
        _check_comment_position(comment, diff)
    ident = state.next_id()
    path = f"/repos/{repo.full_name}/pulls/{pull.number}"
    html = f"https://github.invalid/{repo.full_name}/pull/{pull.number}#pullrequestreview-{ident}"
    review = state.spec.skeleton(
        "pull-request-review", id=ident, node_id=state.node_id("PullRequestReview", ident), user=state.user(call.actor),
        body=body.get("body", ""), state=REVIEW_STATES.get(event or "", "PENDING"), commit_id=commit_id,
        html_url=html, pull_request_url=state.url(path), submitted_at=now_iso(), author_association="NONE",
        _links={"html": {"href": html}, "pull_request": {"href": state.url(path)}},
    )
    repo.reviews[pull.number].append(review)
    for comment in body.get("comments") or ():
        repo.review_comments[pull.number].append(_review_comment(state, repo, pull, review, commit_id, comment, diff))
    return Result(200, review)


@operation("PUT", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/dismissals")
def dismiss_review(call: Call) -> Result:
    repo, pull = _pull(call)
    ident = call.number("review_id")
    review = next((r for r in repo.reviews[pull.number] if r["id"] == ident), None)
    if review is None:
        raise ApiError(404, "Not Found")
    if review["state"] not in ("CHANGES_REQUESTED", "APPROVED"):
        raise ApiError(422, "Can not dismiss a commented pull request review")
    review["state"] = "DISMISSED"
    return Result(200, review)


def _check_comment_position(comment: dict[str, Any], diff: dict[str, gitdata.DiffFile]) -> None:
    def reject(message: str) -> ApiError:
        # This operation's 422 is GitHub's "validation-error-simple": errors are plain strings.
        return ApiError(422, "Unprocessable Entity", [message])

    if "line" not in comment:
        raise reject("the emulator supports line-based comments only (position is deprecated)")
    entry = diff.get(comment["path"])
    if entry is None:
        raise reject(f"Path {comment['path']!r} is not part of the pull request")
    left, hunks = gitdata.diff_sides(entry.patch)
    line, start = comment["line"], comment.get("start_line")
    if comment.get("side", "RIGHT") == "LEFT":
        if line not in left:
            raise reject("Pull request review thread line must be part of the diff")
        return
    hunk = next((h for h in hunks if line in h), None)
    if hunk is None:
        raise reject("Pull request review thread line must be part of the diff")
    if start is not None and (start >= line or start not in hunk):
        raise reject("Pull request review thread start_line must precede line within the same hunk")


def _review_comment(state: State, repo: Repo, pull: Pull, review: dict[str, Any], commit_id: str,
                    comment: dict[str, Any], diff: dict[str, gitdata.DiffFile]) -> dict[str, Any]:
    ident = state.next_id()
    path = f"/repos/{repo.full_name}/pulls/comments/{ident}"
    html = f"https://github.invalid/{repo.full_name}/pull/{pull.number}#discussion_r{ident}"
    pull_url = state.url(f"/repos/{repo.full_name}/pulls/{pull.number}")
    side = comment.get("side", "RIGHT")
    extra = {}
    if comment.get("start_line") is not None:
        extra = {"start_line": comment["start_line"], "original_start_line": comment["start_line"],
                 "start_side": comment.get("start_side", side)}
    return state.spec.skeleton(
        "pull-request-review-comment", id=ident, node_id=state.node_id("PullRequestReviewComment", ident),
        pull_request_review_id=review["id"], diff_hunk=diff[comment["path"]].patch or "", path=comment["path"],
        commit_id=commit_id, original_commit_id=commit_id, user=review["user"], body=comment["body"],
        created_at=now_iso(), updated_at=now_iso(), html_url=html, pull_request_url=pull_url, url=state.url(path),
        author_association="NONE", line=comment["line"], original_line=comment["line"], side=side,
        subject_type="line",
        _links={"self": {"href": state.url(path)}, "html": {"href": html}, "pull_request": {"href": pull_url}},
        **extra,
    )


@operation("GET", "/repos/{owner}/{repo}/pulls/{pull_number}/comments")
def list_review_comments(call: Call) -> Result:
    repo, pull = _pull(call)
    return page(call, repo.review_comments[pull.number])


# ---------------------------------------------------------------------------------------- issues & comments


def _issue(call: Call) -> tuple[Repo, dict[str, Any]]:
    repo = call.repo
    issue = repo.issues.get(call.number("issue_number"))
    if issue is None:
        raise ApiError(404, "Not Found")
    return repo, issue


@operation("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
def list_issue_comments(call: Call) -> Result:
    repo, issue = _issue(call)
    return page(call, repo.issue_comments[issue["number"]])


@operation("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments")
def create_issue_comment(call: Call) -> Result:
    repo, issue = _issue(call)
    actor = call.state.users[call.actor]
    comment = call.state.add_comment(repo.full_name, issue["number"], call.body["body"], author=call.actor,
                                     kind=actor["type"])
    return Result(201, comment)


@operation("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}")
def update_issue_comment(call: Call) -> Result:
    repo, ident = call.repo, call.number("comment_id")
    for comments in repo.issue_comments.values():
        for comment in comments:
            if comment["id"] == ident:
                comment.update(body=call.body["body"], updated_at=now_iso())
                return Result(200, comment)
    raise ApiError(404, "Not Found")


@operation("GET", "/repos/{owner}/{repo}/issues")
def list_issues(call: Call) -> Result:
    repo = call.repo
    wanted_state = call.arg("state", "open")
    wanted_labels = {n.strip().casefold() for n in (call.arg("labels") or "").split(",") if n.strip()}
    creator = call.arg("creator")
    issues = [
        issue for issue in repo.issues.values()
        if (wanted_state == "all" or issue["state"] == wanted_state)
        and wanted_labels <= {label["name"].casefold() for label in issue["labels"]}
        and (creator is None or issue["user"]["login"] == creator)
    ]
    issues.sort(key=lambda i: i["number"], reverse=call.arg("direction", "desc") == "desc")
    return page(call, issues)


@operation("GET", "/repos/{owner}/{repo}/issues/{issue_number}")
def get_issue(call: Call) -> Result:
    return Result(200, _issue(call)[1])


@operation("POST", "/repos/{owner}/{repo}/issues")
def create_issue(call: Call) -> Result:
    repo, state, body = call.repo, call.state, call.body
    number = state.add_issue(repo.full_name, body["title"], body.get("body") or "", author=call.actor,
                             labels=tuple(_label_names(body.get("labels") or ())))
    return Result(201, repo.issues[number])


@operation("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}")
def update_issue(call: Call) -> Result:
    repo, issue = _issue(call)
    state, body = call.state, call.body or {}
    for key in ISSUE_FIELDS:
        if key in body:
            issue[key] = body[key]
    if body.get("state") == "closed":
        issue.update(closed_at=now_iso(), closed_by=state.users[call.actor])
    elif body.get("state") == "open":
        issue.update(closed_at=None, closed_by=None)
    if "labels" in body:
        issue["labels"] = [state.ensure_label(repo, name) for name in _label_names(body["labels"])]
    issue["updated_at"] = now_iso()
    return Result(200, issue)


# ---------------------------------------------------------------------------------------------------- labels


def _label_names(raw: Any) -> list[str]:
    """The label forms GitHub accepts: a list of names or of {"name"}, or an object with such a list."""
    if isinstance(raw, dict):
        raw = raw.get("labels") or []
    if isinstance(raw, str):
        raw = [raw]
    return [item["name"] if isinstance(item, dict) else str(item) for item in raw]


@operation("GET", "/repos/{owner}/{repo}/labels")
def list_labels(call: Call) -> Result:
    return page(call, list(call.repo.labels.values()))


@operation("GET", "/repos/{owner}/{repo}/labels/{name}")
def get_label(call: Call) -> Result:
    label = call.repo.labels.get(call.params["name"].casefold())
    if label is None:
        raise ApiError(404, "Not Found")
    return Result(200, label)


@operation("POST", "/repos/{owner}/{repo}/labels")
def create_label(call: Call) -> Result:
    repo, body = call.repo, call.body
    if body["name"].casefold() in repo.labels:
        raise ApiError(422, "Validation Failed", [{"resource": "Label", "code": "already_exists", "field": "name"}])
    label = call.state.ensure_label(repo, body["name"], body.get("color", LABEL_DEFAULT_COLOR).lstrip("#"), body.get("description"))
    return Result(201, label)


@operation("GET", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
def list_issue_labels(call: Call) -> Result:
    return page(call, _issue(call)[1]["labels"])


@operation("POST", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
def add_issue_labels(call: Call) -> Result:
    repo, issue = _issue(call)
    have = {label["name"].casefold() for label in issue["labels"]}
    for name in _label_names(call.body):
        if name.casefold() not in have:
            issue["labels"].append(call.state.ensure_label(repo, name))
            have.add(name.casefold())
    return Result(200, issue["labels"])


@operation("PUT", "/repos/{owner}/{repo}/issues/{issue_number}/labels")
def set_issue_labels(call: Call) -> Result:
    repo, issue = _issue(call)
    issue["labels"] = [call.state.ensure_label(repo, name) for name in dict.fromkeys(_label_names(call.body))]
    return Result(200, issue["labels"])


@operation("DELETE", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}")
def remove_issue_label(call: Call) -> Result:
    _, issue = _issue(call)
    name = call.params["name"].casefold()
    kept = [label for label in issue["labels"] if label["name"].casefold() != name]
    if len(kept) == len(issue["labels"]):
        raise ApiError(404, "Label does not exist")
    issue["labels"] = kept
    return Result(200, kept)


# ------------------------------------------------------------------------------------------------ check runs


def _add_annotations(repo: Repo, run: dict[str, Any], output: dict[str, Any] | None) -> None:
    """Annotations accumulate over updates, as on GitHub (the description's maxItems: 50 caps each request)."""
    annotations = (output or {}).get("annotations") or []
    repo.annotations[run["id"]].extend(annotations)
    run["output"]["annotations_count"] = len(repo.annotations[run["id"]])


def _apply_run_fields(run: dict[str, Any], body: dict[str, Any]) -> None:
    for key in ("name", "status", "conclusion", "details_url", "external_id", "started_at", "completed_at"):
        if key in body:
            run[key] = body[key]
    if body.get("conclusion") and run.get("status") != "completed":
        run["status"] = "completed"
    if run["status"] == "completed" and not run.get("completed_at"):
        run["completed_at"] = now_iso()
    output = body.get("output")
    if output:
        run["output"].update({k: output.get(k, run["output"].get(k)) for k in ("title", "summary", "text")})


@operation("POST", "/repos/{owner}/{repo}/check-runs")
def create_check_run(call: Call) -> Result:
    repo, state, body = call.repo, call.state, call.body
    try:
        gitdata.resolve(repo.path, body["head_sha"])
    except gitdata.GitDataError as exc:
        raise ApiError(422, "No commit found for SHA: " + body["head_sha"]) from exc
    if body.get("status") == "completed" and not body.get("conclusion"):
        raise ApiError(422, "Validation Failed", [{"resource": "CheckRun", "code": "missing_field",
                                                   "field": "conclusion"}])
    ident = state.next_id()
    path = f"/repos/{repo.full_name}/check-runs/{ident}"
    run = state.spec.skeleton(
        "check-run", id=ident, node_id=state.node_id("CheckRun", ident), head_sha=body["head_sha"],
        name=body["name"], url=state.url(path), html_url=f"https://github.invalid/{repo.full_name}/runs/{ident}",
        status="queued", started_at=now_iso(),
        output={"title": None, "summary": None, "text": None, "annotations_count": 0,
                "annotations_url": state.url(path + "/annotations")},
    )
    _add_annotations(repo, run, body.get("output"))
    _apply_run_fields(run, body)
    repo.check_runs[ident] = run
    return Result(201, run)


@operation("PATCH", "/repos/{owner}/{repo}/check-runs/{check_run_id}")
def update_check_run(call: Call) -> Result:
    repo = call.repo
    run = repo.check_runs.get(call.number("check_run_id"))
    if run is None:
        raise ApiError(404, "Not Found")
    _add_annotations(repo, run, call.body.get("output"))
    _apply_run_fields(run, call.body)
    return Result(200, run)


@operation("GET", "/repos/{owner}/{repo}/commits/{ref}/check-runs")
def list_check_runs_for_ref(call: Call) -> Result:
    repo = call.repo
    try:
        sha = gitdata.resolve(repo.path, call.params["ref"])
    except gitdata.GitDataError as exc:
        raise ApiError(422, f"No commit found for SHA: {call.params['ref']}") from exc
    name = call.arg("check_name")
    runs = [r for r in repo.check_runs.values() if r["head_sha"] == sha and (name is None or r["name"] == name)]
    runs.sort(key=lambda r: r["id"], reverse=True)
    if call.arg("filter", "latest") == "latest":
        latest: dict[str, dict[str, Any]] = {}
        for run in runs:
            latest.setdefault(run["name"], run)
        runs = list(latest.values())
    return page(call, runs, wrap=lambda chunk: {"total_count": len(runs), "check_runs": chunk})


# ---------------------------------------------------------------------------------------------------- graphql


def graphql(call: Call) -> Result:
    """``minimizeComment`` mutations in the one document shape the bot sends (aliased, with variables)."""
    body = call.body if isinstance(call.body, dict) else {}
    query, variables = body.get("query"), body.get("variables") or {}
    match = MUTATION_RE.fullmatch(query or "")
    if match is None or not isinstance(variables, dict):
        raise ValueError(f"unsupported GraphQL document: {query!r}")
    fields = MINIMIZE_RE.findall(match.group(2))
    if not fields or MINIMIZE_RE.sub("", match.group(2)).strip():
        raise ValueError(f"unsupported GraphQL selection: {match.group(2)!r}")
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    known = _comment_node_ids(call.state)
    for alias, variable, classifier in fields:
        if variable not in variables or classifier not in CLASSIFIERS:
            raise ValueError(f"bad minimizeComment arguments: ${variable}, {classifier}")
        node_id = variables[variable]
        if node_id in known:
            call.state.minimized[node_id] = classifier
            data[alias] = {"minimizedComment": {"isMinimized": True}}
        else:
            data[alias] = None
            errors.append({"type": "NOT_FOUND", "path": [alias],
                           "message": f"Could not resolve to a node with the global id of '{node_id}'"})
    return Result(200, {"data": data, **({"errors": errors} if errors else {})})


def _comment_node_ids(state: State) -> set[str]:
    ids = set()
    for repo in state.repos.values():
        for comments in (*repo.review_comments.values(), *repo.issue_comments.values()):
            ids.update(c["node_id"] for c in comments)
    return ids
