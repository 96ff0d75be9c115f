"""parse_delivery: signature, size cap, headers, JSON, and the fields it derives, on fixed bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.webhooks import (
    BadDelivery,
    Delivery,
    PayloadTooLarge,
    SignatureError,
    check_size,
    parse_delivery,
    signature_for,
)

SECRET = "It's a Secret to Everybody"
# GitHub's documented example: this body under this secret has exactly this signature.
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
PR_BODY = (b'{"action":"synchronize","number":7,"pull_request":{"number":7,"head":{"sha":"abc"}},'
           b'"repository":{"full_name":"octo/atlas"},"installation":{"id":42}}')
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
    (None, None), ("100", None), ("101", PayloadTooLarge), ("lots", BadDelivery),
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
