"""SARIF results carry the review's finding fingerprint, so code scanning keeps one alert per finding."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.sarif import FINGERPRINT_KEY
from test_cli import BROKEN, GOOD
from test_local import data_dir, run_cli  # noqa: F401  (data_dir: the autouse fixture, one data dir per test)


def sarif_results(capsys: pytest.CaptureFixture[str], root: Path) -> list[dict]:
    _, out, _ = run_cli(capsys, "check", "--repo", str(root), str(root / "docs"), "--format", "sarif")
    (run,) = json.loads(out)["runs"]
    return run["results"]


def test_a_finding_keeps_its_fingerprint_when_lines_above_it_move(tmp_path: Path, capsys) -> None:
    page = tmp_path / "atlas" / "docs" / "costs" / "cdn.md"
    page.parent.mkdir(parents=True)
    page.write_text(BROKEN)
    before = {r["ruleId"]: r for r in sarif_results(capsys, tmp_path / "atlas")}
    page.write_text("# Costs\n\nA paragraph added above the diagram.\n\n" + BROKEN)
    after = {r["ruleId"]: r for r in sarif_results(capsys, tmp_path / "atlas")}

    syntax_before, syntax_after = before["technical/syntax"], after["technical/syntax"]
    line = syntax_before["locations"][0]["physicalLocation"]["region"]["startLine"]
    assert syntax_after["locations"][0]["physicalLocation"]["region"]["startLine"] == line + 4
    assert syntax_after["partialFingerprints"] == syntax_before["partialFingerprints"]
    assert set(syntax_before["partialFingerprints"]) == {FINGERPRINT_KEY}


def test_different_findings_get_different_fingerprints(tmp_path: Path, capsys) -> None:
    docs = tmp_path / "atlas" / "docs"
    (docs / "costs").mkdir(parents=True)
    (docs / "costs" / "cdn.md").write_text(BROKEN)
    (docs / "costs" / "ledger.md").write_text(GOOD + "\n" + BROKEN)
    prints = [r["partialFingerprints"][FINGERPRINT_KEY] for r in sarif_results(capsys, tmp_path / "atlas")]
    assert len(prints) == len(set(prints)) > 1
