"""Mechanical fixes for mermaid syntax errors, offered as suggestions only when mermaid accepts the result.

A fix quotes, escapes or completes what the author wrote; it never deletes content. Each candidate replaces
one line or one contiguous range of diagram lines (from the first to the last line it changes), so it can be
shown as a single suggestion block. ``choose_fixes`` asks the real parser, in a few batches, which candidate
makes each diagram parse; a candidate that does not is never offered.
"""

from __future__ import annotations

import collections
import difflib
import functools
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from bot.gates.checks import SHAPE_CLOSERS, diagram_family
from bot.model import SyntaxVerdict

log = logging.getLogger(__name__)

ParseMany = Callable[[Sequence[str]], list[SyntaxVerdict]]
Rewrite = Callable[[Sequence[str]], list[str]]

# Kinds of flowchart line segments.
_CODE, _NODE, _EDGE, _STRING = "code", "node", "edge", "string"
# Node shapes are the gates' SHAPE_CLOSERS (opener -> closers, longest opener first, so `[(` wins over `[` when
# its closer exists); a completed shape gets its opener's first closer.
_CLOSER_OF = {opener: closers[0] for opener, closers in SHAPE_CLOSERS}
_CLOSERS_OF = dict(SHAPE_CLOSERS)
# A node whose text starts on the next line: `A[` alone at the end of a line.
_OPEN_AT_END = re.compile(
    r"^(.*[\w$](?:" + "|".join(re.escape(opener) for opener, _ in SHAPE_CLOSERS) + r"))\s*$"
)
# The last characters of the openers: a line whose last non-blank character is none of them cannot match
# _OPEN_AT_END, which is then not tried (it backtracks over the whole line).
_OPENER_END = frozenset(opener[-1] for opener, _ in SHAPE_CLOSERS)
# Openers on one line that may fail to close before the rest of the line is left alone.
_MAX_UNCLOSED = 8
# How many lines a node's text may span (`A[` … `]`).
_MAX_LABEL_LINES = 40
_OPENER_START = frozenset(opener[0] for opener, _ in SHAPE_CLOSERS)
# SHAPE_CLOSERS by the opener's first character, in their order: only those can open at a given position.
_SHAPES_BY_FIRST_CHAR = {
    first: tuple((opener, closers) for opener, closers in SHAPE_CLOSERS if opener[0] == first)
    for first in _OPENER_START
}
# A node id character directly before an opener makes it a shape (`A[`, `db[(`), not punctuation.
_ID_CHAR = re.compile(r"[\w$]")
# Where a segment may start: a comment, a quote, a pipe, or an opener after an id character (one search skips
# the plain characters between them). It is `%%|["|]|(?<=[\w$])[openers]` with the one character class of all
# starts first, which re finds with a fast scan (an alternation is tried at every position, 4x slower), and
# look-behinds then telling which start it is.
_OPENERS_CLASS = "".join(re.escape(c) for c in sorted(_OPENER_START))
_SEGMENT_START = re.compile(
    r'[%"|' + _OPENERS_CLASS + r'](?:(?<=%)%|(?<=["|])|(?<=[\w$][' + _OPENERS_CLASS + "]))"
)
# What may follow a node's closing bracket: the end of the statement, an edge, `&`, a class, a comment.
# `<` only as an arrow (`<-->`), so `]<br/>` inside a label is not taken for the end of the node.
_AFTER_NODE_LOOSE = re.compile(r"(?:$|\s|;|:::|&|@\{|[-=~<]|[ox][-=.])")
_MATCHING_OPEN = {"]": "[", ")": "(", "}": "{"}
_AFTER_NODE = re.compile(r"\s*(?:$|;|:::|&|%%|@\{|--|-\.|==|~~|<[-=.]|[ox][-=.])")
# Characters that open or close a token inside unquoted node or edge text; quoted, they are plain text.
# `@` only breaks some labels (`x@y` can read as an edge id), so it is quoted only when the rest is not enough.
_RISKY_TEXT = re.compile(r'[()\[\]{}"|]')
_RISKY_TEXT_BROAD = re.compile(r'[()\[\]{}"|@]')
# Node text starting with `/` or `\` reads as a trapezoid opener (`A[/etc/hosts]`).
_SLASH_START = re.compile(r"^\s*[/\\]")
# Flowchart statements with no free text to quote.
_FLOW_SKIP = re.compile(r"^\s*(?:%%|style\s|classDef\s|class\s|linkStyle\s|click\s|direction\s)")
# `subgraph Title with (parens)` without an id or brackets.
_BARE_SUBGRAPH = re.compile(r'^(\s*subgraph\s+)([^"\[\s][^"\[]*?)\s*$')
# `-x` / `-o` are not arrows; `--x` / `--o` are the arrows with a cross or circle head.
# `-x`/`-o` between two nodes; one followed by anything but a node id may be label text (`B()-x )`).
_SHORT_ARROW = re.compile(r"(?<=[\w\]\)}\s])-([xo])(?=\s+[\w$])")
_FLOW_KEYWORDS = ("classDef", "class", "style", "linkStyle", "subgraph", "end", "click", "direction")
# Statement shapes whose first word must be a keyword: (pattern, the keywords that shape belongs to).
_FLOW_KEYWORD_LINES: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"^(\s*)([A-Za-z]+)(\s+[\w-]+\s+[\w-]+:\S.*)$"), ("classDef", "style")),
    # `\s[\d,\s]+\s` is `\s+[\d,\s]+\s+` without the three-way split of a run of blanks (cubic).
    (re.compile(r"^(\s*)([A-Za-z]+)(\s[\d,\s]+\s[\w-]+:\S.*)$"), ("linkStyle",)),
    (re.compile(r"^(\s*)([A-Za-z]+)(\s+[\w-]+(?:\s*,\s*[\w-]+)*\s+[\w-]+\s*;?\s*)$"), ("class",)),
)
# What every statement shape above starts with: lines without it (most node and edge lines) skip all three.
# Its word is the shapes' group 2 whenever they match (a run of letters, and a blank after it), so a line
# starting with a keyword already (`style`, `class`) skips them too.
_KEYWORD_LINE_START = re.compile(r"\s*([A-Za-z]+)\s")
_SEQUENCE_KEYWORDS = (
    "participant", "actor", "activate", "deactivate", "Note", "loop", "alt", "else", "opt", "par", "and",
    "end", "rect", "critical", "break", "autonumber", "box", "create", "destroy",
)
_TYPO_CUTOFF = 0.65
# `word X as Label` can only be a participant or actor declaration, so a looser match is safe there.
_SEQUENCE_DECLARATION = re.compile(r"^\s*[A-Za-z]+\s+\S+\s+as\s+\S")
_DECLARATION_KEYWORDS = ("participant", "actor")
_DECLARATION_CUTOFF = 0.45
_HEADER_CUTOFF = 0.8
# mermaid 11 detects a diagram by the start of its header, so a header starting with one of these is no typo.
_DETECTED_HEADER = re.compile(
    r"^\s*(?:C4(?:Context|Container|Component|Dynamic|Deployment)|architecture|block|classDiagram|erDiagram"
    r"|flowchart|gantt|gitGraph|graph|info|journey|kanban|mindmap|packet|pie|quadrantChart|radar-beta"
    r"|requirement|sankey|sequenceDiagram|stateDiagram|timeline|treemap|xychart)"
)
# The names suggested for a misspelt header.
_HEADER_TYPES = (
    "flowchart", "graph", "sequenceDiagram", "classDiagram", "stateDiagram-v2", "stateDiagram",
    "erDiagram", "journey", "gantt", "pie", "quadrantChart", "requirementDiagram", "gitGraph",
    "mindmap", "timeline", "sankey-beta", "xychart-beta", "block-beta", "packet-beta", "architecture-beta",
    "kanban", "radar-beta", "C4Context", "C4Container", "C4Component", "C4Dynamic", "C4Deployment",
)
# Chart names used as a diagram type whose body is already written in xychart syntax (`bar [..]`).
_HEADER_ALIASES = {"bar": "xychart-beta", "line": "xychart-beta"}
# Entity codes mermaid decodes when it renders text (`#quot;` is `"`, `#58;` is `:`, `#59;` is `;`).
_QUOTE_ENTITY = "#quot;"
_COLON_ENTITY = "#58;"
_SEMICOLON_ENTITY = "#59;"
# No fix for a colon in a timeline period or section title: no entity code works there, and a look-alike
# character (U+2236) would change what the reader sees.
# Group 1 always ends at the line's first ':'; the look-ahead fails a line without one in linear time.
_SEQUENCE_MESSAGE = re.compile(r"^(?=[^:]*:)([^:%]+?(?:->>|-->>|->|-->|-x|--x|-\)|--\)|<<->>|<<-->>)[^:]*:)(.*)$")
_SEQUENCE_NOTE = re.compile(r"^(?=[^:]*:)(\s*note\s+(?:left of|right of|over)\s+[^:]+:)(.*)$", re.IGNORECASE)
# stateDiagram: the text after the first ':' of a note, transition or description cannot hold another ':'.
# (Leading blanks pass the look-ahead, as they did when `\s*` could give one back; without `\s*` in front of
# the overlapping `[^:%]+` a long blank line is linear.)
_STATE_TEXT = re.compile(r"^((?!classDef\s|class\s|style\s|%%)[^:%]+:)(.*:.*)$")
_SANKEY_TITLE = re.compile(r'^\s*title\s+"?(.*?)"?\s*$')
_XY_AXIS = re.compile(r'^(\s*[xy]-axis\s+(?:"[^"]*"\s*|[^\[\s"]+\s+)?)\[(.*)\](\s*)$')

