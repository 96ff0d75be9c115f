"""The engine: findings placed on file lines and explained, suggestions with container prefixes, blocking and
passing per gate, gates per category, evidence from the Markdown section, files that could not be read."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import Condition, Gate, Rule, load_config
from bot.gates import checks, engine
from bot.gates.fixes import SyntaxFix
from bot.model import Diagram, DiagramStatus, FileChange, Severity, SyntaxVerdict

CONFIG = load_config()
OK = SyntaxVerdict(ok=True, type="flowchart-v2")
GOOD = """graph LR
    API[Checkout API<br/>Go 1.22<br/>12K req/s] -->|"orders"| DB[(PostgreSQL 16<br/>2 TB)]
    classDef serviceStyle fill:#10B981,stroke:#059669,color:#fff
    class API serviceStyle"""


def page(*blocks: str) -> str:
    return "\n".join(blocks) + "\n"


def fence(code: str, prefix: str = "") -> str:
    return "\n".join(prefix + line if line else prefix.rstrip() for line in ["```mermaid", *code.split("\n"), "```"])


def diagram_in(text: str, path: str = "docs/systems/a.md", prefix: str = "") -> Diagram:
    """The first mermaid fence of ``text`` (written by ``fence``), with its file lines."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line == prefix + "```mermaid")
    end = next(i for i in range(start + 1, len(lines)) if lines[i] == prefix + "```")
    code = "\n".join(line[len(prefix):] if line.startswith(prefix) else "" for line in lines[start + 1 : end])
    return Diagram(path, start + 1, code, tuple(range(start + 2, end + 1)))


def evaluate(text: str, *, category: str | None = "systems", verdict: SyntaxVerdict = OK,
             fix: SyntaxFix | None = None, config=CONFIG, prefix: str = ""):
    diagram = diagram_in(text, prefix=prefix)
    return engine.evaluate_diagram(config, diagram, status=DiagramStatus.ADDED, category=category, file_text=text,
                                   verdict=verdict, syntax_fix=fix)


def test_a_good_diagram_passes_every_gate_that_applies() -> None:
    result = evaluate(page("# Checkout", fence(GOOD)))
    assert result.findings == ()
    assert result.gates_passed == {"technical": True, "new_hire": True}
    assert result.passed


def test_gates_apply_by_category() -> None:
    text = page("# Outage", fence(GOOD))
    assert set(evaluate(text, category="incidents").gates_passed) == {"technical", "three_am", "new_hire", "incident"}
    assert set(evaluate(text, category="costs").gates_passed) == {"technical", "new_hire", "cfo"}
    assert set(evaluate(text, category=None).gates_passed) == {"technical", "new_hire"}


def test_line_findings_sit_on_the_file_line_and_whole_diagram_findings_on_the_fence() -> None:
    code = GOOD + "\n    X[TODO]"
    text = page("# Title", "", "Intro.", "", fence(code))
    result = evaluate(text, category="incidents")
    placeholder = next(f for f in result.findings if f.rule == "placeholders")
    assert text.split("\n")[placeholder.line - 1] == "    X[TODO]"
    three_am = next(f for f in result.findings if f.gate == "three_am")
    assert text.split("\n")[three_am.line - 1] == "```mermaid"


def test_a_failing_gate_is_one_finding_naming_each_missing_part_with_an_example() -> None:
    result = evaluate(page("# Outage", fence(GOOD)), category="incidents")
    (three_am,) = [f for f in result.findings if f.gate == "three_am"]
    assert three_am.rule == engine.GATE_RULE
    assert three_am.message == (
        "3 AM Test: none of: exact error, command or runbook, recovery step — e.g. `\"ERROR: connection refused (port 5432)\"` or `OOMKilled` or "
        "`kubectl rollout undo deploy/checkout` or `[Runbook](docs/runbooks/checkout.md)` or `Recovery: fail over "
        "to the replica, then drain the stuck queue`."
    )
    assert [f.gate for f in result.findings if f.severity is not Severity.NOTICE].count("incident") == 1


def test_advice_rules_are_notices_and_mark_a_passing_gate_as_advised() -> None:
    code = "graph LR\n    API[Checkout API<br/>12K req/s] --> DB[(PostgreSQL)]\n    Lonely[Audit log]"
    result = evaluate(page("# Checkout", fence(code)))
    assert result.gates_passed["new_hire"] is True
    assert result.gates_advised == frozenset({"new_hire"})
    advice = [f for f in result.findings if f.gate == "new_hire"]
    assert {f.rule for f in advice} == {"versions", "orphans"}
    assert all(f.severity is Severity.NOTICE and not f.blocking for f in advice)
    assert [f.line for f in advice] == [4, 5]


