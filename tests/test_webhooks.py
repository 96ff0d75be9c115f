"""parse_delivery: signature, size cap, headers, JSON, and the fields it derives, on fixed bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.webhooks import (
    MAX_JSON_DEPTH,
    BadDelivery,
    Delivery,
    PayloadTooLarge,
    SignatureError,
    SignedBody,
    check_signature_header,
    check_size,
    json_depth,
    parse_delivery,
    payload_problem,
    signature_for,
)

SECRET = "It's a Secret to Everybody"
# GitHub's documented example: this body under this secret has exactly this signature.
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
HEAD_SHA = "3f786850e387550fdab836ed7e6dc881de23001b"
PR_BODY = (b'{"action":"synchronize","number":7,"pull_request":{"number":7,"head":{"sha":"%s"},'
           b'"base":{"ref":"main"}},"repository":{"full_name":"octo/atlas"},"installation":{"id":42}}'
           % HEAD_SHA.encode())
OCTOKIT = Path(__file__).parent / "fixtures" / "webhooks" / "octokit"


def headers(body: bytes, *, event: str = "pull_request", delivery: str = "d-1", secret: str = SECRET) -> dict:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature_for(body, secret)}


def test_signature_matches_githubs_documented_example() -> None:
    assert signature_for(DOC_BODY, SECRET) == DOC_SIGNATURE


def test_pull_request_delivery_fields() -> None:
    delivery = parse_delivery(headers(PR_BODY), PR_BODY, SECRET)
    assert delivery == Delivery(id="d-1", event="pull_request", action="synchronize",
                                payload=json.loads(PR_BODY), installation_id=42, repository="octo/atlas",
                                pr_number=7)


def test_header_names_are_case_insensitive() -> None:
    lower = {k.lower(): v for k, v in headers(PR_BODY).items()}
    assert parse_delivery(lower, PR_BODY, SECRET).id == "d-1"


@pytest.mark.parametrize("signature", [
    None, "", "sha1=" + "0" * 40, "sha256=" + "0" * 64, "sha256=", signature_for(PR_BODY, "other secret"),
    signature_for(PR_BODY, SECRET).upper(),
])
def test_missing_or_wrong_signature_is_401(signature: str | None) -> None:
    sent = headers(PR_BODY)
    if signature is None:
        del sent["X-Hub-Signature-256"]
    else:
        sent["X-Hub-Signature-256"] = signature
    with pytest.raises(SignatureError) as caught:
        parse_delivery(sent, PR_BODY, SECRET)
    assert caught.value.status == 401


def test_tampered_body_is_401() -> None:
    with pytest.raises(SignatureError):
        parse_delivery(headers(PR_BODY), PR_BODY.replace(b"42", b"43"), SECRET)


def test_empty_secret_accepts_nothing() -> None:
    with pytest.raises(SignatureError):
        parse_delivery(headers(PR_BODY, secret=""), PR_BODY, "")


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_event_or_delivery_header_is_400(missing: str) -> None:
    sent = headers(PR_BODY)
    del sent[missing]
    with pytest.raises(BadDelivery) as caught:
        parse_delivery(sent, PR_BODY, SECRET)
    assert caught.value.status == 400


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b"\xff\xfe", b""])
def test_signed_but_not_a_json_object_is_400(body: bytes) -> None:
    with pytest.raises(BadDelivery):
        parse_delivery(headers(body), body, SECRET)


def test_body_over_cap_is_413_before_the_signature_is_checked() -> None:
    body = b"x" * 101
    with pytest.raises(PayloadTooLarge) as caught:
        parse_delivery({"X-Hub-Signature-256": "sha256=bad"}, body, SECRET, max_bytes=100)
    assert caught.value.status == 413


@pytest.mark.parametrize(("declared", "error"), [
    (None, None), ("100", None), ("101", PayloadTooLarge), ("lots", BadDelivery), ("-1", BadDelivery),
])
def test_declared_content_length(declared: str | None, error: type[Exception] | None) -> None:
    if error is None:
        check_size(declared, 100)
    else:
        with pytest.raises(error):
            check_size(declared, 100)


@pytest.mark.parametrize(("event", "payload", "pr_number"), [
    ("issue_comment", {"issue": {"number": 5, "pull_request": {"url": "u"}}}, 5),
    ("issue_comment", {"issue": {"number": 5}}, None),
    ("push", {"ref": "refs/heads/main"}, None),
    ("pull_request", {"number": 9, "pull_request": "odd"}, 9),
    ("installation", {"installation": {"id": True}}, None),
])
def test_pr_number_only_for_pull_requests(event: str, payload: dict, pr_number: int | None) -> None:
    delivery = Delivery.from_payload("d", event, payload)
    assert delivery.pr_number == pr_number
    assert delivery.installation_id is None
    assert delivery.repository is None


EXAMPLES = sorted(p for p in OCTOKIT.glob("*.json"))


def test_fixture_set_is_present_and_versioned() -> None:
    assert (OCTOKIT / "VERSION").read_text().startswith("@octokit/webhooks-examples@")
    events = {p.name.split(".")[0] for p in EXAMPLES}
    assert {"pull_request", "push", "issue_comment", "installation"} <= events


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_octokit_example_parses(path: Path) -> None:
    body = path.read_bytes()
    event = path.name.split(".")[0]
    delivery = parse_delivery(headers(body, event=event, delivery=path.stem), body, SECRET)
    payload = json.loads(body)
    assert delivery.action == payload.get("action")
    if "repository" in payload:
        assert delivery.repository == payload["repository"]["full_name"]
    if event == "pull_request":
        assert delivery.pr_number == payload["pull_request"]["number"]


# -- the signature before and while the body streams in ---------------------------------------------------------


@pytest.mark.parametrize("signature", [None, "", "sha1=abc", "sha256=", "sha256=xyz", "sha256=" + "0" * 63,
                                       "sha256=" + "A" * 64, "sha256=" + "0" * 65])
def test_a_signature_no_body_could_match_is_refused_before_the_body(signature: str | None) -> None:
    with pytest.raises(SignatureError):
        check_signature_header(signature)


def test_streamed_signature_equals_the_whole_body_signature() -> None:
    signed = SignedBody(SECRET)
    for start in range(0, len(PR_BODY), 7):
        signed.update(PR_BODY[start:start + 7])
    signed.verify(signature_for(PR_BODY, SECRET))
    with pytest.raises(SignatureError):
        signed.verify(signature_for(PR_BODY + b" ", SECRET))


def test_streamed_signature_needs_a_secret() -> None:
    with pytest.raises(SignatureError):
        SignedBody("")


# -- nesting depth and the fields the handlers read --------------------------------------------------------------


@pytest.mark.parametrize(("body", "depth"), [
    (b"{}", 1), (b'{"a": [1, {"b": []}]}', 4), (b'{"a": "[[[[{{{{"}', 1), (rb'{"a": "\\"}', 1),
    (rb'{"a": "\\\"[["}', 1), (rb'{"a": ["\\", "]"]}', 2), (b"[" * 40 + b"]" * 40, MAX_JSON_DEPTH + 1),
])
def test_json_depth_ignores_brackets_inside_strings(body: bytes, depth: int) -> None:
    json.loads(body)
    assert json_depth(body, MAX_JSON_DEPTH) == depth


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 100_000])
def test_deeply_nested_json_is_400_not_a_crash(levels: int) -> None:
    body = b'{"action": "opened", "x": ' + b"[" * levels + b"]" * levels + b"}"
    with pytest.raises(BadDelivery, match="nests deeper"):
        parse_delivery(headers(body), body, SECRET)


def _pull(**changes: object) -> dict:
    payload = json.loads(PR_BODY)
    for path, value in changes.items():
        target = payload
        *parents, last = path.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    return payload


SHA = "3f786850e387550fdab836ed7e6dc881de23001b"


@pytest.mark.parametrize(("event", "payload", "problem"), [
    ("pull_request", _pull(), None),
    ("pull_request", _pull(pull_request__number=2**70), "pull_request.number is not a pull request number"),
    ("pull_request", _pull(pull_request__number=0), "pull_request.number is not a pull request number"),
    ("pull_request", _pull(pull_request__number="7"), "pull_request.number is not a pull request number"),
    ("pull_request", _pull(pull_request__number=True), "pull_request.number is not a pull request number"),
    ("pull_request", _pull(number=-1), "number is not a pull request number"),
    ("pull_request", _pull(pull_request="odd"), "pull_request is not an object"),
    ("pull_request", _pull(pull_request__head__sha="abc"), "pull_request.head.sha is not a 40-character hex"),
    ("pull_request", _pull(pull_request__head__sha=None), "pull_request.head.sha is not a 40-character hex"),
    ("pull_request", _pull(pull_request__head=[]), "pull_request.head is not an object"),
    ("pull_request", _pull(pull_request__base__ref=""), "pull_request.base.ref is not a ref name"),
    ("pull_request", _pull(pull_request__base__ref="x" * 2000), "pull_request.base.ref is not a ref name"),
    ("pull_request", _pull(pull_request__draft="yes"), "pull_request.draft is not a boolean"),
    ("pull_request", _pull(installation__id=2**64), "installation.id is not an id"),
    ("pull_request", _pull(installation=7), "installation is not an object"),
    ("pull_request", _pull(repository__full_name="../../etc"), "repository.full_name is not an owner/name"),
    ("pull_request", _pull(repository__full_name=["octo/atlas"]), "repository.full_name is not an owner/name"),
    ("pull_request", _pull(action=5), "action is not a string"),
    ("pull_request", {"action": "opened"}, "pull_request is missing"),
    ("issue_comment", {"issue": {"number": 5}, "comment": {"body": "/atlas help", "user": {"login": "u"}}}, None),
    ("issue_comment", {"issue": {"number": 5}, "comment": "/atlas recheck"}, "comment is not an object"),
    ("issue_comment", {"issue": {"number": 5}, "comment": {"body": 7}}, "comment.body is not a string or null"),
    ("issue_comment", {"issue": {"number": 5}, "comment": {"user": "me"}}, "comment.user is not an object"),
    ("issue_comment", {"issue": {"number": 2**70}, "comment": {}}, "issue.number is not a pull request number"),
    ("issue_comment", {"comment": {}}, "issue is missing"),
    ("push", {"ref": "refs/heads/main", "after": SHA, "repository": {"full_name": "o/r", "default_branch": "main"}},
     None),
    ("push", {"ref": 5}, "ref is not a ref name"),
    ("push", {"ref": "refs/heads/main", "deleted": "no"}, "deleted is not a boolean"),
    ("push", {"ref": "refs/heads/main", "repository": {"default_branch": {}}},
     "repository.default_branch is not a ref name"),
    ("installation_repositories", {"installation": {"id": 1}, "repositories_removed": [{"full_name": 5}]},
     "repositories_removed[].full_name is not an owner/name"),
    ("installation_repositories", {"installation": {"id": 1}, "repositories_added": "all"},
     "repositories_added is not a list"),
    ("installation", {"installation": {"id": "1"}}, "installation.id is not an id"),
    ("check_run", {"check_run": {"head_sha": SHA, "pull_requests": [{"number": 3}]}}, None),
    ("check_run", {"check_run": {"head_sha": SHA, "pull_requests": [{"number": "3"}]}},
     "check_run.pull_requests[].number is not a pull request number"),
    ("check_suite", {"check_suite": {}}, "check_suite.head_sha is missing"),
    ("ping", {"zen": 5, "hook": "odd"}, None),
])
def test_payload_fields_are_checked_for_type_and_range(event: str, payload: dict, problem: str | None) -> None:
    found = payload_problem(event, payload)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


def test_a_malformed_handled_event_is_400_naming_the_field() -> None:
    body = json.dumps(_pull(pull_request__number=2**70)).encode()
    with pytest.raises(BadDelivery, match="pull_request payload: pull_request.number") as caught:
        parse_delivery(headers(body), body, SECRET)
    assert caught.value.status == 400
