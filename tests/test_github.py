"""bot.github: the request seam (with ``responses``), App auth, and publishing against the GitHub emulator."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
from pathlib import Path

import jwt
import pytest
import requests
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.config import Config, ProgressSettings, ReviewSettings
from bot.github import AppAuth, GitHubClient, GitHubError, NotFound, RateLimited, RepoClient
from bot.github.publish import ANNOTATIONS_PER_REQUEST, minimize_mutation
from bot.model import (
    CategoryTotal,
    CheckResult,
    Diagram,
    DiagramResult,
    DiagramStatus,
    Finding,
    Severity,
    SyntaxVerdict,
)
from bot.progress import REGION_END, REGION_START
from bot.review import (
    CHECK_RUN_NAME,
    FINGERPRINTS_COMMENT,
    GATES_FAILED_LABEL,
    GATES_PASSED_LABEL,
    REVIEW_MARKER,
    SUMMARY_MARKER,
    CheckRunDraft,
    InlineComment,
    LabelSpec,
    Publication,
    ReviewDraft,
    build_publication,
)
from emulator.fixtures import EmulatorHandle
from emulator.state import BAD_GATEWAY, BAD_GATEWAY_AFTER_WRITE, BOT_LOGIN, CONNECTION_CLOSE, SECONDARY_RATE_LIMIT

API = "https://api.github.com"
# PyGithub's connection names the port explicitly, and responses matches URLs literally.
WIRE = "https://api.github.com:443"
REPO = "acme/atlas"
NOW = 1_700_000_000.0


class Sleeps:
    """An injected sleep that records instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def client(sleeps: Sleeps, calls: list[tuple[str, int]] | None = None, api_url: str = API, **kwargs: object) -> RepoClient:
    on_call = (lambda e, s: calls.append((e, s))) if calls is not None else None
    return GitHubClient(lambda: "ghs_test", api_url, on_call=on_call, sleep=sleeps, clock=lambda: NOW,
                        **kwargs).repo(REPO)  # type: ignore[arg-type]


REPO_URL = f"{WIRE}/repos/{REPO}"
REPO_JSON = {"default_branch": "main"}


# ------------------------------------------------------------------------------------------ the request seam


@responses.activate
def test_every_call_is_reported_with_its_endpoint_template_and_status(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, json=REPO_JSON)
    responses.get(f"{REPO_URL}/collaborators/al%20ice/permission", json={"message": "Not Found"}, status=404)
    calls: list[tuple[str, int]] = []
    repo = client(sleeps, calls)
    assert repo.default_branch == "main"
    assert repo.default_branch == "main"  # cached: one request
    assert repo.permission("al ice") == "none"
    assert calls == [("GET /repos/{owner}/{repo}", 200),
                     ("GET /repos/{owner}/{repo}/collaborators/{username}/permission", 404)]
    assert responses.calls[0].request.headers["Authorization"] == "token ghs_test"
    assert responses.calls[0].request.headers["X-GitHub-Api-Version"] == "2022-11-28"


@responses.activate
def test_5xx_is_retried_with_exponential_backoff(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, status=502)
    responses.get(REPO_URL, status=503)
    responses.get(REPO_URL, json=REPO_JSON)
    calls: list[tuple[str, int]] = []
    assert client(sleeps, calls).default_branch == "main"
    assert sleeps.calls == [0.5, 1.0]
    assert [status for _, status in calls] == [502, 503, 200]


@responses.activate
def test_5xx_retries_are_bounded(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, status=500)
    with pytest.raises(GitHubError) as caught:
        client(sleeps).default_branch
    assert caught.value.status == 500
    assert len(responses.calls) == 4 and sleeps.calls == [0.5, 1.0, 2.0]


@responses.activate
def test_connection_errors_are_retried_and_reported_as_status_0(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, body=requests.exceptions.ConnectionError("reset"))
    responses.get(REPO_URL, json=REPO_JSON)
    calls: list[tuple[str, int]] = []
    assert client(sleeps, calls).default_branch == "main"
    assert [status for _, status in calls] == [0, 200]


@responses.activate
def test_a_creating_post_is_not_blindly_retried(sleeps: Sleeps) -> None:
    responses.post(f"{REPO_URL}/issues/3/comments", status=502)
    with pytest.raises(GitHubError) as caught:
        client(sleeps).post_comment(3, "hi")
    assert caught.value.status == 502 and len(responses.calls) == 1 and sleeps.calls == []


@responses.activate
def test_a_creating_post_is_retried_only_after_confirming_it_did_not_land(sleeps: Sleeps) -> None:
    url = f"{REPO_URL}/issues/3/comments"
    responses.post(url, status=502)
    responses.post(url, json={"id": 9}, status=201)
    repo = client(sleeps)
    found: list[object] = [None]
    answer = repo.call("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", {"issue_number": 3},
                       body={"body": "hi"}, confirm=lambda: found[0])
    assert answer.data == {"id": 9} and len(responses.calls) == 2

    responses.post(url, status=502)
    found[0] = {"id": 10}
    answer = repo.call("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments", {"issue_number": 3},
                       body={"body": "hi"}, confirm=lambda: found[0])
    assert answer.data == {"id": 10} and len(responses.calls) == 3  # landed: not sent again


@responses.activate
def test_secondary_rate_limit_waits_for_retry_after(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, status=403, headers={"Retry-After": "7"},
                  json={"message": "You have exceeded a secondary rate limit."})
    responses.get(REPO_URL, json=REPO_JSON)
    assert client(sleeps).default_branch == "main"
    assert sleeps.calls == [7.0]


@responses.activate
def test_secondary_rate_limit_without_retry_after_waits_a_minute(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, status=403, json={"message": "You have exceeded a secondary rate limit. Please wait a "
                                                         "few minutes before you try again."})
    responses.get(REPO_URL, json=REPO_JSON)
    assert client(sleeps).default_branch == "main"
    assert sleeps.calls == [60.0]


@responses.activate
def test_a_longer_wait_than_allowed_raises_rate_limited(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, status=429, headers={"Retry-After": "600"}, json={"message": "slow down"})
    with pytest.raises(RateLimited) as caught:
        client(sleeps).default_branch
    assert caught.value.retry_at == NOW + 600 and sleeps.calls == []


