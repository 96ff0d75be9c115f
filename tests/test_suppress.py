"""bot.suppress (inline `%% atlas-bot: ignore gate/rule -- reason`) and the configuration's `exclude:` globs."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, load_config
from bot.model import Diagram, DiagramResult, DiagramStatus, Finding, Severity, SyntaxVerdict
from bot.suppress import RULE_NO_REASON, RULE_UNUSED, apply_suppressions, suppressions_in

PATH = "docs/systems/a.md"


def _diagram(*comment_lines: str) -> Diagram:
    code = "\n".join(["flowchart LR", *comment_lines, "  A --> B"]) + "\n"
    lines = code.splitlines()
    return Diagram(path=PATH, line=3, code=code, line_map=tuple(range(4, 4 + len(lines))))


def _finding(gate: str, rule: str, severity: Severity = Severity.WARNING) -> Finding:
    return Finding(gate=gate, rule=rule, severity=severity, path=PATH, line=3, message=f"{gate}/{rule}")


def _result(diagram: Diagram, findings: list[Finding], passed: dict[str, bool]) -> DiagramResult:
    return DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=True), tuple(findings), passed)


ORPHANS = _finding("new_hire", "orphan_nodes")
VERSIONS = _finding("new_hire", "technology_versions")
SCALE = _finding("new_hire", "scale_metric")


@pytest.mark.parametrize("comment, findings, kept, gate_passes, reported", [
    # names the rule: its finding goes, the gate passes again
    ("%% atlas-bot: ignore new_hire/orphan_nodes -- legend nodes", [ORPHANS], [], True, []),
    # another failing rule of the gate remains: the gate still fails
    ("%% atlas-bot: ignore new_hire/orphan_nodes -- legend", [ORPHANS, VERSIONS], [VERSIONS], False, []),
    # gate/* covers every rule of the gate
    ("  %%atlas-bot: ignore new_hire/* -- a legend diagram", [ORPHANS, VERSIONS, SCALE], [], True, []),
    # suppresses nothing: reported, findings untouched
    ("%% atlas-bot: ignore cfo/currency -- old", [ORPHANS], [ORPHANS], False, [RULE_UNUSED]),
    # no reason: not applied, and reported
    ("%% atlas-bot: ignore new_hire/orphan_nodes", [ORPHANS], [ORPHANS], False, [RULE_NO_REASON]),
    ("%% atlas-bot: ignore new_hire/orphan_nodes --   ", [ORPHANS], [ORPHANS], False, [RULE_NO_REASON]),
    # an ordinary mermaid comment is no suppression
    ("%% ignore new_hire/orphan_nodes -- x", [ORPHANS], [ORPHANS], False, []),
])
def test_apply_suppressions(comment, findings, kept, gate_passes, reported) -> None:
    result = apply_suppressions(_result(_diagram(comment), findings, {"new_hire": False}))
    about = [f for f in result.findings if f.rule in (RULE_UNUSED, RULE_NO_REASON)]
    assert [f for f in result.findings if f not in about] == kept
    assert result.gates_passed == {"new_hire": gate_passes}
    assert [f.rule for f in about] == reported
    assert all(f.line == 5 and f.severity is Severity.WARNING and not f.blocking for f in about)


def test_a_result_without_suppressions_is_returned_as_is() -> None:
    result = _result(_diagram(), [ORPHANS], {"new_hire": False})
    assert apply_suppressions(result) is result


def test_suppressions_know_their_file_line() -> None:
    diagram = _diagram("%% note", "%% atlas-bot: ignore technical/palette -- brand colours")
    (suppression,) = suppressions_in(_result(diagram, [], {}))
    assert (suppression.target, suppression.reason, suppression.line) == ("technical/palette", "brand colours", 6)


def test_a_blocking_error_suppressed_no_longer_blocks() -> None:
    syntax = Finding("technical", "placeholders", Severity.ERROR, PATH, 3, "TODO", blocking=True)
    result = apply_suppressions(_result(_diagram("%% atlas-bot: ignore technical/placeholders -- a template"),
                                        [syntax], {"technical": False}))
    assert result.passed and result.gates_passed == {"technical": True}


@pytest.mark.parametrize("globs, path, excluded", [
    (["docs/templates/**"], "docs/templates/a.md", True),
    (["docs/templates/**"], "docs/templates/deep/b.md", True),
    (["docs/templates/**"], "docs/templatesX/a.md", False),
    (["docs/templates/"], "docs/templates/a.md", True),
    (["**/draft-*.md"], "draft-1.md", True),
    (["**/draft-*.md"], "docs/x/draft-2.md", True),
    (["docs/*.md"], "docs/x/a.md", False),
    (["docs/?.md"], "docs/a.md", True),
    (["docs/[!a].md"], "docs/a.md", False),
    ([], "docs/a.md", False),
])
def test_exclude_globs(globs: list[str], path: str, excluded: bool) -> None:
    config = load_config(repo_config_text=f"exclude: {globs!r}\n" if globs else None)
    assert config.is_excluded(path) is excluded


def test_exclude_must_stay_inside_the_repository() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(repo_config_text="exclude:\n  - docs/**\n  - ../elsewhere/**\n")
    assert error.value.line == 3 and "inside the repository" in error.value.reason