def test_a_gate_failing_only_on_line_findings_reports_on_their_line() -> None:
    code = "graph LR\n    API[Checkout API<br/>12K req/s] --> Q[QZX queue]"
    result = evaluate(page("# Checkout", fence(code)))
    (new_hire,) = [f for f in result.findings if f.gate == "new_hire"]
    assert new_hire.line == 4
    assert new_hire.message.startswith("New Hire Test: unexplained acronym `QZX` (line 4) — e.g. `<what QZX stands")
    assert result.gates_passed["new_hire"] is False and "new_hire" not in result.gates_advised


@pytest.mark.parametrize(("condition", "hits", "holds", "unmet"), [
    ({"all": ["a", "b"]}, {"a": 0, "b": 1}, False, ["b"]),
    ({"all": ["a", {"any": ["b", "c"]}]}, {"a": 0, "b": 1, "c": 0}, True, []),
    ({"all": ["a", {"any": ["b", "c"]}]}, {"a": 1, "b": 1, "c": 1}, False, ["a", "any(b,c)"]),
    ({"any": ["a", {"all": ["b", "c"]}]}, {"a": 1, "b": 0, "c": 0}, True, []),
    ({"any": ["a", "b"]}, {"a": 1, "b": 1}, False, ["any(a,b)"]),
    # A rule that did not run (disabled, other category) is left out of the condition.
    ({"all": ["a", {"any": ["b", "c"]}]}, {"a": 0, "c": 1}, False, ["any(c)"]),
    ({"all": [{"any": ["b"]}]}, {}, True, []),
])
def test_judge(condition: dict, hits: dict[str, int], holds: bool, unmet: list[str]) -> None:
    def build(raw: dict) -> Condition:
        (kind, items), = raw.items()
        return Condition(kind, tuple(build(i) if isinstance(i, dict) else i for i in items))

    def shown(item: str | Condition) -> str:
        return item if isinstance(item, str) else f"{item.kind}({','.join(map(shown, item.items))})"

    gate = Gate(id="g", title="G", condition=build(condition))
    verdict = engine.judge(gate, {rule: [checks.Hit()] * count for rule, count in hits.items()})
    assert verdict.holds is holds
    assert [shown(item) for item in verdict.unmet] == unmet


def test_gates_past_the_time_budget_are_not_passed_and_named_in_one_finding() -> None:
    ticks = iter([0, 1] + [10] * 20)
    result = engine.evaluate_diagram(CONFIG, diagram_in(page("# T", fence(GOOD))), status=DiagramStatus.ADDED,
                                     category="incidents", file_text=page("# T", fence(GOOD)), verdict=OK,
                                     syntax_fix=None, clock=lambda: float(next(ticks)))
    (budget,) = [f for f in result.findings if f.rule == engine.BUDGET_RULE]
    assert result.gates_passed["technical"] is True
    assert [g for g, ok in result.gates_passed.items() if not ok] == ["three_am", "new_hire", "incident"]
    assert budget.message.startswith("Not evaluated, so not passed: 3 AM Test, New Hire Test, Incident Test.")
    assert "gate_budget.diagram_seconds" in budget.message


def test_a_change_past_its_deadline_evaluates_no_gate() -> None:
    text = page("# T", fence(GOOD))
    result = engine.evaluate_diagram(CONFIG, diagram_in(text), status=DiagramStatus.ADDED, category=None,
                                     file_text=text, verdict=OK, syntax_fix=None, deadline=-1.0)
    assert result.gates_passed == {"technical": False, "new_hire": False}
    (budget,) = result.findings
    assert "gate_budget.change_seconds" in budget.message and budget.severity is Severity.WARNING


def test_syntax_error_is_mapped_to_the_file_line_and_blocks() -> None:
    code = "graph LR\n    A[Cache (Redis 7)] --> B[(PostgreSQL 16)]"
    text = page("# T", fence(code))
    verdict = SyntaxVerdict(ok=False, error="Parse error on line 2:\n...\nExpecting 'SQE', got 'PS'", error_line=2)
    result = evaluate(text, verdict=verdict)
    (syntax,) = [f for f in result.findings if f.rule == "syntax"]
    assert syntax.line == 4 and syntax.end_line is None and syntax.suggestion is None
    assert syntax.severity is Severity.ERROR and syntax.blocking
    assert syntax.message.startswith("Mermaid cannot parse this diagram") and "holds `(`" in syntax.message
    assert "<summary>Parser detail</summary>" in syntax.message and "valid here: `]` (`SQE`)" in syntax.message
    assert not result.passed and result.gates_passed["technical"] is False


