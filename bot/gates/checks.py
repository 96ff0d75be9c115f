"""The check functions behind the rules of rules/gates.yml, and the small readers they share.

A rule names a check (``check: orphan_nodes``) and gives it ``params``. Each check is registered here with the
parameters it accepts and the message fields it fills; ``prepare`` turns validated params (and the palette,
glossary, technologies and limits of the configuration) into precompiled state once, when the configuration is
built, and ``run`` applies that state to one diagram and returns ``Hit``s. The engine turns hits into findings
(message, file line, suggestion, severity, blocking).

Flowcharts are read by a small tolerant parser (nodes, edges, labels): enough to count, to find orphan nodes and
to know which text a reader sees. Whether a diagram parses at all is mermaid's verdict, never this module's.

Pure: no I/O.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate
from re import _compiler, _constants, _parser  # the boundary-led scan rewrites parsed patterns
from typing import TYPE_CHECKING, Any

from bot.gates.syntax_errors import detail_block, explain_syntax_error
from bot.model import Diagram, SyntaxVerdict

if TYPE_CHECKING:
    from bot.config import Config
    from bot.gates.fixes import SyntaxFix

# ------------------------------------------------------------------------------------------- diagram kinds

FLOWCHART_KEYWORDS = frozenset({"graph", "flowchart", "flowchart-elk"})
SEQUENCE_KEYWORDS = frozenset({"sequenceDiagram"})
# Diagram types whose every line is text a reader sees (no node ids to tell apart from labels).
WHOLE_LINE_KINDS = frozenset({"timeline", "mindmap", "quadrantChart", "kanban"})
# Diagram types where a line's text before its first colon is what the reader sees (the rest is data).
BEFORE_COLON_KINDS = frozenset({"gantt", "journey"})
# Diagram types that draw no flow between parts, and types that are all flow (a sankey's links are flows).
NO_FLOW_KINDS = frozenset({
    "pie", "gantt", "timeline", "journey", "mindmap", "quadrantChart", "xychart-beta", "xychart", "erDiagram",
    "gitGraph", "kanban", "radar-beta", "packet-beta", "treemap-beta", "requirementDiagram",
})
FLOW_KINDS = frozenset({"sankey-beta", "sankey"})
# An arrowhead in a sequence, state, class or architecture diagram: ->> -> --> -x -) <-- <|-- ..> ==>.
_ARROWHEAD = re.compile(r"-{1,2}[>x)]|<-|<\|-|\.\.>|==>|--\|>")

# --------------------------------------------------------------------------------------- flowchart grammar

# Node shapes, longest openers first. A label is a quoted string (which may hold any delimiter) or text
# without the closer's first character; "[/" and "[\" close with "/]" or "\]". The repeats are possessive:
# a label stops only where its closer must start, so giving characters back could never let the closer match.
_SHAPES = "|".join(
    (
        r'\(\(\((?:"[^"\n]*+"|[^)"\n]++)*+\)\)\)',
        r'\(\((?:"[^"\n]*+"|[^)"\n]++)*+\)\)',
        r'\(\[(?:"[^"\n]*+"|[^\]"\n]++)*+\]\)',
        r'\[\[(?:"[^"\n]*+"|[^\]"\n]++)*+\]\]',
        r'\[\((?:"[^"\n]*+"|[^)"\n]++)*+\)\]',
        r'\[[/\\](?:"[^"\n]*+"|[^/\\"\n]++)*+[/\\]\]',
        r'\{\{(?:"[^"\n]*+"|[^}"\n]++)*+\}\}',
        r'@\{[^}\n]*+\}',
        r'\[(?:"[^"\n]*+"|[^\]"\n]++)*+\]',
        r'\((?:"[^"\n]*+"|[^)"\n]++)*+\)',
        r'\{(?:"[^"\n]*+"|[^}"\n]++)*+\}',
        r'>(?:"[^"\n]*+"|[^\]"\n]++)*+\]',
    )
)
# Node shape openers and the closers that end them, longest opener first ("[(" opens a cylinder only when ")]"
# closes it, else "[" opens a box whose text starts with "("). Shared with the fixes, which write the first
# closer when they complete a shape.
SHAPE_CLOSERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("(((", (")))",)),
    ("((", ("))",)),
    ("([", ("])",)),
    ("[[", ("]]",)),
    ("[(", (")]",)),
    ("{{", ("}}",)),
    ("[/", ("/]", "\\]")),
    ("[\\", ("\\]", "/]")),
    ("(", (")",)),
    ("[", ("]",)),
    ("{", ("}",)),
    (">", ("]",)),
)
_TWO_CHAR_CLOSERS = {opener: closers for opener, closers in SHAPE_CLOSERS if len(opener) == 2}
# "[" followed by one of these may open a two-character shape.
_TWO_CHAR_SECOND = frozenset("[(/\\")
# An arrowhead ">" may touch the next node ("A-->B"); a circle or cross end ("--o") needs a space after it, or
# "A --oB" and "A -- option --> B" would read as arrows.
_ARROW_FULL = r"[<ox]?(?:(?:-{2,}|={2,}|-\.+-)>|(?:-{2,}|={2,}|-\.+-)[ox](?=[\s|]|$)|-{3,}|={3,}|-\.+-)"
_ARROW_OPEN = r"[<ox]?(?:--|==|-\.)"  # then the label, after spaces or a quote: "A -- x --> B", 'A -."x".-> B'
_ARROW_CLOSE = r"(?:-{2,}[>ox]|-{3,}|={2,}[>ox]|={3,}|\.+-+[>ox]?)"
# One token of a statement: a node with its optional shape and class, "&", or an edge with its label. Nodes
# come first (the commonest token); a lone "o" or "x" before "--" starts an arrow ("A o--o B"), and a word
# before "@" names an edge ("A e1@--> B"), not a node.
_FLOW_TOKEN = re.compile(
    r"[ \t]*(?:"
    rf"(?P<node>(?![ox][-=.])(?P<id>\w++)(?!@[^{{])(?P<shape>{_SHAPES})?(?::::[\w-]+)?)"
    r"|(?P<amp>&)"
    r"|(?P<edge>(?:\w+@)?(?:"
    rf"(?P<full>{_ARROW_FULL})[ \t]*(?:\|(?P<pipe>[^|\n]*)\|)?"
    rf"|(?P<open>{_ARROW_OPEN})(?:[ \t]+|(?=\"))(?P<mid>[^\n]*?)[ \t]*(?P<close>{_ARROW_CLOSE})"
    r"|(?P<invisible>~{3,})"
    r"))"
    r")"
)
# The commonest statements in one match: "A", "A[label]", "A --> B", "A[x] -->|label| B[y]:::cls". Other
# lines (chains, "&", labels in the middle of arrows, subgraphs) go through the token reader.
_NODE_REF = r"(?![ox][-=.])\w++(?!@[^{])"
_FLOW_SIMPLE = re.compile(
    rf"[ \t]*(?!subgraph\b)(?P<a>{_NODE_REF})(?P<sa>{_SHAPES})?(?::::[\w-]+)?[ \t]*"
    rf"(?:(?P<arrow>{_ARROW_FULL})[ \t]*(?:\|(?P<pipe>[^|\n]*)\|)?[ \t]*"
    rf"(?P<b>{_NODE_REF})(?P<sb>{_SHAPES})?(?::::[\w-]+)?[ \t]*)?;?[ \t]*"
)
# Lines without nodes or edges: blank, comments, styling, direction, accessibility text, "end" of a subgraph.
_FLOW_SKIP = re.compile(
    r"[ \t]*(?:$|%%|classDef\b|class\b|style\b|linkStyle\b|click\b|direction\b|accTitle\b|accDescr\b"
    r"|end[ \t]*;?[ \t]*$)"
)
_SUBGRAPH = re.compile(r"^\s*subgraph\b[ \t]*(?P<rest>.*)$")
_SUBGRAPH_ID_TITLE = re.compile(r'^(?P<id>\w+)[ \t]*\[(?P<title>.*)\][ \t]*$')
_SHAPE_LABEL_KEY = re.compile(r'label\s*:\s*"([^"]*)"')

# --------------------------------------------------------------------------------------- reader-visible text

_SEQ_PARTICIPANT = re.compile(r"^\s*(?:participant|actor)\s+(?P<name>[^\s]+)(?:\s+as\s+(?P<alias>.+))?$")
_SEQ_BLOCK = re.compile(r"^\s*(?:loop|alt|else|opt|par|and|critical|break|box|title)\b[ \t]*(?P<text>.*)$")
_SEQ_SILENT = re.compile(r"^\s*(?:autonumber|activate|deactivate|end|rect|create|destroy|%%|links?\b)")
_QUOTED = re.compile(r'"([^"\n]*)"')
_BRACKETED = re.compile(r"\[([^\[\]\n]*)\]")
_GENERIC_SKIP = re.compile(
    r"^\s*(?:%%|classDef\b|class\s+\w+(?:,\w+)*\s+\w+\s*$|style\b|linkStyle\b|click\b|accTitle\b|accDescr\b"
    r"|dateFormat\b|axisFormat\b|tickInterval\b|todayMarker\b|excludes\b|includes\b|direction\b)"
)
_HTML_TAG = re.compile(r"<[^<>\n]*>")
_ENTITY = re.compile(r"[#&]\w+;")
_URL = re.compile(r"(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*+://\S+")
# Tags so common in labels that plain replacement beats a regex callback per tag.
_COMMON_TAGS = tuple((tag, " " * len(tag)) for tag in ("<br/>", "<br>", "<br />", "<b>", "</b>"))
# (a character without which the pattern cannot match, the pattern): markup blanked out of labels.
_MARKUP = (("<", _HTML_TAG), ("#", _ENTITY), ("&", _ENTITY), ("://", _URL))

# ------------------------------------------------------------------------------------------------ acronyms

# Two to six capitals (digits may follow: EC2, HTTP2), or a mixed-case abbreviation ("PoP", "QoS", "mTLS"),
# optionally a plural "s", not followed by a word character. The character before is tested in Python (``_ACRONYM_NOT_AFTER``): a leading look-behind would
# cost the regex its fast scan for a first capital.
# The look-ahead is what every branch starts with: most letters (lower case then lower case) fail it at once.
_ACRONYM = re.compile(r"(?=[A-Z][A-Za-z]|[a-z][A-Z])((?:[A-Z]{2,6}|[A-Z][a-z][A-Z]|[a-z][A-Z]{3,5})[0-9]{0,2})s?(?!\w)")
# Not an acronym when glued to these: part of a longer word, a hex colour, an entity, a path or a flag.
_ACRONYM_NOT_AFTER = frozenset("#&@$.\\-_")
# A capitalised word this long is shouting, not an acronym; a label that shouts is skipped.
_SHOUT = re.compile(r"[A-Z]{7,}(?!\w)")
# After an acronym: its spelled-out words, in parentheses or after a colon, equals sign or dash.
_EXPANSION_FOLLOWS = re.compile(r"s?[ \t]*(?:\([ \t]*|[:=][ \t]+|[ \t][-–—][ \t]+)([A-Za-z][^()\n]{2,120})")
# What may follow an acronym that is about to be spelled out (a plural "s" first, possibly).
_EXPANSION_STARTS = frozenset(" \t:=(s")
# An acronym in parentheses, as in "Content Delivery Network (CDN)" (a plural "s" allowed).
_IN_PARENTHESES = re.compile(r"\(([A-Z][A-Za-z0-9]{1,9}?)s?\)")
# Before an acronym in parentheses: the words on the same line, this far back at most.
EXPANSION_LOOKBACK = 160
_WORD = re.compile(r"[A-Za-z0-9]+")
# A line break inside one label.
_LABEL_LINE_BREAK = re.compile(r"<br[ \t]*/?>", re.IGNORECASE)
# A word in ordinary writing ("Monitoring", "scanning"): a label line holding one can state a role.
_ORDINARY_WORD = re.compile(r"[A-Za-z][a-z]{2,}")
# Small words an expansion may contain without an initial in the acronym ("Bureau of Labor Statistics").
_FILLER_WORDS = frozenset({"of", "and", "for", "the", "to", "in", "on", "as", "a", "an", "by", "with", "de"})

# ----------------------------------------------------------------------------------------------- versions

# A version right after a technology's name, with at most one word in between ("Redis Cluster 7.2"); a number
# running on into more digits ("1,000", "50/50") or a unit ("100GB", "99%") is not one. Possessive repeats: a
# name followed by a long run of spaces must not make the match try every split of the run.
_VERSION_AFTER = re.compile(
    r"[ \t]*+(?:[A-Z][\w-]*+[ \t]++)?[(\[]?[ \t]*+(?:v|version[ \t]*+)?"
    r"(?P<num>\d++(?:\.(?:\d++|x))+|\d{1,2})(?![\w%]|[.,/]\d)(?P<rest>[ \t]*+\S*+)"
)
# A bare small number followed by one of these is a count, not a version ("Kafka 50 brokers").
_COUNT_NOUNS = re.compile(
    r"(?i)^[ \t]*(?:x\b|nodes?|brokers?|instances?|clusters?|shards?|replicas?|partitions?|servers?|machines?|"
    r"hosts?|pods?|masters?|workers?|regions?|zones?|az|dcs?|datacenters?|tables?|topics?|queues?|"
    r"connections?|threads?|cores?|vcpus?|disks?|drives?|copies|sites?|clients?|databases?|dbs?)\b"
)

# -------------------------------------------------------------------------------------------------- colours

# A classDef statement (found anywhere in the code: a literal start scans fast) and the fill colour in it.
_CLASSDEF_FILL = re.compile(r"classDef[ \t]+(?P<names>[\w,-]+)[ \t]+(?P<body>[^\n]*)")
_FILL = re.compile(r"fill\s*:\s*(?P<colour>#[0-9A-Fa-f]{6}\b|#[0-9A-Fa-f]{3}\b)")

# ---------------------------------------------------------------------------------------------- syntax text

_POINTER_LINE = re.compile(r"^\s*-*\^\s*$")
_PARSE_ERROR_HEAD = re.compile(r"^Parse error on line \d+:?\s*$")
SYNTAX_ERROR_MAX = 300
UNKNOWN_SYNTAX_ERROR = "mermaid rejected the diagram without saying why"

# ---------------------------------------------------------------------------------------------- evidence

# A finding lists at most this many names (orphan nodes) before "and N more".
MAX_LISTED = 8

EVIDENCE_DIAGRAM = "diagram"
EVIDENCE_SECTION = "section"
EVIDENCE_FILE = "file"
EVIDENCE_KINDS = (EVIDENCE_DIAGRAM, EVIDENCE_SECTION, EVIDENCE_FILE)


class CheckParamError(ValueError):
    """A rule's parameter is unusable (the configuration loader adds the file and line)."""

    def __init__(self, param: str | None, reason: str, index: int | None = None) -> None:
        super().__init__(reason)
        self.param = param
        self.reason = reason
        self.index = index


