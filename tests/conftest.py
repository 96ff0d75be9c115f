"""Fixtures shared across the suite: a scratch git work tree and the OpenAPI-validated GitHub API emulator."""

from pathlib import Path

import pytest

from emulator.fixtures import github_emulator, github_emulator_server  # noqa: F401
from pgserver import postgres_server, postgres_url  # noqa: F401
from scratch import ScratchRepo


@pytest.fixture
def scratch(tmp_path: Path) -> ScratchRepo:
    """An empty git work tree on branch main."""
    return ScratchRepo(tmp_path / "work")
