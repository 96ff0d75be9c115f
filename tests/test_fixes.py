"""Mechanical syntax fixes: candidates per error family, applying them, and choosing the one that parses."""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.gates import fixes
from bot.gates.fixes import SyntaxFix, apply_fix, candidate_fixes, choose_fixes
from bot.model import SyntaxVerdict

FAILED = SyntaxVerdict(ok=False, error="Parse error", error_line=None)


def first_fix(code: str, verdict: SyntaxVerdict = FAILED) -> SyntaxFix:
    candidates = candidate_fixes(code, verdict)
    assert candidates, f"no candidate for {code!r}"
    return candidates[0]


# (diagram header, broken line, expected replacement line, expected fix kind)
ONE_LINE_CASES = [
    pytest.param("graph TB", "    PC[EC2: $15M (6x)<br/>Lambda]", '    PC["EC2: $15M (6x)<br/>Lambda"]',
                 "Quote labels", id="parentheses-in-square-label"),
    pytest.param("graph LR", '    EP[Error: "token expired"]', '    EP["Error: #quot;token expired#quot;"]',
                 "Quote labels", id="inner-quotes-escaped"),
    pytest.param("graph TB", "    N1[Vector: [N1:3, N2:1]<br/>all]", '    N1["Vector: [N1:3, N2:1]<br/>all"]',
                 "Quote labels", id="nested-square-brackets"),
    pytest.param("flowchart TD", "    J{Query<br/>id=${trace_id}}", '    J{"Query<br/>id=${trace_id}"}',
                 "Quote labels", id="braces-in-diamond"),
    pytest.param("graph TB", "    DB[(Store (primary))]", '    DB[("Store (primary)")]',
                 "Quote labels", id="cylinder"),
    pytest.param("graph TB", "    PODS[Pods<br/>Shared storage)]", '    PODS["Pods<br/>Shared storage)"]',
                 "Quote labels", id="stray-closing-parenthesis"),
    pytest.param("graph TB", "    A{{Check (fast)}} --> B", '    A{{"Check (fast)"}} --> B',
                 "Quote labels", id="hexagon"),
    pytest.param("graph TB", "    T[/Trap (x)/]", '    T[/"Trap (x)"/]', "Quote labels", id="trapezoid"),
    pytest.param("graph TB", "    R[/etc/resolv.conf<br/>search]", '    R["/etc/resolv.conf<br/>search"]',
                 "Quote labels", id="text-starting-with-slash"),
    pytest.param("graph TB", "    A[ok] --> B[bad (x)] & C[fine]", '    A[ok] --> B["bad (x)"] & C[fine]',
                 "Quote labels", id="only-the-broken-node"),
    pytest.param("graph TB", "    A -->|retry (3x)| B", '    A -->|"retry (3x)"| B', "Quote labels",
                 id="edge-label"),
    pytest.param("graph TB", "    A[x] -.->|a [b]| B[y (z)]", '    A[x] -.->|"a [b]"| B["y (z)"]', "Quote labels",
                 id="edge-label-and-node"),
    pytest.param("graph TB", "    subgraph US[US-East (Primary)]", '    subgraph US["US-East (Primary)"]',
                 "Quote labels", id="subgraph-title-in-brackets"),
    pytest.param("graph TB", "    subgraph US East (Primary)", '    subgraph "US East (Primary)"',
                 "Quote labels", id="bare-subgraph-title"),
    pytest.param("graph TB", '    A[""Title (x)""]', '    A[""Title (x)""]', None, id="doubled-quotes-already-quoted"),
    pytest.param("graph TB", '    A["Half quoted (x)]', '    A["Half quoted (x)"]', "Quote labels",
                 id="lost-closing-quote"),
    pytest.param("graph LR", "    A2[App] -x S2[Sidecar]", "    A2[App] --x S2[Sidecar]", "Arrow",
                 id="short-cross-arrow"),
    pytest.param("graph LR", "    A[text -x more] -o B", "    A[text -x more] --o B", "Arrow",
                 id="arrow-outside-labels-only"),
    pytest.param("graph LR", "    classDf s fill:#fff,color:#000", "    classDef s fill:#fff,color:#000", "Keyword",
                 id="classDef-typo"),
    pytest.param("graph LR", "    case A,B,C valueStyle", "    class A,B,C valueStyle", "Keyword",
                 id="class-typo"),
    pytest.param("graph LR", "    click A callback", "    click A callback", None, id="click-is-no-typo"),
    pytest.param("graph TB", '    subgraph Redis Cluster"', '    subgraph Redis Cluster"', None,
                 id="subgraph-stray-quote-parses-so-untouched"),
    pytest.param("graph TB", '    S1[Sentinel (1)<br/>Active"', '    S1["Sentinel (1)<br/>Active"]', "Complete quotes",
                 id="node-lost-opening-quote-and-bracket"),
    pytest.param("graph TB", '    A[ok] --> B[lost"', '    A[ok] --> B["lost"]', "Complete quotes",
                 id="second-node-lost-quote"),
    # A timeline colon has no fix that keeps the text: a look-alike (U+2236) would change what readers see.
    pytest.param("timeline", "    10:00 : Table: 500M rows", "    10:00 : Table: 500M rows", None,
                 id="timeline-period-no-look-alike"),
    pytest.param("timeline", "    section Cascade (11:30-13:00)", "    section Cascade (11:30-13:00)", None,
                 id="timeline-section-no-look-alike"),
    pytest.param("timeline", "          : Query latency: p99", "          : Query latency: p99", None,
                 id="timeline-event-untouched"),
    pytest.param("sequenceDiagram", "    A->>B: BEGIN; COMMIT;", "    A->>B: BEGIN#59; COMMIT#59;", "Escape semicolon",
                 id="sequence-semicolon"),
    pytest.param("sequenceDiagram", "    Note over A,B: a; b", "    Note over A,B: a#59; b", "Escape semicolon",
                 id="sequence-note-semicolon"),
    pytest.param("stateDiagram-v2", "    note right of A : rate: 50%", "    note right of A : rate#58; 50%",
                 "Escape colon", id="state-note-colon"),
    pytest.param("stateDiagram-v2", "    A --> B : p99: 5s", "    A --> B : p99#58; 5s", "Escape colon",
                 id="state-transition-colon"),
    pytest.param("xychart-beta", "    x-axis [Availability, MTTR (min)]", '    x-axis [Availability, "MTTR (min)"]',
                 "Quote axis labels", id="xychart-axis"),
]