# Descriptions start with the fix family and a colon; a fix made of several passes joins theirs with _JOIN.
_JOIN = " + "
_DESCRIBE_QUOTE = 'Quote labels: node or edge text holds characters mermaid reserves, so it is quoted ("…")'
_DESCRIBE_STRAY = "Complete quotes: a node label lost its opening quote and closing bracket"
_DESCRIBE_FLOW_KEYWORD = "Keyword: a misspelt statement keyword"
_DESCRIBE_ARROW = "Arrow: `-x`/`-o` are not arrows, `--x`/`--o` are"
_DESCRIBE_SEQUENCE = "Escape semicolon: `;` ends a sequence statement, written as `#59;`"
_DESCRIBE_STATE = "Escape colon: only the first `:` separates state text, later ones written as `#58;`"
_DESCRIBE_XY = "Quote axis labels: x/y-axis categories with reserved characters are quoted"
_DESCRIBE_SANKEY = "Sankey title: sankey has no title statement, so it moves to the front matter"


@dataclass(frozen=True)
class SyntaxFix:
    """Replace diagram code lines ``start``..``end`` (1-based, inclusive) with ``replacement``."""

    start: int
    end: int
    replacement: tuple[str, ...]
    description: str

    @property
    def kind(self) -> str:
        """The fix families, for statistics: each description part up to its colon (`Quote labels + Keyword`)."""
        return _JOIN.join(part.split(":", 1)[0] for part in self.description.split(_JOIN))