@responses.activate
def test_primary_rate_limit_waits_until_reset(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, status=403, json={"message": "API rate limit exceeded for installation ID 1."},
                  headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 30)})
    responses.get(REPO_URL, json=REPO_JSON, headers={"X-RateLimit-Remaining": "4999",
                                                     "X-RateLimit-Reset": str(int(NOW) + 3600)})
    repo = client(sleeps)
    assert repo.default_branch == "main"
    assert sleeps.calls == [31.0]
    assert repo.rate_limit_remaining == 4999


@responses.activate
def test_a_spent_budget_is_waited_for_before_sending(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, json=REPO_JSON, headers={"X-RateLimit-Remaining": "0",
                                                     "X-RateLimit-Reset": str(int(NOW) + 20)})
    responses.get(f"{REPO_URL}/pulls/1/files", json=[])
    repo = client(sleeps)
    assert repo.default_branch == "main" and sleeps.calls == []
    assert repo.pr_patches(1) == {}
    assert sleeps.calls == [21.0]


@responses.activate
def test_a_spent_budget_with_a_far_reset_raises_before_sending(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, json=REPO_JSON, headers={"X-RateLimit-Remaining": "0",
                                                     "X-RateLimit-Reset": str(int(NOW) + 1800)})
    repo = client(sleeps)
    repo.default_branch
    with pytest.raises(RateLimited):
        repo.pr_patches(1)
    assert len(responses.calls) == 1


@responses.activate
def test_a_403_that_is_not_a_rate_limit_is_an_error_at_once(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, status=403, json={"message": "Resource not accessible by integration"})
    with pytest.raises(GitHubError) as caught:
        client(sleeps).default_branch
    assert caught.value.status == 403 and sleeps.calls == [] and len(responses.calls) == 1


@responses.activate
def test_404_is_not_found_and_handled_where_expected(sleeps: Sleeps) -> None:
    responses.get(f"{REPO_URL}/contents/.github/atlas-bot.yml", status=404, json={"message": "Not Found"})
    responses.get(f"{REPO_URL}/pulls/5", status=404, json={"message": "Not Found"})
    repo = client(sleeps)
    assert repo.read_file("main", ".github/atlas-bot.yml") is None
    with pytest.raises(NotFound):
        repo.pull_request(5)


@responses.activate
def test_read_file_decodes_base64_content(sleeps: Sleeps) -> None:
    responses.get(f"{REPO_URL}/contents/.github/atlas-bot.yml",
                  match=[responses.matchers.query_param_matcher({"ref": "main"})],
                  json={"type": "file", "encoding": "base64", "content": "Z2F0ZXM6\nIHt9Cg==\n"})
    assert client(sleeps).read_file("main", ".github/atlas-bot.yml") == "gates: {}\n"


@responses.activate
def test_listings_follow_link_headers(sleeps: Sleeps) -> None:
    url = f"{REPO_URL}/pulls/1/files"
    responses.get(url, match=[responses.matchers.query_param_matcher({"per_page": "100"})],
                  json=[{"filename": "a.md", "patch": "@@ -1 +1 @@\n-a\n+b"}],
                  headers={"Link": f'<{url}?per_page=100&page=2>; rel="next"'})
    responses.get(url, match=[responses.matchers.query_param_matcher({"per_page": "100", "page": "2"})],
                  json=[{"filename": "b.png"}])
    assert client(sleeps).pr_patches(1) == {"a.md": "@@ -1 +1 @@\n-a\n+b"}


@responses.activate
def test_a_write_committed_20_s_after_its_post_got_no_answer_is_found_not_posted_again(sleeps: Sleeps) -> None:
    url = f"{REPO_URL}/issues/3/comments"
    responses.post(url, body=requests.exceptions.ReadTimeout("read timed out"))
    responses.post(url, json={"id": 10}, status=201)

    def confirm() -> object:
        return {"id": 9} if sum(sleeps.calls) >= 20 else None  # GitHub commits the write 20 s late

    answer = client(sleeps).call("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments",
                                 {"issue_number": 3}, body={"body": "hi"}, confirm=confirm)
    assert answer.data == {"id": 9}
    assert len(responses.calls) == 1  # never sent twice
    assert sum(sleeps.calls) >= 20


@responses.activate
def test_a_post_that_got_no_answer_and_never_landed_is_sent_again_after_half_a_minute(sleeps: Sleeps) -> None:
    url = f"{REPO_URL}/issues/3/comments"
    responses.post(url, body=requests.exceptions.ConnectionError("reset"))
    responses.post(url, json={"id": 10}, status=201)
    looked: list[float] = []
    answer = client(sleeps).call("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments",
                                 {"issue_number": 3}, body={"body": "hi"},
                                 confirm=lambda: looked.append(sum(sleeps.calls)))
    assert answer.data == {"id": 10} and len(responses.calls) == 2
    assert looked[0] == 0 and looked[-1] >= 30


@responses.activate
def test_a_401_drops_the_token_and_retries_once_with_a_fresh_one(sleeps: Sleeps) -> None:
    responses.get(REPO_URL, json={"message": "Bad credentials"}, status=401)
    responses.get(REPO_URL, json=REPO_JSON)
    tokens = ["ghs_revoked", "ghs_fresh"]
    dropped: list[str] = []
    repo = GitHubClient(lambda: tokens[0], API, drop_token=lambda t: (dropped.append(t), tokens.pop(0)),
                        sleep=sleeps).repo(REPO)
    assert repo.default_branch == "main"
    assert dropped == ["ghs_revoked"]
    assert [c.request.headers["Authorization"] for c in responses.calls] == ["token ghs_revoked", "token ghs_fresh"]


@responses.activate
def test_a_second_401_is_a_permanent_error(sleeps: Sleeps) -> None:
    from bot.github.transport import PermanentError, Unauthorized

    responses.get(REPO_URL, json={"message": "Bad credentials"}, status=401)
    dropped: list[str] = []
    repo = GitHubClient(lambda: "ghs_x", API, drop_token=dropped.append, sleep=sleeps).repo(REPO)
    with pytest.raises(Unauthorized) as caught:
        repo.default_branch
    assert isinstance(caught.value, PermanentError) and caught.value.status == 401
    assert len(responses.calls) == 2 and dropped == ["ghs_x"] and sleeps.calls == []