@pytest.mark.parametrize(("header", "line", "expected", "kind"), ONE_LINE_CASES)
def test_one_line_fixes(header: str, line: str, expected: str, kind: str | None) -> None:
    code = f"{header}\n    X --> Y\n{line}\n    Y --> Z\n"
    candidates = candidate_fixes(code, FAILED)
    if kind is None:
        assert not [fix for fix in candidates if fix.start <= 3 <= fix.end]
        return
    assert candidates[0] == SyntaxFix(3, 3, (expected,), candidates[0].description)
    assert candidates[0].kind == kind


@pytest.mark.parametrize(
    ("code", "verdict", "expected"),
    [
        pytest.param("sequenceD diagram\n    A->>B: hi", FAILED, SyntaxFix(1, 1, ("sequenceDiagram",), ""),
                     id="misspelt-header"),
        pytest.param("bar\n    x-axis [a, b]\n    bar [1, 2]", FAILED, SyntaxFix(1, 1, ("xychart-beta",), ""),
                     id="chart-name-as-header"),
        pytest.param("sequenceDiagram\n    participant A as Alpha\n    parameter P as Placement",
                     SyntaxVerdict(False, "Parse error on line 3", 3),
                     SyntaxFix(3, 3, ("    participant P as Placement",), ""), id="participant-typo"),
        pytest.param('sankey-beta\n    title "Cost (USD)"\n    A,B,10', FAILED,
                     SyntaxFix(1, 2, ("---", 'title: "Cost (USD)"', "---", "sankey-beta"), ""), id="sankey-title"),
        pytest.param("graph TB\n    S[\n        1. split (x)<br/>\n        2. copy\n    ]\n    S --> T", FAILED,
                     SyntaxFix(2, 5, ('    S["', "        1. split (x)<br/>", "        2. copy", '    "]'), ""),
                     id="label-over-several-lines"),
    ],
)
def test_special_fixes(code: str, verdict: SyntaxVerdict, expected: SyntaxFix) -> None:
    fix = next(f for f in candidate_fixes(code, verdict) if f.start == expected.start)
    assert (fix.start, fix.end, fix.replacement) == (expected.start, expected.end, expected.replacement)
    assert fix.description