def apply_fix(code: str, fix: SyntaxFix) -> str:
    """The diagram code with ``fix`` applied (a trailing newline, if any, is kept)."""
    lines = _code_lines(code)
    if not 1 <= fix.start <= fix.end <= len(lines):
        raise ValueError(f"fix lines {fix.start}..{fix.end} outside a {len(lines)}-line diagram")
    lines[fix.start - 1 : fix.end] = fix.replacement
    return "\n".join(lines) + ("\n" if code.endswith("\n") else "")


def candidate_fixes(code: str, verdict: SyntaxVerdict) -> list[SyntaxFix]:
    """The mechanical fixes for a diagram mermaid rejected that pass the label check (``keeps_visible_text``),
    most likely first (empty when none applies)."""
    lines = _code_lines(code)
    family, _ = diagram_family(lines)
    return [fix for fix in unchecked_fixes(code, verdict) if keeps_visible_text(lines, fix, family)]


def unchecked_fixes(code: str, verdict: SyntaxVerdict) -> list[SyntaxFix]:
    """Mechanical fixes for a diagram mermaid rejected, most likely first, before the label check.

    First each of the family's pass sets applied as a whole (mermaid stops at the first error, so a diagram
    with several broken labels needs them all), narrowest set first; then each pass alone; then one-line
    keyword fixes.
    """
    if verdict.ok:
        return []
    lines = _code_lines(code)
    family, header = diagram_family(lines)
    pass_sets = [pass_set.passes for pass_set in _PASS_SETS.get(family, ()) if pass_set.only_with in code]
    candidates: list[SyntaxFix | None] = []
    used: list[int] = []
    for passes in pass_sets:
        combined, descriptions = list(lines), []
        for description, rewrite in passes:
            rewritten = rewrite(combined)
            if rewritten != combined:
                combined, descriptions = rewritten, [*descriptions, description]
        candidates.append(_range_fix(lines, combined, _JOIN.join(descriptions)))
        used.append(len(descriptions))
    if used and used[0] > 1:
        candidates.extend(_range_fix(lines, rewrite(lines), description) for description, rewrite in pass_sets[0])
    candidates.append(_header_fix(lines, header))
    if family == "sankey":
        candidates.append(_sankey_title_fix(lines, header))
    if family == "sequence":
        candidates.append(_sequence_keyword_fix(lines, verdict.error_line))
    return _unique([fix for fix in candidates if fix is not None])


