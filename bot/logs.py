"""Structured logs for the App: one JSON object per line, carrying the delivery id, repository and PR number,
with every secret, key and token redacted before a record leaves the process.

Context travels in a ``contextvars`` variable (``log_context``), so a worker thread sets it once per job and
every log line the job causes, in any module, carries it. Redaction runs on the final text of each record, so
a token that reached a message through an exception or a URL is caught as well as one logged on purpose.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

REDACTED = "[REDACTED]"
CONTEXT_FIELDS = ("delivery_id", "event", "repo", "pr", "job_id", "worker")
# Shapes of credentials that must never be written even if no one registered their value:
# GitHub tokens (ghp_/gho_/ghu_/ghs_/ghr_, fine-grained github_pat_), JWTs, Authorization headers,
# PEM private keys and credentials embedded in URLs.
SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"), REDACTED),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"(?i)\b(authorization|x-hub-signature-256)([\"']?\s*[:=]\s*[\"']?)(?:bearer |token |sha256=)?"
                r"[^\s\"',}]+"), rf"\1\2{REDACTED}"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S), REDACTED),
    (re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"), REDACTED),
)
# Registered literal secrets shorter than this are not redacted: replacing every "a" would wreck the log.
MIN_SECRET_CHARS = 6

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("atlas_log_context", default=None)
# secret → epoch seconds after which it is worthless (installation tokens live an hour); inf: forever.
_secrets: dict[str, float] = {}
_secrets_lock = threading.Lock()
FOREVER = float("inf")


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (delivery_id, repo, pr, ...) to every record logged inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get() or {})


def register_secret(value: str | None, *, expires_at: float = FOREVER) -> None:
    """Redact this literal value (webhook secret, installation token, key) wherever it would be logged.

    A token registered with its ``expires_at`` is forgotten once it has expired (a new token is registered
    every hour per installation; an expired one grants nothing), so the set stays as small as the live ones.
    """
    if value and len(value) >= MIN_SECRET_CHARS:
        now = time.time()
        with _secrets_lock:
            for expired in [s for s, until in _secrets.items() if until <= now]:
                del _secrets[expired]
            # PEM keys are also logged line by line in tracebacks; redact each long line on its own.
            for literal in (value, *(line for line in value.splitlines() if len(line) >= 16)):
                _secrets[literal] = max(_secrets.get(literal, 0.0), expires_at)


def secret_count() -> int:
    """How many literal secrets redaction holds now (the ``/metrics`` gauge)."""
    with _secrets_lock:
        return len(_secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret and every credential-shaped substring replaced."""
    # Shapes first: a registered literal (say a PEM's BEGIN line) replaced first would hide the shape around it
    # and leave the key material between the markers in place.
    for pattern, replacement in SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    with _secrets_lock:
        literals = sorted(_secrets, key=len, reverse=True)
    for literal in literals:
        if literal in text:
            text = text.replace(literal, REDACTED)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, context fields, exception (all redacted)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context_of(record))
        for name in CONTEXT_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the same context and redaction."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        context = _context_of(record)
        if context:
            text += " [" + " ".join(f"{k}={v}" for k, v in context.items()) + "]"
        return redact(text)


class ContextFilter(logging.Filter):
    """Freeze the context onto the record in the logging thread (handlers may format it elsewhere)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "atlas_context"):
            record.atlas_context = current_context()
        return True


def _context_of(record: logging.LogRecord) -> dict[str, Any]:
    """The context ``ContextFilter`` froze onto the record, else the formatting thread's own."""
    return getattr(record, "atlas_context", None) or current_context()


def configure_logging(
    *, level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = (), stream: TextIO | None = None
) -> logging.Handler:
    """Route the root logger to ``stream`` (stderr) in ``fmt``; returns the installed handler."""
    for secret in secrets:
        register_secret(secret)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
