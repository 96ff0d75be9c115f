"""Fixtures of the end-to-end tests: a sample repository served by the GitHub emulator (tests/conftest.py's
``github_emulator``) as an installed App's repository, and the bot's real server pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.harness import APP_ID, INSTALLATION_ID, REPO, BotServer, SampleRepo, app_key_pair


@pytest.fixture(scope="session")
def app_keys() -> tuple[str, str]:
    return app_key_pair()


@pytest.fixture
def sample(tmp_path: Path, github_emulator, app_keys) -> SampleRepo:
    repo = SampleRepo(tmp_path / "origin")
    github_emulator.add_repo(REPO, repo.path)
    github_emulator.register_app(APP_ID, app_keys[1], INSTALLATION_ID)
    return repo


@pytest.fixture
def bot_factory(tmp_path: Path, github_emulator, app_keys) -> Iterator:
    started: list[BotServer] = []

    def make(**overrides) -> BotServer:
        server = BotServer(tmp_path / f"data{len(started)}", github_emulator.base_url, app_keys[0], **overrides)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
