"""bot.content: CommonMark-exact mermaid fences, the diagram diff classifier and sections around a line."""

from __future__ import annotations

import random

import pytest
from markdown_it import MarkdownIt

from bot.content import (
    _container_ends_within,
    _containers_by_end,
    count_diagrams,
    diff_diagrams,
    extract_diagrams,
    is_markdown_path,
)
from bot.model import Diagram, DiagramStatus

# name -> (markdown, expected [(opening line, code, closed)])
FENCE_CASES: dict[str, tuple[str, list[tuple[int, str, bool]]]] = {
    "backticks": ("# T\n\n```mermaid\ngraph TD\n  A-->B\n```\n", [(3, "graph TD\n  A-->B\n", True)]),
    "tildes": ("~~~mermaid\nx\n~~~\n", [(1, "x\n", True)]),
    "longer opening fence holds a shorter one": ("````mermaid\n```\nx\n````\n", [(1, "```\nx\n", True)]),
    "longer closing fence": ("```mermaid\nx\n`````\n", [(1, "x\n", True)]),
    "shorter closing fence does not close": ("````mermaid\nx\n```\ny\n````\n", [(1, "x\n```\ny\n", True)]),
    "backticks do not close tildes": ("~~~mermaid\nx\n```\n~~~\n", [(1, "x\n```\n", True)]),
    "three spaces of indent, removed from content": (
        "   ```mermaid\n   a\n    b\n  c\n   ```\n",
        [(1, "a\n b\nc\n", True)],
    ),
    "four spaces of indent is indented code": ("    ```mermaid\n    x\n    ```\n", []),
    "in a list item": ("- item\n\n  ```mermaid\n  x\n  ```\n", [(3, "x\n", True)]),
    "opening an ordered list item": ("1. ```mermaid\n   graph\n   ```\n", [(1, "graph\n", True)]),
    "deep list item": ("- a\n  - b\n\n    ```mermaid\n    x\n      y\n    ```\n", [(4, "x\n  y\n", True)]),
    "tab in list item content": ("- ```mermaid\n\tx\n  ```\n", [(1, "  x\n", True)]),
    "in a block quote": ("> ```mermaid\n> a\n>  b\n>\n> ```\n", [(1, "a\n b\n\n", True)]),
    "list in a block quote": ("> - ```mermaid\n>   x\n>   ```\n", [(1, "x\n", True)]),
    "unterminated runs to the end": ("```mermaid\na\n\nb\n", [(1, "a\n\nb\n", False)]),
    "unterminated without final newline": ("text\n\n```mermaid\na", [(3, "a\n", False)]),
    "block quote ends an open fence": ("> ```mermaid\n> a\nb\n", [(1, "a\n", False)]),
    "list item ends an open fence": ("- a\n\n  > ```mermaid\n  > x\n  ```\n", [(3, "x\n", False)]),
    "one of many list items ends an open fence": (
        "- a\n- b\n\n- c\n\n  > ```mermaid\n  > x\n  ```\n- d\n- e\n",
        [(6, "x\n", False)],
    ),
    "list items that end before or after a fence leave it closed": (
        "- a\n- b\n\n```mermaid\nx\n```\n\n- c\n  - d\n",
        [(4, "x\n", True)],
    ),
    "info with init attributes": ("```mermaid {init: {'theme': 'dark'}}\nx\n```\n", [(1, "x\n", True)]),
    "info with title attribute": ('```mermaid title="x"\nx\n```\n', [(1, "x\n", True)]),
    "other languages and look-alikes": (
        "```js\nx\n```\n```mermaidjs\nx\n```\n```Mermaid\nx\n```\n```\nmermaid\n```\n",
        [],
    ),
    "backtick in a backtick fence's info is no fence": ("```mermaid `x`\na\n```\n", []),
    "backtick in a tilde fence's info is fine": ("~~~mermaid `x`\na\n~~~\n", [(1, "a\n", True)]),
    "fence inside a longer fence": ("````markdown\n```mermaid\nx\n```\n````\n", []),
    "fence inside an HTML block": ("<div>\n```mermaid\nx\n```\n</div>\n", []),
    "fence interrupts a paragraph": ("text\n```mermaid\nx\n```\n", [(2, "x\n", True)]),
    "fence after a list is not in it": ("- a\n```mermaid\nx\n```\n", [(2, "x\n", True)]),
    "empty fence": ("```mermaid\n```\n", [(1, "", True)]),
    "CRLF line endings": ("```mermaid\r\na\r\nb\r\n```\r\n", [(1, "a\nb\n", True)]),
    "lone CR line endings": ("```mermaid\ra\r```\rx", [(1, "a\n", True)]),
    "escaping characters survive": ('```mermaid\nA["<b>&amp;</b>"] --> B\n```\n', [(1, 'A["<b>&amp;</b>"] --> B\n', True)]),
    "two diagrams": (
        "```mermaid\na\n```\n\ntext\n\n~~~ mermaid\nb\nc\n~~~\n",
        [(1, "a\n", True), (7, "b\nc\n", True)],
    ),
}