def test_syntax_fix_becomes_a_suggestion_for_the_lines_it_replaces() -> None:
    code = "graph LR\n    A[Cache (Redis 7)] -->\n    B[(PostgreSQL 16)]"
    text = page("# T", fence(code))
    fix = SyntaxFix(2, 3, ('    A["Cache (Redis 7)"] --> B[(PostgreSQL 16)]',), "Quote labels: reserved characters")
    result = evaluate(text, verdict=SyntaxVerdict(ok=False, error="Parse error", error_line=2), fix=fix)
    (syntax,) = [f for f in result.findings if f.rule == "syntax"]
    assert (syntax.line, syntax.end_line) == (4, 5)
    assert syntax.suggestion == '    A["Cache (Redis 7)"] --> B[(PostgreSQL 16)]'
    assert "Suggested fix: Quote labels" in syntax.message


BROKEN_WITH_PLACEHOLDER = "graph LR\n    A[Cache (Redis 7)] -->\n    B[(PostgreSQL 16)]\n    C[TODO]"
QUOTED = SyntaxFix(2, 3, ('    A["Cache (Redis 7)"] --> B[(PostgreSQL 16)]',), "Quote labels: reserved characters")


@pytest.mark.parametrize("category", ["systems", "incidents", None])
def test_a_fix_added_to_a_rejected_diagrams_result_is_as_if_its_gates_had_it(category: str | None) -> None:
    text = page("# Cache", "Intro with an SLO.", fence(BROKEN_WITH_PLACEHOLDER), "## Next")
    verdict = SyntaxVerdict(ok=False, error="Parse error on line 2:\n...\nExpecting 'SQE', got 'PS'", error_line=2)
    without = evaluate(text, category=category, verdict=verdict)
    added = engine.with_syntax_fix(CONFIG, without, category=category, file_text=text, syntax_fix=QUOTED)
    assert added == evaluate(text, category=category, verdict=verdict, fix=QUOTED) != without
    assert [f.rule for f in added.findings] == [f.rule for f in without.findings]  # placeholder kept in place


def test_a_fix_added_runs_only_the_syntax_rules_of_a_gate_without_condition(monkeypatch: pytest.MonkeyPatch) -> None:
    text = page("# Cache", "Intro with an SLO.", fence(BROKEN_WITH_PLACEHOLDER), "## Next")
    verdict = SyntaxVerdict(ok=False, error="Parse error on line 2:\n...\nExpecting 'SQE', got 'PS'", error_line=2)
    without = evaluate(text, verdict=verdict)
    ran: list[str] = []
    for name, spec in list(checks.CHECKS.items()):
        def counted(state, subject, evidence, _run=spec.run, _name=name):  # noqa: ANN001, ANN202
            ran.append(_name)
            return _run(state, subject, evidence)
        monkeypatch.setitem(checks.CHECKS, name, dataclasses.replace(spec, run=counted))
    added = engine.with_syntax_fix(CONFIG, without, category="systems", file_text=text, syntax_fix=QUOTED)
    assert ran == [checks.SYNTAX_CHECK]
    monkeypatch.undo()
    assert added == evaluate(text, verdict=verdict, fix=QUOTED)


def test_a_fix_is_added_by_evaluating_every_gate_where_the_budget_cut_them_short() -> None:
    text = page("# T", fence(BROKEN_WITH_PLACEHOLDER))
    ticks = iter([0, 1] + [10] * 20)
    cut = engine.evaluate_diagram(CONFIG, diagram_in(text), status=DiagramStatus.ADDED, category="systems",
                                  file_text=text, verdict=SyntaxVerdict(ok=False, error="Parse error"),
                                  syntax_fix=None, clock=lambda: float(next(ticks)))
    assert any(f.rule == engine.BUDGET_RULE for f in cut.findings)
    assert engine.with_syntax_fix(CONFIG, cut, category="systems", file_text=text, syntax_fix=QUOTED) is None


def test_suggestions_keep_block_quote_prefixes() -> None:
    code = GOOD + "\n    style API fill:#00AA00"
    text = page("# T", "", fence(code, prefix="> "))
    result = evaluate(text, prefix="> ")
    (legacy,) = [f for f in result.findings if f.rule == "legacy_colours"]
    assert text.split("\n")[legacy.line - 1] == ">     style API fill:#00AA00"
    assert legacy.suggestion == ">     style API fill:#10B981"
    assert legacy.end_line == legacy.line
    assert not legacy.blocking and legacy.severity is Severity.WARNING