@dataclass(frozen=True)
class Hit:
    """One thing a check found in one diagram.

    ``line`` and ``end`` are 0-based diagram code lines (``None``: the whole diagram, reported on the fence).
    ``replacement`` (code lines, container prefixes not included) replaces code lines ``line``..``end`` and is
    known to resolve the hit. ``fields`` fill the rule's message and example templates.
    """

    line: int | None = None
    end: int | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    replacement: tuple[str, ...] | None = None


# ------------------------------------------------------------------------------------------- the flowchart


@dataclass
class Graph:
    """What the tolerant flowchart reader found: node ids (first line), edges, labels, subgraph ids."""

    nodes: dict[str, int] = field(default_factory=dict)
    connected: set[str] = field(default_factory=set)
    subgraphs: set[str] = field(default_factory=set)
    # The subgraphs a node was declared in, innermost last, and the subgraphs open while reading.
    parents: dict[str, tuple[str, ...]] = field(default_factory=dict)
    open_subgraphs: list[str] = field(default_factory=list)
    labelled: set[str] = field(default_factory=set)
    edges: int = 0
    directed: int = 0
    labels: list[tuple[int, str]] = field(default_factory=list)

    @property
    def node_ids(self) -> list[str]:
        return [n for n in self.nodes if n not in self.subgraphs]

    def link(self, left: list[str], right: list[str], arrow: str) -> None:
        count = len(left) * len(right)
        self.edges += count
        if ">" in arrow or arrow[0] == "<" or arrow[-1] in "ox":
            self.directed += count
        self.connected.update(left)
        self.connected.update(right)

    def declare(self, node: str, line: int) -> None:
        if node not in self.nodes:
            self.nodes[node] = line
            if self.open_subgraphs:
                self.parents[node] = tuple(self.open_subgraphs)

    def orphans(self) -> list[tuple[str, int]]:
        """Declared nodes that no edge touches, neither directly nor through a subgraph that holds them (a
        linked subgraph speaks for its members); subgraph ids are containers, not nodes."""
        connected = self.connected
        return [
            (n, line) for n, line in self.nodes.items()
            if n not in connected and n not in self.subgraphs
            and not any(parent in connected for parent in self.parents.get(n, ()))
        ]


def _split_statements(text: str) -> list[str]:
    """A flowchart line split at top-level semicolons (a semicolon inside a label or quotes stays)."""
    if ";" not in text:
        return [text]
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "[({":
            depth += 1
        elif ch in "])}":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _shape_label(shape: str) -> str:
    """The text inside a node shape, its delimiters removed."""
    first = shape[0]
    if first == "@":
        found = _SHAPE_LABEL_KEY.search(shape)
        return found.group(1) if found else ""
    if first == "(" and shape.startswith("(((") and shape.endswith(")))"):
        return shape[3:-3]
    if shape[-2:] in _TWO_CHAR_CLOSERS.get(shape[:2], ()):
        return shape[2:-2]
    return shape[1:-1]