@pytest.mark.parametrize("name", FENCE_CASES)
def test_extract_diagrams_follows_commonmark(name: str) -> None:
    text, expected = FENCE_CASES[name]
    diagrams = extract_diagrams("docs/x.md", text)
    assert [(d.line, d.code, d.closed) for d in diagrams] == expected
    assert count_diagrams(text) == len(expected)
    assert count_diagrams(text.encode()) == len(expected)
    for index, diagram in enumerate(diagrams):
        assert diagram.path == "docs/x.md"
        assert diagram.index == index
        assert diagram.line_map == tuple(range(diagram.line + 1, diagram.line + 1 + diagram.code.count("\n")))


@pytest.mark.parametrize("name", FENCE_CASES)
def test_same_fences_as_markdown_it_commonmark(name: str) -> None:
    """The reference the corpus figures are checked against, on every case above."""
    text, _ = FENCE_CASES[name]
    tokens = MarkdownIt("commonmark").parse(text)
    reference = [
        (t.map[0] + 1, t.content if t.content.endswith("\n") or not t.content else t.content + "\n")
        for t in tokens
        if t.type == "fence" and t.info.split(maxsplit=1)[:1] == ["mermaid"] and t.map
    ]
    assert [(d.line, d.code) for d in extract_diagrams("x.md", text)] == reference


def test_info_string_keeps_attributes() -> None:
    text = '```mermaid {init: {"theme": "dark"}}\nx\n```\n```mermaid title="a & b"\ny\n```\n```mermaid\nz\n```\n'
    assert [d.info for d in extract_diagrams("x.md", text)] == [
        'mermaid {init: {"theme": "dark"}}',
        'mermaid title="a & b"',
        "mermaid",
    ]


def test_byte_order_mark_is_ignored() -> None:
    for text in ("\ufeff```mermaid\nx\n```\n", "\ufeff```mermaid\r\nx\r\n```\r\n"):
        diagrams = extract_diagrams("x.md", text)
        assert [(d.line, d.code, d.line_map) for d in diagrams] == [(1, "x\n", (2,))]
        assert count_diagrams(text.encode("utf-8")) == 1


def test_line_map_points_at_file_lines() -> None:
    text = "intro\n\n> quote\n>\n> ```mermaid\n> flowchart LR\n>   A --> B\n> ```\n"
    (diagram,) = extract_diagrams("x.md", text)
    file_lines = text.split("\n")
    assert diagram.line == 5
    for i, code_line in enumerate(diagram.code.splitlines()):
        assert file_lines[diagram.line_map[i] - 1].endswith(code_line)
    assert diagram.end_line == 7
    assert diagram.declared_type == "flowchart"


def test_nul_becomes_replacement_character() -> None:
    (diagram,) = extract_diagrams("x.md", "```mermaid\na\0b\n```\n")
    assert diagram.code == "a\ufffdb\n"


def test_no_fence_no_diagrams() -> None:
    assert extract_diagrams("x.md", "") == ()
    assert extract_diagrams("x.md", "# Title\n\nmermaid is mentioned here\n") == ()
    assert count_diagrams("") == 0


def test_large_document_is_handled_in_one_go() -> None:
    block = "```mermaid\nflowchart TD\n  A --> B\n```\n\nSome *text* with `code`.\n\n"
    diagrams = extract_diagrams("big.md", block * 2000)
    assert len(diagrams) == 2000
    assert diagrams[-1].line == 1 + 7 * 1999
    assert count_diagrams(block * 2000) == 2000


