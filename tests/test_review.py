"""Tests for bot.review: diff lines, fingerprints, inline comments and their cap, summary, labels, check run."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from types import SimpleNamespace

import pytest

from bot.config import Category, Config, ReviewSettings
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
from bot.review import (
    ANNOTATION_MESSAGE_LIMIT,
    MAX_ANNOTATIONS,
    BOT_LABEL_PREFIX,
    CHECK_SUMMARY_LIMIT,
    COMMENT_BODY_LIMIT,
    REVIEW_MARKER,
    SUMMARY_MARKER,
    InlineComment,
    build_publication,
    cap_text,
    commentable_lines,
    finding_fingerprint,
    fingerprints_in,
    gate_titles,
    short_names,
    suggestion_block,
)

# --- fakes and fixtures ----------------------------------------------------------------------------------------

CATEGORY_TITLES = {"systems": "Architecture Deep-Dives", "capacity": "Capacity Planning", "costs": "Cost Analysis"}


# bot.config's own Config, without rules: bot.review reads only the categories and review settings, and
# with no gates configured it titles them with its defaults.
CONFIG = Config(categories=tuple(Category(folder, title) for folder, title in CATEGORY_TITLES.items()))


@dataclass(frozen=True)
class FakeGate:
    """Another shape ``config.gates`` may take (bot.review reads only ``id`` and ``title``)."""

    id: str
    title: str


NETFLIX = "docs/systems/netflix.md"
PLAN = "docs/capacity/plan.md"
ADDED = "docs/systems/added.md"
RENAMED = "docs/systems/new-name.md"
HEAD = "0123456789abcdef0123456789abcdef01234567"

# GitHub's PR files API `patch` values (git's hunks without file headers), taken from a real `git diff -M`.
NETFLIX_PATCH = """\
@@ -2,6 +2,12 @@
 
 Intro text.
 
+```mermaid
+flowchart LR
+    A[Edge (CDN)] --> B[API]
+    B --> C[(Cassandra)]
+```
+
 Paragraph 1.
 Paragraph 2.
 Paragraph 3.
@@ -20,6 +26,11 @@ Paragraph 15.
 
 ## Storage
 
-Old storage text.
+New storage text.
+
+```mermaid
+sequenceDiagram
+    Client->>API: GET
+```
 
 End."""
ADDED_PATCH = """\
@@ -0,0 +1,6 @@
+# Added
+
+```mermaid
+flowchart TD
+    X --> Y
+```"""
RENAMED_PATCH = """\
@@ -1,5 +1,5 @@
 # Old
 
 Same content here.