def parse_flowchart(lines: Sequence[str], first: int) -> Graph:
    """Nodes, edges and labels of a flowchart whose header is code line ``first`` (tolerant: a statement it
    cannot read further is kept up to that point)."""
    graph = Graph()
    nodes, labels, labelled, connected = graph.nodes, graph.labels, graph.labelled, graph.connected
    simple_match, skip_match = _FLOW_SIMPLE.fullmatch, _FLOW_SKIP.match
    edges = directed = 0
    declare, open_subgraphs = graph.declare, graph.open_subgraphs
    for number in range(first + 1, len(lines)):
        raw = lines[number]
        if not raw or skip_match(raw):
            if open_subgraphs and raw.lstrip().startswith("end"):
                open_subgraphs.pop()
            continue
        found = simple_match(raw)
        if found is None:
            _read_statement_line(graph, raw, number)
            continue
        a, shape_a, arrow, pipe, b, shape_b = found.group("a", "sa", "arrow", "pipe", "b", "sb")
        if a not in nodes:
            declare(a, number)
        if shape_a:
            # "[label]" is by far the commonest shape: cut its brackets without a call.
            plain = shape_a[0] == "[" and shape_a[1] not in _TWO_CHAR_SECOND
            labels.append((number, shape_a[1:-1] if plain else _shape_label(shape_a)))
            labelled.add(a)
        if b is None:
            continue
        # One edge between two nodes, counted here rather than through Graph.link: this is the hot path.
        if b not in nodes:
            declare(b, number)
        if shape_b:
            plain = shape_b[0] == "[" and shape_b[1] not in _TWO_CHAR_SECOND
            labels.append((number, shape_b[1:-1] if plain else _shape_label(shape_b)))
            labelled.add(b)
        if pipe:
            labels.append((number, pipe))
        edges += 1
        if ">" in arrow or arrow[0] == "<" or arrow[-1] in "ox":
            directed += 1
        connected.add(a)
        connected.add(b)
    graph.edges += edges
    graph.directed += directed
    return graph


def _read_statement_line(graph: Graph, raw: str, number: int) -> None:
    """A subgraph line, or statements read token by token (chains, "&", labels in the middle of arrows)."""
    labels, labelled = graph.labels, graph.labelled
    sub = _SUBGRAPH.match(raw)
    if sub:
        rest = sub.group("rest").strip()
        with_title = _SUBGRAPH_ID_TITLE.match(rest)
        subgraph = with_title.group("id") if with_title else (rest.split()[0] if rest else "")
        if subgraph:
            graph.subgraphs.add(subgraph)
            labels.append((number, with_title.group("title") if with_title else rest))
        graph.open_subgraphs.append(subgraph)
        return
    match = _FLOW_TOKEN.match
    for statement in _split_statements(raw):
        left: list[str] = []
        group: list[str] = []
        arrow: str | None = None
        pos, end = 0, len(statement.rstrip())
        while pos < end:
            token = match(statement, pos)
            if token is None or token.end() == pos:
                break
            pos = token.end()
            kind = token.lastgroup
            if kind == "node":
                node, shape = token.group("id", "shape")
                graph.declare(node, number)
                if shape:
                    labels.append((number, _shape_label(shape)))
                    labelled.add(node)
                group.append(node)
                continue
            if kind == "amp":
                continue
            # An edge: it links the group before it to the group after it.
            if not group:
                break
            if arrow is not None and left:
                graph.link(left, group, arrow)
            label = token.group("pipe") or token.group("mid")
            if label:
                labels.append((number, label))
            arrow = token.group("full") or token.group("invisible") or (token.group("open") + token.group("close"))
            left, group = group, []
        if arrow is not None and left and group:
            graph.link(left, group, arrow)


# ------------------------------------------------------------------------------------------ the diagram


def _blank_markup(text: str) -> str:
    """Label text as rendered: HTML tags, entities, URLs, quotes and backticks replaced by as many spaces
    (each pass only when it can apply)."""
    if "<" in text:
        for tag, spaces in _COMMON_TAGS:
            text = text.replace(tag, spaces)
    for marker, pattern in _MARKUP:
        if marker in text:
            text = pattern.sub(_blank, text)
    return text.replace('"', " ").replace("`", " ")


def _blank(found: re.Match[str]) -> str:
    return " " * (found.end() - found.start())


def header_line(lines: Sequence[str]) -> int:
    """Index of the line naming the diagram type (after front matter, directives and comments); -1 if none."""
    in_front_matter = False
    for number, raw in enumerate(lines):
        text = raw.strip()
        if number == 0 and text == "---":
            in_front_matter = True
            continue
        if in_front_matter:
            if text == "---":
                in_front_matter = False
            continue
        if not text or text.startswith("%%"):
            continue
        return number
    return -1


# Header prefixes of the diagram families that have their own fixes and messages.
_FAMILY_PREFIXES = (
    ("flowchart", "flowchart"), ("graph", "flowchart"), ("sequenceDiagram", "sequence"),
    ("stateDiagram", "state"), ("sankey", "sankey"), ("xychart", "xychart"),
)


def diagram_family(lines: Sequence[str]) -> tuple[str, int | None]:
    """The diagram family (`flowchart` for `graph` too, `sequence`, `state`, …, else the header's first word)
    and the index of its header line, past front matter and comments (found as the gates find it, so a fix
    and a finding never disagree on which line is the header); ("", None) without a header."""
    index = header_line(lines)
    if index < 0 or not lines[index].split():
        return "", None
    word = lines[index].split()[0]
    for prefix, family in _FAMILY_PREFIXES:
        if word.startswith(prefix):
            return family, index
    return word, index


class _lazy:  # noqa: N801 - used as a decorator, like functools.cached_property
    """A property computed on first use and stored on the instance (functools.cached_property takes a lock
    on every first access in Python 3.11, a cost paid thousands of times per run here)."""

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.compute(instance)
        return value


class Subject:
    """One diagram under evaluation, with lazily computed views shared by all rules.

    ``evidence_text`` is given by the engine: it returns the diagram code, the Markdown section around the
    fence or the whole file, by evidence kind; ``expansions`` tells whether the file spells an acronym out
    (the engine caches the answers per file).
    """

    def __init__(
        self,
        diagram: Diagram,
        *,
        verdict: SyntaxVerdict,
        syntax_fix: SyntaxFix | None,
        evidence_text: Callable[[str], str],
        expansions: Callable[[], Expansions],
    ) -> None:
        self.diagram = diagram
        self.verdict = verdict
        self.syntax_fix = syntax_fix
        self.evidence_text = evidence_text
        self._expansions = expansions
        self._lowered: dict[str, str | None] = {}

    @_lazy
    def lines(self) -> list[str]:
        return self.diagram.code.split("\n")

    @_lazy
    def header(self) -> int:
        return header_line(self.lines)

    @_lazy
    def keyword(self) -> str:
        """The diagram type as written (``graph``, ``sequenceDiagram``, ...), "" when there is none."""
        words = self.lines[self.header].split() if self.header >= 0 else []
        return words[0].rstrip(":;") if words else ""

    @property
    def is_flowchart(self) -> bool:
        return self.keyword in FLOWCHART_KEYWORDS

    @_lazy
    def graph(self) -> Graph | None:
        return parse_flowchart(self.lines, self.header) if self.is_flowchart else None

    def is_expanded(self, acronym: str) -> bool:
        """Whether the file spells the acronym out somewhere ("Content Delivery Network (CDN)")."""
        return acronym in self._expansions()

    @_lazy
    def visible_labels(self) -> list[tuple[int, str]]:
        """The labels a reader of the rendered diagram sees (not ids or styling), markup included, each with
        its code line."""
        graph = self.graph
        if graph is not None:
            # A node never given a label shows its id.
            return graph.labels + [(line, node) for node, line in graph.nodes.items()
                                   if node not in graph.labelled and node not in graph.subgraphs]
        return [(number, text) for number in range(self.header + 1, len(self.lines))
                for text in _visible_parts(self.keyword, self.lines[number]) if text]

    @_lazy
    def visible_joined(self) -> tuple[str, list[int], list[int]]:
        """The visible labels as one text with a line per label (so each check makes one regex pass), the
        start offset of each label in it and its code line. Markup is blanked out, not removed, so the offsets
        stay true."""
        pieces = self.visible_labels
        texts = [text for _, text in pieces]
        joined = _blank_markup("\n".join(texts))
        starts = list(accumulate(map((1).__add__, map(len, texts)), initial=0))
        return joined, starts[:-1], [number for number, _ in pieces]

    @_lazy
    def line_starts(self) -> list[int]:
        starts, offset = [], 0
        for raw in self.lines:
            starts.append(offset)
            offset += len(raw) + 1
        return starts

    def line_of(self, offset: int) -> int:
        """The code line holding character ``offset`` of the diagram code."""
        return bisect_right(self.line_starts, offset) - 1

    @_lazy
    def lower_code(self) -> str:
        return self.diagram.code.lower()

    def lower_evidence(self, kind: str) -> str | None:
        """The evidence lower-cased for needle tests (see ``lowered_for_needles``), once per kind."""
        if kind not in self._lowered:
            self._lowered[kind] = lowered_for_needles(self.evidence_text(kind))
        return self._lowered[kind]