def test_container_lookup_answers_as_checking_every_container() -> None:
    """Whether a block quote or list item holds a fence's opening line and ends before its closing line is
    looked up among the containers ending between those lines only (a long list made every fence of the
    file test every item); the answer is the one checking every container gives."""
    rng = random.Random(12)
    for _ in range(3000):
        starts = [rng.randint(1, 200) for _ in range(rng.randint(0, 40))]
        spans = [(start, start + rng.randint(0, 30)) for start in starts] + [(start, start) for start in starts]
        html = "".join(f'<{tag} data-sourcepos="{s}:1-{e}:3">'
                       for s, e in spans for tag in [rng.choice(["li", "blockquote"])]).encode()
        opening = rng.randint(1, 220)
        closing = opening + rng.randint(1, 40)
        expected = any(s <= opening <= e < closing for s, e in spans)
        assert _container_ends_within(_containers_by_end(html), opening, closing) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [("docs/a.md", True), ("README.MD", True), ("x.markdown", True), ("a.txt", False), ("md", False)],
)
def test_is_markdown_path(path: str, expected: bool) -> None:
    assert is_markdown_path(path) is expected




# Diff classifier --------------------------------------------------------------------------------------------


def _diagrams(path: str, *codes: str) -> list[Diagram]:
    return [
        Diagram(path=path, line=1 + 10 * i, code=code, line_map=(2 + 10 * i,), index=i) for i, code in enumerate(codes)
    ]


FLOW = "flowchart TD\n  A --> B\n  B --> C\n  C --> D\n"
SEQ = "sequenceDiagram\n  A->>B: hi\n  B->>A: ok\n"
PIE = 'pie\n  "a" : 1\n  "b" : 2\n'


def _statuses(changes) -> list[tuple[str, str | None, str | None]]:
    return [(c.status.value, c.new and c.new.code, c.old and c.old.code) for c in changes]


def test_diff_unchanged_and_added() -> None:
    changes = diff_diagrams(_diagrams("a.md", FLOW), _diagrams("a.md", FLOW, SEQ))
    assert _statuses(changes) == [("unchanged", FLOW, FLOW), ("added", SEQ, None)]


def test_diff_modified_pairs_with_old_version() -> None:
    edited = FLOW.replace("C --> D", "C --> E")
    changes = diff_diagrams(_diagrams("a.md", FLOW, SEQ), _diagrams("a.md", edited, SEQ))
    assert _statuses(changes) == [("modified", edited, FLOW), ("unchanged", SEQ, SEQ)]


def test_diff_modified_found_by_similarity_after_an_insert() -> None:
    edited = FLOW + "  D --> E\n"
    changes = diff_diagrams(_diagrams("a.md", FLOW, SEQ), _diagrams("a.md", PIE, edited, SEQ))
    assert _statuses(changes) == [("added", PIE, None), ("modified", edited, FLOW), ("moved", SEQ, SEQ)]


def test_diff_rewrite_in_place_is_a_modification() -> None:
    changes = diff_diagrams(_diagrams("a.md", FLOW), _diagrams("a.md", PIE))
    assert _statuses(changes) == [("modified", PIE, FLOW)]


def test_diff_move_within_file_and_reorder() -> None:
    changes = diff_diagrams(_diagrams("a.md", FLOW, SEQ, PIE), _diagrams("a.md", PIE, SEQ, FLOW))
    assert _statuses(changes) == [("moved", PIE, PIE), ("unchanged", SEQ, SEQ), ("moved", FLOW, FLOW)]


def test_diff_across_a_rename_keeps_diagrams_unchanged() -> None:
    changes = diff_diagrams(_diagrams("old.md", FLOW, SEQ), _diagrams("new.md", FLOW, SEQ))
    assert [c.status for c in changes] == [DiagramStatus.UNCHANGED, DiagramStatus.UNCHANGED]
    assert [(c.old.path, c.new.path) for c in changes] == [("old.md", "new.md")] * 2
    assert changes[0].path == "new.md"


def test_diff_delete_lists_removed_last_in_old_order() -> None:
    changes = diff_diagrams(_diagrams("a.md", FLOW, SEQ, PIE), _diagrams("a.md", SEQ))
    assert _statuses(changes) == [("moved", SEQ, SEQ), ("removed", None, FLOW), ("removed", None, PIE)]
    assert changes[-1].path == "a.md"
    assert _statuses(diff_diagrams(_diagrams("a.md", FLOW), ())) == [("removed", None, FLOW)]


def test_diff_duplicates_pair_one_to_one() -> None:
    changes = diff_diagrams(_diagrams("a.md", FLOW), _diagrams("a.md", FLOW, FLOW))
    assert _statuses(changes) == [("unchanged", FLOW, FLOW), ("added", FLOW, None)]