@pytest.mark.parametrize(("status", "permanent"), [(404, True), (401, True), (422, False), (502, False)])
def test_which_github_errors_are_permanent(status: int, permanent: bool) -> None:
    from bot.github.transport import PermanentError, _error

    assert isinstance(_error("GET /x", status, {"message": "m"}, None), PermanentError) is permanent


@responses.activate
def test_the_write_slot_is_not_held_through_a_rate_limit_wait() -> None:
    lock = threading.Lock()
    held_while_sleeping: list[bool] = []
    responses.post(f"{REPO_URL}/issues/1/comments", json={"message": "slow down"}, status=403,
                   headers={"Retry-After": "30"})
    responses.post(f"{REPO_URL}/issues/1/comments", json={"id": 1}, status=201)
    repo = GitHubClient(lambda: "ghs_test", API, write_lock=lock, clock=lambda: NOW,
                        sleep=lambda seconds: held_while_sleeping.append(lock.locked())).repo(REPO)
    assert repo.post_comment(1, "x") == 1
    assert held_while_sleeping == [False]


@responses.activate
def test_listings_follow_every_page(sleeps: Sleeps) -> None:
    url = f"{REPO_URL}/pulls/1/files"
    pages = 45  # more than the 30 pages listings used to stop at
    for n in range(1, pages + 1):
        query = {"per_page": "100", **({"page": str(n)} if n > 1 else {})}
        link = {"Link": f'<{url}?per_page=100&page={n + 1}>; rel="next"'} if n < pages else {}
        responses.get(url, match=[responses.matchers.query_param_matcher(query)],
                      json=[{"filename": f"{n}.md", "patch": "@@"}], headers=link)
    assert len(client(sleeps).pr_patches(1)) == pages


@responses.activate
def test_enterprise_server_urls(sleeps: Sleeps) -> None:
    base = "https://ghe.example.com/api/v3"
    responses.get(f"https://ghe.example.com:443/api/v3/repos/{REPO}", json=REPO_JSON)
    responses.post("https://ghe.example.com:443/api/graphql", json={"data": {}})
    repo = client(sleeps, api_url=base)
    assert repo.default_branch == "main"
    assert repo.transport.graphql(*minimize_mutation(["x"])) == {"data": {}}


@responses.activate
def test_writes_of_one_installation_wait_for_the_shared_lock(sleeps: Sleeps) -> None:
    started = threading.Event()
    responses.add_callback(responses.POST, f"{REPO_URL}/issues/1/comments",
                           callback=lambda _: (started.set(), (201, {}, '{"id": 1}'))[1])
    lock = threading.Lock()
    repo = client(sleeps, write_lock=lock)
    with lock:
        writer = threading.Thread(target=repo.post_comment, args=(1, "x"))
        writer.start()
        writer.join(0.2)
        assert not started.is_set()  # held back while another write of the installation runs
    writer.join(5)
    assert started.is_set()


# ------------------------------------------------------------------------------------------------ App auth


@pytest.fixture(scope="module")
def app_key() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


def test_app_jwt_is_signed_with_the_key_and_names_the_app(app_key: tuple[str, str]) -> None:
    private, public = app_key
    claims = jwt.decode(AppAuth(4242, private).app_jwt(), public, algorithms=["RS256"])
    assert claims["iss"] == "4242" and claims["exp"] - claims["iat"] <= 660


@responses.activate
def test_installation_tokens_are_cached_until_five_minutes_before_expiry(app_key: tuple[str, str],
                                                                         sleeps: Sleeps) -> None:
    private, public = app_key
    url = f"{WIRE}/app/installations/7/access_tokens"
    responses.post(url, json={"token": "ghs_one", "expires_at": "2023-11-14T23:13:20Z"}, status=201)  # NOW + 1h
    responses.post(url, json={"token": "ghs_two", "expires_at": "2023-11-15T00:13:20Z"}, status=201)
    now = [NOW]
    calls: list[tuple[str, int]] = []
    auth = AppAuth(4242, private, on_call=lambda e, s: calls.append((e, s)), clock=lambda: now[0], sleep=sleeps)
    assert auth.installation_token(7) == "ghs_one"
    now[0] = NOW + 3600 - 301
    assert auth.installation_token(7) == "ghs_one"
    now[0] = NOW + 3600 - 299
    assert auth.installation_token(7) == "ghs_two"
    assert calls == [("POST /app/installations/{installation_id}/access_tokens", 201)] * 2
    bearer = responses.calls[0].request.headers["Authorization"]
    assert bearer.startswith("Bearer ") and jwt.decode(bearer[7:], public, algorithms=["RS256"],
                                                       options={"verify_exp": False})["iss"] == "4242"


def test_clients_of_one_installation_share_a_write_lock(app_key: tuple[str, str]) -> None:
    auth = AppAuth(1, app_key[0])
    assert auth.write_lock(7) is auth.write_lock(7)
    assert auth.write_lock(7) is not auth.write_lock(8)


@responses.activate
def test_a_slow_token_request_holds_up_no_other_installation(app_key: tuple[str, str]) -> None:
    release = threading.Event()

    def slow(_: object) -> tuple[int, dict, str]:
        release.wait(5)
        return 201, {}, '{"token": "ghs_seven", "expires_at": "2030-01-01T00:00:00Z"}'

    responses.add_callback(responses.POST, f"{WIRE}/app/installations/7/access_tokens", callback=slow)
    responses.post(f"{WIRE}/app/installations/8/access_tokens",
                   json={"token": "ghs_eight", "expires_at": "2030-01-01T00:00:00Z"}, status=201)
    auth = AppAuth(4242, app_key[0])
    seven = threading.Thread(target=auth.installation_token, args=(7,))
    seven.start()
    try:
        done: list[str] = []
        eight = threading.Thread(target=lambda: done.append(auth.installation_token(8)))
        eight.start()
        eight.join(2)
        assert done == ["ghs_eight"]  # answered while installation 7's request is still waiting
    finally:
        release.set()
        seven.join(5)


