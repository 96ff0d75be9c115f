"""Settings: environment at load time, stored credentials from `register`, errors that name what to fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.settings import APP_FILE, CREDENTIALS_DIR, KEY_FILE, Settings, SettingsError

PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEabc\n-----END RSA PRIVATE KEY-----\n"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ATLAS_APP_ID", "ATLAS_PRIVATE_KEY", "ATLAS_PRIVATE_KEY_PATH", "ATLAS_WEBHOOK_SECRET",
                 "GITHUB_API_URL", "ATLAS_GITHUB_API_URL", "ATLAS_WORKERS", "ATLAS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))


def store(data_dir: Path, app: dict, key: str | None = PEM) -> None:
    folder = data_dir / CREDENTIALS_DIR
    folder.mkdir(parents=True)
    (folder / APP_FILE).write_text(json.dumps(app))
    if key is not None:
        (folder / KEY_FILE).write_text(key)


def test_environment_is_read_when_loading(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_WORKERS", "3")
    monkeypatch.setenv("GITHUB_API_URL", "https://ghe.example/api/v3")
    settings = Settings.load()
    assert settings.workers == 3
    assert settings.github_api_url == "https://ghe.example/api/v3"
    assert settings.data_dir == tmp_path / "data"
    assert settings.queue_path == tmp_path / "data" / "jobs.sqlite3"


def test_overrides_win_and_none_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_PORT", "9000")
    assert Settings.load(port=None).port == 9000
    assert Settings.load(port=8123).port == 8123


def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_WORKERS", "zero")
    with pytest.raises(SettingsError, match="ATLAS_WORKERS"):
        Settings.load()


def test_credentials_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_path = tmp_path / "key.pem"
    key_path.write_text(PEM)
    monkeypatch.setenv("ATLAS_APP_ID", "123")
    monkeypatch.setenv("ATLAS_PRIVATE_KEY_PATH", str(key_path))
    monkeypatch.setenv("ATLAS_WEBHOOK_SECRET", "s3cret-value")
    creds = Settings.load().credentials()
    assert (creds.app_id, creds.private_key, creds.webhook_secret) == (123, PEM, "s3cret-value")
    assert "s3cret" not in repr(creds) and "BEGIN" not in repr(creds)


def test_secrets_do_not_show_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_WEBHOOK_SECRET", "s3cret-value")
    monkeypatch.setenv("ATLAS_PRIVATE_KEY", PEM)
    settings = Settings.load()
    assert "s3cret" not in repr(settings) and "MIIE" not in repr(settings)
    assert set(settings.secret_values()) == {"s3cret-value", PEM}


def test_credentials_stored_by_register_are_used(tmp_path: Path) -> None:
    store(tmp_path / "data", {"id": 77, "webhook_secret": "from-register"})
    settings = Settings.load()
    creds = settings.credentials()
    assert (creds.app_id, creds.private_key, creds.webhook_secret) == (77, PEM, "from-register")
    assert settings.webhook_secret_value() == "from-register"


def test_environment_beats_stored_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store(tmp_path / "data", {"id": 77, "webhook_secret": "from-register"})
    monkeypatch.setenv("ATLAS_APP_ID", "5")
    monkeypatch.setenv("ATLAS_WEBHOOK_SECRET", "from-env")
    creds = Settings.load().credentials()
    assert (creds.app_id, creds.webhook_secret) == (5, "from-env")


def test_missing_credentials_say_how_to_fix() -> None:
    with pytest.raises(SettingsError, match=r"app id, private key, webhook secret.*atlas-bot register"):
        Settings.load().credentials()
    with pytest.raises(SettingsError, match="ATLAS_WEBHOOK_SECRET"):
        Settings.load().webhook_secret_value()


def test_missing_key_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_PRIVATE_KEY_PATH", str(tmp_path / "nope.pem"))
    with pytest.raises(SettingsError, match=r"nope\.pem"):
        Settings.load().credentials()


@pytest.mark.parametrize(("app", "message"), [({"id": "abc", "webhook_secret": "x" * 8}, "not a number")])
def test_bad_stored_app_id(tmp_path: Path, app: dict, message: str) -> None:
    store(tmp_path / "data", app)
    with pytest.raises(SettingsError, match=message):
        Settings.load().credentials()


def test_corrupt_stored_file(tmp_path: Path) -> None:
    folder = tmp_path / "data" / CREDENTIALS_DIR
    folder.mkdir(parents=True)
    (folder / APP_FILE).write_text("{")
    with pytest.raises(SettingsError, match="register"):
        Settings.load().credentials()


def test_the_queue_url_selects_the_shared_engine_and_stays_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_QUEUE_URL", "postgresql://bot:hunter2@db.internal/atlas")
    settings = Settings.load()
    assert settings.queue_url_value() == "postgresql://bot:hunter2@db.internal/atlas"
    assert "hunter2" not in repr(settings)
    assert "postgresql://bot:hunter2@db.internal/atlas" in settings.secret_values()
    monkeypatch.setenv("ATLAS_QUEUE_URL", "redis://localhost/0")
    with pytest.raises(SettingsError, match="ATLAS_QUEUE_URL must start with postgresql://"):
        Settings.load().queue_url_value()
    monkeypatch.delenv("ATLAS_QUEUE_URL")
    assert Settings.load().queue_url is None  # unset: SQLite under the data directory