def test_whole_diagram_fix_spans_first_to_last_changed_line() -> None:
    code = "graph TB\n    A[one (1)]\n    A --> B\n    B[two (2)]\n    B --> C\n"
    fix = first_fix(code)
    assert (fix.start, fix.end) == (2, 4)
    assert fix.replacement == ('    A["one (1)"]', "    A --> B", '    B["two (2)"]')


def test_combined_passes_then_each_alone() -> None:
    code = "graph TB\n    A[x (y)] --> B\n    classDf s fill:#fff\n"
    candidates = candidate_fixes(code, FAILED)
    assert candidates[0].kind == "Quote labels + Keyword"
    assert candidates[0].replacement == ('    A["x (y)"] --> B', "    classDef s fill:#fff")
    assert {fix.kind for fix in candidates[1:]} >= {"Quote labels", "Keyword"}


def test_at_sign_is_quoted_only_in_the_broader_candidate() -> None:
    code = "graph TB\n    A[Lambda@Edge<br/>x] --> B[y (z)]\n"
    narrow, broad = candidate_fixes(code, FAILED)[:2]
    assert narrow.replacement == ('    A[Lambda@Edge<br/>x] --> B["y (z)"]',)
    assert broad.replacement == ('    A["Lambda@Edge<br/>x"] --> B["y (z)"]',)


@pytest.mark.parametrize(
    "code",
    [
        pytest.param("graph TB\n    A[fine] --> B\n", id="nothing-to-quote"),
        pytest.param("pie\n    \"a\" : 1\n    oops\n", id="family-without-fixes"),
        pytest.param("%%{init: {'theme': 'base'}}%%\n", id="no-header"),
        pytest.param("", id="empty"),
    ],
)
def test_no_candidates(code: str) -> None:
    assert candidate_fixes(code, FAILED) == []


def test_no_candidates_for_a_diagram_that_parses() -> None:
    assert candidate_fixes("graph TB\n    A[x (y)]\n", SyntaxVerdict(ok=True, type="flowchart-v2")) == []


@pytest.mark.parametrize(
    ("code", "fix", "expected"),
    [
        pytest.param("a\nb\nc\n", SyntaxFix(2, 2, ("B",), "d"), "a\nB\nc\n", id="one-line-keeps-final-newline"),
        pytest.param("a\nb\nc", SyntaxFix(1, 3, ("x", "y", "z"), "d"), "x\ny\nz", id="range-without-final-newline"),
        pytest.param("a\nb\nc\n", SyntaxFix(1, 2, ("---", "t", "---", "a"), "d"), "---\nt\n---\na\nc\n",
                     id="more-lines-than-replaced"),
    ],
)
def test_apply_fix(code: str, fix: SyntaxFix, expected: str) -> None:
    assert apply_fix(code, fix) == expected


@pytest.mark.parametrize("fix", [SyntaxFix(0, 1, ("x",), "d"), SyntaxFix(2, 4, ("x",), "d"), SyntaxFix(3, 2, (), "d")])
def test_apply_fix_rejects_lines_outside_the_diagram(fix: SyntaxFix) -> None:
    with pytest.raises(ValueError, match="outside"):
        apply_fix("a\nb\nc\n", fix)


class FakeParser:
    """Accepts exactly the codes it is given; records each batch it is asked to parse."""

    def __init__(self, accepted: set[str]) -> None:
        self.accepted = accepted
        self.batches: list[list[str]] = []

    def __call__(self, codes: Sequence[str]) -> list[SyntaxVerdict]:
        self.batches.append(list(codes))
        return [SyntaxVerdict(ok=True) if c in self.accepted else SyntaxVerdict(ok=False, error="x") for c in codes]


