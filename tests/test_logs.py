"""JSON logs: context fields on every line, and no secret, key or token ever written."""

from __future__ import annotations

import io
import json
import logging

import pytest

from bot import logs
from bot.logs import REDACTED, configure_logging, log_context, redact, register_secret, secret_count

TOKEN = "ghs_" + "a1B2" * 9
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAtestkeymaterial\n-----END RSA PRIVATE KEY-----"


@pytest.fixture
def captured():
    stream = io.StringIO()
    handler = configure_logging(level="DEBUG", fmt="json", stream=stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize("text", [
    f"token {TOKEN} used",
    "github_pat_" + "x" * 40,
    "jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjEyM30.c2lnbmF0dXJl",
    "Authorization: Bearer abc.def",
    '{"authorization": "token abcdef"}',
    "X-Hub-Signature-256: sha256=" + "f" * 64,
    "https://x-access-token:sekrit@github.com/o/r.git",
    PEM,
])
def test_credential_shapes_are_redacted(text: str) -> None:
    out = redact(text)
    assert REDACTED in out
    for secret in (TOKEN, "sekrit", "abcdef", "f" * 64, "MIIEowIBAAKCAQEAtestkeymaterial", "c2lnbmF0dXJl"):
        assert secret not in out


def test_registered_secret_values_are_redacted(captured: io.StringIO) -> None:
    register_secret("my-webhook-secret-value")
    logging.getLogger("t").warning("secret is %s", "my-webhook-secret-value")
    assert "my-webhook-secret-value" not in captured.getvalue()
    assert REDACTED in captured.getvalue()


def test_short_values_are_not_registered() -> None:
    register_secret("abc")
    assert redact("abc") == "abc"


def test_context_fields_and_exceptions(captured: io.StringIO) -> None:
    log = logging.getLogger("t")
    with log_context(delivery_id="d-1", repo="octo/atlas", pr=7), log_context(job_id=3):
        try:
            raise RuntimeError(f"failed with {TOKEN}")
        except RuntimeError:
            log.exception("job failed")
    log.info("outside")
    inside, outside = lines(captured)
    assert (inside["delivery_id"], inside["repo"], inside["pr"], inside["job_id"]) == ("d-1", "octo/atlas", 7, 3)
    assert inside["level"] == "error" and "RuntimeError" in inside["exc"]
    assert TOKEN not in captured.getvalue()
    assert "delivery_id" not in outside


def test_text_format_has_context_and_redaction() -> None:
    stream = io.StringIO()
    handler = configure_logging(level="INFO", fmt="text", stream=stream)
    try:
        with log_context(delivery_id="d-9"):
            logging.getLogger("t").info("token %s", TOKEN)
    finally:
        logging.getLogger().removeHandler(handler)
    text = stream.getvalue()
    assert "delivery_id=d-9" in text and TOKEN not in text


def test_expired_tokens_leave_the_redaction_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_secrets", {})
    now = [1_700_000_000.0]
    monkeypatch.setattr(logs.time, "time", lambda: now[0])
    register_secret("webhook-secret-value")
    for hour in range(24):  # a day of hourly installation tokens
        now[0] += 3600
        register_secret(f"ghs_token_of_hour_{hour:02d}_xxxxxxxx", expires_at=now[0] + 3600)
    assert secret_count() == 2  # the permanent secret and the live token
    assert redact("webhook-secret-value ghs_token_of_hour_23_xxxxxxxx") == f"{REDACTED} {REDACTED}"