def test_no_suggestion_when_the_file_line_does_not_hold_the_code_line() -> None:
    code = GOOD + "\n    style API fill:#00AA00"
    text = page("# T", fence(code))
    diagram = diagram_in(text)
    shifted = dataclasses.replace(diagram, line_map=tuple(n - 1 for n in diagram.line_map))
    result = engine.evaluate_diagram(CONFIG, shifted, status=DiagramStatus.ADDED, category="systems",
                                     file_text=text, verdict=OK, syntax_fix=None)
    (legacy,) = [f for f in result.findings if f.rule == "legacy_colours"]
    assert legacy.suggestion is None


def test_content_gates_warn_without_blocking_by_default() -> None:
    result = evaluate(page("# Outage", fence(GOOD)), category="incidents")
    assert result.gates_passed["three_am"] is False and result.gates_passed["incident"] is False
    assert result.findings and not any(f.blocking for f in result.findings)
    assert result.passed


def test_a_blocking_gate_blocks_when_an_error_rule_is_missing() -> None:
    config = load_config(repo_config_text="gates:\n  three_am: {blocking: true, severity: error}\n")
    result = evaluate(page("# Outage", fence(GOOD)), category="incidents", config=config)
    (blocking,) = [f for f in result.findings if f.blocking]
    assert (blocking.gate, blocking.severity) == ("three_am", Severity.ERROR)
    assert not result.passed
    passing = page("# Outage", "", "Clients see `ERROR: timeout`.", "", fence(GOOD))
    assert evaluate(passing, category="incidents", config=config).passed


def test_a_failing_gate_finding_takes_the_severity_of_its_missing_rules() -> None:
    config = load_config(repo_config_text="gates:\n  three_am:\n    severity: notice\n")
    result = evaluate(page("# Outage", fence(GOOD)), category="debugging", config=config)
    assert {f.severity for f in result.findings if f.gate == "three_am"} == {Severity.NOTICE}
    assert result.gates_passed["three_am"] is False


def test_disabled_gates_and_rules_do_not_run() -> None:
    config = load_config(repo_config_text="gates:\n  incident: {enabled: false}\n"
                                          "  three_am:\n    rules:\n      runbook: {enabled: false}\n")
    result = evaluate(page("# Outage", fence(GOOD)), category="incidents", config=config)
    assert "incident" not in result.gates_passed
    assert not any(f.rule == "runbook" for f in result.findings)


def test_section_evidence_is_the_section_around_the_fence() -> None:
    text = page(
        "# Outage", "",
        "## Cascade", "", "Clients saw `ERROR: connection refused`; p99 went to 900 ms.", "", fence(GOOD), "",
        "### Recovery", "", "Fail over, then run `kubectl rollout restart deploy/api`.", "",
        "## Timeline", "", "Nothing about errors here.",
    )
    result = evaluate(text, category="debugging")
    assert result.gates_passed["three_am"] is True
    other = page("# Outage", "", "## Timeline", "", "Clients saw `ERROR: refused`.", "", "## Diagram", "", fence(GOOD))
    assert evaluate(other, category="debugging").gates_passed["three_am"] is False


def test_file_evidence_reads_the_whole_file() -> None:
    config = load_config(repo_config_text="gates:\n  three_am: {evidence: file}\n")
    text = page("# Outage", "", "## Runbook", "", "Run `kubectl rollout undo deploy/api`: ERROR: timeout, p99 800 ms,"
                " then restart.", "", "## Diagram", "", fence(GOOD))
    assert evaluate(text, category="debugging", config=config).gates_passed["three_am"] is True


def test_new_rule_from_configuration_runs_with_its_own_message() -> None:
    config = load_config(repo_config_text=(
        "gates:\n  new_hire:\n    rules:\n      owner:\n        check: evidence_matches\n"
        "        params: {patterns: ['owner:']}\n        message: No owner\n        example: '`Owner: @team`'\n"
    ))
    result = evaluate(page("# T", fence(GOOD)), config=config)
    (owner,) = [f for f in result.findings if f.rule == "owner"]
    assert owner.message == "No owner, e.g. `Owner: @team`."
    assert owner.severity is Severity.NOTICE  # the pass condition does not name it: advice
    assert result.gates_passed["new_hire"] is True and result.gates_advised == frozenset({"new_hire"})


def test_skipped_file_finding() -> None:
    finding = engine.skipped_file_finding(FileChange("docs/a.md", "M", skip_reason="not valid UTF-8"))
    assert (finding.path, finding.line, finding.severity, finding.blocking) == ("docs/a.md", 1, Severity.WARNING, False)
    assert "not valid UTF-8" in finding.message and "max_file_bytes" in finding.message


