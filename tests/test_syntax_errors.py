"""Syntax findings a person reads first: the sentence per error kind, the collapsed parser detail, the example
that matches the error, and the same finding flattened for the plain-text outputs."""

from __future__ import annotations

import pytest

from bot.gates.syntax_errors import (
    DETAIL_SUMMARY,
    detail_block,
    explain_syntax_error,
    plain_text,
)

# mermaid's parse error for a label with parentheses: 15 expected tokens before the one it got.
RESERVED = (
    "Parse error on line 10:\n... Cost<br/>EC2: $15M (6x)<br/>Lambda: $3M\n-----------------------^\n"
    "Expecting 'SQE', 'DOUBLECIRCLEEND', 'PE', '-)', 'STADIUMEND', 'SUBROUTINEEND', 'PIPE', 'CYLINDEREND', "
    "'DIAMOND_STOP', 'TAGEND', 'TRAPEND', 'INVTRAPEND', 'UNICODE_TEXT', 'TEXT', 'TAGSTART', got 'PS'"
)
QUOTE = ("Parse error on line 13:\n...Pattern<br/>Error: \"token expired\"<br/>J\n-----^\n"
         "Expecting 'SQE', 'PE', got 'STR'")
TIMELINE = ("Parse error on line 5:\n...perations        10:00 : Viewing histor\n----------------------^\n"
            "Expecting 'EOF', 'SPACE', 'NEWLINE', 'title', 'section', 'period', 'event', got 'INVALID'")
KEYWORD = "Parse error on line 3:\n...parameter A as API\n---^\nExpecting 'participant', 'actor', got 'NODE_STRING'"
UNKNOWN_TYPE = "No diagram type detected matching given configuration for text: sequenceD diagram"
LEXICAL = "Lexical error on line 5. Unrecognized text.\n...cluster.local]   DNSCON\n------^"
RUNTIME = "Trying to inactivate an inactive participant (View)"
EXTRA_END = "Parse error on line 44:\n...    end    end\n----^\nExpecting 'SEMI', 'NEWLINE', 'EOF', got 'end'"
QUOTE_LABEL_EXAMPLE = 'DB["Orders (PostgreSQL 16)"]'

# (error, family, fix description, kind, words the first sentence holds, example fragment or "" for none)
CASES = [
    pytest.param(RESERVED, "flowchart", None, "reserved_character", ["line 10", "holds `(`", "double quotes"],
                 QUOTE_LABEL_EXAMPLE, id="reserved-character"),
    pytest.param(QUOTE, "flowchart", None, "quote", ["line 13", "quote mark", "#quot;"], "#quot;orders#quot;",
                 id="unbalanced-quote"),
    pytest.param(TIMELINE, "timeline", None, "timeline_colon", ["line 5", "`:` separates a period"],
                 "10.00 : Viewing history", id="timeline-colon"),
    pytest.param(KEYWORD, "sequence", "Keyword: `parameter` is `participant`", "keyword",
                 ["line 3", "misspelt"], "participant API", id="misspelt-keyword"),
    pytest.param(UNKNOWN_TYPE, "sequenceD", "Diagram type: `sequenceD diagram` is `sequenceDiagram`", "keyword",
                 ["diagram type", "misspelt"], "`sequenceDiagram`", id="misspelt-diagram-type"),
    pytest.param(UNKNOWN_TYPE, "bar", None, "diagram_type", ["names no diagram type", "`flowchart LR`"],
                 "xychart-beta", id="unknown-diagram-type"),
    pytest.param(LEXICAL, "flowchart", None, "lexical", ["line 5", "cannot read"], "", id="lexical"),
    pytest.param(RUNTIME, "sequence", None, "runtime", ["inactivate an inactive participant"], "",
                 id="runtime"),
    pytest.param(EXTRA_END, "flowchart", None, "parse", ["line 44", "`end`"], "", id="generic-parse"),
    # a reserved-character token outside a flowchart is not a label to quote: the generic sentence
    pytest.param(RESERVED, "sequence", None, "parse", ["line 10"], "", id="shape-token-outside-flowchart"),
    pytest.param(None, "flowchart", None, "unknown", ["without saying why"], "", id="no-error-text"),
]


@pytest.mark.parametrize(("error", "family", "fix", "kind", "words", "example"), CASES)
def test_each_error_kind_gets_its_sentence_and_example(
    error: str | None, family: str, fix: str | None, kind: str, words: list[str], example: str
) -> None:
    explained = explain_syntax_error(error, family, fix)
    assert explained.kind == kind
    assert explained.sentence.startswith("Mermaid cannot parse this diagram")
    for word in words:
        assert word in explained.sentence
    assert "Expecting" not in explained.sentence and "'SQE'" not in explained.sentence
    if example:
        assert example in explained.example
    else:
        assert explained.example == ""
    if kind != "reserved_character":
        assert QUOTE_LABEL_EXAMPLE not in explained.example


def test_the_detail_is_the_token_got_and_a_few_valid_ones() -> None:
    detail = explain_syntax_error(RESERVED, "flowchart").detail
    assert detail.startswith("got `(` (`PS`)")
    assert "after `Cost<br/>EC2: $15M (6x)<br/>Lambda: $3M`" in detail
    assert "valid here: `]` (`SQE`), `)))` (`DOUBLECIRCLEEND`), `)` (`PE`), `-)` and 11 more" in detail
    assert "INVTRAPEND" not in detail


@pytest.mark.parametrize(("error", "expected"), [
    ("Parse error on line 2:\n...\n---^\nExpecting 'SEMI', got 'NEWLINE'",
     "got end of line (`NEWLINE`); valid here: `;` (`SEMI`)"),
    ("Parse error on line 2:\n...a `b` c\n---^\nExpecting 'SQE', got 'PS'",
     "got `(` (`PS`); after `` a `b` c ``; valid here: `]` (`SQE`)"),
    (UNKNOWN_TYPE, UNKNOWN_TYPE),
])
def test_detail_wording(error: str, expected: str) -> None:
    assert explain_syntax_error(error, "flowchart").detail == expected


def test_detail_is_collapsed_for_github_and_flattened_for_plain_text() -> None:
    block = detail_block("got `(` (`PS`)")
    assert block == f"<details><summary>{DETAIL_SUMMARY}</summary>\n\ngot `(` (`PS`)\n\n</details>"
    assert detail_block("") == ""
    message = f"Mermaid cannot parse this diagram: quote it.\n\n{block}"
    assert plain_text(message) == f"Mermaid cannot parse this diagram: quote it.\n\n{DETAIL_SUMMARY}: got `(` (`PS`)"
    assert plain_text("No HTML here.") == "No HTML here."