def _visible_parts(keyword: str, raw: str) -> Iterator[str]:
    """The text a reader sees on one line of a diagram that is not a flowchart, by diagram type: sequence
    participants, messages and notes; whole lines of text-only types; names before the colon of gantt and
    journey tasks; otherwise quoted strings, bracketed labels and what follows a colon."""
    if _GENERIC_SKIP.match(raw):
        return
    if keyword in SEQUENCE_KEYWORDS:
        if _SEQ_SILENT.match(raw):
            return
        participant = _SEQ_PARTICIPANT.match(raw)
        if participant:
            yield participant.group("alias") or participant.group("name")
            return
        block = _SEQ_BLOCK.match(raw)
        if block:
            yield block.group("text")
            return
        if ":" in raw:
            yield raw.split(":", 1)[1]
        return
    if keyword in WHOLE_LINE_KINDS:
        yield raw
        return
    if keyword in BEFORE_COLON_KINDS:
        yield raw.split(":", 1)[0]
        return
    yield from _QUOTED.findall(raw)
    yield from _BRACKETED.findall(raw)
    if ":" in raw:
        yield _QUOTED.sub(" ", raw.split(":", 1)[1])


# --------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Param:
    """One parameter a check accepts: its type(s), whether a rule must give it, and its default."""

    types: tuple[type, ...]
    required: bool = False
    default: Any = None
    item_type: type | None = None


@dataclass(frozen=True)
class CheckSpec:
    """A check: the parameters it accepts, the message fields its hits fill, and its two phases."""

    name: str
    params: Mapping[str, Param]
    fields: frozenset[str]
    prepare: Callable[[Mapping[str, Any], Config], Any]
    run: Callable[[Any, Subject, str], Iterable[Hit]]
    doc: str


CHECKS: dict[str, CheckSpec] = {}


def _pass_through(params: Mapping[str, Any], config: Config) -> Any:
    return params


def _register(
    name: str,
    *,
    params: Mapping[str, Param] | None = None,
    fields: Iterable[str] = (),
    prepare: Callable[[Mapping[str, Any], Config], Any] = _pass_through,
) -> Callable[[Callable[..., Iterable[Hit]]], Callable[..., Iterable[Hit]]]:
    """Register a check's ``run`` function under ``name`` with its parameters, fields and preparation."""

    def wrap(run: Callable[..., Iterable[Hit]]) -> Callable[..., Iterable[Hit]]:
        CHECKS[name] = CheckSpec(
            name=name,
            params=dict(params or {}),
            fields=frozenset(fields),
            prepare=prepare,
            run=run,
            doc=(run.__doc__ or "").strip(),
        )
        return run

    return wrap


def prepare(check: str, params: Mapping[str, Any], config: Config) -> Any:
    """Defaults filled in, then the check's own preparation (regexes compiled here, once)."""
    spec = CHECKS[check]
    full = {name: params.get(name, p.default) for name, p in spec.params.items()}
    return spec.prepare(full, config)


def _compile(pattern: str, param: str, flags: int = 0, index: int | None = None) -> re.Pattern[str]:
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise CheckParamError(param, f"invalid regular expression {pattern!r}: {exc}", index) from None


# ------------------------------------------------------------------------------------------------ checks


SYNTAX_CHECK = "mermaid_syntax"  # the one check that reads a diagram's syntax fix


@_register(SYNTAX_CHECK, fields=("what", "detail", "example", "error", "fix", "error_line"))
def mermaid_syntax(state: Any, subject: Subject, evidence: str) -> Iterator[Hit]:
    """mermaid's own verdict: a diagram it cannot parse renders as an error box. The hit sits on the line the
    parser blamed, or on the lines a known-good fix replaces. `what` says what is wrong and how to fix it,
    `example` fits that error kind, `detail` is the parser's text shortened, as a collapsed part."""
    verdict = subject.verdict
    if verdict.ok:
        return
    line_map = subject.diagram.line_map
    error_line = verdict.error_line - 1 if verdict.error_line and verdict.error_line <= len(line_map) else None
    fix = subject.syntax_fix
    usable_fix = fix if fix is not None and 1 <= fix.start <= fix.end <= len(line_map) else None
    family, _ = diagram_family(subject.diagram.code.split("\n"))
    explained = explain_syntax_error(verdict.error, family, usable_fix.description if usable_fix else None)
    fields = {
        "what": explained.sentence,
        "detail": detail_block(explained.detail),
        "example": explained.example,
        "error": condense_syntax_error(verdict.error),
        "fix": "",
        "error_line": str(line_map[error_line] if error_line is not None else subject.diagram.line),
    }
    if usable_fix is not None:
        fix = usable_fix
        fields["fix"] = f"Suggested fix: {fix.description.rstrip('.')}.\n\n"
        yield Hit(line=fix.start - 1, end=fix.end - 1, fields=fields, replacement=tuple(fix.replacement))
        return
    yield Hit(line=error_line, fields=fields)


def condense_syntax_error(error: str | None) -> str:
    """mermaid's multi-line parse error as one line: the pointer art dropped, the echoed source in backticks."""
    if not error:
        return UNKNOWN_SYNTAX_ERROR
    parts: list[str] = []
    for raw in error.strip().splitlines():
        text = raw.strip()
        if not text or _POINTER_LINE.match(text) or _PARSE_ERROR_HEAD.match(text):
            continue
        if text.startswith("..."):
            parts.append(f"near `{text.strip('.').strip()}`")
        else:
            parts.append(text)
    joined = "; ".join(parts) or error.strip().splitlines()[0]
    return joined if len(joined) <= SYNTAX_ERROR_MAX else joined[: SYNTAX_ERROR_MAX - 1] + "…"


@dataclass(frozen=True)
class _Colours:
    legacy: Mapping[str, tuple[str, str]]  # legacy colour (upper case) → (plane name, modern colour)
    legacy_re: re.Pattern[str] | None
    planes: Mapping[str, str]  # plane name (lower case) → modern colour (upper case)
    plane_class: re.Pattern[str] | None


def _prepare_palette(params: Mapping[str, Any], config: Config) -> _Colours:
    legacy: dict[str, tuple[str, str]] = {}
    planes: dict[str, str] = {}
    for plane in config.palette.planes:
        planes[plane.name.lower()] = plane.colour.upper()
        for old in plane.legacy:
            legacy[old.upper()] = (plane.name, plane.colour.upper())
    legacy_re = None
    if legacy:
        alternatives = "|".join(re.escape(c) for c in sorted(legacy, key=len, reverse=True))
        legacy_re = re.compile(rf"(?:{alternatives})(?![0-9A-Fa-f])", re.IGNORECASE)
    plane_class = None
    if planes:
        names = "|".join(re.escape(p) for p in planes)
        plane_class = re.compile(rf"(?i)^({names})(?:[-_]?(?:style|plane|layer|class|node)s?)?$")
    return _Colours(legacy, legacy_re, planes, plane_class)


@_register("legacy_colours", fields=("colour", "plane", "modern"), prepare=_prepare_palette)
def legacy_colours(state: _Colours, subject: Subject, evidence: str) -> Iterator[Hit]:
    """Colours of the retired palette, with the modern colour of the same plane as a suggestion."""
    if state.legacy_re is None:
        return
    pattern = state.legacy_re
    if not pattern.search(subject.diagram.code):
        return
    for number, raw in enumerate(subject.lines):
        found = pattern.search(raw) if "#" in raw else None
        if not found:
            continue
        plane, modern = state.legacy[found.group(0).upper()]
        replaced = pattern.sub(lambda m: state.legacy[m.group(0).upper()][1], raw)
        yield Hit(
            line=number,
            end=number,
            fields={"colour": found.group(0), "plane": plane, "modern": modern},
            replacement=(replaced,),
        )


@_register("plane_colours", fields=("name", "plane", "colour", "modern"), prepare=_prepare_palette)
def plane_colours(state: _Colours, subject: Subject, evidence: str) -> Iterator[Hit]:
    """A class named after a plane (``edgeStyle``, ``StatePlane``) filled with another colour than that
    plane's; legacy colours are left to the legacy rule."""
    if state.plane_class is None:
        return
    for found in _CLASSDEF_FILL.finditer(subject.diagram.code):
        fill = _FILL.search(found.group("body"))
        if not fill:
            continue
        colour = fill.group("colour").upper()
        for name in found.group("names").split(","):
            plane = state.plane_class.match(name)
            if not plane:
                continue
            modern = state.planes[plane.group(1).lower()]
            if colour == modern or colour in state.legacy:
                break
            number = subject.line_of(found.start())
            raw = subject.lines[number]
            start = found.start("body") + fill.start("colour") - subject.line_starts[number]
            replaced = raw[:start] + modern + raw[start + len(fill.group("colour")) :]
            yield Hit(
                line=number,
                end=number,
                fields={"name": name, "plane": plane.group(1).lower(), "colour": fill.group("colour"),
                        "modern": modern},
                replacement=(replaced,),
            )
            break