def test_a_revoked_installation_token_is_replaced_at_once(github_emulator: EmulatorHandle,
                                                          app_key: tuple[str, str], tmp_path: Path) -> None:
    private, public = app_key
    github_emulator.register_app(4242, public, installation_id=9)
    github_emulator.add_repo(REPO, make_repo(tmp_path))
    auth = AppAuth(4242, private, github_emulator.base_url)
    assert auth.client(9).repo(REPO).default_branch == "main"
    revoked = auth.installation_token(9)
    github_emulator.state.revoke_tokens(9)
    repo = auth.client(9).repo(REPO)
    assert repo.pull_request(gh_pull(github_emulator)).number == 1  # one 401, then a fresh token
    assert auth.installation_token(9) != revoked
    statuses = [r.status for r in github_emulator.requests if r.endpoint.startswith("GET /repos/{owner}/{repo}/")]
    assert statuses == [401, 200]


def gh_pull(gh: EmulatorHandle) -> int:
    return gh.add_pull(REPO, "feature")


def test_app_auth_against_the_emulator(github_emulator: EmulatorHandle, app_key: tuple[str, str],
                                       tmp_path: Path) -> None:
    private, public = app_key
    github_emulator.register_app(4242, public, installation_id=9)
    github_emulator.add_repo(REPO, make_repo(tmp_path))
    auth = AppAuth(4242, private, github_emulator.base_url)
    assert auth.client(9).repo(REPO).default_branch == "main"


# ------------------------------------------------------------------------------------- publishing (emulator)


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True).stdout


def commit(path: Path, branch: str, lines: list[str], message: str) -> str:
    git(path, "checkout", "-q", branch)
    (path / "docs" / "arch" / "a.md").write_text("".join(f"{line}\n" for line in lines))
    git(path, "commit", "-qam", message)
    git(path, "checkout", "-q", "main")
    return git(path, "rev-parse", branch).strip()


def make_repo(tmp_path: Path) -> Path:
    """main: docs/arch/a.md with 30 lines; branch feature rewrites lines 5-25."""
    path = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    (path / "docs" / "arch").mkdir(parents=True)
    (path / "docs" / "arch" / "a.md").write_text("".join(f"line {i}\n" for i in range(1, 31)))
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    git(path, "branch", "feature")
    commit(path, "feature", [f"line {i}" if i < 5 or i > 25 else f"changed {i}" for i in range(1, 31)], "change")
    return path


def fp(number: int) -> str:
    return f"{number:016x}"


LABEL_SPECS = {
    "atlas:arch": LabelSpec("1D76DB", "Changes Atlas diagrams in Architecture"),
    GATES_PASSED_LABEL: LabelSpec("2DA44E", "Every diagram passes"),
    GATES_FAILED_LABEL: LabelSpec("CF222E", "A blocking gate fails"),
}


def publication(head: str, inline: dict[int, int], *, body_only: tuple[int, ...] = (), annotations: int = 0,
                labels: tuple[str, ...] = ("atlas:arch", GATES_FAILED_LABEL), summary: str = "2 findings",
                start: dict[int, int] | None = None) -> Publication:
    """What bot.review would build: ``inline`` maps fingerprint number → line of docs/arch/a.md."""
    numbers = sorted(set(inline) | set(body_only))
    comments = tuple(
        InlineComment("docs/arch/a.md", line, (start or {}).get(n), "RIGHT",
                      f"{FINGERPRINTS_COMMENT.format(fp(n))}\n❌ finding {n}", fp(n))
        for n, line in sorted(inline.items()))
    review = ReviewDraft("COMMENT", "\n".join([REVIEW_MARKER, FINGERPRINTS_COMMENT.format(" ".join(map(fp, numbers))),
                                              f"### {len(numbers)} findings"]), comments) if numbers else None
    check = CheckRunDraft(CHECK_RUN_NAME, head, "failure" if numbers else "success", "Gates", summary,
                          tuple({"path": "docs/arch/a.md", "start_line": 5 + i % 20, "end_line": 5 + i % 20,
                                 "annotation_level": "warning", "message": f"finding {i}"} for i in range(annotations)))
    return Publication(review, f"{SUMMARY_MARKER}\n{summary}", frozenset(labels),
                       {name: LABEL_SPECS[name] for name in labels}, check, frozenset(map(fp, numbers)))


@pytest.fixture
def gh(github_emulator: EmulatorHandle, tmp_path: Path) -> EmulatorHandle:
    github_emulator.add_repo(REPO, make_repo(tmp_path))
    return github_emulator


@pytest.fixture
def repo(gh: EmulatorHandle, sleeps: Sleeps) -> RepoClient:
    return GitHubClient(lambda: gh.token, gh.base_url, sleep=sleeps, bot_logins=frozenset({BOT_LOGIN})).repo(REPO)


def head_of(gh: EmulatorHandle, number: int) -> str:
    return gh.state.repo(REPO).pulls[number].head_sha