def test_choose_fixes_batches_rounds_and_keeps_order() -> None:
    first_ok = "graph TB\n    A[x (y)]\n"
    second_ok = "graph TB\n    A[Lambda@Edge<br/>x] --> B[y (z)]\n"
    unfixable = "graph TB\n    A[x (y)]\n    par oops\n"
    parsed_fine = "graph TB\n    A --> B\n"
    items = [(first_ok, FAILED), (parsed_fine, SyntaxVerdict(ok=True)), (second_ok, FAILED), (unfixable, FAILED)]
    accepted = {
        apply_fix(first_ok, candidate_fixes(first_ok, FAILED)[0]),
        apply_fix(second_ok, candidate_fixes(second_ok, FAILED)[1]),
    }
    parser = FakeParser(accepted)

    chosen = choose_fixes(items, parser)

    assert chosen[0] == candidate_fixes(first_ok, FAILED)[0]
    assert chosen[1] is None
    assert chosen[2] == candidate_fixes(second_ok, FAILED)[1]
    assert chosen[3] is None
    assert [len(batch) for batch in parser.batches] == [3, 1]  # round 2 only for what round 1 left unfixed
    assert parsed_fine not in {code for batch in parser.batches for code in batch}


def test_choose_fixes_takes_candidates_built_beforehand() -> None:
    code = "graph TB\n    A[x (y)]\n"
    built = candidate_fixes(code, FAILED)
    parser = FakeParser({apply_fix(code, built[-1])})
    chosen = choose_fixes([(code, FAILED), (code, FAILED)], parser, candidates=[built[-1:], None])
    assert chosen[0] == built[-1]
    assert parser.batches[0] == [apply_fix(code, built[-1]), apply_fix(code, built[0])]


def test_choose_fixes_caps_rounds() -> None:
    code = "graph TB\n    A[x (y)@z]\n    classDf s fill:#fff\n    B -x C\n"
    parser = FakeParser(set())
    assert len(candidate_fixes(code, FAILED)) > 2
    assert choose_fixes([(code, FAILED)], parser, max_rounds=2) == [None]
    assert len(parser.batches) == 2


def test_choose_fixes_without_failures_parses_nothing() -> None:
    parser = FakeParser(set())
    assert choose_fixes([("graph TB\n    A\n", SyntaxVerdict(ok=True))], parser) == [None]
    assert choose_fixes([], parser) == []
    assert parser.batches == []


LABEL_TEXT = st.text(alphabet="ab (x)[1]{k}|\"@;:<br/>$-.", min_size=1, max_size=30).filter(
    lambda s: s.strip() and not s.strip().startswith(("`", "/", "\\")) and "|" not in s
)


def _bare(line: str) -> str:
    return line.replace('"', "").replace(" ", "")


@settings(max_examples=300, deadline=None)
@given(first=LABEL_TEXT, second=LABEL_TEXT)
def test_quoting_only_adds_quotes(first: str, second: str) -> None:
    """Whatever a label holds, the fix reads the same once quotes, entity codes and spaces are set aside
    (a stray quote taken as the label's lost quoting may take the space next to it along)."""
    line = f"    A[{first}] --> B({second})"
    fixes = candidate_fixes(f"graph TB\n{line}\n", FAILED)
    for fix in fixes:
        (new,) = fix.replacement
        assert _bare(new.replace("#quot;", "")) == _bare(line)
        assert new.startswith("    A[") and " --> B(" in new


# --- with mermaid itself (needs Node.js and `npm ci --prefix bot/mermaid`; fails, never skips, without them) ---

REAL_CASES = [
    "graph TB\n    PC[Compute Cost<br/>EC2: $15M (6x)]\n    PC --> DB[(Store)]\n",
    'graph LR\n    EP[Error: "token expired"] --> VF[Vector: [R1:3, R2:1]<br/>ok]\n',
    "flowchart TD\n    A -->|retry (3x)| B{check {x}}\n    subgraph US[US-East (Primary)]\n        B\n    end\n",
    "graph TB\n    A[Lambda@Edge<br/>x] --> B[y (z)]\n",
    "graph TB\n    A[x (y)] --> B\n    classDf s fill:#fff\n    class A s\n",
    "sequenceDiagram\n    A->>B: BEGIN; COMMIT;\n",
    "stateDiagram-v2\n    A --> B\n    note right of A : rate: 50%\n",
]


@pytest.fixture(scope="module")
def mermaid_pool():
    from bot.gates.mermaid import MermaidPool

    with MermaidPool(workers=1, cache=None) as pool:
        yield pool