@dataclass(frozen=True)
class _Terms:
    """Placeholder terms, searched as one expression: the terms in capitals over the code as written, the
    others in lower case over the lower-cased code (a literal start scans fast; case-insensitive matching
    would not)."""

    exact: re.Pattern[str] | None
    folded: re.Pattern[str] | None
    # The folded terms case-insensitively, for code whose lower-casing changes its length (U+0130).
    insensitive: re.Pattern[str] | None
    # The first word of each exact (folded) term: every match holds one, so code without any has no match
    # (a substring test is several times cheaper than the scan).
    exact_firsts: tuple[str, ...]
    folded_firsts: tuple[str, ...]


def _prepare_placeholders(params: Mapping[str, Any], config: Config) -> _Terms:
    terms = params["terms"]
    if not terms:
        raise CheckParamError("terms", "needs at least one term")
    exact: list[str] = []
    folded: list[str] = []
    exact_firsts: set[str] = set()
    folded_firsts: set[str] = set()
    for index, term in enumerate(terms):
        words = term.split()
        if not words:
            raise CheckParamError("terms", "a term is empty", index)
        # A term written in capitals ("TODO") is a marker only in capitals: "Todo app" names a product.
        if term.upper() == term and any(c.isalpha() for c in term):
            exact.append(r"\s+".join(re.escape(word) for word in words))
            exact_firsts.add(words[0])
        else:
            folded.append(r"\s+".join(re.escape(word.lower()) for word in words))
            folded_firsts.add(words[0].lower())

    def compiled(bodies: list[str], flags: int = 0) -> re.Pattern[str] | None:
        if not bodies:
            return None
        return re.compile("(?:" + "|".join(sorted(bodies, key=len, reverse=True)) + r")(?![\w-]|\.\w)", flags)

    return _Terms(compiled(exact), compiled(folded), compiled(folded, re.IGNORECASE),
                  tuple(sorted(exact_firsts)), tuple(sorted(folded_firsts)))


@_register(
    "placeholders",
    params={"terms": Param((list,), required=True, item_type=str)},
    fields=("term",),
    prepare=_prepare_placeholders,
)
def placeholders(state: _Terms, subject: Subject, evidence: str) -> Iterator[Hit]:
    """Placeholder text left in a diagram, one hit per line (terms match whole words only)."""
    code = subject.diagram.code
    lower = subject.lower_code
    # (pattern, what it searches, words one of which each of its matches holds; None: not known)
    folded = ((state.folded, lower, state.folded_firsts) if len(lower) == len(code)
              else (state.insensitive, code, None))
    found: dict[int, str] = {}
    for pattern, haystack, firsts in ((state.exact, code, state.exact_firsts), folded):
        if pattern is None or (firsts is not None and not any(word in haystack for word in firsts)):
            continue
        for match in pattern.finditer(haystack):
            at = match.start()
            if at and (code[at - 1].isalnum() or code[at - 1] in "_-"):
                continue
            found.setdefault(subject.line_of(at), code[at : match.end()])
    for number in sorted(found):
        yield Hit(line=number, fields={"term": found[number]})


@_register(
    "diagram_size",
    fields=("counts", "nodes", "edges", "lines"),
    prepare=lambda params, config: config.limits,
)
def diagram_size(limits: Any, subject: Subject, evidence: str) -> Iterator[Hit]:
    """Size and complexity limits (``limits`` in the configuration): nodes and edges of flowcharts,
    non-blank code lines of any diagram."""
    over: list[str] = []
    n_lines = sum(map(bool, map(str.strip, subject.lines)))
    graph = subject.graph
    nodes = len(graph.node_ids) if graph is not None else 0
    edges = graph.edges if graph is not None else 0
    if nodes > limits.max_nodes:
        over.append(f"{nodes} nodes (limit {limits.max_nodes})")
    if edges > limits.max_edges:
        over.append(f"{edges} edges (limit {limits.max_edges})")
    if n_lines > limits.max_lines:
        over.append(f"{n_lines} lines (limit {limits.max_lines})")
    if over:
        yield Hit(fields={"counts": ", ".join(over), "nodes": str(nodes), "edges": str(edges),
                          "lines": str(n_lines)})


@dataclass(frozen=True)
class _Glossary:
    known: frozenset[str]


def _prepare_glossary(params: Mapping[str, Any], config: Config) -> _Glossary:
    glossary = config.glossary
    return _Glossary(frozenset(a.upper() for a in (*glossary.acronyms, *glossary.not_acronyms)))


@_register("acronyms", fields=("acronyms", "first"), prepare=_prepare_glossary)
def acronyms(state: _Glossary, subject: Subject, evidence: str) -> Iterator[Hit]:
    """Acronyms in the text a reader sees that are neither in the glossary nor expanded in the same file nor
    given a role by their own label (``_role_in_label``); one hit per line, each acronym reported once per
    diagram, where it first appears. A label that shouts (a long word in capitals) is skipped: its capitals
    are emphasis, not acronyms."""
    joined, starts, numbers = subject.visible_joined
    # The glossary is in capitals; a mixed-case abbreviation ("PoP") is known by its capitalised form.
    unknown = {token for token in set(_ACRONYM.findall(joined)) if token.upper() not in state.known}
    if not unknown:
        return
    shouting = {bisect_right(starts, m.start()) - 1 for m in _SHOUT.finditer(joined)}
    per_line: dict[int, list[str]] = {}
    for at, token in sorted((_first_standalone(joined, token), token) for token in unknown):
        if at < 0:
            continue
        stem = token.rstrip("0123456789")
        segment = bisect_right(starts, at) - 1
        if (stem.upper() in state.known or segment in shouting or subject.is_expanded(token)
                or subject.is_expanded(stem) or _role_in_label(subject, joined, starts, segment, at)):
            continue
        per_line.setdefault(numbers[segment], []).append(token)
    for number, tokens in sorted(per_line.items()):
        yield Hit(line=number, fields={"acronyms": ", ".join(f"`{t}`" for t in tokens), "first": tokens[0]})


def _role_in_label(subject: Subject, joined: str, starts: list[int], segment: int, at: int) -> bool:
    """Whether the label holding the acronym at ``at`` states its role: the acronym stands on a line of names
    ("SAST/DAST", "Scuba + ODS", "Edge PoPs": capitalised words, no figures) and another line of the same label
    says in ordinary words what it is ("Security Scanning", "Monitoring"). An acronym used as a word of a phrase
    ("150 PoPs globally", "100K RPM", "Real-time AR") is not explained by the words around it."""
    raw = subject.visible_labels[segment][1]
    breaks = list(_LABEL_LINE_BREAK.finditer(raw)) if "<" in raw else []
    if not breaks:
        return False
    line_starts = [0, *(found.end() for found in breaks)]
    line_ends = [*(found.start() for found in breaks), len(raw)]
    label = joined[starts[segment] : starts[segment] + len(raw)]  # blanked, at the same offsets
    lines = [label[start:stop] for start, stop in zip(line_starts, line_ends)]
    holding = bisect_right(line_starts, at - starts[segment]) - 1
    own = lines[holding]
    if any(c.isdigit() for c in own) or not all(word[0].isupper() for word in _WORD.findall(own)):
        return False
    return any(_ORDINARY_WORD.search(line) for number, line in enumerate(lines) if number != holding)


def _first_standalone(text: str, token: str) -> int:
    """Offset of the first occurrence of ``token`` that stands alone as an acronym (-1: none)."""
    at = text.find(token)
    while at >= 0:
        end = at + len(token)
        if end < len(text) and text[end] == "s":
            end += 1
        before_ok = not at or not (text[at - 1].isalnum() or text[at - 1] in _ACRONYM_NOT_AFTER)
        after_ok = end >= len(text) or not (text[end].isalnum() or text[end] == "_")
        if before_ok and after_ok:
            return at
        at = text.find(token, at + 1)
    return -1