-Second line.
+Second line changed.
 Third line."""
NETFLIX_SOURCE = "\n".join(
    ["# Netflix", "", "Intro text.", "", "```mermaid", "flowchart LR", "    A[Edge (CDN)] --> B[API]",
     "    B --> C[(Cassandra)]", "```", ""]
    + [f"Paragraph {i}." for i in range(1, 16)]
    + ["", "## Storage", "", "New storage text.", "", "```mermaid", "sequenceDiagram", "    Client->>API: GET",
       "```", "", "End."]
) + "\n"


def _diagram(path: str, line: int, code: str) -> Diagram:
    count = len(code.splitlines())
    return Diagram(path=path, line=line, code=code, line_map=tuple(range(line + 1, line + 1 + count)))


FLOW = _diagram(NETFLIX, 5, "flowchart LR\n    A[Edge (CDN)] --> B[API]\n    B --> C[(Cassandra)]")
SEQ = _diagram(NETFLIX, 31, "sequenceDiagram\n    Client->>API: GET")
CAPACITY = _diagram(PLAN, 38, "flowchart TD\n    LB --> App\n    App --> DB")

SYNTAX = Finding("technical", "syntax", Severity.ERROR, NETFLIX, 7, "Parse error: '(' inside an unquoted [label]",
                 suggestion='    A["Edge (CDN)"] --> B[API]', blocking=True)
COST = Finding("cfo", "cost", Severity.WARNING, NETFLIX, 5, "No infrastructure cost (add e.g. $12,000/month).",
               end_line=9)
ACRONYM = Finding("new_hire", "acronym", Severity.NOTICE, NETFLIX, 33, "API is not explained in this file.")
OUTSIDE = Finding("three_am", "metric", Severity.ERROR, PLAN, 40, "No metric shows the problem (p99, error rate).",
                  blocking=True)
SKIPPED = Finding("technical", "unreadable", Severity.WARNING, "docs/costs/blob.md", 1, "Not UTF-8: skipped")

RESULT = CheckResult(
    base="f" * 40,
    head=HEAD,
    diagrams=(
        DiagramResult(FLOW, DiagramStatus.ADDED, SyntaxVerdict(ok=False, error="Parse error on line 2"),
                      (SYNTAX, COST), {"technical": False, "three_am": True, "new_hire": True, "cfo": False,
                                       "incident": True}),
        DiagramResult(SEQ, DiagramStatus.ADDED, SyntaxVerdict(ok=True, type="sequence"), (ACRONYM,),
                      {"technical": True, "three_am": True, "new_hire": True}),
        DiagramResult(CAPACITY, DiagramStatus.MODIFIED, SyntaxVerdict(ok=True, type="flowchart-v2"), (OUTSIDE,),
                      {"technical": True, "three_am": False}),
    ),
    file_findings=(SKIPPED,),
    totals=(
        CategoryTotal("systems", "Architecture Deep-Dives", 48, 50, 240),
        CategoryTotal("capacity", "Capacity Planning", 12, 12, 60),
        CategoryTotal("costs", "Cost Analysis", 4, 4, 60),
    ),
)
PATCHES = {NETFLIX: NETFLIX_PATCH, PLAN: "@@ -1,3 +1,3 @@\n # Plan\n-old\n+new\n \n"}


def _publish(result: CheckResult = RESULT, config: Config = CONFIG, **kwargs):
    kwargs.setdefault("pr_patches", PATCHES)
    kwargs.setdefault("head_sha", HEAD)
    return build_publication(result, config, **kwargs)


def _by_rule(comments: tuple[InlineComment, ...]) -> dict[str, InlineComment]:
    return {c.body.split("`")[1]: c for c in comments}


# --- commentable_lines -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        pytest.param(NETFLIX_PATCH, set(range(2, 14)) | set(range(26, 37)), id="multi-hunk"),
        pytest.param(ADDED_PATCH, set(range(1, 7)), id="added-file"),
        pytest.param(RENAMED_PATCH, set(range(1, 6)), id="renamed-and-edited"),
        pytest.param("", set(), id="pure-rename-or-binary-no-patch"),
        pytest.param("@@ -1 +1 @@\n-a\n+b", {1}, id="single-line-counts-omitted"),
        pytest.param("@@ -3,4 +3,2 @@ ctx\n x\n-y\n-z\n w", {3, 4}, id="deletions-only"),
        pytest.param("@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file",
                     {1, 2}, id="no-newline-marker"),
        pytest.param("@@ -1,3 +1,3 @@\n a\n\n-b\n+c", {1, 2, 3}, id="context-line-with-stripped-space"),
        pytest.param("diff --git a/x b/x\nindex 1..2 100644\n--- a/x\n+++ b/x\n@@ -1,1 +1,2 @@\n a\n+b\n",
                     {1, 2}, id="full-git-diff-headers-ignored"),
        pytest.param("@@ -1,1 +1,1 @@\n-a\n+b\r\n@@ -9,1 +9,1 @@\n-c\r\n+d\r", {1, 9}, id="crlf-content"),
    ],
)
def test_commentable_lines(patch: str, expected: set[int]) -> None:
    assert commentable_lines(patch) == expected


# --- fingerprints ----------------------------------------------------------------------------------------------


def test_fingerprint_ignores_line_numbers_and_whitespace() -> None:
    moved = replace(SYNTAX, line=70, end_line=70)
    assert finding_fingerprint(SYNTAX, "A[x]  -->   B") == finding_fingerprint(moved, "  A[x] --> B ")
    assert re.fullmatch(r"[0-9a-f]{16}", finding_fingerprint(SYNTAX))


@pytest.mark.parametrize(
    "change",
    [{"path": "docs/other.md"}, {"gate": "cfo"}, {"rule": "palette"}],
)
def test_fingerprint_depends_on_path_gate_and_rule(change: dict) -> None:
    assert finding_fingerprint(SYNTAX, "x") != finding_fingerprint(replace(SYNTAX, **change), "x")


def test_fingerprint_depends_on_offending_text() -> None:
    assert finding_fingerprint(SYNTAX, "A[x]") != finding_fingerprint(SYNTAX, "A[y]")


def test_fingerprints_survive_a_push_that_shifts_lines() -> None:
    """Three lines inserted above every diagram: same findings, same fingerprints."""

    def shifted(d: DiagramResult) -> DiagramResult:
        diagram = replace(d.diagram, line=d.diagram.line + 3, line_map=tuple(n + 3 for n in d.diagram.line_map))
        findings = tuple(replace(f, line=f.line + 3, end_line=f.end_line and f.end_line + 3) for f in d.findings)
        return replace(d, diagram=diagram, findings=findings)

    later = replace(RESULT, diagrams=tuple(shifted(d) for d in RESULT.diagrams))
    assert _publish(later).fingerprints == _publish(RESULT).fingerprints
    assert len(_publish(RESULT).fingerprints) == 5


def test_fingerprints_do_not_depend_on_sources_for_diagram_lines() -> None:
    assert _publish(sources={NETFLIX: NETFLIX_SOURCE}).fingerprints == _publish().fingerprints


def test_colliding_fingerprints_get_ordinals() -> None:
    same = [replace(SKIPPED, line=n, message=f"m{n}") for n in (1, 2)]
    publication = _publish(replace(RESULT, file_findings=tuple(same)))
    fps = sorted(fp for fp in publication.fingerprints if fp.endswith("-2") or f"{fp}-2" in publication.fingerprints)
    assert len(fps) == 2 and fps[1] == f"{fps[0]}-2"


def _twins(fixed_first: bool) -> CheckResult:
    """Two identical diagrams in one file, each lacking a metric (a finding on its fence line); optionally the
    first one fixed (its code changed, its finding gone)."""
    broken = "flowchart LR\n    LB --> App"
    first = _diagram(PLAN, 3, "flowchart LR\n    LB --> App\n    App -.- M[p99 latency]" if fixed_first else broken)
    second = _diagram(PLAN, 12, broken)

    def result(diagram: Diagram, findings: tuple[Finding, ...]) -> DiagramResult:
        return DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=True), findings,
                             {"three_am": not findings})

    def lacking(diagram: Diagram) -> tuple[Finding, ...]:
        return (replace(OUTSIDE, line=diagram.line, message="No metric shows the problem."),)

    return CheckResult(base="b", head=HEAD, diagrams=(
        result(first, () if fixed_first else lacking(first)), result(second, lacking(second))))


def test_fixing_one_of_two_identical_diagrams_keeps_the_others_fingerprint() -> None:
    """Issue 8.1: the comment on the diagram that is still broken must not be marked fixed."""
    before = _publish(_twins(fixed_first=False), pr_patches={PLAN: "@@ -0,0 +1,20 @@\n" + "+x\n" * 20})
    second_comment = max(before.review.comments, key=lambda c: c.line)
    after = _publish(_twins(fixed_first=True), pr_patches={PLAN: "@@ -0,0 +1,20 @@\n" + "+x\n" * 20},
                     already_posted=before.fingerprints)
    # bot.github.publish minimises the comments of posted fingerprints missing from the new publication.
    assert second_comment.fingerprint in after.fingerprints
    assert after.review is None


def test_two_diagrams_lacking_the_same_thing_have_their_own_fingerprints() -> None:
    twins = _twins(fixed_first=False)
    other = replace(twins, diagrams=(twins.diagrams[0], replace(
        twins.diagrams[1], diagram=replace(twins.diagrams[1].diagram, code="flowchart LR\n    LB --> Web"))))
    fingerprints = _publish(other).fingerprints
    assert len(fingerprints) == 2 and not any("-" in fp for fp in fingerprints)


def test_identical_findings_within_one_diagram_get_ordinals() -> None:
    code = "flowchart LR\n    A --> B\n    A --> B"
    diagram = _diagram(PLAN, 3, code)
    findings = tuple(Finding("technical", "placeholder", Severity.WARNING, PLAN, line, "Generic names A, B.")
                     for line in (5, 6))
    result = CheckResult(base="b", head=HEAD, diagrams=(
        DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=True), findings, {"technical": True}),))
    [plain, second] = sorted(_publish(result).fingerprints)
    assert second == f"{plain}-2"


# --- review ----------------------------------------------------------------------------------------------------


def test_review_puts_findings_on_diff_lines_and_the_rest_in_the_body() -> None:
    review = _publish().review
    assert review is not None
    assert review.event == "COMMENT"
    comments = _by_rule(review.comments)
    assert set(comments) == {"syntax", "cost"}  # the notice (advice) is folded into the body
    assert (comments["syntax"].path, comments["syntax"].line, comments["syntax"].start_line) == (NETFLIX, 7, None)
    assert (comments["cost"].line, comments["cost"].start_line) == (9, 5)
    assert all(c.side == "RIGHT" for c in review.comments)
    starts = [c.start_line or c.line for c in review.comments]
    assert starts == sorted(starts)
    assert review.body.startswith(REVIEW_MARKER)
    assert "**Not commented inline** (on lines this pull request does not change" in review.body
    lines = review.body.splitlines()
    errors = lines.index(f"- `{PLAN}:40` error, blocks merging (3 AM test · `metric`): No metric shows the problem "
                         "(p99, error rate).")
    warning = lines.index("- `docs/costs/blob.md:1` warning (Technical · `unreadable`): Not UTF-8: skipped")
    details = lines.index("<details><summary>1 notice (advice, never blocking)</summary>")
    assert errors < warning < details
    notice = f"- `{NETFLIX}:33` notice (New Hire test · `acronym`): API is not explained in this file."
    assert lines[details + 2] == notice
    assert "2 comments on the changed lines below." in review.body


def test_review_body_and_comments_carry_their_fingerprints() -> None:
    publication = _publish()
    review = publication.review
    assert fingerprints_in(review.body) == publication.fingerprints
    for comment in review.comments:
        assert fingerprints_in(comment.body) == {comment.fingerprint}


def test_inline_comment_with_one_line_suggestion() -> None:
    comment = _by_rule(_publish().review.comments)["syntax"]
    assert comment.body == (
        f"<!-- atlas-bot:fingerprints {comment.fingerprint} -->\n"
        "❌ **Technical** · error · `syntax` · blocks merging\n"
        "\n"
        "Parse error: '(' inside an unquoted [label]\n"
        "\n"
        "```suggestion\n"
        '    A["Edge (CDN)"] --> B[API]\n'
        "```"
    )


def test_multi_line_suggestion_spans_start_line_to_line() -> None:
    fix = replace(SYNTAX, line=6, end_line=8, suggestion='flowchart LR\n    A["Edge (CDN)"] --> B[API]\n    B --> C')
    diagrams = (replace(RESULT.diagrams[0], findings=(fix,)),)
    comment = _publish(replace(RESULT, diagrams=diagrams, file_findings=())).review.comments[0]
    assert (comment.start_line, comment.line) == (6, 8)
    assert comment.body.endswith('```suggestion\nflowchart LR\n    A["Edge (CDN)"] --> B[API]\n    B --> C\n```')


@pytest.mark.parametrize(
    ("replacement", "expected"),
    [
        ("a", "```suggestion\na\n```"),
        ("a\nb\n", "```suggestion\na\nb\n```"),
        ("", "```suggestion\n```"),
        ("x ``` y", "````suggestion\nx ``` y\n````"),
    ],
)
def test_suggestion_block(replacement: str, expected: str) -> None:
    assert suggestion_block(replacement) == expected


def test_range_spanning_two_hunks_goes_to_the_body() -> None:
    wide = replace(COST, line=12, end_line=27)
    result = replace(RESULT, diagrams=(replace(RESULT.diagrams[0], findings=(wide,)),), file_findings=())
    review = _publish(result).review
    assert review.comments == ()
    assert f"`{NETFLIX}:12`" in review.body


@pytest.mark.parametrize(
    ("path", "patches", "inline"),
    [
        (ADDED, {ADDED: ADDED_PATCH}, True),
        (RENAMED, {RENAMED: RENAMED_PATCH}, True),
        (RENAMED, {RENAMED: ""}, False),
        (RENAMED, {}, False),
    ],
)
def test_added_and_renamed_files(path: str, patches: dict[str, str], inline: bool) -> None:
    diagram = _diagram(path, 3, "flowchart TD\n    X --> Y")
    finding = Finding("technical", "placeholder", Severity.WARNING, path, 4, "Generic node names X, Y.")
    result = CheckResult(base="b", head=HEAD, diagrams=(
        DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=True), (finding,), {"technical": True}),))
    review = _publish(result, pr_patches=patches).review
    assert len(review.comments) == (1 if inline else 0)
    assert (f"`{path}:4`" in review.body) is not inline


def test_request_changes_when_configured_and_blocking() -> None:
    config = replace(CONFIG, review=ReviewSettings(request_changes_on_failure=True))
    assert _publish(config=config).review.event == "REQUEST_CHANGES"
    passing = replace(RESULT, diagrams=RESULT.diagrams[1:2])  # a warning (the skipped file) and a notice
    assert _publish(passing, config=config).review.event == "COMMENT"


def test_advice_alone_makes_no_review_and_never_an_inline_comment() -> None:
    advice_only = replace(RESULT, diagrams=RESULT.diagrams[1:2], file_findings=())
    publication = _publish(advice_only)
    assert publication.review is None
    assert "<details><summary>1 notice (advice, never blocking)</summary>" in publication.summary
    assert publication.fingerprints  # still current: not taken for fixed


@pytest.mark.parametrize(
    ("cap", "inline_rules"),
    [(25, {"syntax", "cost"}), (2, {"syntax", "cost"}), (1, {"syntax"}), (0, set())],
)
def test_inline_cap_keeps_the_most_serious_and_lists_the_rest(cap: int, inline_rules: set[str]) -> None:
    config = replace(CONFIG, review=ReviewSettings(max_inline_comments=cap))
    publication = _publish(config=config)
    review = publication.review
    assert set(_by_rule(review.comments)) == inline_rules
    assert f"past the {cap} inline comment" in review.body
    for rule in {"syntax", "cost", "acronym"} - inline_rules:
        assert f"`{rule}`): " in review.body
    assert fingerprints_in(review.body) == publication.fingerprints


def test_already_posted_findings_are_not_repeated() -> None:
    first = _publish()
    syntax_fp = _by_rule(first.review.comments)["syntax"].fingerprint
    outside_fp = next(fp for fp in first.fingerprints if f"`{PLAN}:40`" in first.review.body and fp not in
                      {c.fingerprint for c in first.review.comments} and fp in fingerprints_in(first.review.body))
    second = _publish(already_posted=frozenset({syntax_fp}))
    assert "syntax" not in _by_rule(second.review.comments)
    assert syntax_fp not in fingerprints_in(second.review.body)
    assert second.fingerprints == first.fingerprints
    assert outside_fp in fingerprints_in(second.review.body)
    assert _publish(already_posted=first.fingerprints).review is None


def test_nothing_to_say_gives_no_review() -> None:
    clean = CheckResult(base="b", head=HEAD, diagrams=(
        DiagramResult(SEQ, DiagramStatus.ADDED, SyntaxVerdict(ok=True), (), {"technical": True}),))
    publication = _publish(clean)
    assert publication.review is None
    assert publication.fingerprints == frozenset()


# --- summary ---------------------------------------------------------------------------------------------------


def test_summary_table_and_category_deltas() -> None:
    summary = _publish().summary
    assert summary.startswith(SUMMARY_MARKER + "\n")
    assert "`0123456`" in summary and HEAD not in summary
    lines = summary.splitlines()
    assert "| Diagram | Change | Syntax | Technical | 3 AM test | New Hire test | CFO test | Incident test |" in lines
    assert "| `netflix.md:5` | added | ❌ | ❌ | ✅ | ✅ | ❌ | ✅ |" in lines
    assert "| `plan.md:38` | modified | ✅ | ✅ | ❌ | — | — | — |" in lines
    assert "| `netflix.md:31` | added | ✅ | ✅ | ✅ | ✅ | — | — |" in lines  # folded with the passing ones
    assert lines.index("<details><summary>1 diagram passing</summary>") < lines.index(
        "| `netflix.md:31` | added | ✅ | ✅ | ✅ | ✅ | — | — |")
    assert "| Architecture Deep-Dives | 48 → 50 of 240 | +2 |" in lines
    assert "| **TOTAL** | 64 → 66 of 360 | +2 |" in lines
    assert "Capacity Planning" not in summary
    assert "- `docs/costs/blob.md`: Not UTF-8: skipped" in lines


def test_summary_is_deterministic() -> None:
    assert _publish().summary == _publish().summary
    assert _publish().check_run == _publish().check_run


def test_summary_without_count_changes_and_with_removals() -> None:
    result = replace(RESULT, totals=RESULT.totals[1:], removed=(SEQ,))
    summary = _publish(result).summary
    assert "this pull request does not change them" in summary
    assert "This pull request removes 1 diagram." in summary


# --- labels ----------------------------------------------------------------------------------------------------


def test_labels_per_touched_category_and_gate_status() -> None:
    publication = _publish()
    assert publication.labels == {"atlas:systems", "atlas:capacity", "atlas:costs", "atlas:gates-failed"}
    assert set(publication.label_specs) == publication.labels
    assert all(name.startswith(BOT_LABEL_PREFIX) for name in publication.labels)
    assert all(re.fullmatch(r"[0-9A-F]{6}", spec.color) for spec in publication.label_specs.values())
    assert publication.label_specs["atlas:systems"].description.endswith("Architecture Deep-Dives")
    outside = CheckResult(base="b", head=HEAD, diagrams=(
        DiagramResult(_diagram("README.md", 1, "graph TD"), DiagramStatus.ADDED, SyntaxVerdict(ok=True), ()),))
    assert _publish(outside).labels == {"atlas:gates-passed"}


# --- check run -------------------------------------------------------------------------------------------------


def test_check_run_carries_every_finding_as_an_annotation() -> None:
    run = _publish().check_run
    assert (run.name, run.head_sha, run.conclusion) == ("Atlas quality gates", HEAD, "failure")
    assert run.title == "2 of 3 diagrams fail the quality gates"
    assert len(run.annotations) == len(RESULT.findings)
    assert all(list(a) == ["path", "start_line", "end_line", "annotation_level", "message", "title"]
               for a in run.annotations)
    syntax = next(a for a in run.annotations if a["title"] == "Technical: syntax")
    assert syntax == {"path": NETFLIX, "start_line": 7, "end_line": 7, "annotation_level": "failure",
                      "message": "Parse error: '(' inside an unquoted [label]\n\nSuggested replacement:\n"
                                 '    A["Edge (CDN)"] --> B[API]',
                      "title": "Technical: syntax"}
    levels = {a["title"]: a["annotation_level"] for a in run.annotations}
    assert levels["CFO test: cost"] == "warning" and levels["New Hire test: acronym"] == "notice"
    assert SUMMARY_MARKER not in run.summary and "| Architecture Deep-Dives |" in run.summary


@pytest.mark.parametrize(
    ("result", "conclusion", "title"),
    [
        (CheckResult(base="b", head=HEAD, diagrams=()), "neutral", "No new or changed diagrams to check"),
        (replace(RESULT, diagrams=RESULT.diagrams[1:2], file_findings=()), "success",
         "The diagram passes the quality gates"),
    ],
)
def test_check_run_conclusions(result: CheckResult, conclusion: str, title: str) -> None:
    run = _publish(result).check_run
    assert (run.conclusion, run.title) == (conclusion, title)


def test_texts_are_capped_to_githubs_limits() -> None:
    huge = replace(SYNTAX, message="é" * 70_000)
    many = tuple(
        DiagramResult(_diagram(f"docs/systems/{'x' * 400}{n}.md", 1, "graph TD"), DiagramStatus.ADDED,
                      SyntaxVerdict(ok=True), (), {"technical": True})
        for n in range(400)
    )
    result = replace(RESULT, diagrams=(replace(RESULT.diagrams[0], findings=(huge,)), *many))
    publication = _publish(result)
    message = next(a["message"] for a in publication.check_run.annotations if a["title"] == "Technical: syntax")
    assert len(message.encode()) <= ANNOTATION_MESSAGE_LIMIT
    assert "truncated to fit GitHub's limit" in message
    assert len(publication.check_run.summary.encode()) <= CHECK_SUMMARY_LIMIT
    assert "more diagram" in publication.check_run.summary or "truncated" in publication.check_run.summary
    assert len(publication.summary.encode()) <= COMMENT_BODY_LIMIT
    for comment in publication.review.comments:
        assert len(comment.body.encode()) <= COMMENT_BODY_LIMIT
    assert fingerprints_in(_by_rule(publication.review.comments)["syntax"].body)


@pytest.mark.parametrize(
    ("text", "limit", "fits"),
    [("short", 100, True), ("a" * 200, 100, False), ("line\n" * 100, 200, False), ("€" * 100, 150, False)],
)
def test_cap_text(text: str, limit: int, fits: bool) -> None:
    capped = cap_text(text, limit)
    assert len(capped.encode()) <= limit
    assert (capped == text) is fits
    if not fits:
        assert capped.endswith("truncated to fit GitHub's limit of {:,} characters.".format(limit))


# --- configuration shapes --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gates", "expected"),
    [
        ((FakeGate("technical", "Tech"), FakeGate("cfo", "Money")), {"technical": "Tech", "cfo": "Money"}),
        ({"technical": FakeGate("technical", "Tech")}, {"technical": "Tech"}),
        ({"technical": "Tech"}, {"technical": "Tech"}),
        ((), {"technical": "Technical", "three_am": "3 AM test", "new_hire": "New Hire test", "cfo": "CFO test",
              "incident": "Incident test"}),
    ],
)
def test_gate_titles(gates, expected: dict[str, str]) -> None:
    assert gate_titles(SimpleNamespace(gates=gates)) == expected
    assert list(gate_titles(SimpleNamespace(gates=gates))) == list(expected)


def _many_findings(count: int) -> CheckResult:
    """One diagram outside the diff with ``count`` distinct findings (one blocking error among warnings)."""
    code = "flowchart LR\n" + "".join(f"    N{i}[Node {i}] --> N{i + 1}\n" for i in range(count))
    diagram = _diagram(PLAN, 3, code)
    findings = tuple(
        Finding("new_hire", "orphans", Severity.ERROR if i == count - 1 else Severity.WARNING, PLAN, 4 + i,
                f"finding {i}", blocking=i == count - 1)
        for i in range(count)
    )
    return CheckResult(base="b", head=HEAD, diagrams=(
        DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=True, type="flowchart-v2"), findings,
                      {"new_hire": False}),))


def test_annotations_are_capped_to_three_requests_keeping_the_blocking_ones() -> None:
    result = _many_findings(400)
    run = _publish(result, pr_patches={}).check_run
    assert len(run.annotations) == MAX_ANNOTATIONS == 150
    assert any(a["message"].startswith("finding 399") for a in run.annotations)  # the one blocking finding
    assert "Annotations show the 150 most important of 400 findings" in run.summary


def test_a_rerun_after_a_long_review_body_has_nothing_new_to_say() -> None:
    """Findings past the review body's list are counted there and recorded as posted with it."""
    result = _many_findings(250)
    first = _publish(result, pr_patches={})
    assert first.review is not None and "… and 150 more findings" in first.review.body
    assert fingerprints_in(first.review.body) == first.fingerprints
    assert _publish(result, pr_patches={}, already_posted=fingerprints_in(first.review.body)).review is None