def test_real_parser_accepts_every_chosen_fix(mermaid_pool) -> None:
    verdicts = mermaid_pool.parse_many(REAL_CASES)
    assert not any(v.ok for v in verdicts), "the fixtures must start out broken"
    chosen = choose_fixes(list(zip(REAL_CASES, verdicts)), mermaid_pool.parse_many)
    assert all(fix is not None for fix in chosen), chosen
    fixed = mermaid_pool.parse_many([apply_fix(code, fix) for code, fix in zip(REAL_CASES, chosen) if fix])
    assert all(v.ok for v in fixed)


def test_real_parser_no_fix_for_what_quoting_cannot_repair(mermaid_pool) -> None:
    code = "graph TB\n    A --> B\n    end\n"
    (verdict,) = mermaid_pool.parse_many([code])
    assert not verdict.ok
    assert choose_fixes([(code, verdict)], mermaid_pool.parse_many) == [None]


def _compiled_patterns() -> dict[str, re.Pattern[str]]:
    """Every regular expression bot.gates.fixes compiles at import, by where it sits (also inside tables)."""
    found: dict[str, re.Pattern[str]] = {}

    def walk(name: str, value: object, depth: int) -> None:
        if isinstance(value, re.Pattern):
            found.setdefault(name, value)
        elif isinstance(value, (tuple, list)) and depth < 3:
            for index, item in enumerate(value):
                walk(f"{name}[{index}]", item, depth + 1)
        elif isinstance(value, dict) and depth < 3:
            for key, item in value.items():
                walk(f"{name}[{key!r}]", item, depth + 1)

    for name, value in vars(fixes).items():
        walk(name, value, 0)
    return found


ADVERSARIAL_LENGTH = 100_000
SEARCHED_PATTERNS = frozenset({"_RISKY_TEXT", "_RISKY_TEXT_BROAD", "_SHORT_ARROW"})
# Prefixes that get a line past the patterns' keywords, and bodies that make overlapping quantifiers split
# a long run in every possible way.
ADVERSARIAL_PREFIXES = ("", "a", "  ", "A ->", "note over ", "section ", "subgraph ", "x-axis ", "title ",
                        "classDef ", "A[", "%%")
ADVERSARIAL_BODIES = (" ", "\t", "a", "a ", "a:", " :", "-", "--", "x-", "A->", "(", "[", '"', "a,", "1,",
                      "#", ";", "a b", "a(")