def choose_fixes(
    items: Sequence[tuple[str, SyntaxVerdict]],
    parse_many: ParseMany,
    *,
    max_rounds: int = 3,
    candidates: Sequence[list[SyntaxFix] | None] | None = None,
) -> list[SyntaxFix | None]:
    """Per item, the first candidate after which the diagram parses, or None.

    Round ``r`` parses the ``r``-th candidate of every item still unfixed, all in one ``parse_many`` call,
    so the parser gets at most ``max_rounds`` batches and mostly one candidate per failing diagram.
    ``candidates``, aligned with ``items``, holds ``candidate_fixes`` already computed (None: compute it).
    """
    chosen: list[SyntaxFix | None] = [None] * len(items)
    known = candidates or [None] * len(items)
    pending = {i: candidate_fixes(code, verdict) if known[i] is None else known[i]
               for i, (code, verdict) in enumerate(items) if not verdict.ok}
    for round_index in range(max_rounds):
        batch = [(i, cands[round_index]) for i, cands in pending.items() if round_index < len(cands)]
        if not batch:
            break
        verdicts = parse_many([apply_fix(items[i][0], fix) for i, fix in batch])
        for (i, fix), verdict in zip(batch, verdicts, strict=True):
            if verdict.ok:
                chosen[i] = fix
                del pending[i]
    log.debug("syntax fixes found for %d of %d diagrams", sum(f is not None for f in chosen), len(items))
    return chosen


# --- the label check -----------------------------------------------------------------------------------

# What each fix family may change in the text a reader sees, once entity codes are decoded and quote marks
# (the intended quoting) set aside: quoting and escaping change nothing; the others insert or replace only
# these ASCII characters (whitespace is always free: mermaid trims it around labels).
_MAY_CHANGE = {
    "Quote labels": "", "Escape semicolon": "", "Escape colon": "", "Quote axis labels": "",
    "Complete quotes": "])}>", "Arrow": "-",
    "Keyword": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "Diagram type": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-",
    "Sankey title": "-title:",
}
_ENTITY = re.compile(r"#(\d+|quot|amp|lt|gt);")
_NAMED_ENTITIES = {"quot": '"', "amp": "&", "lt": "<", "gt": ">"}
# Quote marks and whitespace (re's \s is exactly str.isspace), set aside when reading text as a reader sees it.
_INVISIBLE = re.compile(r'["\s]+')


def keeps_visible_text(lines: Sequence[str], fix: SyntaxFix, family: str) -> bool:
    """Whether ``fix`` leaves every label's visible text as it was written, apart from its intended quoting
    and escaping: a fix that brought in a look-alike character (`∶` for `:`) or rewrote label text is refused.

    The original does not parse, so mermaid has no labels for it to compare with; the comparison is against
    the text as written. Both sides are read as a reader sees them (entity codes decoded, quote marks and
    whitespace set aside) and may differ only by the characters the fix's family is there to change. In a
    flowchart, each node and edge label of the fixed lines must moreover appear, so read, in the original
    lines: a syntax fix (an arrow, a keyword) that reached into a label is refused.
    """
    before = lines[fix.start - 1 : fix.end]
    allowed = set()
    for part in fix.kind.split(_JOIN):
        if part not in _MAY_CHANGE:
            return False
        allowed.update(_MAY_CHANGE[part])
    old, new = _visible("\n".join(before)), _visible("\n".join(fix.replacement))
    if fix.kind == "Sankey title":  # the title moves above the header: the same characters, reordered
        counted_old, counted_new = collections.Counter(old), collections.Counter(new)
        return set((counted_old - counted_new) + (counted_new - counted_old)) <= allowed
    if not _differs_only_in(old, new, allowed):
        return False
    if family != "flowchart":
        return True
    # `old` read the lines joined by newlines, which _visible drops: joined without them, only an entity code
    # formed across two lines could read differently, and without a `#` there is none
    joined = "".join(before)
    written = old if "#" not in joined else _visible(joined)
    return all(_visible(text) in written for line in fix.replacement
               for text, kind in _flow_segments(line) if kind != _CODE)