class Expansions:
    """The acronyms one file spells out: "Content Delivery Network (CDN)", "CDN (Content Delivery Network)",
    "CDN: Content Delivery Network", judged by the initials of the words (small filler words may be skipped;
    a CamelCase word may give several letters: "PostgreSQL" gives P, S, Q, L). Answers are kept per acronym."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._answers: dict[str, bool] = {}
        self._in_parentheses: dict[str, list[int]] | None = None

    def __contains__(self, acronym: str) -> bool:
        answer = self._answers.get(acronym)
        if answer is None:
            answer = self._answers[acronym] = len(acronym) >= 2 and (
                self._spelled_before(acronym) or self._spelled_after(acronym)
            )
        return answer

    def _spelled_before(self, acronym: str) -> bool:
        """"... Network (CDN)": the words before it on the same line."""
        if self._in_parentheses is None:
            self._in_parentheses = {}
            for found in _IN_PARENTHESES.finditer(self.text):
                self._in_parentheses.setdefault(found.group(1), []).append(found.start())
        for at in self._in_parentheses.get(acronym, ()):
            line_before = self.text[max(0, at - EXPANSION_LOOKBACK) : at].rsplit("\n", 1)[-1]
            words = _WORD.findall(line_before)
            if _initials_match(acronym, words, from_end=True) or _letters_in_order(acronym, words):
                return True
        return False

    def _spelled_after(self, acronym: str) -> bool:
        """"CDN (Content ...", "CDN: Content ...", "CDN - Content ...": the words after it."""
        text = self.text
        at = text.find(acronym)
        while at >= 0:
            end = at + len(acronym)
            if text[end : end + 1] in _EXPANSION_STARTS and not (at and text[at - 1].isalnum()):
                follows = _EXPANSION_FOLLOWS.match(text, end)
                if follows and _initials_match(acronym, _WORD.findall(follows.group(1)), from_end=False):
                    return True
            at = text.find(acronym, end)
        return False


def _initials_match(acronym: str, words: list[str], *, from_end: bool) -> bool:
    """Whether the words next to the acronym (the last ones before "(CDN)", or the first ones inside
    "CDN (...)") spell its letters by their initials. Filler words ("of", "and") may be skipped, and a
    CamelCase word may give several letters ("PostgreSQL" gives P, S, Q, L)."""
    letters = [c.upper() for c in acronym if c.isalpha()]
    if len(letters) < 2 or not words:
        return False
    window = len(letters) + 4
    if from_end:
        return _spells(letters[::-1], words[-window:][::-1], reverse=True)
    return _spells(letters, words[:window], reverse=False)


def _letters_in_order(acronym: str, words: list[str]) -> bool:
    """Whether the words right before "(ABR)" hold the acronym's letters in order, the first one starting a
    word (Schwartz and Hearst's test for a definition in parentheses): "Adaptive Bitrate Streaming (ABR)",
    where one compound word gives two letters. The words looked at: as many as the acronym has letters plus
    five, at most twice as many."""
    letters = [c.lower() for c in acronym if c.isalpha()]
    if len(letters) < 2:
        return False
    # The acronym itself ("MOS Voice Quality (MOS)") spells nothing out.
    words = [word for word in words if word != acronym][-min(len(letters) + 5, 2 * len(letters)):]
    text = " ".join(words).lower()
    at = len(text)
    for number, letter in enumerate(reversed(letters)):
        at = text.rfind(letter, 0, at)
        if number == len(letters) - 1:
            while at > 0 and text[at - 1] != " ":
                at = text.rfind(letter, 0, at)
        if at < 0:
            return False
    return True


def _spells(letters: list[str], words: list[str], *, reverse: bool) -> bool:
    i = 0
    for word in words:
        if i == len(letters):
            break
        initial = word[0].upper()
        if word.lower() in _FILLER_WORDS and initial != letters[i]:
            continue
        capitals = [c for c in word if c.isupper()] or [initial]
        if reverse:
            capitals.reverse()
        if capitals[0] != letters[i] and initial != letters[i]:
            return False
        if capitals[0] != letters[i]:
            capitals = [initial]
        for cap in capitals:
            if i < len(letters) and cap == letters[i]:
                i += 1
            else:
                break
    return i == len(letters)


@dataclass(frozen=True)
class _Technologies:
    pattern: re.Pattern[str] | None
    canonical: Mapping[str, str]  # spelling → name
    examples: Mapping[str, str]  # name → example

def _prepare_technologies(params: Mapping[str, Any], config: Config) -> _Technologies:
    canonical = {spelling: tech.name for tech in config.technologies for spelling in (tech.name, *tech.aliases)}
    examples = {tech.name: tech.example for tech in config.technologies}
    if not canonical:
        return _Technologies(None, {}, examples)
    # Case-sensitive ("Spark" is a technology, "spark" a word), as a trie so that each position tries one
    # branch, not every name.
    return _Technologies(re.compile(rf"(?:{trie_pattern(canonical)})(?![\w-])"), canonical, examples)


@_register("technology_versions", fields=("name", "example"), prepare=_prepare_technologies)
def technology_versions(state: _Technologies, subject: Subject, evidence: str) -> Iterator[Hit]:
    """Named technologies (rules/technologies.yml) shown without a version, one hit per technology at its
    first mention; a technology versioned anywhere in the evidence counts as versioned."""
    if state.pattern is None:
        return
    pattern = state.pattern
    joined, starts, numbers = subject.visible_joined
    unversioned: dict[str, int] = {}
    versioned: set[str] = set()
    for found in pattern.finditer(joined):
        if _glued(joined, found.start()):
            continue
        name = state.canonical[_spelling(found.group(0))]
        if _has_version(joined, found.end()):
            versioned.add(name)
        else:
            unversioned.setdefault(name, numbers[bisect_right(starts, found.start()) - 1])
    missing = {name: line for name, line in unversioned.items() if name not in versioned}
    if missing and evidence != EVIDENCE_DIAGRAM:
        text = subject.evidence_text(evidence)
        for found in pattern.finditer(text):
            if not _glued(text, found.start()) and _has_version(text, found.end()):
                missing.pop(state.canonical[_spelling(found.group(0))], None)
    for name, line in sorted(missing.items(), key=lambda item: item[1]):
        yield Hit(line=line, fields={"name": name, "example": state.examples[name]})


def trie_pattern(words: Iterable[str]) -> str:
    """An expression matching any of ``words`` (longest first), factored by common prefixes; a space in a
    word matches any run of whitespace."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}
    return _trie_to_pattern(trie)


def _trie_to_pattern(node: Mapping[str, Any]) -> str:
    branches = []
    ends_here = "" in node
    for ch in sorted(k for k in node if k):
        head = r"\s+" if ch == " " else re.escape(ch)
        branches.append(head + _trie_to_pattern(node[ch]))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 and not ends_here else "(?:" + "|".join(branches) + ")"
    return body + ("?" if ends_here else "")


def _glued(text: str, start: int) -> bool:
    """A name glued to what precedes it is part of another word or a path ("MyRedis", "lib.redis")."""
    return start > 0 and (text[start - 1].isalnum() or text[start - 1] in "_.-")


def _spelling(matched: str) -> str:
    """The registered spelling of a match (a multi-word name may be matched across other whitespace)."""
    return " ".join(matched.split())


def _has_version(text: str, end: int) -> bool:
    found = _VERSION_AFTER.match(text, end)
    if not found:
        return False
    return "." in found.group("num") or not _COUNT_NOUNS.match(found.group("rest"))


@_register("directed_flow", fields=("why",))
def directed_flow(state: Any, subject: Subject, evidence: str) -> Iterator[Hit]:
    """No direction of flow for a reader to follow: a flowchart whose links have no arrowhead or that has no
    links, a diagram type that draws no flow (timeline, pie, chart, gantt, entity relations), or a sequence,
    state or other diagram without an arrow."""
    graph = subject.graph
    if graph is not None:
        if not graph.edges:
            yield Hit(fields={"why": "its nodes are not linked"})
        elif not graph.directed:
            yield Hit(fields={"why": f"none of its {graph.edges} links has an arrowhead"})
        return
    keyword = subject.keyword
    if keyword in NO_FLOW_KINDS:
        yield Hit(fields={"why": f"a {keyword} diagram shows no flow"})
    elif keyword not in FLOW_KINDS and not any(_ARROWHEAD.search(line) for line in subject.lines[subject.header + 1:]):
        yield Hit(fields={"why": "no link has an arrowhead"})


@_register("orphan_nodes", fields=("nodes", "first", "count"))
def orphan_nodes(state: Any, subject: Subject, evidence: str) -> Iterator[Hit]:
    """Flowchart nodes that no edge touches: one hit on the first one's line, naming all of them (with their
    file lines when there are several)."""
    graph = subject.graph
    if graph is None:
        return
    orphans = graph.orphans()
    if not orphans:
        return
    line_map = subject.diagram.line_map
    if len(orphans) == 1:
        names = f"`{orphans[0][0]}`"
    else:
        shown = [f"`{node}` (line {line_map[line]})" for node, line in orphans[:MAX_LISTED]]
        more = len(orphans) - MAX_LISTED
        names = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    yield Hit(line=orphans[0][1], fields={"nodes": names, "first": orphans[0][0], "count": str(len(orphans))})


@dataclass(frozen=True)
class _Pattern:
    """One evidence pattern; every match contains one of ``needles`` (lower-case literals, looked for in the
    lower-cased evidence; None: no such literal), and ``reach`` is how far before that literal a match can
    start (None: unbounded), so a search can start ``reach`` characters before the first needle instead of at
    the top. With a short reach the pattern is only tried there: at most ``reach`` characters before each
    needle (``tried_at_needles``)."""

    regex: re.Pattern[str]
    needles: tuple[str, ...] | None
    reach: int | None
    # The pattern in lower case without IGNORECASE, for the lower-cased evidence (None: not safe to fold).
    folded: re.Pattern[str] | None
    # A pattern merged from several (one scan instead of one per pattern): the patterns it was merged from.
    parts: tuple[_Pattern, ...] = ()
    # ``folded`` rewritten so the engine can skip to the few characters a match starts with (None: no such
    # rewrite, or a pattern tried only at its needles); it matches exactly where ``folded`` does.
    scan: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    @property
    def tried_at_needles(self) -> bool:
        return self.needles is not None and self.reach is not None and self.reach <= MAX_TRIED_REACH

    def search_start(self, lower: str) -> int | None:
        """Where a search of the lower-cased evidence ``lower`` can start: ``reach`` characters before the
        first needle (0 without needles or with an unbounded reach); None when no needle occurs, so no match."""
        if self.needles is None:
            return 0
        first = min((at for at in map(lower.find, self.needles) if at >= 0), default=-1)
        if first < 0:
            return None
        return max(0, first - self.reach) if self.reach is not None else 0


@dataclass(frozen=True)
class _Evidence:
    """A rule's evidence patterns, validated (each one compiled) when the configuration is loaded; the scan
    state built from them (``patterns``) is built on first use, since a run whose results are all stored
    evaluates no gate and would spend most of its time compiling it."""

    regexes: tuple[re.Pattern[str], ...]
    flags: int
    # Words that, on the same line within ``window`` characters before (after) a match, make it not count.
    unless_before: re.Pattern[str] | None
    unless_after: re.Pattern[str] | None
    window: int

    @_lazy
    def patterns(self) -> tuple[_Pattern, ...]:
        return _scan_patterns(self.regexes, self.flags)


def _prepare_evidence(params: Mapping[str, Any], config: Config) -> _Evidence:
    patterns = params["patterns"]
    if not patterns:
        raise CheckParamError("patterns", "needs at least one pattern")
    # MULTILINE: "^" and "$" anchor at every line of the evidence.
    flags = re.MULTILINE | (re.IGNORECASE if params["ignore_case"] else 0)
    regexes = tuple(_compile(pattern, "patterns", flags, index) for index, pattern in enumerate(patterns))

    def words(name: str) -> re.Pattern[str] | None:
        terms = params[name]
        if not terms:
            return None
        for index, term in enumerate(terms):
            _compile(term, name, index=index)
        return re.compile(r"\b(?:" + "|".join(terms) + r")\b", re.IGNORECASE)

    window = params["window"]
    if window < 1:
        raise CheckParamError("window", "must be at least 1")
    return _Evidence(regexes, flags, words("unless_before"), words("unless_after"), window)


def _scan_patterns(regexes: Sequence[re.Pattern[str]], flags: int) -> tuple[_Pattern, ...]:
    """The patterns as ``evidence_matches`` scans for them: each with its needles and folded forms, merged."""
    prepared = []
    for regex in regexes:
        needles, reach = needles_of(regex.pattern, flags)
        folded = fold_pattern(regex.pattern) if flags & re.IGNORECASE else None
        item = _Pattern(regex, shortest_needles(needles) if needles else None, reach,
                        re.compile(folded, re.MULTILINE) if folded is not None else None)
        if folded is not None and not item.tried_at_needles:  # one tried at its needles is never scanned for
            item = replace(item, scan=boundary_led_scan(folded))
        prepared.append(item)
    # One scan per group (folded or not) of the rule's patterns, as one alternation: cheaper than a needle test
    # and a scan per pattern. A pattern left on its own keeps its needle test.
    # Patterns led by an assertion (\b, a look-behind) are not merged: the engine cannot skip to a first
    # character through them, so each keeps its needle test.
    led = [item for item in prepared if _ASSERTION_LED.match(item.regex.pattern)]
    rest = [item for item in prepared if not _ASSERTION_LED.match(item.regex.pattern)]
    merged = led + (_merged([item for item in rest if item.folded is not None], flags, folded=True)
                    + _merged([item for item in rest if item.folded is None], flags, folded=False))
    # Patterns that can be ruled out by a substring test go last: the others are searched anyway.
    return tuple(sorted(merged, key=lambda item: item.needles is not None))


_ASSERTION_LED = re.compile(r"\\b|\(\?<[=!]|\^|\(\?-i:\\b")
# Group names and back references cannot be merged into one alternation.
_UNMERGEABLE = re.compile(r"\\[1-9]|\(\?P[<=]|\(\?<(?![=!])")


def _merged(items: list[_Pattern], flags: int, *, folded: bool) -> list[_Pattern]:
    """One pattern that matches where any of ``items`` matches, searched in one pass (the regex engine skips
    faster through one alternation than through one scan per pattern); the items as they are when fewer than
    two or when one holds group names or back references."""
    if len(items) < 2 or any(_UNMERGEABLE.search(item.regex.pattern) for item in items):
        return items
    regex = re.compile(alternation([item.regex.pattern for item in items], flags), flags)
    folded_patterns = [item.folded.pattern for item in items] if folded else []  # type: ignore[union-attr]
    combined = re.compile(alternation(folded_patterns, re.MULTILINE), re.MULTILINE) if folded else None
    return [_Pattern(regex, None, None, combined, tuple(items))]


# Pattern items that match in at most one way, one character or none: literals, single-character classes,
# anchors and look-arounds (which never backtrack into themselves).
_ONE_WAY_ITEMS = frozenset({_constants.LITERAL, _constants.NOT_LITERAL, _constants.IN, _constants.ANY, _constants.AT,
                            _constants.ASSERT, _constants.ASSERT_NOT})


def alternation(patterns: Sequence[str], flags: int) -> str:
    r"""``(?:p1)|(?:p2)|...``, with the start all of them share taken out in front when it matches in at most
    one way (``\d(?<![#\w.,]\d)`` leads many evidence patterns): the same matches, but the engine tests that
    start once per position instead of once per pattern."""
    lead = _one_way_lead(patterns, flags)
    body = "|".join(f"(?:{pattern[len(lead):]})" for pattern in patterns)
    return f"{lead}(?:{body})" if lead else body


def _one_way_lead(patterns: Sequence[str], flags: int) -> str:
    """The longest common start of ``patterns`` made of whole one-way items of each of them ("" if none)."""
    try:
        parsed = [_items(pattern, flags) for pattern in patterns]
    except Exception:  # noqa: BLE001  the re module's internals: any surprise means "merge as written"
        return ""
    shared: list[tuple[Any, str]] = []
    for items in zip(*parsed):
        if items[0][0] not in _ONE_WAY_ITEMS or len(set(items)) > 1:
            break
        shared.append(items[0])
    if not shared:
        return ""
    common = os.path.commonprefix(list(patterns))
    for end in range(1, len(common) + 1):  # the shortest start that parses to those items is where they end
        try:
            if _items(common[:end], flags) == shared:
                return common[:end]
        except re.error:
            continue
    return ""


def _items(pattern: str, flags: int) -> list[tuple[Any, str]]:
    """The top-level items of a parsed pattern, as (operator, comparable text)."""
    return [(op, repr((op, av))) for op, av in _parser.parse(pattern, flags).data]


@_register(
    "evidence_matches",
    params={
        "patterns": Param((list,), required=True, item_type=str),
        "ignore_case": Param((bool,), default=True),
        "unless_before": Param((list,), default=[], item_type=str),
        "unless_after": Param((list,), default=[], item_type=str),
        "window": Param((int,), default=40),
    },
    prepare=_prepare_evidence,
)
def evidence_matches(state: _Evidence, subject: Subject, evidence: str) -> Iterator[Hit]:
    """The evidence (diagram, section or file, per the gate) must match one of ``patterns``; a match with one
    of ``unless_before`` (``unless_after``) words shortly before (after) it on its line does not count."""
    text = subject.evidence_text(evidence)
    lower = subject.lower_evidence(evidence)
    screened = state.unless_before is not None or state.unless_after is not None
    for pattern in state.patterns:
        start = 0
        if lower is not None and pattern.tried_at_needles:
            found = _match_at_needles(pattern, text, lower)
            start = found.start() if found is not None else 0  # its first match: none starts before it
        else:
            if lower is not None:
                needle_start = pattern.search_start(lower)
                if needle_start is None:
                    continue
                start = needle_start
            regex, haystack = _haystack(pattern, text, lower)
            found = regex.search(haystack, start)
        if found is None:
            continue
        if not screened or not _screened_out(state, text, found.start(), found.end()):
            return
        # The first match does not count: look at every match of every pattern (a merged pattern's matches
        # may hide an overlapping match of one of its parts).
        for part in pattern.parts or (pattern,):
            part_regex, part_haystack = _haystack(part, text, lower)
            for found in part_regex.finditer(part_haystack, start):
                if not _screened_out(state, text, found.start(), found.end()):
                    return
    yield Hit()


# A pattern whose matches start at most this many characters before a needle is tried only there (a few
# tries per needle found beat stepping the regex engine through every position of the evidence).
MAX_TRIED_REACH = 8


def _match_at_needles(pattern: _Pattern, text: str, lower: str) -> re.Match[str] | None:
    """``regex.search`` over the evidence for a pattern whose every match starts at most ``reach`` characters
    before one of its needles (``tried_at_needles``): the same match, found by trying the pattern only at
    those starts, in order (``str.find`` skips to the needles far faster than the regex engine steps through
    the positions between them)."""
    reach = pattern.reach or 0
    starts = set()
    for needle in pattern.needles or ():
        at = lower.find(needle)
        while at >= 0:
            starts.update(range(max(0, at - reach), at + 1))
            at = lower.find(needle, at + 1)
    if not starts:
        return None
    # Matched as searched: the folded pattern on the lower-cased text (offsets are the same), else as written.
    regex, haystack = (pattern.folded, lower) if pattern.folded is not None else (pattern.regex, text)
    for at in sorted(starts):
        found = regex.match(haystack, at)
        if found is not None:
            return found
    return None


def _haystack(pattern: _Pattern, text: str, lower: str | None) -> tuple[re.Pattern[str], str]:
    if pattern.folded is not None and lower is not None:
        return pattern.scan or pattern.folded, lower
    return pattern.regex, text


def _screened_out(state: _Evidence, text: str, start: int, end: int) -> bool:
    if state.unless_before is not None:
        line_start = text.rfind("\n", 0, start) + 1
        if state.unless_before.search(text, max(line_start, start - state.window), start):
            return True
    if state.unless_after is not None:
        line_end = text.find("\n", end)
        stop = min(end + state.window, len(text) if line_end < 0 else line_end)
        if state.unless_after.search(text, end, stop):
            return True
    return False


# ------------------------------------------------------------------------------------- boundary-led scan

# A pattern led by ``\b`` gives the regex engine no first character to skip to, so it tries every position.
# ``\b(?:alpha|beta)`` with word characters first matches exactly where ``(?:a(?<!\w\w)lpha|b(?<!\w\w)eta)``
# does (after a word character, "not two word characters behind" means "no word character before it"; at
# the start there are not two characters to look at), and that form starts with literals the engine skips
# to. Worth it only for a few distinct first characters: with many, testing each costs more than it saves.
MAX_SCAN_FIRST_CHARS = 3
_NOT_AFTER_WORD = _parser.parse(r"(?<!\w\w)").data[0]
_WORD_CHAR = re.compile(r"\w")


def boundary_led_scan(pattern: str) -> re.Pattern[str] | None:
    """``pattern`` (case-sensitive, MULTILINE) rewritten as above, or None when it is not ``\b`` then an
    alternation whose every branch starts with a word character, or when those are too many."""
    try:
        return _boundary_led_scan(pattern)
    except Exception:  # noqa: BLE001  the rewrite uses the re module's internals: any change there means "as written"
        return None


def _boundary_led_scan(pattern: str) -> re.Pattern[str] | None:
    parsed = _parser.parse(pattern, re.MULTILINE)
    items = parsed.data
    if len(items) < 2 or items[0] != (_constants.AT, _constants.AT_BOUNDARY) or items[1][0] is not _constants.BRANCH:
        return None
    branches = items[1][1][1]
    firsts = set()
    for branch in branches:
        if not len(branch) or branch[0][0] is not _constants.LITERAL or not _WORD_CHAR.match(chr(branch[0][1])):
            return None
        firsts.add(branch[0][1])
    if len(firsts) > MAX_SCAN_FIRST_CHARS:
        return None
    for branch in branches:
        branch.insert(1, _NOT_AFTER_WORD)
    del items[0]
    return _compiler.compile(parsed, re.MULTILINE)


# ------------------------------------------------------------------------------------------- prefilter

# Regular expressions without a literal first character are scanned position by position; a substring test
# for a literal every match must contain rules most evidence out first (a needle shorter than this is in
# nearly every text and not worth testing).
MIN_NEEDLE = 3
# Escapes and groups whose meaning changes when the pattern is lower-cased, and the pattern's tokens.
_UNFOLDABLE = re.compile(r"\\(?:[xuUN0-9])|\(\?(?![:=!]|<[=!])")
_ESCAPE_OR_CHAR = re.compile(r"\\.|[A-Z]+", re.DOTALL)
# A match that can start further than this before its needle is searched for from the top of the evidence.
MAX_REACH = 4096
# Characters that case-insensitive matching folds onto ASCII letters but str.lower() does not map to them
# (long s, Kelvin sign, dotted and dotless i): a text holding one is always searched in full.
_FOLDS_ONTO_ASCII = ("\u017f", "\u212a", "\u0130", "\u0131")


def lowered_for_needles(text: str) -> str | None:
    """The text lower-cased for needle tests, or None when needle tests could miss a case-insensitive match.
    Otherwise it is as long as the text (only U+0130 lower-cases to two characters), so offsets carry over."""
    if not text.isascii() and any(ch in text for ch in _FOLDS_ONTO_ASCII):
        return None
    return text.lower()


def fold_pattern(pattern: str) -> str | None:
    """``pattern`` in lower case, to search lower-cased text without IGNORECASE (which is slower: the scan
    can no longer jump to a literal first character). Only for ASCII patterns whose escapes and groups
    lower-casing cannot change the meaning of: no character codes (``\\x41``), named characters, back
    references, inline flags or named groups. None otherwise."""
    if not pattern.isascii() or _UNFOLDABLE.search(pattern):
        return None
    return _ESCAPE_OR_CHAR.sub(lambda m: m.group(0) if m.group(0).startswith("\\") else m.group(0).lower(), pattern)


def shortest_needles(needles: Iterable[str]) -> tuple[str, ...]:
    """The needles without those that hold another one as their prefix ("compensates" after "compensate"):
    wherever one of those starts, its prefix starts too, so the shorter ones alone are found at the same
    places, in fewer passes."""
    kept: list[str] = []
    for needle in sorted(needles):  # a prefix sorts right before the needles it starts
        if not kept or not needle.startswith(kept[-1]):
            kept.append(needle)
    return tuple(kept)


def needles_of(pattern: str, flags: int = 0) -> tuple[tuple[str, ...] | None, int | None]:
    """(lower-case strings one of which every match of ``pattern`` contains, the most characters a match can
    start before the one it contains): read from the parsed expression. (None, None) when no such strings
    are known; an offset of None when it is unbounded. Any surprise in the parser's private structures gives
    (None, None): this is an optimisation, the pattern is then searched in full."""
    try:
        parsed = re._parser.parse(pattern, flags)  # type: ignore[attr-defined]
        found = _necessary(list(parsed), parsed.state)
    except Exception:  # noqa: BLE001 - see the docstring
        return None, None
    if found is None or min(len(n) for n in found[0]) < MIN_NEEDLE:
        return None, None
    return tuple(sorted({n.lower() for n in found[0]})), found[1]


_Needles = tuple[set[str], "int | None"]


def _necessary(sequence: list[tuple[Any, Any]], state: Any) -> _Needles | None:
    """Strings one of which every match of the parsed ``sequence`` contains, with the most characters a match
    can run before reaching it (None: no such strings known). Candidates: each run of literals, a literal run
    extended by the literal prefixes of the alternation that follows it ("p" + "50|99" gives "p50", "p99"),
    and what groups, alternations and required repeats need; the one whose shortest string is longest wins."""
    constants = re._constants  # type: ignore[attr-defined]
    repeats = (constants.MAX_REPEAT, constants.MIN_REPEAT, constants.POSSESSIVE_REPEAT)
    candidates: list[_Needles] = []
    run: list[str] = []
    run_start = 0
    for index, (op, av) in enumerate(sequence):
        if op is constants.LITERAL:
            if not run:
                run_start = index
            run.append(chr(av))
            continue
        if op is constants.BRANCH and run:
            prefixes = [_literal_prefix(list(branch), constants) for branch in av[1]]
            if all(prefixes):
                candidates.append(({"".join(run) + p for p in prefixes}, _width(sequence[:run_start], state)))
        if run:
            candidates.append(({"".join(run)}, _width(sequence[:run_start], state)))
            run = []
        inner: _Needles | None = None
        if op is constants.SUBPATTERN:
            inner = _necessary(list(av[3]), state)
        elif op is constants.ATOMIC_GROUP:
            inner = _necessary(list(av), state)
        elif op is constants.BRANCH:
            branches = [_necessary(list(branch), state) for branch in av[1]]
            if all(branches):
                offsets = [b[1] for b in branches]  # type: ignore[index]
                inner = (set().union(*(b[0] for b in branches)),  # type: ignore[index]
                         None if None in offsets else max(offsets))  # type: ignore[type-var]
        elif op in repeats and av[0] >= 1:
            inner = _necessary(list(av[2]), state)
        if inner:
            before = _width(sequence[:index], state)
            candidates.append((inner[0], None if before is None or inner[1] is None else before + inner[1]))
    if run:
        candidates.append(({"".join(run)}, _width(sequence[:run_start], state)))
    if not candidates:
        return None
    # A needle of 4+ characters with a known start beats a longer one whose match may start anywhere.
    return max(candidates, key=lambda c: (min(len(n) for n in c[0]) > MIN_NEEDLE, c[1] is not None,
                                          min(len(n) for n in c[0]), -len(c[0]), -(c[1] or 0)))


def _width(sequence: list[tuple[Any, Any]], state: Any) -> int | None:
    """The most characters ``sequence`` can match (None: unbounded)."""
    widest = re._parser.SubPattern(state, list(sequence)).getwidth()[1]  # type: ignore[attr-defined]
    return widest if widest < MAX_REACH else None


def _literal_prefix(sequence: list[tuple[Any, Any]], constants: Any) -> str:
    prefix = []
    for op, av in sequence:
        if op is not constants.LITERAL:
            break
        prefix.append(chr(av))
    return "".join(prefix)
