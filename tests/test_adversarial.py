"""Hostile content through the CLI: every page of tests/hostile.py is checked in bounded time, nothing dropped.

Each page runs in its own ``atlas-bot check`` process with a cold data directory and a deadline far above
what a linear pass needs (seconds) and far below what one backtracking regex took before (22 s for 32k
spaces, minutes for 100k), so a super-linear pattern anywhere on the path fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import Config
from hostile import hostile_pages
from scratch import ScratchRepo

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_SECONDS = 60
PAGES = hostile_pages()


@pytest.mark.parametrize("name", sorted(PAGES))
def test_hostile_page_is_checked_in_bounded_time(name: str, scratch: ScratchRepo, tmp_path: Path) -> None:
    scratch.write(f"docs/systems/{name}", PAGES[name])
    scratch.commit(f"add {name}")
    env = {**os.environ, "ATLAS_DATA_DIR": str(tmp_path / "data")}
    try:
        done = subprocess.run([sys.executable, "-m", "bot.cli", "check", "--repo", str(scratch.path), "--all",
                               "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: atlas-bot check did not finish within {DEADLINE_SECONDS} s")
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result = json.loads(done.stdout)
    path = f"docs/systems/{name}"
    if len(PAGES[name].encode()) > Config.max_file_bytes:
        # Over the file cap: not read, and said so, never silently passed.
        assert result["diagrams"] == []
        assert [f["path"] for f in result["file_findings"]] == [path]
    else:
        assert len(result["diagrams"]) == PAGES[name].count("```mermaid")
        assert all(d["path"] == path for d in result["diagrams"])
