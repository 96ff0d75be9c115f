"""Scoring the gates against hand labels: counts, balanced accuracy, every category on."""

from __future__ import annotations

import pytest

from bot.config import load_config
from bot.gates import score

PAGE = "# Outage\n\nClients saw `ERROR: timeout`; p99 went to 900 ms.\n\n```mermaid\ngraph LR\n    A --> B\n```\n"
CONFIG = load_config()


def label(three_am: bool, path: str = "docs/systems/a.md") -> score.Label:
    return score.Label(None, path, 5, {"three_am": (three_am, "why"), "technical": (True, "not scored")})


def test_counts_and_balanced_accuracy() -> None:
    files = {"docs/debugging/a.md": PAGE, "docs/debugging/b.md": PAGE.replace("ERROR: timeout", "slow")}
    labels = [label(True, "docs/debugging/a.md"), label(True, "docs/debugging/b.md"),
              label(False, "docs/debugging/b.md")]
    report = score.score(CONFIG, labels, lambda commit, path: files.get(path))
    (entry,) = report.scores
    assert (entry.true_pass, entry.false_fail, entry.true_fail, entry.false_pass) == (1, 1, 1, 0)
    assert entry.balanced_accuracy == pytest.approx(0.75)
    assert [d.path for d in entry.disagreements] == ["docs/debugging/b.md"]
    assert "3 AM Test: none of" in entry.disagreements[0].reasons[0]


def test_a_gate_out_of_scope_fails_unless_every_category_is_on() -> None:
    files = {"docs/systems/a.md": PAGE}
    scoped = score.score(CONFIG, [label(True)], lambda commit, path: files.get(path))
    assert scoped.scores[0].false_fail == 1
    everywhere = score.score(score.every_category(CONFIG), [label(True)], lambda commit, path: files.get(path))
    assert everywhere.scores[0].true_pass == 1


def test_missing_files_and_fences_are_listed() -> None:
    report = score.score(CONFIG, [label(True), label(True, "docs/systems/b.md")],
                         lambda commit, path: "no fence" if path.endswith("b.md") else None)
    assert report.missing == ("docs/systems/a.md:5 (no such file at the revision)",
                              "docs/systems/b.md:5 (no mermaid fence on that line)")


@pytest.mark.parametrize("line", ['{"path": "a.md", "line": "x", "labels": {}}', '{"line": 1, "labels": {}}',
                                  '{"path": "a.md", "line": 1, "labels": {"g": {"why": "no pass"}}}', "not json"])
def test_unusable_label_lines_are_named(line: str) -> None:
    with pytest.raises(score.LabelsError, match="labels.jsonl:2: not a labelled diagram"):
        score.read_labels(["", line], "labels.jsonl")