def test_no_fix_pattern_backtracks_super_linearly() -> None:
    # Quadratic backtracking on a 100k-character line takes minutes; linear takes milliseconds. The bound is
    # generous for a loaded machine and still far below what one quadratic pattern needs.
    patterns = _compiled_patterns()
    assert len(patterns) >= 20
    slowest = (0.0, "")
    for name, pattern in patterns.items():
        for prefix in ADVERSARIAL_PREFIXES:
            for body in ADVERSARIAL_BODIES:
                run = prefix + body * (ADVERSARIAL_LENGTH // len(body))
                started = time.perf_counter()
                for text in (run + "x", run + ":", run + "x: y:z"):
                    # As bot.gates.fixes uses them: most are matched at a line's start, a few searched.
                    (pattern.search if name in SEARCHED_PATTERNS else pattern.match)(text)
                elapsed = time.perf_counter() - started
                slowest = max(slowest, (elapsed, f"{name} on {prefix!r} + {body!r} * n"))
    assert slowest[0] < 2.0, slowest


# --- the label check: a fix changes no label's visible text beyond its intended quoting/escaping ---

# (fixed lines, original lines, description, family, kept)
LABEL_CHECK_CASES = [
    pytest.param(['    PC["EC2: $15M (6x)"]'], ["    PC[EC2: $15M (6x)]"], fixes._DESCRIBE_QUOTE, "flowchart", True,
                 id="quoting-kept"),
    pytest.param(['    EP["Error: #quot;token#quot;"]'], ['    EP[Error: "token"]'], fixes._DESCRIBE_QUOTE,
                 "flowchart", True, id="inner-quote-escaped-kept"),
    pytest.param(["    A->>B: one#59; two"], ["    A->>B: one; two"], fixes._DESCRIBE_SEQUENCE, "sequence", True,
                 id="semicolon-entity-kept"),
    pytest.param(["    10\u223600 : Viewing"], ["    10:00 : Viewing"], "Escape colon: `:` as a look-alike",
                 "state", False, id="look-alike-colon-refused"),
    pytest.param(['    PC["EC2: $15M (6\u00d7)"]'], ["    PC[EC2: $15M (6x)]"], fixes._DESCRIBE_QUOTE, "flowchart",
                 False, id="quoting-that-rewrites-a-letter-refused"),
    pytest.param(["    A --x B"], ["    A -x B"], fixes._DESCRIBE_ARROW, "flowchart", True, id="arrow-kept"),
    pytest.param(["    A[a --x b] --> B"], ["    A[a -x b] --> B"], fixes._DESCRIBE_ARROW, "flowchart", False,
                 id="arrow-inside-a-label-refused"),
    pytest.param(["    participant A"], ["    parameter A"], "Keyword: `parameter` is `participant`", "sequence",
                 True, id="keyword-kept"),
    pytest.param(["    A[x]"], ["    A[y]"], "Unknown family: made up", "flowchart", False,
                 id="unknown-fix-family-refused"),
]


@pytest.mark.parametrize(("fixed", "original", "description", "family", "kept"), LABEL_CHECK_CASES)
def test_label_check(fixed: list[str], original: list[str], description: str, family: str, kept: bool) -> None:
    lines = ["graph TB", *original]
    fix = SyntaxFix(2, 1 + len(original), tuple(fixed), description)
    assert fixes.keeps_visible_text(lines, fix, family) is kept


def test_a_candidate_that_changes_a_label_is_never_offered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass writing a look-alike character (as the withdrawn timeline fix wrote `∶` for `:`) is dropped
    before any parse; a quoting pass on the same diagram is kept."""
    code = "graph TB\n    A[Pay: 10:00 (UTC)]\n"
    look_alike = ("Quote labels: look-alike", lambda lines: [line.replace(":", "\u2236") for line in lines])
    quote = (fixes._DESCRIBE_QUOTE, fixes._flowchart_quote_labels)
    monkeypatch.setitem(fixes._PASS_SETS, "flowchart", (fixes.PassSet((look_alike,)), fixes.PassSet((quote,))))
    (offered,) = candidate_fixes(code, FAILED)
    assert offered.replacement == ('    A["Pay: 10:00 (UTC)"]',)
    assert len(fixes.unchecked_fixes(code, FAILED)) == 2


@pytest.mark.parametrize(("line", "segments"), [
    ("A[x] --> B(y)", (("A[", "code"), ("x", "node"), ("] --> B(", "code"), ("y", "node"), (")", "code"))),
    ("[x] --> B", (("[x] --> B", "code"),)),  # an opener with no id before it is punctuation
    ("A -- %% c[d]", (("A -- %% c[d]", "code"),)),  # nothing after a comment is a segment
    ("A -->|lab|B{z}", (("A -->|", "code"), ("lab", "edge"), ("|B{", "code"), ("z", "node"), ("}", "code"))),
    ("A --> |open B[c]", (("A --> |open B[c]", "code"),)),  # an unclosed pipe leaves the rest as code
    ('a$[p] & "q[r" --> x',
     (("a$[", "code"), ("p", "node"), ("] & ", "code"), ('"q[r"', "string"), (" --> x", "code"))),
    ("A[" * 10 + "b", (("A[" * 10 + "b", "code"),)),  # past the unclosed openers allowed, the rest is code
    ('A["unclosed', (("A[", "code"), ('"unclosed', "string"), ("", "code"))),
    ("A>flag] --> B((c))",
     (("A>", "code"), ("flag", "node"), ("] --> B((", "code"), ("c", "node"), ("))", "code"))),
])
def test_flow_segments(line: str, segments: tuple[tuple[str, str], ...]) -> None:
    assert fixes._flow_segments(line) == segments


def test_visible_text_decodes_entities_and_drops_quotes_and_every_kind_of_space() -> None:
    assert fixes._visible('a #quot; b\u00a0"c"\n#35; &amp;\u2003') == "abc#&amp;"


@pytest.mark.parametrize(("line", "fixed"), [
    ("  linkStyel 0,1 stroke:#f00", "  linkStyle 0,1 stroke:#f00"),
    ("\tclas A,B hot;", "\tclass A,B hot;"),
    ("stlye n1 fill:#fff", "style n1 fill:#fff"),
    ("A --> B", "A --> B"),  # a node line: no keyword to correct
    ("A[styel x y:z] --> B", "A[styel x y:z] --> B"),  # no word then a blank at the start
    ("  ", "  "),
])
def test_flowchart_keywords_corrects_only_statement_keywords(line: str, fixed: str) -> None:
    assert fixes._flowchart_keywords([line]) == [fixed]


# --- equivalences the fast paths rely on ---------------------------------------------------------------

FLOW_TEXT = st.text(alphabet='aZ_$1 %"|([{>/\\]})-:;,#@\u00e9\u00a0\t', max_size=24)


@settings(max_examples=500, deadline=None)
@given(FLOW_TEXT)
def test_segment_start_finds_what_the_plain_alternation_finds(line: str) -> None:
    openers = "".join(re.escape(c) for c in sorted(fixes._OPENER_START))
    plain = re.compile(r'%%|["|]|(?<=[\w$])[' + openers + "]")

    def starts(pattern: re.Pattern[str]) -> list[int | None]:
        return [m.start() if (m := pattern.search(line, i)) else None for i in range(len(line) + 1)]

    assert starts(fixes._SEGMENT_START) == starts(plain)


@settings(max_examples=300, deadline=None)
@given(st.lists(FLOW_TEXT.map(lambda s: "    A[" + s).filter(lambda s: "@" not in s), max_size=4))
def test_broad_quoting_is_the_narrow_one_without_an_at_sign(body: list[str]) -> None:
    """Why the broad flowchart pass set is tried only on code holding `@`."""
    lines = ["graph TB", *body]
    assert fixes._flowchart_quote_labels_broad(lines) == fixes._flowchart_quote_labels(lines)


def test_pass_set_skipped_without_at_sign_gives_the_same_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    code = 'graph TB\n    A[x (y)] --> B{"z"}\n    C[a"\n    styl C fill:#f00\n    A -x C\n'
    skipping = candidate_fixes(code, FAILED)
    narrow, broad = fixes._PASS_SETS["flowchart"]
    monkeypatch.setitem(fixes._PASS_SETS, "flowchart", (narrow, broad._replace(only_with="")))
    assert candidate_fixes(code, FAILED) == skipping


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aeiclsnptdrx", min_size=1, max_size=14), st.sampled_from([0.45, 0.65, 0.8]))
def test_closest_skipping_keywords_by_length_finds_what_scoring_all_finds(word: str, cutoff: float) -> None:
    for keywords in (fixes._SEQUENCE_KEYWORDS, fixes._HEADER_TYPES, ("classDef", "style"), ("class",)):
        scored = [(difflib.SequenceMatcher(None, word.lower(), k.lower()).ratio(), k) for k in keywords]
        score, best = max(scored)
        assert fixes._closest(word, keywords, cutoff) == (best if score >= cutoff else None)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="aZ \t,;:-_1#x", max_size=24))
def test_keyword_shapes_capture_the_first_word(line: str) -> None:
    """The shapes' keyword group is the leading word _KEYWORD_LINE_START reads, so a keyword there skips them."""
    start = fixes._KEYWORD_LINE_START.match(line)
    for pattern, _ in fixes._FLOW_KEYWORD_LINES:
        match = pattern.match(line)
        if match:
            assert start and match.group(2) == start.group(1)


@settings(max_examples=500, deadline=None)
@given(FLOW_TEXT)
def test_a_node_opening_at_the_end_of_a_line_ends_with_an_opener_character(line: str) -> None:
    if fixes._OPEN_AT_END.match(line):
        assert line.rstrip()[-1:] in fixes._OPENER_END


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet='ab #q;"\u00a01', max_size=8), min_size=1, max_size=4))
def test_lines_without_an_entity_read_alike_joined_with_or_without_newlines(lines: list[str]) -> None:
    if "#" not in "".join(lines):
        assert fixes._visible("".join(lines)) == fixes._visible("\n".join(lines))