def test_first_publish_then_rerun_of_the_same_head(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    pub = publication(head_of(gh, number), {1: 6, 2: 10, 3: 20}, body_only=(4,), annotations=4,
                      start={2: 8})
    first = repo.publish(number, pub)

    state = gh.state.repo(REPO)
    assert first.writes == 6  # 4 + the repository's 2 missing labels, created once per repository
    assert [w.endpoint for w in gh.writes()].count("POST /repos/{owner}/{repo}/labels") == 2
    [review] = state.reviews[number]
    assert review["state"] == "COMMENTED" and review["commit_id"] == head_of(gh, number)
    assert [(c["line"], c.get("start_line")) for c in state.review_comments[number]] == [(6, None), (10, 8),
                                                                                          (20, None)]
    [summary] = state.issue_comments[number]
    assert summary["body"] == pub.summary
    assert gh.state.labels_on(REPO, number) == {"atlas:arch", GATES_FAILED_LABEL}
    assert state.labels["atlas:arch"]["color"] == "1D76DB"
    [run] = state.check_runs.values()
    assert run["conclusion"] == "failure" and run["output"]["annotations_count"] == 4

    mark = gh.mark()
    again = repo.publish(number, pub)
    assert again.writes == 0 and gh.writes(since=mark) == []
    assert again.reads == 4  # pull, reviews, conversation, check runs


def test_first_publish_with_existing_labels_stays_within_six_writes(gh: EmulatorHandle, repo: RepoClient) -> None:
    for name, spec in LABEL_SPECS.items():
        gh.state.ensure_label(gh.state.repo(REPO), name, spec.color, spec.description)
    number = gh.add_pull(REPO, "feature")
    report = repo.publish(number, publication(head_of(gh, number), {n: 5 + n for n in range(1, 20)},
                                              body_only=tuple(range(30, 80)), annotations=50))
    assert report.writes == 4 <= 6
    assert len(gh.state.repo(REPO).review_comments[number]) == 19


def test_new_head_with_a_fixed_finding(gh: EmulatorHandle, repo: RepoClient, tmp_path: Path) -> None:
    number = gh.add_pull(REPO, "feature")
    repo.publish(number, publication(head_of(gh, number), {1: 6, 2: 10, 3: 20}))
    state = gh.state.repo(REPO)
    comment_of = {c["body"].split("\n")[-1]: c["node_id"] for c in state.review_comments[number]}

    head = gh.push(REPO, number, commit(tmp_path / "repo", "feature",
                                        [f"line {i}" if i < 5 or i > 25 else f"fixed {i}" for i in range(1, 31)],
                                        "fix"))
    assert repo.posted_fingerprints(number) == {fp(1), fp(2), fp(3)}
    mark = gh.mark()
    report = repo.publish(number, publication(head, {1: 6, 3: 20, 5: 12}, summary="2 findings left"))

    endpoints = [w.endpoint for w in gh.writes(since=mark)]
    assert endpoints == ["POST /repos/{owner}/{repo}/check-runs",
                         "POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews",
                         "POST /graphql",
                         "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}"]
    assert report.writes == 4
    assert gh.state.minimized == {comment_of["❌ finding 2"]: "OUTDATED"}
    new_review = state.reviews[number][-1]
    assert [c["body"].split("\n")[-1] for c in state.review_comments[number]
            if c["pull_request_review_id"] == new_review["id"]] == ["❌ finding 5"]
    assert f"<!-- atlas-bot:resolved {fp(2)} -->" in state.issue_comments[number][0]["body"]
    assert len(state.check_runs) == 2

    mark = gh.mark()
    assert repo.publish(number, publication(head, {1: 6, 3: 20, 5: 12}, summary="2 findings left")).writes == 0
    assert gh.writes(since=mark) == []


def test_a_finding_that_comes_back_is_commented_again(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    head = head_of(gh, number)
    repo.publish(number, publication(head, {1: 6, 2: 10}))
    repo.publish(number, publication(head, {1: 6}, summary="1 finding"))
    assert repo.posted_fingerprints(number) == {fp(1)}
    repo.publish(number, publication(head, {1: 6, 2: 10}))
    state = gh.state.repo(REPO)
    assert [c["body"].split("\n")[-1] for c in state.review_comments[number]] == [
        "❌ finding 1", "❌ finding 2", "❌ finding 2"]
    assert "resolved" not in state.issue_comments[number][0]["body"]


@pytest.mark.parametrize(
    ("before", "wanted", "endpoints"),
    [
        ({"needs-docs", "atlas:arch", GATES_FAILED_LABEL}, ("atlas:arch", GATES_PASSED_LABEL),
         ["POST /repos/{owner}/{repo}/issues/{issue_number}/labels",
          "DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"]),
        ({"needs-docs", "atlas:arch"}, ("atlas:arch", GATES_PASSED_LABEL),
         ["POST /repos/{owner}/{repo}/issues/{issue_number}/labels"]),
        ({"needs-docs", "atlas:arch", "atlas:old", "atlas:older"}, ("atlas:arch",),
         ["DELETE /repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"] * 2),
    ],
)
def test_labels_are_added_and_removed_individually(gh: EmulatorHandle, repo: RepoClient, before: set[str],
                                                   wanted: tuple[str, ...], endpoints: list[str]) -> None:
    number = gh.add_pull(REPO, "feature")
    state = gh.state.repo(REPO)
    state.issues[number]["labels"] = [gh.state.ensure_label(state, name) for name in sorted(before)]
    for name in wanted:
        gh.state.ensure_label(state, name)
    mark = gh.mark()
    repo.publish(number, publication(head_of(gh, number), {}, labels=wanted, summary="ok"))
    label_writes = [w.endpoint for w in gh.writes(since=mark) if "labels" in w.endpoint]
    assert label_writes == endpoints
    assert "PUT /repos/{owner}/{repo}/issues/{issue_number}/labels" not in label_writes
    assert gh.state.labels_on(REPO, number) == {n for n in before if not n.startswith("atlas:")} | set(wanted)


def test_a_label_a_person_adds_while_the_bot_publishes_survives(gh: EmulatorHandle, repo: RepoClient) -> None:
    from bot.github.publish import _sync_labels

    number = gh.add_pull(REPO, "feature")
    state = gh.state.repo(REPO)
    state.issues[number]["labels"] = [gh.state.ensure_label(state, GATES_FAILED_LABEL)]
    gh.state.ensure_label(state, GATES_PASSED_LABEL)
    read_by_the_bot = frozenset({GATES_FAILED_LABEL})
    state.issues[number]["labels"].append(gh.state.ensure_label(state, "needs-docs"))  # a person, just now
    _sync_labels(repo, number, read_by_the_bot, publication(head_of(gh, number), {}, labels=(GATES_PASSED_LABEL,)),
                 [])
    assert gh.state.labels_on(REPO, number) == {"needs-docs", GATES_PASSED_LABEL}


def test_annotations_go_50_per_request(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    pub = publication(head_of(gh, number), {1: 6}, annotations=120)
    repo.publish(number, pub)
    check_writes = [w for w in gh.writes() if "check-runs" in w.endpoint]
    assert [(w.method, len(w.body["output"]["annotations"])) for w in check_writes] == [
        ("POST", 50), ("PATCH", 50), ("PATCH", 20)]
    assert ANNOTATIONS_PER_REQUEST == 50
    [run] = gh.state.repo(REPO).check_runs.values()
    assert len(gh.state.annotations_of(REPO, run["id"])) == 120
    mark = gh.mark()
    assert repo.publish(number, pub).writes == 0 and gh.writes(since=mark) == []


def test_a_changed_result_on_the_same_head_gets_a_new_check_run(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    head = head_of(gh, number)
    repo.publish(number, publication(head, {1: 6}, annotations=3))
    report = repo.publish(number, publication(head, {1: 6}, annotations=2))
    assert report.actions[0].startswith("check run: failure, 2 annotations")
    assert [len(gh.state.annotations_of(REPO, r)) for r in gh.state.repo(REPO).check_runs] == [3, 2]


def test_neutral_check_is_written_once(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    head = head_of(gh, number)
    assert repo.publish_neutral_check(head, "Invalid configuration", "line 3: bad").writes == 1
    assert repo.publish_neutral_check(head, "Invalid configuration", "line 3: bad").writes == 0
    [run] = gh.state.repo(REPO).check_runs.values()
    assert run["conclusion"] == "neutral" and run["name"] == CHECK_RUN_NAME


def test_a_review_that_landed_despite_a_502_is_not_posted_twice(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    gh.inject_fault("POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews", BAD_GATEWAY_AFTER_WRITE)
    gh.inject_fault("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", BAD_GATEWAY)
    repo.publish(number, publication(head_of(gh, number), {1: 6}))
    state = gh.state.repo(REPO)
    assert len(state.reviews[number]) == 1 and len(state.issue_comments[number]) == 1


def test_nothing_is_published_for_a_head_the_pull_request_no_longer_has(gh: EmulatorHandle, repo: RepoClient,
                                                                        tmp_path: Path) -> None:
    number = gh.add_pull(REPO, "feature")
    old = head_of(gh, number)
    repo.publish(number, publication(old, {1: 6, 2: 10}))
    newer = gh.push(REPO, number, commit(tmp_path / "repo", "feature",
                                         [f"line {i}" if i < 5 or i > 25 else f"newer {i}" for i in range(1, 31)],
                                         "newer"))
    repo.publish(number, publication(newer, {1: 6, 2: 10, 3: 20}))
    mark = gh.mark()
    # The job of the older head finishes last and finds finding 3 "fixed": it must not minimise its comment.
    report = repo.publish(number, publication(old, {1: 6, 2: 10}, summary="stale"))
    assert report.stale and report.writes == 0 and gh.writes(since=mark) == []
    assert gh.state.minimized == {}


def test_a_lost_review_post_is_confirmed_by_its_head_not_by_an_older_identical_review(
        gh: EmulatorHandle, repo: RepoClient, tmp_path: Path) -> None:
    number = gh.add_pull(REPO, "feature")
    repo.publish(number, publication(head_of(gh, number), {1: 6}))

    def push(word: str) -> str:
        return gh.push(REPO, number, commit(tmp_path / "repo", "feature",
                                            [f"line {i}" if i < 5 or i > 25 else f"{word} {i}" for i in range(1, 31)],
                                            word))

    repo.publish(number, publication(push("fixed"), {}, summary="fixed"))
    head = push("back")
    # Finding 1 comes back: the same review body as the first head's, whose POST now gets no answer.
    gh.inject_fault("POST /repos/{owner}/{repo}/pulls/{pull_number}/reviews", CONNECTION_CLOSE)
    repo.publish(number, publication(head, {1: 6}))
    reviews = gh.state.repo(REPO).reviews[number]
    assert len(reviews) == 2 and reviews[-1]["commit_id"] == head


def test_a_lost_check_run_post_is_not_confused_with_a_half_annotated_older_run(gh: EmulatorHandle,
                                                                              repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    pub = publication(head_of(gh, number), {}, annotations=60, summary="many")
    # An earlier attempt crashed after its first 50 annotations: same head, same first summary.
    repo.call("POST", "/repos/{owner}/{repo}/check-runs",
              body={"name": CHECK_RUN_NAME, "head_sha": pub.check_run.head_sha, "status": "completed",
                    "conclusion": pub.check_run.conclusion,
                    "output": {"title": pub.check_run.title, "summary": pub.check_run.summary,
                               "annotations": list(pub.check_run.annotations[:50])}})
    gh.inject_fault("POST /repos/{owner}/{repo}/check-runs", CONNECTION_CLOSE)
    repo.publish(number, pub)
    runs = list(gh.state.repo(REPO).check_runs.values())
    assert len(runs) == 2
    assert [r["output"]["annotations_count"] for r in runs] == [50, 60]


def test_an_annotation_update_whose_answer_was_lost_is_not_appended_twice(gh: EmulatorHandle,
                                                                         repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    gh.inject_fault("PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}", BAD_GATEWAY_AFTER_WRITE)
    repo.publish(number, publication(head_of(gh, number), {}, annotations=120, summary="many"))
    [run] = gh.state.repo(REPO).check_runs.values()
    assert run["output"]["annotations_count"] == 120


def test_a_review_requesting_changes_is_dismissed_once_its_findings_are_fixed(gh: EmulatorHandle,
                                                                              repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    head = head_of(gh, number)
    failing = publication(head, {1: 6})
    failing = dataclasses.replace(failing, review=dataclasses.replace(failing.review, event="REQUEST_CHANGES"))
    repo.publish(number, failing)
    [review] = gh.state.repo(REPO).reviews[number]
    assert review["state"] == "CHANGES_REQUESTED"
    repo.publish(number, publication(head, {}, labels=(GATES_PASSED_LABEL,), summary="all fixed"))
    assert review["state"] == "DISMISSED"
    mark = gh.mark()
    repo.publish(number, publication(head, {}, labels=(GATES_PASSED_LABEL,), summary="all fixed"))
    assert gh.writes(since=mark) == []


def test_a_comment_that_could_not_be_minimised_is_not_recorded_as_fixed(gh: EmulatorHandle, repo: RepoClient,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    number = gh.add_pull(REPO, "feature")
    head = head_of(gh, number)
    repo.publish(number, publication(head, {1: 6, 2: 10}))
    real_graphql = repo.transport.graphql
    monkeypatch.setattr(repo.transport, "graphql", lambda query, variables: {
        "data": {"m0": None}, "errors": [{"type": "FORBIDDEN", "path": ["m0"], "message": "not now"}]})
    repo.publish(number, publication(head, {1: 6}, summary="one left"))
    summary = gh.state.repo(REPO).issue_comments[number][0]["body"]
    assert "atlas-bot:resolved" not in summary and gh.state.minimized == {}
    assert repo.posted_fingerprints(number) == {fp(1), fp(2)}  # still live: the next run tries again

    monkeypatch.setattr(repo.transport, "graphql", real_graphql)
    repo.publish(number, publication(head, {1: 6}, summary="one left"))
    assert f"<!-- atlas-bot:resolved {fp(2)} -->" in gh.state.repo(REPO).issue_comments[number][0]["body"]
    assert len(gh.state.minimized) == 1


def test_faults_during_publish_are_ridden_out(gh: EmulatorHandle, repo: RepoClient, sleeps: Sleeps) -> None:
    number = gh.add_pull(REPO, "feature")
    gh.inject_fault("GET /repos/{owner}/{repo}/pulls/{pull_number}", CONNECTION_CLOSE)
    gh.inject_fault("POST /repos/{owner}/{repo}/check-runs", SECONDARY_RATE_LIMIT, retry_after=5)
    gh.inject_fault("PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}", BAD_GATEWAY)
    repo.publish(number, publication(head_of(gh, number), {1: 6}))
    repo.publish(number, publication(head_of(gh, number), {1: 6}, summary="reworded"))
    assert 5.0 in sleeps.calls
    assert gh.state.repo(REPO).issue_comments[number][0]["body"].endswith("reworded")
    assert len(gh.state.repo(REPO).check_runs) == 2


def test_a_person_quoting_the_summary_marker_is_not_the_summary(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    gh.state.add_comment(REPO, number, f"copied: {SUMMARY_MARKER}", author="someone")
    repo.publish(number, publication(head_of(gh, number), {}, summary="ok"))
    bodies = [c["body"] for c in gh.state.repo(REPO).issue_comments[number]]
    assert bodies == [f"copied: {SUMMARY_MARKER}", f"{SUMMARY_MARKER}\nok"]


def test_rejected_inline_comments_move_into_the_review_body(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    repo.publish(number, publication(head_of(gh, number), {1: 1}))  # line 1 is outside the diff
    [review] = gh.state.repo(REPO).reviews[number]
    assert "finding 1" in review["body"] and gh.state.repo(REPO).review_comments[number] == []
    assert repo.posted_fingerprints(number) == {fp(1)}


# The configuration bot.review is given in production, without the rules (nothing here evaluates gates).
REQUEST_CHANGES = Config(review=ReviewSettings(request_changes_on_failure=True))


def check_result(head: str, lines: tuple[int, ...]) -> CheckResult:
    code = "\n".join(f"changed {n}" for n in range(5, 26))
    diagram = Diagram("docs/arch/a.md", 4, code, tuple(range(5, 26)))
    findings = tuple(Finding("technical", "syntax", Severity.ERROR, "docs/arch/a.md", line, f"broken line {line}",
                             end_line=line + 1, suggestion=f"fixed {line}\nfixed {line + 1}", blocking=True)
                     for line in lines)
    result = DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=False, error="Parse error"), findings,
                           {"technical": False})
    return CheckResult("main", head, (result,), totals=(CategoryTotal("arch", "Arch", 1, 2, 10),))


def test_what_bot_review_builds_is_accepted_and_idempotent(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = gh.add_pull(REPO, "feature")
    head = head_of(gh, number)
    pub = build_publication(check_result(head, (6, 12)), REQUEST_CHANGES, pr_patches=repo.pr_patches(number),
                            head_sha=head)
    report = repo.publish(number, pub)
    assert report.writes <= 6
    [review] = gh.state.repo(REPO).reviews[number]
    assert review["state"] == "CHANGES_REQUESTED"
    comments = gh.state.repo(REPO).review_comments[number]
    assert [(c["start_line"], c["line"]) for c in comments] == [(6, 7), (12, 13)]
    assert "```suggestion\nfixed 6\nfixed 7\n```" in comments[0]["body"]
    assert repo.posted_fingerprints(number) == pub.fingerprints

    again = build_publication(check_result(head, (6, 12)), REQUEST_CHANGES, pr_patches=repo.pr_patches(number),
                              head_sha=head, already_posted=repo.posted_fingerprints(number))
    assert again.review is None
    assert repo.publish(number, again).writes == 0


def twins(head: str, *, first_fixed: bool) -> CheckResult:
    """docs/arch/a.md with two identical diagrams (fences on lines 5 and 12), each with a syntax error on its
    second code line; optionally the first one fixed."""
    broken, fixed = "flowchart LR\n    A[Edge (CDN)] --> B", 'flowchart LR\n    A["Edge (CDN)"] --> B'
    results = []
    for fence, code in ((5, fixed if first_fixed else broken), (12, broken)):
        diagram = Diagram("docs/arch/a.md", fence, code, (fence + 1, fence + 2))
        findings = () if code == fixed else (Finding("technical", "syntax", Severity.ERROR, "docs/arch/a.md",
                                                     fence + 2, "broken label", blocking=True),)
        results.append(DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=not findings), findings,
                                     {"technical": not findings}))
    return CheckResult("main", head, tuple(results))


def twin_lines(first: str) -> list[str]:
    diagram = ["```mermaid", "flowchart LR", "    A[Edge (CDN)] --> B", "```"]
    return ([f"line {i}" for i in range(1, 5)] + ["```mermaid", "flowchart LR", first, "```", "", "text", ""]
            + diagram + [f"line {i}" for i in range(16, 31)])


def test_fixing_one_of_two_identical_diagrams_keeps_the_others_comment(gh: EmulatorHandle, repo: RepoClient,
                                                                        tmp_path: Path) -> None:
    """Issue 8.1 through the publisher: the comment on the diagram that is still broken is never minimised."""
    number = gh.add_pull(REPO, "feature")
    head = gh.push(REPO, number, commit(tmp_path / "repo", "feature", twin_lines("    A[Edge (CDN)] --> B"), "twins"))
    repo.publish(number, build_publication(twins(head, first_fixed=False), Config(),
                                           pr_patches=repo.pr_patches(number), head_sha=head))
    comments = gh.state.repo(REPO).review_comments[number]
    second = next(c["node_id"] for c in comments if c["line"] == 14)

    head = gh.push(REPO, number, commit(tmp_path / "repo", "feature", twin_lines('    A["Edge (CDN)"] --> B'),
                                        "quote the first label"))
    repo.publish(number, build_publication(twins(head, first_fixed=True), Config(), pr_patches=repo.pr_patches(number),
                                           head_sha=head, already_posted=repo.posted_fingerprints(number)))
    assert second not in gh.state.minimized


# ----------------------------------------------------------------------------------------- progress issue


def region(text: str) -> str:
    return f"{REGION_START}\n{text}\n{REGION_END}"


def test_progress_issue_is_created_with_its_label(gh: EmulatorHandle, repo: RepoClient) -> None:
    ref = repo.upsert_progress_issue(region("10 diagrams"), ProgressSettings())
    assert ref.action == "created" and ref.state == "open"
    issue = gh.state.repo(REPO).issues[ref.number]
    assert issue["body"] == region("10 diagrams")
    assert gh.state.labels_on(REPO, ref.number) == {"atlas-progress"}
    assert gh.state.repo(REPO).labels["atlas-progress"]["description"]
    mark = gh.mark()
    assert repo.upsert_progress_issue(region("10 diagrams"), ProgressSettings()).action == "unchanged"
    assert gh.writes(since=mark) == []


def test_progress_issue_keeps_what_people_wrote_around_the_region(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = repo.upsert_progress_issue(region("10 diagrams"), ProgressSettings()).number
    gh.state.edit_issue(REPO, number, "Note from the team.\n\n" + region("10 diagrams") + "\n\nSee also #4.")
    seen: list[str | None] = []

    def render(body: str | None) -> str:
        seen.append(body)
        return region("12 diagrams")

    ref = repo.upsert_progress_issue(render, ProgressSettings())
    assert ref.action == "updated" and ref.number == number
    assert seen[0].startswith("Note from the team.")  # type: ignore[union-attr]
    assert gh.state.repo(REPO).issues[number]["body"] == ("Note from the team.\n\n" + region("12 diagrams")
                                                          + "\n\nSee also #4.")
    assert [w.endpoint for w in gh.writes()][-1] == "PATCH /repos/{owner}/{repo}/issues/{issue_number}"


@pytest.mark.parametrize(("policy", "action", "issues", "writes"),
                         [("reopen", "reopened", 1, 1), ("leave", "left-closed", 1, 0), ("new", "created", 2, 1)])
def test_progress_issue_closed_by_a_person(gh: EmulatorHandle, repo: RepoClient, policy: str, action: str,
                                           issues: int, writes: int) -> None:
    first = repo.upsert_progress_issue(region("10"), ProgressSettings()).number
    gh.state.close_issue(REPO, first, by="maintainer")
    mark = gh.mark()
    ref = repo.upsert_progress_issue(region("11"), ProgressSettings(when_closed=policy))
    assert ref.action == action and len(gh.writes(since=mark)) == writes
    assert len(gh.state.repo(REPO).issues) == issues
    if policy == "reopen":
        assert ref.number == first and gh.state.repo(REPO).issues[first]["state"] == "open"
        assert gh.state.repo(REPO).issues[first]["body"] == region("11")
    if policy == "leave":
        assert gh.state.repo(REPO).issues[first]["body"] == region("10")
    if policy == "new":
        assert ref.number != first and gh.state.repo(REPO).issues[first]["state"] == "closed"
        assert repo.upsert_progress_issue(region("11"), ProgressSettings(when_closed=policy)).action == "unchanged"


def test_progress_issue_ignores_issues_without_the_marker(gh: EmulatorHandle, repo: RepoClient) -> None:
    other = gh.state.add_issue(REPO, "Discussion", "no marker here", labels=("atlas-progress",))
    ref = repo.upsert_progress_issue(region("10"), ProgressSettings())
    assert ref.number != other and ref.action == "created"
    assert [w.endpoint for w in gh.writes()] == ["POST /repos/{owner}/{repo}/issues"]  # the label existed


def test_a_planted_progress_issue_is_not_the_bots(gh: EmulatorHandle, repo: RepoClient) -> None:
    planted = gh.state.add_issue(REPO, "Atlas diagram progress", region("999 diagrams"), labels=("atlas-progress",),
                                 author="mallory")
    ref = repo.upsert_progress_issue(region("10"), ProgressSettings())
    assert ref.number != planted and ref.action == "created"
    assert gh.state.repo(REPO).issues[planted]["body"] == region("999 diagrams")


def test_the_app_and_the_actions_workflow_converge_on_one_issue(gh: EmulatorHandle, repo: RepoClient) -> None:
    gh.state.user("github-actions[bot]", "Bot")
    by_actions = gh.state.add_issue(REPO, "Atlas diagram progress", region("10"), labels=("atlas-progress",),
                                    author="github-actions[bot]")
    ref = repo.upsert_progress_issue(region("11"), ProgressSettings())
    assert (ref.number, ref.action) == (by_actions, "updated")
    assert len(gh.state.repo(REPO).issues) == 1


def test_an_edit_made_while_the_region_renders_is_kept(gh: EmulatorHandle, repo: RepoClient) -> None:
    number = repo.upsert_progress_issue(region("10"), ProgressSettings()).number
    seen: list[str | None] = []

    def render(body: str | None) -> str:
        seen.append(body)
        if len(seen) == 1:  # a person saves an edit while the bot renders around the body it read
            gh.state.edit_issue(REPO, number, "Read me first.\n\n" + region("10"))
        return region("12")

    repo.upsert_progress_issue(render, ProgressSettings())
    assert len(seen) == 2 and seen[1].startswith("Read me first.")  # type: ignore[union-attr]
    assert gh.state.repo(REPO).issues[number]["body"] == "Read me first.\n\n" + region("12")


def test_progress_settings_are_checked(repo: RepoClient) -> None:
    with pytest.raises(ValueError, match="when_closed"):
        repo.upsert_progress_issue(region("10"), ProgressSettings(when_closed="sometimes"))
