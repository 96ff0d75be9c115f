"""mermaid's parse errors explained for a person: a first sentence naming what is wrong and the fix, chosen
by error kind, an example for that kind, and the parser's detail shortened to the unexpected token and a few
valid alternatives (mermaid's own text lists every token its grammar would accept: 15 names in capitals,
which nobody should have to read first).

Pure: a function of the error text, the diagram type mermaid detected and the suggested fix's description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DETAIL_SUMMARY = "Parser detail"
_DETAILS = re.compile(r"<details><summary>([^<]*)</summary>\s*(.*?)\s*</details>", re.DOTALL)
_GOT = re.compile(r"got '([^']+)'")
_EXPECTING = re.compile(r"Expecting (.*?), got '")
_NEAR = re.compile(r"^\.\.\.(.*)$", re.MULTILINE)
_LINE = re.compile(r"on line (\d+)")
_MAX_ALTERNATIVES = 4
_MAX_NEAR = 60

# Token names of mermaid's grammars, as the characters or words a person wrote.
_TOKEN_TEXT = {
    "PS": "(", "PE": ")", "SQS": "[", "SQE": "]", "DIAMOND_START": "{", "DIAMOND_STOP": "}", "PIPE": "|",
    "CYLINDEREND": ")]", "STADIUMEND": ")]", "SUBROUTINEEND": "]]", "DOUBLECIRCLEEND": ")))", "TAGEND": ">",
    "TAGSTART": "<", "TRAPEND": "/]", "INVTRAPEND": "\\]", "STR": "a quoted string", "DQUOTE": '"',
    "NEWLINE": "end of line", "EOF": "end of diagram", "SEMI": ";", "COLON": ":", "COMMA": ",", "AMP": "&",
    "INVALID": "text the grammar cannot read", "NODE_STRING": "a plain word", "TEXT": "label text",
    "UNICODE_TEXT": "label text", "SPACE": "a space", "MINUS": "-", "BRKT": "#", "MULT": "*",
}
# Tokens that, unexpected in a flowchart, mean a label holds a character mermaid reserves for shapes or links.
_RESERVED = frozenset({"PS", "PE", "SQS", "SQE", "DIAMOND_START", "DIAMOND_STOP", "PIPE", "CYLINDEREND",
                       "STADIUMEND", "SUBROUTINEEND", "DOUBLECIRCLEEND", "TAGEND", "TRAPEND", "INVTRAPEND", "(-"})
_QUOTES = frozenset({"STR", "DQUOTE"})
_PREFIX = "Mermaid cannot parse this diagram, so GitHub shows an error box in its place: "

_RESERVED_EXAMPLE = '`DB["Orders (PostgreSQL 16)"]`'


@dataclass(frozen=True)
class SyntaxExplanation:
    """``kind`` names the error kind (for tests and statistics); ``sentence`` comes first in the finding,
    ``example`` fits the kind ("" when no example would), ``detail`` is the shortened parser text."""

    kind: str
    sentence: str
    example: str
    detail: str


def explain_syntax_error(error: str | None, family: str = "", fix_description: str | None = None
                         ) -> SyntaxExplanation:
    """The explanation of one parse error; a generic but honest sentence for kinds not recognised.

    ``family`` is the diagram family as ``bot.gates.checks.diagram_family`` names it (`flowchart`, `timeline`,
    …; "" when the header names none).
    """
    text = (error or "").strip()
    got = _GOT.search(text)
    token = got.group(1) if got else None
    expecting = _EXPECTING.search(text)
    alternatives = _token_names(expecting.group(1)) if expecting else []
    line = _LINE.search(text)
    where = f"line {line.group(1)}" if line else "a line"
    detail = _detail(text, token, alternatives)
    fix_kind = (fix_description or "").split(":", 1)[0]

    if not text:
        return SyntaxExplanation("unknown", _PREFIX + "it rejected the diagram without saying why.", "", "")
    if fix_kind in ("Keyword", "Diagram type"):
        word, example = (("the diagram type on the header line", "`sequenceDiagram`, `stateDiagram-v2`")
                         if fix_kind == "Diagram type"
                         else (f"a statement keyword on {where}", "`participant API as Payments API`, `subgraph Edge`"))
        return SyntaxExplanation(
            "keyword", _PREFIX + f"{word} is misspelt; write the keyword mermaid knows.", example, detail)
    if text.startswith("No diagram type detected"):
        return SyntaxExplanation(
            "diagram_type", _PREFIX + "the first line names no diagram type it knows; start the diagram with "
            "one (`flowchart LR`, `sequenceDiagram`, `xychart-beta`, …).",
            "`xychart-beta` as the first line, then `bar [875, 850, 860]`", detail)
    if token in _QUOTES:
        return SyntaxExplanation(
            "quote", _PREFIX + f"a quote mark on {where} stands where mermaid expects none (unbalanced quotes, "
            "or a `\"` inside unquoted text); quote the whole label once and write inner quotes as `#quot;`.",
            '`A["Reads #quot;orders#quot; table"]`', detail)
    if token in _RESERVED and family == "flowchart":
        shown = _TOKEN_TEXT.get(token, token)
        return SyntaxExplanation(
            "reserved_character", _PREFIX + f"a node or edge label on {where} holds `{shown}`, which mermaid "
            "reserves for shapes and links; put the whole label in double quotes.", _RESERVED_EXAMPLE, detail)
    if family == "timeline" and token == "INVALID":
        return SyntaxExplanation(
            "timeline_colon", _PREFIX + f"{where} holds text the timeline grammar cannot read, most often a "
            "second `:` (as in `10:00`): `:` separates a period from its events, so period and event text "
            "cannot hold one; write times without it.", "`10.00 : Viewing history`", detail)
    if text.startswith("Lexical error"):
        return SyntaxExplanation(
            "lexical", _PREFIX + f"{where} holds characters mermaid cannot read as any part of its syntax; "
            "look for a stray symbol or an unquoted label there.", "", detail)
    if not text.startswith("Parse error"):
        return SyntaxExplanation(
            "runtime", _PREFIX + f"it read the syntax but failed while building the diagram "
            f"({_first_line(text)}); check the statements that message names.", "", "")
    return SyntaxExplanation(
        "parse", _PREFIX + f"on {where} it found {_describe(token)} where its grammar allows none; check that "
        "statement's syntax against the mermaid documentation of this diagram type.", "", detail)


def detail_block(detail: str) -> str:
    """The detail as a collapsed part for GitHub Markdown ("" when there is none)."""
    return f"<details><summary>{DETAIL_SUMMARY}</summary>\n\n{detail}\n\n</details>" if detail else ""


def plain_text(message: str) -> str:
    """A message without HTML, for annotations, SARIF and the terminal: each collapsed part flattened to
    `Parser detail: …` on its own line."""
    return _DETAILS.sub(lambda m: f"{m.group(1)}: {m.group(2)}", message)


def _detail(text: str, token: str | None, alternatives: list[str]) -> str:
    parts = []
    near = _NEAR.search(text)
    if token:
        parts.append(f"got {_describe(token)}")
    if near and near.group(1).strip():
        snippet = near.group(1).strip()
        snippet = snippet if len(snippet) <= _MAX_NEAR else "…" + snippet[-_MAX_NEAR:]
        parts.append(f"after {_code(snippet)}")
    if alternatives:
        shown = [_describe(name) for name in dict.fromkeys(alternatives[:_MAX_ALTERNATIVES])]
        more = len(alternatives) - _MAX_ALTERNATIVES
        parts.append("valid here: " + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
    if not parts:
        return _first_line(text)
    return "; ".join(parts)


def _code(text: str) -> str:
    """``text`` as a Markdown code span, also when it holds a backtick."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _token_names(listing: str) -> list[str]:
    return re.findall(r"'([^']+)'", listing)


def _describe(token: str | None) -> str:
    if token is None:
        return "a token"
    shown = _TOKEN_TEXT.get(token)
    if not shown or shown == token:
        return f"`{token}`"
    return f"{shown} (`{token}`)" if " " in shown else f"`{shown}` (`{token}`)"


def _first_line(text: str) -> str:
    return text.splitlines()[0].strip() if text else ""
