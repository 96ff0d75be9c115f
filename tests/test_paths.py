"""Where state and the mermaid worker live: environment overrides and per-user defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import paths


def test_data_dir_from_atlas_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.data_dir() == tmp_path / "state"


def test_data_dir_under_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.data_dir() == tmp_path / "xdg" / "atlas-bot"


def test_data_dir_defaults_to_home_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ATLAS_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.data_dir() == tmp_path / ".cache" / "atlas-bot"


def test_data_dir_is_not_created(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "later"))
    paths.data_dir()
    assert not (tmp_path / "later").exists()


def test_mermaid_dir_is_the_bundled_worker_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ATLAS_MERMAID_DIR", raising=False)
    assert (paths.mermaid_dir() / "worker.mjs").is_file()
    assert (paths.mermaid_dir() / "package.json").is_file()


def test_mermaid_dir_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ATLAS_MERMAID_DIR", str(tmp_path))
    assert paths.mermaid_dir() == tmp_path