def test_summary_shows_advice_only_gates_as_a_warning_never_a_failure() -> None:
    advised = replace(RESULT.diagrams[1], gates_advised=frozenset({"new_hire"}))
    result = replace(RESULT, diagrams=(RESULT.diagrams[0], advised, *RESULT.diagrams[2:]))
    lines = _publish(result).summary.splitlines()
    assert "| `netflix.md:31` | added | ✅ | ✅ | ✅ | ⚠️ | — | — |" in lines


# --- new versus already there, and order wherever a list is cut -----------------------------------------------


def _modified_with_base(head_line: int = 38) -> CheckResult:
    """The capacity diagram modified: at the merge base (20 lines higher up) it already lacked a metric and had
    a placeholder node; the pull request adds a generic node name on a new line."""
    base = _diagram(PLAN, 18, "flowchart TD\n    LB --> App\n    App --> TODO")
    head = _diagram(PLAN, head_line, "flowchart TD\n    LB --> App\n    App --> TODO\n    App --> X")
    metric = Finding("three_am", "metric", Severity.ERROR, PLAN, head_line, "No metric.", blocking=True)
    todo = Finding("technical", "placeholder", Severity.WARNING, PLAN, head_line + 3, "TODO is a placeholder.")
    generic = Finding("technical", "generic", Severity.WARNING, PLAN, head_line + 4, "X is a generic name.")
    base_findings = (replace(metric, line=18), replace(todo, line=21))
    return CheckResult(base="b", head=HEAD, diagrams=(
        DiagramResult(head, DiagramStatus.MODIFIED, SyntaxVerdict(ok=True), (metric, todo, generic),
                      {"technical": False, "three_am": False}, base_diagram=base, base_findings=base_findings),))


