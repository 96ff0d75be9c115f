"""Fixtures shared across the suite: the OpenAPI-validated GitHub API emulator (tests/emulator)."""

from emulator.fixtures import github_emulator, github_emulator_server  # noqa: F401
