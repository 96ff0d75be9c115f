"""What the repository itself tracks: never installed packages or environments (a symlink to one included)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALLED = {"node_modules", ".venv"}


def test_no_installed_packages_or_environments_are_tracked() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    offending = [path for path in tracked.decode().split("\0") if INSTALLED & set(path.split("/"))]
    assert offending == []