def test_findings_the_diagram_already_had_are_counted_not_posted() -> None:
    patch = "@@ -18,4 +38,5 @@\n " + "\n ".join(["```mermaid", "flowchart TD", "    LB --> App",
                                                   "    App --> TODO"]) + "\n+    App --> X"
    publication = _publish(_modified_with_base(), pr_patches={PLAN: patch})
    review = publication.review
    assert [c.body.split("`")[1] for c in review.comments] == ["generic"]
    assert "No metric." not in review.body and "TODO is a placeholder." not in review.body
    assert "2 findings these diagrams already had before this pull request are not repeated" in review.body
    assert ("1 new finding (1 warning); 2 findings already there before this pull request (1 error, 1 warning)"
            in publication.summary)
    assert len(publication.fingerprints) == 3  # the old ones are current too: never taken for fixed
    assert _publish(_modified_with_base(), pr_patches={PLAN: patch},
                    already_posted=fingerprints_in(review.body)).review is None


def test_a_diagram_without_a_base_version_has_only_new_findings() -> None:
    result = _modified_with_base()
    fresh = replace(result, diagrams=(replace(result.diagrams[0], base_diagram=None, base_findings=()),))
    assert "3 new findings (1 error, 2 warnings)." in _publish(fresh, pr_patches={}).summary


