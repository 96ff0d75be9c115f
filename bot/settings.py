"""Settings of the GitHub App server: ``ATLAS_*`` environment variables and stored App credentials.

Read once at start-up (``Settings.load()``), never at import. Credentials come from the environment first,
then from what ``atlas-bot register`` stored under the data directory (``github-app/``), so a maintainer who
registered the App can run ``atlas-bot serve`` with no further setup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.webhooks import MAX_BODY_BYTES

ENV_PREFIX = "ATLAS_"
DEFAULT_API_URL = "https://api.github.com"
CREDENTIALS_DIR = "github-app"
APP_FILE = "app.json"
KEY_FILE = "private-key.pem"
QUEUE_FILE = "jobs.sqlite3"
MIRRORS_DIR = "mirrors"
QUEUE_URL_SCHEMES = ("postgresql://", "postgres://")
MISSING_CREDENTIALS = (
    "GitHub App credentials missing: {missing}. Run `atlas-bot register` once, or set {env}."
)


class SettingsError(Exception):
    """Invalid or incomplete settings; the message names the variable or file to fix."""


@dataclass(frozen=True)
class AppCredentials:
    """What ``serve`` needs to act as the App. ``repr`` hides the secrets so they cannot reach a log."""

    app_id: int
    private_key: str
    webhook_secret: str

    def __repr__(self) -> str:
        return f"AppCredentials(app_id={self.app_id}, private_key=***, webhook_secret=***)"


def _default_data_dir() -> Path:
    from bot.paths import data_dir

    return data_dir()


class Settings(BaseSettings):
    """Validated server settings; secrets are ``SecretStr`` so printing the settings shows ``**********``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True)

    data_dir: Path = Field(default_factory=_default_data_dir)
    webhook_secret: SecretStr | None = None
    app_id: int | None = None
    private_key: SecretStr | None = None
    private_key_path: Path | None = None
    # GitHub Enterprise Server: the same variable GitHub Actions sets.
    github_api_url: str = Field(
        DEFAULT_API_URL, validation_alias=AliasChoices("GITHUB_API_URL", "ATLAS_GITHUB_API_URL")
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(2, ge=1, le=64)
    # Workers renew their lease every third of this; it is how long a killed worker's job waits to run again.
    lease_seconds: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    retry_base_seconds: float = Field(5.0, ge=0)
    max_body_bytes: int = Field(MAX_BODY_BYTES, gt=0)
    # The webhook edge sheds load before it authenticates anyone: how long a body may take to arrive (GitHub
    # itself gives up after 10 s), how many bodies are read at once before their signature is checked (more
    # get 503 at once), how long a connection may take to send its request headers, and how many connections
    # are served at once.
    body_timeout_seconds: float = Field(10.0, gt=0)
    max_unverified_bodies: int = Field(16, ge=1)
    header_timeout_seconds: float = Field(5.0, gt=0)
    max_connections: int = Field(256, ge=1)
    poll_seconds: float = Field(0.2, gt=0)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Retention of the App's own stores: refs/pull/* refs kept per mirror (newest heads first) and progress
    # blob counts kept (least recently used dropped). Mirrors go when the App is uninstalled from a repository.
    mirror_pull_refs_keep: int = Field(200, ge=1)
    progress_blob_counts_keep: int = Field(200_000, ge=1000)
    # The shared engine of a scaled-out deployment: postgresql://user:password@host/db. Unset: SQLite under
    # the data directory, one machine. A secret, because the URL usually carries a password.
    queue_url: SecretStr | None = None
    # Finished jobs (and the delivery ids they recognise redeliveries by) and dead letters are kept this long.
    keep_done_days: float = Field(7.0, gt=0)
    keep_dead_days: float = Field(30.0, gt=0)
    prune_interval_seconds: float = Field(600.0, gt=0)
    # Start-to-start spacing of one installation's content-creating requests across every process
    # (bot.coordination.DEFAULT_WRITE_INTERVAL_SECONDS says why one second).
    write_interval_seconds: float = Field(1.0, ge=0)

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from the environment (read now, at start-up) with non-None keyword overrides on top.

        pydantic's errors become one ``SettingsError`` naming the environment variables at fault.
        """
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors()
            )
            raise SettingsError(f"invalid settings: {problems}") from None

    @property
    def credentials_dir(self) -> Path:
        return self.data_dir / CREDENTIALS_DIR

    @property
    def queue_path(self) -> Path:
        return self.data_dir / QUEUE_FILE

    @property
    def mirrors_dir(self) -> Path:
        return self.data_dir / MIRRORS_DIR

    def queue_url_value(self) -> str:
        if self.queue_url is None:
            raise SettingsError("ATLAS_QUEUE_URL is not set")
        url = self.queue_url.get_secret_value()
        if not url.startswith(QUEUE_URL_SCHEMES):
            raise SettingsError(f"ATLAS_QUEUE_URL must start with {' or '.join(QUEUE_URL_SCHEMES)}")
        return url

    def secret_values(self) -> tuple[str, ...]:
        """Every secret these settings know, for the log redaction filter."""
        found = [s.get_secret_value() for s in (self.webhook_secret, self.private_key, self.queue_url)
                 if s is not None]
        stored = self._stored()
        found += [str(stored[k]) for k in ("webhook_secret", "client_secret") if stored.get(k)]
        return tuple(v for v in found if v)

    def credentials(self) -> AppCredentials:
        """App id, private key and webhook secret; environment first, then what ``register`` stored."""
        stored = self._stored()
        app_id = self.app_id if self.app_id is not None else stored.get("id")
        secret = self._webhook_secret(stored)
        key = self._private_key()
        missing = [name for name, value in (("app id", app_id), ("private key", key),
                                            ("webhook secret", secret)) if not value]
        if missing:
            raise SettingsError(MISSING_CREDENTIALS.format(
                missing=", ".join(missing),
                env="ATLAS_APP_ID, ATLAS_PRIVATE_KEY_PATH (or ATLAS_PRIVATE_KEY) and ATLAS_WEBHOOK_SECRET",
            ))
        try:
            numeric_id = int(app_id)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SettingsError(f"app id {app_id!r} is not a number") from None
        return AppCredentials(app_id=numeric_id, private_key=key, webhook_secret=str(secret))  # type: ignore[arg-type]

    def webhook_secret_value(self) -> str:
        """The secret deliveries are signed with (environment, else stored by ``register``)."""
        secret = self._webhook_secret(self._stored())
        if not secret:
            raise SettingsError(MISSING_CREDENTIALS.format(missing="webhook secret", env="ATLAS_WEBHOOK_SECRET"))
        return secret

    def _webhook_secret(self, stored: dict[str, Any]) -> str | None:
        if self.webhook_secret is not None:
            return self.webhook_secret.get_secret_value()
        value = stored.get("webhook_secret")
        return str(value) if value else None

    def _private_key(self) -> str | None:
        if self.private_key is not None:
            return self.private_key.get_secret_value()
        path = self.private_key_path or self.credentials_dir / KEY_FILE
        if self.private_key_path is not None and not path.is_file():
            raise SettingsError(f"ATLAS_PRIVATE_KEY_PATH: {path}: no such file")
        return path.read_text() if path.is_file() else None

    def _stored(self) -> dict[str, Any]:
        path = self.credentials_dir / APP_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text())
        except ValueError:
            raise SettingsError(f"{path}: not valid JSON; run `atlas-bot register` again") from None
        return data if isinstance(data, dict) else {}
