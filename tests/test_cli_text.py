"""The text report of a change marks what a modified diagram already had at the merge base."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.render import PREEXISTING_MARK
from scratch import ScratchRepo
from test_cli import BROKEN, BROKEN_LINE, commit_broken_line_moved_down, run_cli


def test_text_marks_findings_the_diagram_already_had(scratch: ScratchRepo, monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    commit_broken_line_moved_down(scratch)

    _, out, _ = run_cli(capsys, "check", "--repo", str(scratch.path), "--base", "main", "--head", "pr")
    syntax = [line for line in out.splitlines() if "[technical/syntax]" in line]
    assert len(syntax) == 1 and f"cdn.md:{BROKEN_LINE + 2}:" in syntax[0]
    assert PREEXISTING_MARK in syntax[0]
    assert "already there before this change)" in out.splitlines()[-1]


def test_text_of_a_whole_revision_marks_nothing(scratch: ScratchRepo, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    scratch.write("docs/costs/cdn.md", BROKEN)
    scratch.commit("base")
    _, out, _ = run_cli(capsys, "check", "--repo", str(scratch.path), "--all")
    assert "[technical/syntax]" in out and PREEXISTING_MARK not in out