@pytest.mark.parametrize(("message", "example", "fields", "expected"), [
    ("No recovery time: add RTO", "`RTO: 15 min`", {}, "No recovery time: add RTO, e.g. `RTO: 15 min`."),
    ("Ends with a period.", "", {}, "Ends with a period."),
    ("No period", "", {}, "No period."),
    ("{name} without a version", "`{example}`", {"name": "Redis", "example": "Redis 7.2"},
     "Redis without a version, e.g. `Redis 7.2`."),
    ("Missing {name}", "{example}.", {}, "Missing, e.g. ."),
])
def test_explain(message: str, example: str, fields: dict[str, str], expected: str) -> None:
    rule = Rule(id="r", check="evidence_matches", severity=Severity.WARNING, message=message, example=example)
    assert engine.explain(rule, fields) == expected


SECTION_TEXT = """intro
# A
text
## B
```bash
# not a heading
```
para
Setext
------
x
## C
last"""


@pytest.mark.parametrize(("line", "expected"), [
    (1, "intro"),
    (3, SECTION_TEXT.split("\n", 1)[1]),
    (6, "## B\n```bash\n# not a heading\n```"),
    (11, "para\nSetext\n------\nx"),
    (13, "## C\nlast"),
])
def test_section_around(line: int, expected: str) -> None:
    assert engine.section_around(SECTION_TEXT, line) == expected


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_section_around_other_line_endings(newline: str) -> None:
    text = newline.join(["# A", "", "## B", "text", "## C", ""])
    assert engine.section_around(text, 4) == "## B\ntext"


def test_gates_passed_is_keyed_by_gate_id_in_configuration_order() -> None:
    result = evaluate(page("# Outage", fence(GOOD)), category="incidents")
    order = [g.id for g in CONFIG.gates if g.id in result.gates_passed]
    assert list(result.gates_passed) == order


def test_a_gate_without_rules_passes() -> None:
    config = dataclasses.replace(CONFIG, gates=(Gate(id="empty", title="Empty"),))
    result = evaluate(page("# T", fence(GOOD)), config=config)
    assert result.gates_passed == {"empty": True} and result.findings == ()


SECTIONED = """intro line
# Title
title text
## Costs
cost text
```mermaid
# not a heading
```
### Detail
detail text
## Scale
scale text
"""


def test_section_around_reaches_the_next_heading_of_same_level() -> None:
    assert engine.section_around(SECTIONED, 6) == "## Costs\ncost text\n```mermaid\n# not a heading\n```\n### Detail\ndetail text"


def test_section_around_innermost_heading() -> None:
    assert engine.section_around(SECTIONED, 10) == "### Detail\ndetail text"


def test_section_around_before_any_heading_and_top_level() -> None:
    assert engine.section_around(SECTIONED, 1) == "intro line"
    assert engine.section_around(SECTIONED, 3).startswith("# Title\ntitle text\n## Costs")
    assert engine.section_around(SECTIONED, 3).endswith("scale text")


def test_section_around_setext_heading() -> None:
    text = "Top\n===\na\n\nSub\n---\nb\n\nNext\n===\nc\n"
    assert engine.section_around(text, 7) == "Sub\n---\nb\n"


_HEADING_CANDIDATE_AS_WRITTEN = re.compile(
    r"\n(?:[ \t>]*(?P<fence>`{3,}|~{3,})(?P<rest>[^\n]*)|(?P<atx> {0,3}#{1,6})(?=[ \t\n])"
    r"| {0,3}(?P<underline>=+|-+)[ \t]*(?=\n))"
)


@given(text=st.text(alphabet=" \t>`~#=-a\n", max_size=60))
@settings(max_examples=500, deadline=None)
def test_the_possessive_heading_scan_finds_the_lines_the_backtracking_one_finds(text: str) -> None:
    """What follows each possessive repeat is none of its characters: giving some back could never match."""
    found = [(m.start(), m.groupdict()) for m in engine._HEADING_CANDIDATE.finditer(text)]
    assert found == [(m.start(), m.groupdict()) for m in _HEADING_CANDIDATE_AS_WRITTEN.finditer(text)]


@pytest.mark.parametrize("text", ["a\nb\n", "a\r\nb\rc\n", "", "\n\n", "x\r"])
def test_file_lines_split_at_every_commonmark_line_break(text: str) -> None:
    assert engine._lines(text) == re.split(r"\r\n?|\n", text)
