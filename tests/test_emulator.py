"""The GitHub emulator itself: its spec copy, validation, authentication, git-backed diffs, faults, GraphQL."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator import gitdata
from emulator.fixtures import EmulatorHandle
from emulator.handlers import HANDLERS
from emulator.openapi import trim
from emulator.spec import Spec
from emulator.state import (
    BAD_GATEWAY,
    CONNECTION_CLOSE,
    LATE_WRITE,
    NOT_FOUND,
    PRIMARY_RATE_LIMIT,
    SECONDARY_RATE_LIMIT,
)

REPO = "acme/atlas"
FILES = "/repos/{owner}/{repo}/pulls/{pull_number}/files"


def git(path: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo_path(tmp_path: Path) -> Path:
    """main: docs/a.md (10 lines); feature: line 5 changed, 2 lines appended, docs/b.md added."""
    path = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(path))
    git(path, "config", "user.email", "t@example.com")
    git(path, "config", "user.name", "t")
    (path / "docs").mkdir()
    (path / "docs" / "a.md").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    git(path, "checkout", "-qb", "feature")
    lines = [f"line {i}\n" for i in range(1, 11)]
    lines[4] = "line five\n"
    (path / "docs" / "a.md").write_text("".join(lines) + "line 11\nline 12\n")
    (path / "docs" / "b.md").write_text("new\n")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "feature")
    git(path, "checkout", "-q", "main")
    return path


@pytest.fixture
def gh(github_emulator: EmulatorHandle, repo_path: Path) -> EmulatorHandle:
    github_emulator.add_repo(REPO, repo_path)
    return github_emulator


def api(gh: EmulatorHandle, method: str, path: str, *, token: str | None = None, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"token {token or gh.token}"}
    return requests.request(method, gh.base_url + path, headers=headers, timeout=10, **kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ the spec copy


def test_spec_copy_has_exactly_the_served_operations() -> None:
    spec = Spec()
    assert set(HANDLERS) == spec.operations()
    assert {(m.upper(), p) for m, p in trim.OPERATIONS} == spec.operations()


def test_spec_copy_records_the_package_version() -> None:
    spec = Spec()
    version = (Path(trim.__file__).parent / "VERSION").read_text().strip()
    assert spec.source.startswith(version + " ")
    assert version == f"{trim.PACKAGE}@{trim.PACKAGE_VERSION}"


def test_trim_keeps_operations_and_every_reachable_component() -> None:
    spec = {
        "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {"responses": {"200": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/x"}, "examples": {"e": {"$ref": "#/components/examples/e"}}}}}}},
            "post": {"responses": {}}}, "/b": {"get": {"responses": {}}}},
        "components": {"schemas": {"x": {"properties": {"y": {"$ref": "#/components/schemas/y"}}},
                                   "y": {"type": "string"}, "unused": {"type": "integer"}},
                       "examples": {"e": {"value": 1}}},
    }
    trimmed = trim.trim(spec, (("get", "/a"),), "9.9.9")
    assert list(trimmed["paths"]) == ["/a"] and list(trimmed["paths"]["/a"]) == ["get"]
    assert trimmed["components"] == {"schemas": {"x": spec["components"]["schemas"]["x"], "y": {"type": "string"}}}
    assert trimmed["info"]["x-source"] == "@octokit/openapi@9.9.9 generated/api.github.com.json"


# ---------------------------------------------------------------------------------------- validation & auth


def test_invalid_request_body_is_answered_500_and_recorded(gh: EmulatorHandle) -> None:
    number = gh.add_pull(REPO, "feature")
    answer = api(gh, "POST", f"/repos/{REPO}/issues/{number}/comments", json={"body": 42})
    assert answer.status_code == 500
    assert "does not match GitHub's OpenAPI description" in answer.json()["message"]
    assert len(gh.state.validation_errors) == 1 and "body" in gh.state.validation_errors[0]
    gh.state.validation_errors.clear()  # expected here; any other would fail the test


def test_unknown_query_value_is_rejected(gh: EmulatorHandle) -> None:
    answer = api(gh, "GET", f"/repos/{REPO}/issues", params={"state": "sideways"})
    assert answer.status_code == 500
    gh.state.validation_errors.clear()


def test_unknown_token_is_401(gh: EmulatorHandle) -> None:
    assert api(gh, "GET", f"/repos/{REPO}", token="ghs_nope").status_code == 401


def test_app_jwt_buys_an_installation_token(gh: EmulatorHandle) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    gh.register_app(42, public, installation_id=7)
    import time

    now = int(time.time())
    token = jwt.encode({"iss": "42", "iat": now - 60, "exp": now + 300}, key, algorithm="RS256")
    answer = requests.post(f"{gh.base_url}/app/installations/7/access_tokens",
                           headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 201
    assert api(gh, "GET", f"/repos/{REPO}", token=answer.json()["token"]).status_code == 200

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"iss": "42", "iat": now - 60, "exp": now + 300}, other, algorithm="RS256")
    assert requests.post(f"{gh.base_url}/app/installations/7/access_tokens",
                         headers={"Authorization": f"Bearer {forged}"}, timeout=10).status_code == 401


# ----------------------------------------------------------------------------------------- git-backed data


def test_pull_files_are_the_merge_base_diff(gh: EmulatorHandle, repo_path: Path) -> None:
    number = gh.add_pull(REPO, "feature")
    files = {f["filename"]: f for f in api(gh, "GET", f"/repos/{REPO}/pulls/{number}/files").json()}
    assert set(files) == {"docs/a.md", "docs/b.md"}
    assert files["docs/b.md"]["status"] == "added"
    assert files["docs/a.md"]["status"] == "modified"
    assert files["docs/a.md"]["additions"] == 3 and files["docs/a.md"]["deletions"] == 1
    assert files["docs/a.md"]["patch"].startswith("@@ -2,9 +2,11 @@")
    assert "+line five" in files["docs/a.md"]["patch"]
    assert git(repo_path, "rev-parse", f"refs/pull/{number}/head").strip() == git(repo_path, "rev-parse",
                                                                                   "feature").strip()


def test_pull_files_paginate_with_link_headers(gh: EmulatorHandle) -> None:
    number = gh.add_pull(REPO, "feature")
    first = api(gh, "GET", f"/repos/{REPO}/pulls/{number}/files", params={"per_page": 1})
    assert len(first.json()) == 1 and 'rel="next"' in first.headers["link"]
    second = requests.get(first.links["next"]["url"], headers={"Authorization": f"token {gh.token}"}, timeout=10)
    assert len(second.json()) == 1 and "next" not in second.links


def test_diff_sides_count_context_and_added_lines() -> None:
    left, hunks = gitdata.diff_sides("@@ -2,3 +2,4 @@\n a\n-b\n+B\n+C\n c")
    assert left == {2, 3, 4}
    assert hunks == [{2, 3, 4, 5}]


def test_review_comment_outside_the_diff_is_422(gh: EmulatorHandle) -> None:
    number = gh.add_pull(REPO, "feature")
    head = gh.state.repo(REPO).pulls[number].head_sha
    review = {"commit_id": head, "event": "COMMENT", "body": "b",
              "comments": [{"path": "docs/a.md", "line": 1, "side": "RIGHT", "body": "x"}]}
    assert api(gh, "POST", f"/repos/{REPO}/pulls/{number}/reviews", json=review).status_code == 422
    review["comments"][0]["line"] = 5  # type: ignore[index]
    assert api(gh, "POST", f"/repos/{REPO}/pulls/{number}/reviews", json=review).status_code == 200
    comments = api(gh, "GET", f"/repos/{REPO}/pulls/{number}/comments").json()
    assert [(c["path"], c["line"], c["user"]["type"]) for c in comments] == [("docs/a.md", 5, "Bot")]


def test_contents_reads_blobs_at_a_ref(gh: EmulatorHandle) -> None:
    answer = api(gh, "GET", f"/repos/{REPO}/contents/docs/b.md", params={"ref": "feature"})
    assert answer.status_code == 200 and answer.json()["encoding"] == "base64"
    assert api(gh, "GET", f"/repos/{REPO}/contents/docs/b.md", params={"ref": "main"}).status_code == 404


def test_check_run_annotations_are_capped_at_50_and_accumulate(gh: EmulatorHandle, repo_path: Path) -> None:
    head = git(repo_path, "rev-parse", "feature").strip()
    annotation = {"path": "docs/a.md", "start_line": 1, "end_line": 1, "annotation_level": "warning",
                  "message": "m"}
    run = {"name": "n", "head_sha": head, "status": "completed", "conclusion": "success",
           "output": {"title": "t", "summary": "s", "annotations": [annotation] * 51}}
    # GitHub's description says maxItems 50: the 51st never reaches the emulated GitHub unnoticed.
    assert api(gh, "POST", f"/repos/{REPO}/check-runs", json=run).status_code == 500
    assert "is too long" in gh.state.validation_errors.pop()
    run["output"]["annotations"] = [annotation] * 50  # type: ignore[index]
    created = api(gh, "POST", f"/repos/{REPO}/check-runs", json=run).json()
    update = {"output": {"title": "t", "summary": "s", "annotations": [annotation] * 3}}
    assert api(gh, "PATCH", f"/repos/{REPO}/check-runs/{created['id']}", json=update).json()["output"][
        "annotations_count"] == 53


# ------------------------------------------------------------------------------------------------------ faults


@pytest.mark.parametrize(("kind", "status"), [(BAD_GATEWAY, 502), (NOT_FOUND, 404), (SECONDARY_RATE_LIMIT, 403),
                                              (PRIMARY_RATE_LIMIT, 403)])
def test_faults_answer_once_then_the_endpoint_recovers(gh: EmulatorHandle, kind: str, status: int) -> None:
    gh.inject_fault("GET /repos/{owner}/{repo}", kind, retry_after=3)
    faulty = api(gh, "GET", f"/repos/{REPO}")
    assert faulty.status_code == status
    if kind == SECONDARY_RATE_LIMIT:
        assert faulty.headers["retry-after"] == "3"
    if kind == PRIMARY_RATE_LIMIT:
        assert faulty.headers["x-ratelimit-remaining"] == "0"
    assert api(gh, "GET", f"/repos/{REPO}").status_code == 200
    assert [r.fault for r in gh.requests] == [kind, None]


def test_connection_close_breaks_the_answer(gh: EmulatorHandle) -> None:
    gh.inject_fault("GET /repos/{owner}/{repo}", CONNECTION_CLOSE)
    with pytest.raises(requests.exceptions.RequestException):
        api(gh, "GET", f"/repos/{REPO}")
    assert api(gh, "GET", f"/repos/{REPO}").status_code == 200


def test_a_late_write_gets_no_answer_and_is_committed_after_its_delay(gh: EmulatorHandle) -> None:
    number = gh.add_pull(REPO, "feature")
    gh.inject_fault("POST /repos/{owner}/{repo}/issues/{issue_number}/comments", LATE_WRITE, delay=0.3)
    with pytest.raises(requests.exceptions.RequestException):
        api(gh, "POST", f"/repos/{REPO}/issues/{number}/comments", json={"body": "late"})
    assert gh.state.repo(REPO).issue_comments[number] == []
    deadline = time.monotonic() + 5
    while not gh.state.repo(REPO).issue_comments[number] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [c["body"] for c in gh.state.repo(REPO).issue_comments[number]] == ["late"]


def test_revoked_tokens_answer_401(gh: EmulatorHandle) -> None:
    assert api(gh, "GET", f"/repos/{REPO}").status_code == 200
    gh.state.revoke_tokens(1)
    assert api(gh, "GET", f"/repos/{REPO}").status_code == 401


def test_unknown_fault_kind_is_refused(gh: EmulatorHandle) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        gh.inject_fault("GET /repos/{owner}/{repo}", "teapot")


# ----------------------------------------------------------------------------------------------------- graphql


def test_minimize_comment_mutation(gh: EmulatorHandle) -> None:
    number = gh.add_pull(REPO, "feature")
    comment = gh.state.add_comment(REPO, number, "hello")
    query = ("mutation($id0: ID!, $id1: ID!) { "
             "m0: minimizeComment(input: {subjectId: $id0, classifier: OUTDATED}) { minimizedComment { isMinimized } } "
             "m1: minimizeComment(input: {subjectId: $id1, classifier: OUTDATED}) { minimizedComment { isMinimized } } }")
    answer = api(gh, "POST", "/graphql", json={"query": query, "variables": {"id0": comment["node_id"], "id1": "nope"}})
    assert answer.json()["data"] == {"m0": {"minimizedComment": {"isMinimized": True}}, "m1": None}
    assert answer.json()["errors"][0]["type"] == "NOT_FOUND"
    assert gh.state.minimized == {comment["node_id"]: "OUTDATED"}


def test_other_graphql_documents_are_refused(gh: EmulatorHandle) -> None:
    answer = api(gh, "POST", "/graphql", json={"query": "query { viewer { login } }"})
    assert answer.status_code == 500
    assert json.loads(answer.text)["message"].startswith("emulator:")
    gh.state.validation_errors.clear()
