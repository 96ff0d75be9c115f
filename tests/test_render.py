"""Tests for bot.render: text (with and without colour), the stable JSON schema, GitHub workflow commands."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import jsonschema
import pytest

from bot.model import (
    CategoryTotal,
    CheckResult,
    Diagram,
    DiagramResult,
    DiagramStatus,
    Finding,
    Severity,
    SyntaxVerdict,
)
from bot.render import (
    escape_data,
    escape_property,
    render_github,
    render_json,
    render_text,
    verdict_headline,
    workflow_command,
)

PATH = "docs/systems/netflix.md"
SOURCE = "\n".join([
    "# Netflix",               # 1
    "",                        # 2
    "```mermaid",              # 3
    "flowchart LR",            # 4
    "    A[Edge (CDN)] --> B",  # 5
    "```",                     # 6
    "",                        # 7
    "```mermaid",              # 8
    "sequenceDiagram",         # 9
    "    C->>D: GET",          # 10
    "```",                     # 11
]) + "\n"
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")

SYNTAX = Finding(gate="technical", rule="syntax", severity=Severity.ERROR, path=PATH, line=5,
                 message="Parse error: '(' inside an unquoted [label]", suggestion='    A["Edge (CDN)"] --> B',
                 blocking=True)
CFO = Finding(gate="cfo", rule="cost", severity=Severity.WARNING, path=PATH, line=8, end_line=11,
              message="No infrastructure cost.\nAdd an amount such as $12,000/month.")
SKIPPED = Finding(gate="technical", rule="unreadable", severity=Severity.ERROR, path="docs/costs/blob.md", line=1,
                  message="Not UTF-8: skipped", blocking=True)


def _diagram(line: int, code: str) -> Diagram:
    lines = code.splitlines()
    return Diagram(path=PATH, line=line, code=code, line_map=tuple(range(line + 1, line + 1 + len(lines))))


FAILING = DiagramResult(
    diagram=_diagram(3, "flowchart LR\n    A[Edge (CDN)] --> B"),
    status=DiagramStatus.ADDED,
    syntax=SyntaxVerdict(ok=False, error="Parse error on line 2", error_line=2),
    findings=(SYNTAX,),
    gates_passed={"technical": False},
)
PASSING = DiagramResult(
    diagram=_diagram(8, "sequenceDiagram\n    C->>D: GET"),
    status=DiagramStatus.MODIFIED,
    syntax=SyntaxVerdict(ok=True, type="sequence"),
    findings=(CFO,),
    gates_passed={"technical": True, "cfo": False},
)
RESULT = CheckResult(
    base="a" * 40,
    head="b" * 40,
    diagrams=(PASSING, FAILING),
    file_findings=(SKIPPED,),
    totals=(
        CategoryTotal("systems", "Architecture Deep-Dives", 48, 50, 240),
        CategoryTotal("costs", "Cost Analysis", 3, 3, 60),
        CategoryTotal("misc", "misc", 1, 1, None),
    ),
)


# --- text ------------------------------------------------------------------------------------------------------


def test_text_without_colour_is_grouped_by_file_with_diff_and_totals() -> None:
    text = render_text(RESULT, color=False, sources={PATH: SOURCE})
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "docs/costs/blob.md"
    assert lines[1] == "      docs/costs/blob.md:1: error [technical/unreadable] Not UTF-8: skipped"
    netflix = lines.index(PATH)
    assert lines[netflix + 1].startswith("  ✗ line 3 ")
    assert "added" in lines[netflix + 1] and "flowchart" in lines[netflix + 1]
    assert lines[netflix + 2] == (f"      {PATH}:5: error [technical/syntax] Parse error: '(' inside an unquoted "
                                  "[label]")
    assert lines[netflix + 3] == "        -     A[Edge (CDN)] --> B"
    assert lines[netflix + 4] == '        +     A["Edge (CDN)"] --> B'
    assert lines[netflix + 5].startswith("  ✓ line 8 ") and "sequence" in lines[netflix + 5]
    assert lines[netflix + 6] == f"      {PATH}:8: warning [cfo/cost] No infrastructure cost."
    assert lines[netflix + 7] == "        Add an amount such as $12,000/month."
    table = lines[lines.index(next(l for l in lines if l.startswith("Category"))):]
    assert table[0].split() == ["Category", "Before", "After", "Target"]
    # A change lists the categories it moves; TOTAL still sums every category.
    assert table[1].split() == ["Architecture", "Deep-Dives", "48", "50", "240"]
    assert table[2].split() == ["TOTAL", "52", "54", "300"]
    assert lines[-1] == ("2 diagrams checked: 1 passed, 1 failed · 3 findings (2 errors, 1 warning)")


def test_text_without_sources_shows_only_added_lines() -> None:
    text = render_text(RESULT, color=False)
    assert '        +     A["Edge (CDN)"] --> B' in text
    assert "        -" not in text


def test_text_with_colour_is_the_same_text_painted() -> None:
    plain = render_text(RESULT, color=False, sources={PATH: SOURCE})
    painted = render_text(RESULT, color=True, sources={PATH: SOURCE})
    assert "\x1b[31m" in painted and "\x1b[32m" in painted
    assert ANSI_RE.sub("", painted) == plain


def test_text_mentions_removed_diagrams_and_empty_runs() -> None:
    empty = CheckResult(base="a", head="b", diagrams=(), removed=(_diagram(3, "graph TD"),))
    assert render_text(empty, color=False) == "0 diagrams checked: 0 passed, 0 failed · no findings · 1 diagram removed"


# --- shared phrasing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("diagrams", "file_findings", "expected"),
    [
        ((), (), "No new or changed diagrams to check"),
        ((PASSING,), (), "The diagram passes the quality gates"),
        ((PASSING, PASSING), (), "All 2 diagrams pass the quality gates"),
        ((FAILING,), (), "1 of 1 diagram fails the quality gates"),
        ((FAILING, PASSING, PASSING), (), "1 of 3 diagrams fail the quality gates"),
        ((PASSING,), (SKIPPED,), "The diagram passes the quality gates; 1 file could not be checked"),
    ],
)
def test_verdict_headline(diagrams, file_findings, expected) -> None:
    assert verdict_headline(CheckResult(base=None, head="h", diagrams=diagrams, file_findings=file_findings)) \
        == expected


# --- JSON ------------------------------------------------------------------------------------------------------

FINDING_KEYS = ["gate", "rule", "severity", "line", "end_line", "message", "suggestion"]
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["base", "head", "diagrams", "totals", "file_findings"],
    "properties": {
        "base": {"type": ["string", "null"]},
        "head": {"type": "string"},
        "diagrams": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["path", "line", "status", "type", "syntax", "passed", "findings"],
            "properties": {
                "path": {"type": "string"},
                "line": {"type": "integer", "minimum": 1},
                "status": {"enum": ["added", "modified", "checked"]},
                "type": {"type": "string"},
                "syntax": {"type": "object", "additionalProperties": False, "required": ["ok", "error"],
                           "properties": {"ok": {"type": "boolean"}, "error": {"type": ["string", "null"]}}},
                "passed": {"type": "boolean"},
                "findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
            },
        }},
        "totals": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": False, "required": ["title", "before", "after", "target"],
            "properties": {"title": {"type": "string"}, "before": {"type": "integer"},
                           "after": {"type": "integer"}, "target": {"type": ["integer", "null"]}},
        }},
        "file_findings": {"type": "array", "items": {"$ref": "#/$defs/finding"}},
    },
    "$defs": {"finding": {
        "type": "object", "required": FINDING_KEYS,
        "properties": {"gate": {"type": "string"}, "rule": {"type": "string"},
                       "severity": {"enum": ["error", "warning", "notice"]},
                       "line": {"type": "integer"}, "end_line": {"type": "integer"},
                       "message": {"type": "string"}, "suggestion": {"type": ["string", "null"]}},
    }},
}


def test_json_has_exactly_the_documented_keys_in_order() -> None:
    doc = json.loads(render_json(RESULT))
    jsonschema.validate(doc, SCHEMA)
    assert list(doc) == ["base", "head", "diagrams", "totals", "file_findings"]
    first, second = doc["diagrams"]
    assert list(first) == ["path", "line", "status", "type", "syntax", "passed", "findings"]
    assert list(first["syntax"]) == ["ok", "error"]
    assert list(first["findings"][0]) == FINDING_KEYS
    assert list(doc["file_findings"][0]) == ["path", *FINDING_KEYS]
    assert list(doc["totals"]) == ["systems", "costs", "misc"]
    assert list(doc["totals"]["systems"]) == ["title", "before", "after", "target"]
    assert first == {
        "path": PATH, "line": 3, "status": "added", "type": "flowchart",
        "syntax": {"ok": False, "error": "Parse error on line 2"}, "passed": False,
        "findings": [{"gate": "technical", "rule": "syntax", "severity": "error", "line": 5, "end_line": 5,
                      "message": SYNTAX.message, "suggestion": '    A["Edge (CDN)"] --> B'}],
    }
    assert second["type"] == "sequence"
    assert second["passed"] is True
    assert second["findings"][0]["end_line"] == 11
    assert second["findings"][0]["suggestion"] is None
    assert doc["totals"]["misc"] == {"title": "misc", "before": 1, "after": 1, "target": None}


def test_json_is_stable_and_keeps_unicode() -> None:
    assert render_json(RESULT) == render_json(RESULT)
    odd = CheckResult(base=None, head="h", diagrams=(), file_findings=(
        Finding("technical", "unreadable", Severity.ERROR, "docs/ü.md", 1, "naïve → skipped"),))
    text = render_json(odd)
    assert "naïve → skipped" in text
    assert json.loads(text)["base"] is None


# --- GitHub workflow commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "data", "prop"),
    [
        ("plain", "plain", "plain"),
        ("100%", "100%25", "100%25"),
        ("a\r\nb", "a%0D%0Ab", "a%0D%0Ab"),
        ("x: y, z", "x: y, z", "x%3A y%2C z"),
        ("%0A literal", "%250A literal", "%250A literal"),
    ],
)
def test_escaping_follows_the_actions_toolkit(raw: str, data: str, prop: str) -> None:
    assert escape_data(raw) == data
    assert escape_property(raw) == prop


def test_workflow_command_shape() -> None:
    assert workflow_command("warning", {}, "m") == "::warning::m"
    assert workflow_command("error", {"file": "a,b.md", "line": 3}, "x\ny") == "::error file=a%2Cb.md,line=3::x%0Ay"


def test_render_github_one_command_per_finding_then_summary() -> None:
    lines = render_github(RESULT).splitlines()
    assert lines == [
        "::error file=docs/costs/blob.md,line=1,endLine=1,title=Atlas technical/unreadable::Not UTF-8: skipped",
        f"::error file={PATH},line=5,endLine=5,title=Atlas technical/syntax::Parse error: '(' inside an unquoted "
        "[label]%0A%0ASuggested replacement:%0A    A[\"Edge (CDN)\"] --> B",
        f"::warning file={PATH},line=8,endLine=11,title=Atlas cfo/cost::No infrastructure cost.%0A"
        "Add an amount such as $12,000/month.",
        "atlas-bot: 1 of 2 diagrams fail the quality gates; 1 file could not be checked; "
        "3 findings (2 errors, 1 warning)",
    ]


def test_render_github_notice_and_lineless_finding() -> None:
    finding = Finding("new_hire", "acronym", Severity.NOTICE, "docs/a:b.md", 0, "50% unexplained")
    lines = render_github(CheckResult(base=None, head="h", diagrams=(), file_findings=(finding,))).splitlines()
    assert lines[0] == "::notice file=docs/a%3Ab.md,title=Atlas new_hire/acronym::50%25 unexplained"


def test_text_of_a_whole_revision_lists_every_category() -> None:
    text = render_text(replace(RESULT, base=None), color=False)
    table = text.splitlines()[text.splitlines().index(next(l for l in text.splitlines() if l.startswith("Category"))):]
    assert [row.split()[0] for row in table[1:5]] == ["Architecture", "Cost", "misc", "TOTAL"]
