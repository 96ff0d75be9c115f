"""Stored results: the hand-built JSON is what ``dataclasses.asdict`` gave, and reads back to equal results."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot.model import Diagram, DiagramResult, DiagramStatus, Finding, Severity, SyntaxVerdict
from bot.gates.fixes import SyntaxFix
from bot.stored import fix_from_json, fix_to_json, results_from_json, results_to_json

_DIAGRAM = Diagram(path="docs/a.md", line=3, code="flowchart LR\n  A --> B", line_map=(4, 5))
_FINDINGS = (
    Finding("syntax", "mermaid-parse", Severity.ERROR, "docs/a.md", 4, "Parse error", end_line=5,
            suggestion="A --> B", blocking=True),
    Finding("readable", "acronyms", Severity.NOTICE, "docs/a.md", 3, "Spell out SLO"),
)
_OTHER = Diagram(path="docs/a.md", line=9, code="sequenceDiagram\n", line_map=(10,), info="mermaid title", index=1,
                 closed=False)
_RESULTS = [
    DiagramResult(_DIAGRAM, DiagramStatus.CHECKED, SyntaxVerdict(False, "Parse error on line 2", 2, None),
                  _FINDINGS, {"syntax": False, "readable": True}, frozenset({"readable", "layout"})),
    DiagramResult(_OTHER, DiagramStatus.ADDED, SyntaxVerdict(True, type="flowchart-v2"), ()),
]


def _asdict_form(results: list[DiagramResult]) -> str:
    return json.dumps([
        {
            # line_map is stored as the bounds of its range (extraction's line maps are consecutive).
            "diagram": {**dataclasses.asdict(r.diagram), "line_map": [r.diagram.line_map[0], r.diagram.line_map[-1] + 1]},
            "status": r.status.value,
            "syntax": dataclasses.asdict(r.syntax),
            "findings": [{**dataclasses.asdict(f), "severity": f.severity.value} for f in r.findings],
            "gates_passed": r.gates_passed,
            "gates_advised": sorted(r.gates_advised),
        }
        for r in results
    ])


def test_results_json_is_the_dataclass_form_byte_for_byte() -> None:
    assert results_to_json(_RESULTS) == _asdict_form(_RESULTS)


def test_results_read_back_equal() -> None:
    assert results_from_json(results_to_json(_RESULTS)) == _RESULTS


@pytest.mark.parametrize("cls", [Diagram, SyntaxVerdict, Finding])
def test_every_field_is_stored(cls: type) -> None:
    stored = json.loads(results_to_json(_RESULTS))[0]
    keys = list({Diagram: stored["diagram"], SyntaxVerdict: stored["syntax"]}.get(cls) or stored["findings"][0])
    assert keys == [f.name for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("fix", [None, SyntaxFix(2, 3, ('  A["x (y)"] --> B', "  B"), "Quote labels: reserved")])
def test_a_suggestion_is_stored_in_its_dataclass_form(fix: SyntaxFix | None) -> None:
    assert fix_to_json(fix) == json.dumps(None if fix is None else dataclasses.asdict(fix))
    assert fix_from_json(fix_to_json(fix)) == fix


def test_an_empty_diagram_reads_back_equal() -> None:
    empty = Diagram(path="docs/a.md", line=7, code="", line_map=(), index=2)
    results = [DiagramResult(empty, DiagramStatus.CHECKED, SyntaxVerdict(False, "No diagram type detected"), ())]
    assert results_from_json(results_to_json(results)) == results