def _differs_only_in(old: str, new: str, allowed: set[str]) -> bool:
    """Whether every difference difflib finds between ``old`` and ``new`` is made of ``allowed`` characters."""
    if old == new:  # most fixes (quoting, escaping): difflib would find no difference
        return True
    # the common ends set aside first: a quoting fix of a huge label then costs linear time, not quadratic
    prefix = len(os.path.commonprefix([old, new]))
    suffix = len(os.path.commonprefix([old[prefix:][::-1], new[prefix:][::-1]]))
    old, new = old[prefix : len(old) - suffix], new[prefix : len(new) - suffix]
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    return all(tag == "equal" or set(old[i1:i2] + new[j1:j2]) <= allowed
               for tag, i1, i2, j1, j2 in matcher.get_opcodes())


def _decode_entity(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in _NAMED_ENTITIES:
        return _NAMED_ENTITIES[name]
    return chr(int(name)) if int(name) <= sys.maxunicode else match.group(0)


def _visible(text: str) -> str:
    decoded = _ENTITY.sub(_decode_entity, text) if "#" in text else text
    return _INVISIBLE.sub("", decoded)


# --- shared helpers ------------------------------------------------------------------------------------


def _code_lines(code: str) -> list[str]:
    lines = code.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()
    return lines


def _range_fix(old: Sequence[str], new: Sequence[str], description: str) -> SyntaxFix | None:
    """One fix spanning the first to the last changed line (the passes keep the line count)."""
    changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
    if not changed:
        return None
    first, last = changed[0], changed[-1]
    return SyntaxFix(first + 1, last + 1, tuple(new[first : last + 1]), description)


def _unique(fixes: Sequence[SyntaxFix]) -> list[SyntaxFix]:
    seen: set[tuple[int, int, tuple[str, ...]]] = set()
    out = []
    for fix in fixes:
        key = (fix.start, fix.end, fix.replacement)
        if key not in seen:
            seen.add(key)
            out.append(fix)
    return out


def _closest(word: str, keywords: Sequence[str], cutoff: float) -> str | None:
    """The keyword most similar to ``word`` (case-insensitively), if at least ``cutoff`` similar."""
    word = word.lower()
    lowered = ((k, k.lower()) for k in keywords)
    scored = [(difflib.SequenceMatcher(None, word, low).ratio(), k) for k, low in lowered
              if _ratio_bound(len(word), len(low)) >= cutoff]
    score, best = max(scored, default=(0.0, None))
    return best if score >= cutoff else None


def _ratio_bound(length_a: int, length_b: int) -> float:
    """SequenceMatcher's ``real_quick_ratio``: its ratio's bound from the lengths alone, computed alike, so a
    keyword whose bound is below the cutoff can be skipped (the best keyword at or above it is still found)."""
    return 2.0 * min(length_a, length_b) / (length_a + length_b)


def _quote(text: str) -> str:
    return '"' + text.replace('"', _QUOTE_ENTITY) + '"'


def _is_quoted(text: str) -> bool:
    """A single quoted string; mermaid also accepts a doubled `""text""`, so that counts as quoted too."""
    if text.startswith('""') and text.endswith('""') and len(text) >= 4:
        text = text[1:-1]
    return len(text) >= 2 and text[0] == '"' and text[-1] == '"' and '"' not in text[1:-1]


def _parses_as_is(text: str, risky: re.Pattern[str]) -> bool:
    """Label text mermaid takes as it is: plain, quoted, Markdown (`…`), or a quoted start then plain text."""
    if not risky.search(text) or _is_quoted(text) or text.startswith("`"):
        return True
    end_quote = text.find('"', 1) if text.startswith('"') else -1
    return end_quote > 0 and not risky.search(text, end_quote + 1)


def _maybe_quote(text: str, risky: re.Pattern[str] = _RISKY_TEXT) -> str:
    """Quote label text that holds reserved characters; leave plain, quoted and Markdown (`…`) text alone."""
    stripped = text.strip()
    if _parses_as_is(stripped, risky):
        return text
    # outer quotes were meant as the quoting: `""text (x)""`, or one that lost its partner: `"text (x)`
    inner = stripped
    while len(inner) >= 2 and inner[0] == inner[-1] == '"':
        inner = inner[1:-1]
    if inner.count('"') == 1 and (inner[0] == '"' or inner[-1] == '"'):
        inner = inner.strip('"')
    # spaces around the text go inside the quotes (mermaid rejects them outside); a lone quote is content
    if inner == stripped or not inner.strip():
        inner = text
    return _quote(inner)


def _replace_in_group(pattern: re.Pattern[str], lines: Sequence[str], old: str, new: str) -> list[str]:
    """Replace ``old`` by ``new`` in the last group of ``pattern`` on every line it matches."""
    out = []
    for line in lines:
        match = pattern.match(line)
        if match and old in match.group(match.lastindex or 0):
            last = match.lastindex or 0
            line = line[: match.start(last)] + match.group(last).replace(old, new) + line[match.end(last) :]
        out.append(line)
    return out


# --- flowchart -----------------------------------------------------------------------------------------


def _flowchart_stray_quotes(lines: Sequence[str]) -> list[str]:
    # a subgraph title with a stray quote (`subgraph Title"`) parses, so only node labels are completed
    return [
        _complete_unclosed_node(line) if line.count('"') % 2 == 1 and line.rstrip().endswith('"') else line
        for line in lines
    ]


def _complete_unclosed_node(line: str) -> str:
    """`A --> B[text"` -> `A --> B["text"]`: the first node shape on the line that is never closed."""
    i = 1
    while i < len(line):
        if line[i] in _OPENER_START and _ID_CHAR.match(line[i - 1]):
            span = _find_shape(line, i)
            if span is None:
                opener = next(o for o, _ in SHAPE_CLOSERS if line.startswith(o, i))
                text = line[i + len(opener) :].rstrip()[:-1]
                return line if '"' in text else f'{line[: i + len(opener)]}"{text}"{_CLOSER_OF[opener]}'
            i = span[1]
        i += 1
    return line


def _flowchart_keywords(lines: Sequence[str]) -> list[str]:
    out = []
    for line in lines:
        start = _KEYWORD_LINE_START.match(line)
        if not start or start.group(1) in _FLOW_KEYWORDS:
            out.append(line)
            continue
        for pattern, keywords in _FLOW_KEYWORD_LINES:
            match = pattern.match(line)
            if match:
                best = _closest(match.group(2), keywords, _TYPO_CUTOFF)
                if best:
                    line = match.group(1) + best + match.group(3)
                    break
        out.append(line)
    return out


def _flowchart_quote_labels(lines: Sequence[str], risky: re.Pattern[str] = _RISKY_TEXT) -> list[str]:
    out = []
    for line in lines:
        subgraph = _BARE_SUBGRAPH.match(line) if "subgraph" in line else None
        if subgraph and risky.search(subgraph.group(2)):
            out.append(subgraph.group(1) + _quote(subgraph.group(2)))
        elif _FLOW_SKIP.match(line):
            out.append(line)
        else:
            segments = _flow_segments(line)
            # a line of one segment is all code, which quoting leaves alone (most edge and statement lines)
            out.append(line if len(segments) == 1 else "".join(_quote_segment(text, kind, risky)
                                                                  for text, kind in segments))
    return _quote_multiline_labels(out, risky)


def _flowchart_quote_labels_broad(lines: Sequence[str]) -> list[str]:
    return _flowchart_quote_labels(lines, _RISKY_TEXT_BROAD)


def _quote_segment(text: str, kind: str, risky: re.Pattern[str]) -> str:
    if kind == _NODE and _SLASH_START.match(text):
        return _maybe_quote(text, _SLASH_START)
    if kind in (_NODE, _EDGE):
        return _maybe_quote(text, risky)
    return text


def _quote_multiline_labels(lines: list[str], risky: re.Pattern[str]) -> list[str]:
    """Quote node text spread over several lines (`A[` … `]`): a quoted string may span lines."""
    for index, line in enumerate(lines):
        last_char = line.rstrip()[-1:]
        match = _OPEN_AT_END.match(line) if last_char and last_char in _OPENER_END else None
        if not match:
            continue
        opener = next(o for o, _ in SHAPE_CLOSERS if match.group(1).endswith(o))
        for last in range(index + 1, min(len(lines), index + 1 + _MAX_LABEL_LINES)):
            end = _closer_position(lines[last], 0, _CLOSERS_OF[opener])
            if end is None:
                continue
            text = "\n".join([*lines[index + 1 : last], lines[last][:end]])
            if risky.search(text) and '"' not in text:
                lines[index] = match.group(1) + '"'
                lines[last] = lines[last][:end] + '"' + lines[last][end:]
            break
    return lines


def _flowchart_arrows(lines: Sequence[str]) -> list[str]:
    return [
        line
        if not ("-x" in line or "-o" in line) or _FLOW_SKIP.match(line) or not _SHORT_ARROW.search(line)
        else "".join(_SHORT_ARROW.sub(r"--\1", text) if kind == _CODE else text for text, kind in _flow_segments(line))
        for line in lines
    ]


@functools.lru_cache(maxsize=4096)
def _flow_segments(line: str) -> tuple[tuple[str, str], ...]:
    """Split a flowchart line into (text, kind) pieces: node texts, edge labels, quoted strings and code.

    After a few openers that never close, the rest of the line is left as code: real lines have a handful of
    nodes, and this keeps a hostile line from costing quadratic time.
    """
    segments: list[tuple[str, str]] = []
    code_start = i = 0
    n = len(line)
    unclosed = 0
    while unclosed <= _MAX_UNCLOSED:
        start = _SEGMENT_START.search(line, i)
        if start is None:
            break
        i = start.start()
        span: tuple[int, int] | None = None
        if line.startswith("%%", i):
            break
        if line[i] == '"':
            end = line.find('"', i + 1)
            span, kind = (i, n if end < 0 else end + 1), _STRING
        elif line[i] == "|":
            end = line.find("|", i + 1)
            if end < 0:
                break
            span, kind = (i + 1, end), _EDGE
        else:
            span, kind = _find_shape(line, i), _NODE
            unclosed += span is None
        if span is None:
            i += 1
            continue
        segments.append((line[code_start : span[0]], _CODE))
        segments.append((line[span[0] : span[1]], kind))
        code_start = i = span[1]
        if kind == _EDGE:
            i += 1  # the closing pipe must not be read as an opening one
    segments.append((line[code_start:], _CODE))
    return tuple(segments)


def _find_shape(line: str, start: int) -> tuple[int, int] | None:
    """Start and end index of the text of the node shape opening at ``start``."""
    for opener, closers in _SHAPES_BY_FIRST_CHAR.get(line[start], ()):
        if line.startswith(opener, start):
            text_start = start + len(opener)
            end = _closer_position(line, text_start, closers)
            if end is not None:
                return text_start, end
    return None


def _closer_position(line: str, text_start: int, closers: Sequence[str]) -> int | None:
    """Where node text ends.

    Text that starts with a quote ends at the next quote when a closer follows it. Otherwise the first
    closer outside nested brackets (`[a [b] c]`) that is followed by a space, an edge or the end of the line;
    failing that, the first closer followed by something that can only come after a node.
    """
    if line.startswith('"', text_start):
        end_quote = line.find('"', text_start + 1)
        if end_quote > 0 and _closes_node(line, end_quote + 1, closers):
            return end_quote + 1
    close_char = closers[0][-1]
    open_char = _MATCHING_OPEN[close_char]
    depth = 0
    # only brackets and closer starts matter, so visit just those positions
    for match in _closer_scan(closers).finditer(line, text_start):
        pos = match.start()
        if depth == 0 and _closes_node(line, pos, closers, _AFTER_NODE_LOOSE):
            return pos
        if line[pos] == open_char:
            depth += 1
        elif line[pos] == close_char and depth > 0:
            depth -= 1
    for match in _closer_scan(closers).finditer(line, text_start):
        if _closes_node(line, match.start(), closers):
            return match.start()
    return None


@functools.cache
def _closer_scan(closers: tuple[str, ...]) -> re.Pattern[str]:
    close_char = closers[0][-1]
    chars = {close_char, _MATCHING_OPEN[close_char], *(closer[0] for closer in closers)}
    return re.compile("[" + "".join(re.escape(c) for c in sorted(chars)) + "]")


def _closes_node(line: str, pos: int, closers: Sequence[str], after: re.Pattern[str] = _AFTER_NODE) -> bool:
    return any(line.startswith(c, pos) and after.match(line, pos + len(c)) for c in closers)


# --- other diagram families ----------------------------------------------------------------------------


def _sequence_semicolons(lines: Sequence[str]) -> list[str]:
    escaped = _replace_in_group(_SEQUENCE_MESSAGE, lines, ";", _SEMICOLON_ENTITY)
    return _replace_in_group(_SEQUENCE_NOTE, escaped, ";", _SEMICOLON_ENTITY)


def _state_colons(lines: Sequence[str]) -> list[str]:
    return _replace_in_group(_STATE_TEXT, lines, ":", _COLON_ENTITY)


def _xychart_axis_labels(lines: Sequence[str]) -> list[str]:
    out = []
    for line in lines:
        match = _XY_AXIS.match(line)
        items = match.group(2).split(",") if match else []
        if match and any(_RISKY_TEXT.search(item.strip()) and not _is_quoted(item.strip()) for item in items):
            quoted = ",".join(item.replace(item.strip(), _maybe_quote(item.strip())) for item in items)
            line = f"{match.group(1)}[{quoted}]{match.group(3)}"
        out.append(line)
    return out


def _header_fix(lines: Sequence[str], header: int | None) -> SyntaxFix | None:
    """`sequenceD diagram` -> `sequenceDiagram`: a misspelt diagram type on the header line."""
    if header is None:
        return None
    line = lines[header]
    words = line.split()
    if _DETECTED_HEADER.match(line):
        return None
    indent = line[: len(line) - len(line.lstrip())]
    best = _HEADER_ALIASES.get(line.strip()) or _closest("".join(words), _HEADER_TYPES, _HEADER_CUTOFF)
    if best:
        new = indent + best
    else:
        best = _closest(words[0], _HEADER_TYPES, _HEADER_CUTOFF)
        if not best:
            return None
        new = indent + best + line.strip()[len(words[0]) :]
    return SyntaxFix(header + 1, header + 1, (new,), f"Diagram type: `{line.strip()}` is `{best}`")


def _sequence_keyword_fix(lines: Sequence[str], error_line: int | None) -> SyntaxFix | None:
    """`parameter X as Y` -> `participant X as Y`: a misspelt keyword on (or just before) the blamed line."""
    if error_line is None:
        return None
    for index in (error_line - 1, error_line - 2):
        if not 0 <= index < len(lines) or not lines[index].split():
            continue
        line = lines[index]
        word = line.split()[0]
        if not word.isalpha() or word in _SEQUENCE_KEYWORDS or "->" in line:
            continue
        if _SEQUENCE_DECLARATION.match(line):
            best = _closest(word, _DECLARATION_KEYWORDS, _DECLARATION_CUTOFF)
        else:
            best = _closest(word, _SEQUENCE_KEYWORDS, _TYPO_CUTOFF)
        if best:
            new = line.replace(word, best, 1)
            return SyntaxFix(index + 1, index + 1, (new,), f"Keyword: `{word}` is `{best}`")
    return None


def _sankey_title_fix(lines: Sequence[str], header: int | None) -> SyntaxFix | None:
    """sankey-beta has no `title` statement: the title moves into front matter above the header."""
    if header is None or header != 0:
        return None
    for index in range(header + 1, len(lines)):
        text = lines[index].strip()
        if not text or text.startswith("%%"):
            continue
        match = _SANKEY_TITLE.match(lines[index])
        if not match:
            return None
        title = json.dumps(match.group(1), ensure_ascii=False)
        replacement = ("---", f"title: {title}", "---", *lines[header:index])
        return SyntaxFix(header + 1, index + 1, replacement, _DESCRIBE_SANKEY)
    return None


_FLOW_PASSES: tuple[tuple[str, Rewrite], ...] = (
    (_DESCRIBE_STRAY, _flowchart_stray_quotes),
    (_DESCRIBE_QUOTE, _flowchart_quote_labels),
    (_DESCRIBE_FLOW_KEYWORD, _flowchart_keywords),
    (_DESCRIBE_ARROW, _flowchart_arrows),
)
_FLOW_PASSES_BROAD = tuple(
    (d, _flowchart_quote_labels_broad if r is _flowchart_quote_labels else r) for d, r in _FLOW_PASSES
)


class PassSet(NamedTuple):
    """Whole-diagram passes tried together as one candidate, on diagram code holding ``only_with``: on other
    code the set would repeat an earlier set's candidate (which ``_unique`` then drops)."""

    passes: tuple[tuple[str, Rewrite], ...]
    only_with: str = ""


# Per diagram family, its pass sets, narrowest first.
_PASS_SETS: dict[str, tuple[PassSet, ...]] = {
    # the broad quoting differs from the narrow one only on text holding `@` (the one character it adds)
    "flowchart": (PassSet(_FLOW_PASSES), PassSet(_FLOW_PASSES_BROAD, only_with="@")),
    "sequence": (PassSet(((_DESCRIBE_SEQUENCE, _sequence_semicolons),)),),
    "state": (PassSet(((_DESCRIBE_STATE, _state_colons),)),),
    "xychart": (PassSet(((_DESCRIBE_XY, _xychart_axis_labels),)),),
}