def _ranked_result(errors: int, warnings: int, notices: int) -> CheckResult:
    """One diagram per finding, warnings on the earliest paths, so file order would show them first."""
    kinds = ([(Severity.WARNING, False)] * warnings + [(Severity.NOTICE, False)] * notices
             + [(Severity.ERROR, True)] * errors)
    diagrams = []
    for n, (severity, blocking) in enumerate(kinds):
        path = f"docs/costs/f{n:03}.md"
        finding = Finding("cfo", "cost", severity, path, 4, f"finding {n} ({severity.value})", blocking=blocking)
        diagrams.append(DiagramResult(_diagram(path, 3, f"flowchart LR\n    N{n} --> M{n}"), DiagramStatus.ADDED,
                                      SyntaxVerdict(ok=True), (finding,),
                                      {"technical": True, "cfo": severity is Severity.NOTICE},
                                      gates_advised=frozenset({"cfo"}) if severity is Severity.NOTICE else frozenset()))
    return CheckResult(base="b", head=HEAD, diagrams=tuple(diagrams))


def test_review_body_lists_blocking_errors_first_and_counts_what_it_leaves_out() -> None:
    review = _publish(_ranked_result(errors=60, warnings=150, notices=5), pr_patches={}).review
    listed = [line for line in review.body.splitlines() if line.startswith("- `")]
    assert len(listed) == 100
    assert all("error, blocks merging" in line for line in listed[:60])
    assert all(" warning " in line for line in listed[60:])
    assert "- … and 110 more findings (110 warnings) not listed here (the check run has them)" in review.body
    assert "<details><summary>150 warnings</summary>" in review.body
    assert "<details><summary>5 notices (advice, never blocking)</summary>" in review.body
    assert "- … and 5 more findings (5 notices) not listed here" in review.body


