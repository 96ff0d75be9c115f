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
import re
from collections.abc import Callable, Mapping
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
# GitHub's payloads nest about 5 deep; a much deeper body is hostile (100k levels exhaust the JSON decoder's
# recursion), so it is refused before anything walks it.
MAX_JSON_DEPTH = 32
# Numbers become SQLite integers and URL parts: ids fit in 63 bits, pull request numbers in 31.
MAX_ID = 2**63 - 1
MAX_PR_NUMBER = 2**31 - 1
MAX_REF_CHARS = 1024
_SIGNATURE_RE = re.compile(r"sha256=[0-9a-f]{64}")
_SHA_RE = re.compile(r"[0-9a-f]{40}")
# GitHub owners are letters, digits and hyphens; repository names add "." and "_".
_FULL_NAME_RE = re.compile(r"[A-Za-z0-9-]{1,39}/[A-Za-z0-9_.-]{1,100}")
# A JSON string, possessive so that it cannot backtrack; only applied to a body that already decoded.
_JSON_STRING_RE = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_INNERMOST_PAIR_RE = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


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
    signed = SignedBody(secret)
    signed.update(body)
    signed.verify(signature)


def check_size(content_length: str | None, max_bytes: int = MAX_BODY_BYTES) -> None:
    """Refuse early on a declared ``Content-Length`` over the cap (before reading the body)."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise BadDelivery("Content-Length is not a number") from None
    if declared < 0:
        raise BadDelivery("Content-Length is negative")
    if declared > max_bytes:
        raise PayloadTooLarge(f"body of {declared} bytes is over the {max_bytes}-byte cap")


def check_signature_header(signature: str | None) -> None:
    """Refuse before reading the body when no body could match: the header is missing or not a SHA-256 hex."""
    if not signature or _SIGNATURE_RE.fullmatch(signature.strip()) is None:
        raise SignatureError("missing or malformed X-Hub-Signature-256")


class SignedBody:
    """HMAC-SHA256 of a body fed in chunks as it arrives, so a forged body is refused at its end without the
    signature ever being compared against a body held whole in memory twice (GitHub's scheme signs the raw bytes).
    """

    def __init__(self, secret: str) -> None:
        if not secret:
            raise SignatureError("no webhook secret configured")
        self._mac = hmac.new(secret.encode(), digestmod=hashlib.sha256)

    def update(self, chunk: bytes) -> None:
        self._mac.update(chunk)

    def verify(self, signature: str | None) -> None:
        check_signature_header(signature)
        expected = SIGNATURE_PREFIX + self._mac.hexdigest()
        if not hmac.compare_digest(str(signature).strip().encode(), expected.encode()):
            raise SignatureError("X-Hub-Signature-256 does not match the body")


def parse_delivery(
    headers: Mapping[str, str], body: bytes, secret: str, *, max_bytes: int = MAX_BODY_BYTES,
    verified: bool = False,
) -> Delivery:
    """Verify and decode one delivery; raises a ``WebhookError`` subclass for anything GitHub would not send.

    Order matters: size first (a huge body is refused without hashing it), then the signature (an unsigned
    sender learns nothing about what else is wrong), then headers, JSON and the fields the handlers read.
    ``verified`` says the caller already checked the signature while the body streamed in (:class:`SignedBody`).
    """
    lower = {key.lower(): value for key, value in headers.items()}
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"body of {len(body)} bytes is over the {max_bytes}-byte cap")
    if not verified:
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
    except RecursionError:
        raise BadDelivery(f"body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(payload, dict):
        raise BadDelivery("body is not a JSON object")
    if json_depth(body, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BadDelivery(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    problem = payload_problem(event, payload)
    if problem is not None:
        raise BadDelivery(f"{event} payload: {problem}")
    return Delivery.from_payload(delivery_id, event, payload, body=body)


def json_depth(body: bytes, limit: int) -> int:
    """Nesting depth of an already-decoded JSON body, counted up to ``limit + 1`` (linear in the body per level).

    Strings are dropped, only brackets kept, and innermost pairs removed one level per pass.
    """
    brackets = _JSON_STRING_RE.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = 0
    while brackets and depth <= limit:
        brackets = _INNERMOST_PAIR_RE.sub(b"", brackets)
        depth += 1
    return depth


# -- the fields each handled event's handler reads ------------------------------------------------------------

Check = Callable[[Any], bool]


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


def _is_pr_number(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_PR_NUMBER


def _is_sha(value: Any) -> bool:
    return isinstance(value, str) and _SHA_RE.fullmatch(value) is not None


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_REF_CHARS and "\x00" not in value


def _is_full_name(value: Any) -> bool:
    return isinstance(value, str) and _FULL_NAME_RE.fullmatch(value) is not None


def _is_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


# (dotted path, check, required); "[]" walks every item of a list. Every event shares _COMMON_FIELDS.
Field = tuple[str, Check, bool]
_COMMON_FIELDS: tuple[Field, ...] = (
    ("action", _is_str, False),
    ("installation", _is_dict, False),
    ("installation.id", _is_id, False),
    ("repository", _is_dict, False),
    ("repository.full_name", _is_full_name, False),
    ("repository.default_branch", _is_ref, False),
)
_EVENT_FIELDS: dict[str, tuple[Field, ...]] = {
    "pull_request": (
        ("number", _is_pr_number, False),
        ("pull_request", _is_dict, True),
        ("pull_request.number", _is_pr_number, True),
        ("pull_request.state", _is_str, False),
        ("pull_request.draft", _is_bool, False),
        ("pull_request.head", _is_dict, True),
        ("pull_request.head.sha", _is_sha, True),
        ("pull_request.base", _is_dict, True),
        ("pull_request.base.ref", _is_ref, True),
    ),
    "issue_comment": (
        ("issue", _is_dict, True),
        ("issue.number", _is_pr_number, True),
        ("issue.pull_request", _is_dict, False),
        ("comment", _is_dict, True),
        ("comment.body", _is_text, False),
        ("comment.user", _is_dict, False),
        ("comment.user.login", _is_str, False),
        ("comment.user.type", _is_str, False),
    ),
    "push": (
        ("ref", _is_ref, True),
        ("deleted", _is_bool, False),
        ("after", _is_sha, False),
    ),
    "installation": (
        ("installation", _is_dict, True),
        ("installation.id", _is_id, True),
        ("repositories", _is_list, False),
        ("repositories[].full_name", _is_full_name, False),
    ),
    "installation_repositories": (
        ("installation", _is_dict, True),
        ("installation.id", _is_id, True),
        ("repositories_added", _is_list, False),
        ("repositories_added[].full_name", _is_full_name, False),
        ("repositories_removed", _is_list, False),
        ("repositories_removed[].full_name", _is_full_name, False),
    ),
    "check_run": (
        ("check_run", _is_dict, True),
        ("check_run.head_sha", _is_sha, True),
        ("check_run.pull_requests", _is_list, False),
        ("check_run.pull_requests[].number", _is_pr_number, False),
    ),
    "check_suite": (
        ("check_suite", _is_dict, True),
        ("check_suite.head_sha", _is_sha, True),
        ("check_suite.pull_requests", _is_list, False),
        ("check_suite.pull_requests[].number", _is_pr_number, False),
    ),
}


def payload_problem(event: str, payload: Mapping[str, Any]) -> str | None:
    """What is wrong with a handled event's payload (the first field of the wrong type or range), or None.

    Events the bot does not handle are not inspected: the router drops them.
    """
    fields = _EVENT_FIELDS.get(event)
    if fields is None:
        return None
    for path, check, required in (*_COMMON_FIELDS, *fields):
        for value in _values_at(payload, path.split(".")):
            if value is _MISSING:
                if required:
                    return f"{path} is missing"
            elif not check(value):
                return f"{path} is not {_DESCRIPTIONS[check]}"
    return None


_MISSING = object()
_DESCRIPTIONS: dict[Check, str] = {
    _is_str: "a string", _is_bool: "a boolean", _is_dict: "an object", _is_list: "a list",
    _is_id: f"an id (1..{MAX_ID})", _is_pr_number: f"a pull request number (1..{MAX_PR_NUMBER})",
    _is_sha: "a 40-character hex commit SHA", _is_ref: f"a ref name (1..{MAX_REF_CHARS} characters)",
    _is_full_name: "an owner/name repository", _is_text: "a string or null",
}


def _values_at(value: Any, parts: list[str]) -> list[Any]:
    """The values at a dotted path (several under ``name[]``); ``_MISSING`` where a step is absent.

    A step through something that is not an object yields nothing: the check of that parent reports it.
    """
    if not parts:
        return [value]
    head, rest = parts[0], parts[1:]
    if not isinstance(value, Mapping):
        return []
    if head.endswith("[]"):
        items = value.get(head[:-2])
        if not isinstance(items, list):
            return []
        return [found for item in items for found in _values_at(item, rest)]
    if head not in value:
        return [] if rest else [_MISSING]
    return _values_at(value[head], rest)


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
