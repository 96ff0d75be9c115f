"""Webhook deliveries: raw HTTP headers and body in, a verified, immutable ``Delivery`` out (no I/O).

GitHub signs every delivery with HMAC-SHA256 of the raw body under the App's webhook secret and sends it as
``X-Hub-Signature-256: sha256=<hex>``; the comparison is constant-time so the secret cannot be guessed byte by
byte from response times. Errors form a small hierarchy whose ``status`` is the HTTP answer the app gives.
https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# GitHub caps webhook payloads at 25 MB and does not deliver bigger ones; anything larger is not from GitHub.
MAX_BODY_BYTES = 25 * 1024 * 1024
SIGNATURE_HEADER = "x-hub-signature-256"
EVENT_HEADER = "x-github-event"
DELIVERY_HEADER = "x-github-delivery"
SIGNATURE_PREFIX = "sha256="
# Delivery ids are GUIDs; anything much longer is not GitHub's and should not become a database key.
MAX_DELIVERY_ID_CHARS = 200


class WebhookError(Exception):
    """A delivery the app refuses; ``status`` is the HTTP status it answers with."""

    status = 400
    outcome = "bad_request"


class SignatureError(WebhookError):
    """Missing or wrong ``X-Hub-Signature-256``: the sender does not know the secret."""

    status = 401
    outcome = "unauthorized"


class PayloadTooLarge(WebhookError):
    """Body over GitHub's 25 MB cap."""

    status = 413
    outcome = "too_large"


class BadDelivery(WebhookError):
    """Signed, but not a well-formed delivery (headers missing, body not a JSON object)."""


@dataclass(frozen=True)
class Delivery:
    """One verified webhook delivery.

    ``repository`` is the ``owner/name`` it concerns (None for app-wide events such as ``installation``
    deletions without repositories); ``pr_number`` is set for pull_request events and for comments on pull
    requests.
    """

    id: str
    event: str
    action: str | None
    payload: Mapping[str, Any]
    installation_id: int | None = None
    repository: str | None = None
    pr_number: int | None = None
    # The signed bytes as received, so the queue stores them without serialising the payload again.
    body: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def from_payload(
        cls, delivery_id: str, event: str, payload: Mapping[str, Any], *, body: bytes = b""
    ) -> Delivery:
        """Build a delivery from an already-parsed payload (also used to restore queued jobs)."""
        action = payload.get("action")
        installation = payload.get("installation")
        repository = payload.get("repository")
        return cls(
            id=delivery_id,
            event=event,
            action=action if isinstance(action, str) else None,
            payload=payload,
            installation_id=_int_or_none(installation.get("id")) if isinstance(installation, dict) else None,
            repository=repository.get("full_name") if isinstance(repository, dict) else None,
            pr_number=_pr_number(event, payload),
            body=body,
        )

    @property
    def kind(self) -> str:
        """``event.action`` (just ``event`` when there is no action): how metrics and logs name the delivery."""
        return f"{self.event}.{self.action}" if self.action else self.event


def signature_for(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body`` (tests and the load generator use it too)."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str) -> None:
    """Raise ``SignatureError`` unless ``signature`` is GitHub's HMAC of ``body`` under ``secret``."""
    if not secret:
        # An empty secret would make every forged signature computable; refuse rather than accept.
        raise SignatureError("no webhook secret configured")
    if not signature or not signature.startswith(SIGNATURE_PREFIX):
        raise SignatureError("missing X-Hub-Signature-256")
    if not hmac.compare_digest(signature.encode(), signature_for(body, secret).encode()):
        raise SignatureError("X-Hub-Signature-256 does not match the body")


def check_size(content_length: str | None, max_bytes: int = MAX_BODY_BYTES) -> None:
    """Refuse early on a declared ``Content-Length`` over the cap (before reading the body)."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise BadDelivery("Content-Length is not a number") from None
    if declared > max_bytes:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {max_bytes}-byte cap")


def parse_delivery(
    headers: Mapping[str, str], body: bytes, secret: str, *, max_bytes: int = MAX_BODY_BYTES
) -> Delivery:
    """Verify and decode one delivery; raises a ``WebhookError`` subclass for anything GitHub would not send.

    Order matters: size first (a huge body is refused without hashing it), then the signature (an unsigned
    sender learns nothing about what else is wrong), then headers and JSON.
    """
    lower = {key.lower(): value for key, value in headers.items()}
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body of {len(body)} bytes is over the {max_bytes}-byte cap")
    verify_signature(body, lower.get(SIGNATURE_HEADER), secret)
    event = lower.get(EVENT_HEADER, "").strip()
    delivery_id = lower.get(DELIVERY_HEADER, "").strip()
    if not event:
        raise BadDelivery("missing X-GitHub-Event")
    if not delivery_id or len(delivery_id) > MAX_DELIVERY_ID_CHARS:
        raise BadDelivery("missing or malformed X-GitHub-Delivery")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise BadDelivery("body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadDelivery("body is not a JSON object")
    return Delivery.from_payload(delivery_id, event, payload, body=body)


def _pr_number(event: str, payload: Mapping[str, Any]) -> int | None:
    if event == "pull_request":
        pull = payload.get("pull_request")
        return _int_or_none(pull.get("number") if isinstance(pull, dict) else payload.get("number"))
    if event == "issue_comment":
        issue = payload.get("issue")
        # Comments on pull requests arrive as issue comments whose issue carries a "pull_request" link.
        if isinstance(issue, dict) and issue.get("pull_request"):
            return _int_or_none(issue.get("number"))
    return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