def test_summary_shows_failing_diagrams_first_and_folds_the_rest() -> None:
    result = _ranked_result(errors=20, warnings=3, notices=4)
    summary = _publish(result, pr_patches={}).summary
    lines = summary.splitlines()
    rows = [line for line in lines if line.startswith("| `f0")]
    open_rows = rows[:15]
    assert all(f"f{n:03}.md" in row for n, row in zip(range(7, 22), open_rows))  # the errors, in file order
    fold_more = lines.index("<details><summary>8 diagrams more that need attention</summary>")
    fold_passing = lines.index("<details><summary>4 diagrams passing</summary>")
    assert lines.index(open_rows[-1]) < fold_more < fold_passing
    assert lines[fold_more + 1] == ""  # a blank line, or GitHub renders the table as text
    assert len(rows) == 27
    assert lines[lines.index(rows[0]) - 2].startswith("| Diagram (added) | Syntax | Technical |")
    assert "<details><summary>4 notices (advice, never blocking)</summary>" in summary


def test_summary_paths_link_to_the_file_at_the_head_commit() -> None:
    summary = _publish(repository_url="https://github.com/acme/atlas").summary
    assert (f'| [`netflix.md:5`](https://github.com/acme/atlas/blob/{HEAD}/{NETFLIX}#L5 "{NETFLIX}") | added | ❌ |'
            in summary)
    spaced = replace(RESULT, diagrams=(replace(RESULT.diagrams[1], diagram=replace(SEQ, path='docs/a "b".md')),))
    assert (f'/blob/{HEAD}/docs/a%20%22b%22.md#L31 "docs/a \\"b\\".md")'
            in _publish(spaced, repository_url="https://x/o/r/").summary)


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ({"docs/a/x.md", "docs/b/y.md"}, {"docs/a/x.md": "x.md", "docs/b/y.md": "y.md"}),
        ({"docs/a/index.md", "docs/b/index.md"}, {"docs/a/index.md": "a/index.md", "docs/b/index.md": "b/index.md"}),
        ({"index.md", "docs/index.md"}, {"index.md": "index.md", "docs/index.md": "docs/index.md"}),
        ({"docs/a/x.md"}, {"docs/a/x.md": "x.md"}),
    ],
)
def test_short_names_are_the_shortest_unambiguous_tails(paths: set[str], expected: dict[str, str]) -> None:
    assert short_names(paths) == expected


def test_annotations_cut_keeps_blocking_first_and_says_what_was_left_out() -> None:
    run = _publish(_ranked_result(errors=160, warnings=30, notices=2), pr_patches={}).check_run
    assert len(run.annotations) == MAX_ANNOTATIONS
    assert all(a["annotation_level"] == "failure" for a in run.annotations)
    assert "left out: 42 findings (10 errors, 30 warnings, 2 notices)" in run.summary


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Short.", "Short."),
        ("word " * 40, ("word " * 32).strip() + " …"),
        ("Mermaid cannot parse this (parser: near `" + "x " * 80 + "`)", "Mermaid cannot parse this (parser: near …"),
    ],
)
def test_listed_messages_are_cut_at_a_word_outside_code_spans(message: str, expected: str) -> None:
    finding = replace(OUTSIDE, message=message)
    result = replace(RESULT, diagrams=(replace(RESULT.diagrams[2], findings=(finding,)),), file_findings=())
    line = next(l for l in _publish(result).review.body.splitlines() if l.startswith(f"- `{PLAN}:40`"))
    assert line.endswith(f"`metric`): {expected}")
