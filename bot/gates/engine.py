"""Rules → findings: every gate that applies to a diagram's category, every rule of it, explained.

A finding says what is missing, on which file line (the fence line for whole-diagram findings, the exact line
for line findings such as a placeholder, a legacy colour or an unexplained acronym) and what would pass; when a
check knows a replacement (a syntax fix that parses, the modern colour of a plane) the finding carries it as a
suggestion for the file lines it replaces, container prefixes (block quotes, list indentation) included.

A finding blocks when its gate blocks and its severity is ``error``. A gate passes a diagram when it found no
error and no warning there (notices are advice); gates that do not apply to the category are absent from
``gates_passed``.

Pure: no I/O. The configuration has compiled every rule's check already.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from functools import lru_cache
from itertools import accumulate
from typing import TYPE_CHECKING

from bot.gates import checks
from bot.model import Diagram, DiagramResult, DiagramStatus, FileChange, Finding, Severity, SyntaxVerdict

if TYPE_CHECKING:
    from bot.config import Config, Gate, Rule
    from bot.gates.fixes import SyntaxFix

EXAMPLE_JOINER = ", e.g. "
SKIPPED_GATE = "technical"
SKIPPED_RULE = "unreadable_file"
SKIPPED_MESSAGE = (
    "This Markdown file was not checked ({reason}), so its diagrams were neither reviewed nor counted. "
    "Keep Markdown files as UTF-8 text under the size limit (max_file_bytes in .github/atlas-bot.yml)."
)
# CommonMark line endings: LF, CR LF or a lone CR (file lines are numbered the way the fence finder numbers them).
_LINE_BREAK = re.compile(r"\r\n?|\n")
# A line that can open or close a fence (in a list or quote too), an ATX heading, or a setext underline.
_HEADING_CANDIDATE = re.compile(
    r"^(?:[ \t>]*(?P<fence>`{3,}|~{3,})(?P<rest>[^\r\n]*)|(?P<atx> {0,3}#{1,6})(?=[ \t\r\n]|$)"
    r"| {0,3}(?P<underline>=+|-+)[ \t]*\r?$)",
    re.MULTILINE,
)
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*\r?$")
# Lines that are not paragraph text, so a "---" under them is a rule, not a heading underline.
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>|]|\d+[.)]|#|<|```|~~~)")


class _Fields(dict[str, str]):
    """Message fields; a field a hit did not fill reads as empty rather than failing the whole run."""

    def __missing__(self, key: str) -> str:
        return ""


def evaluate_diagram(
    config: Config,
    diagram: Diagram,
    *,
    status: DiagramStatus,
    category: str | None,
    file_text: str,
    verdict: SyntaxVerdict,
    syntax_fix: SyntaxFix | None,
) -> DiagramResult:
    """Run every enabled gate that applies to ``category`` on one diagram."""
    section: list[str] = []

    def evidence_text(kind: str) -> str:
        if kind == checks.EVIDENCE_DIAGRAM or not file_text:
            return diagram.code
        if kind == checks.EVIDENCE_FILE:
            return file_text
        if not section:
            section.append(section_around(file_text, diagram.line))
        return section[0]

    subject = checks.Subject(
        diagram,
        verdict=verdict,
        syntax_fix=syntax_fix,
        file_text=file_text,
        evidence_text=evidence_text,
        expansions=lambda acronym: _is_expanded(file_text or diagram.code, acronym),
    )
    findings: list[Finding] = []
    passed: dict[str, bool] = {}
    for gate in config.gates:
        if not gate.applies_to(category):
            continue
        gate_findings: list[Finding] = []
        for rule in gate.rules:
            if not rule.enabled or not rule.applies_to(category):
                continue
            run = checks.CHECKS[rule.check].run
            for hit in run(config.compiled[(gate.id, rule.id)], subject, gate.evidence):
                gate_findings.append(_finding(gate, rule, hit, diagram, subject, file_text))
        passed[gate.id] = all(f.severity is Severity.NOTICE for f in gate_findings)
        findings.extend(gate_findings)
    return DiagramResult(diagram=diagram, status=status, syntax=verdict, findings=tuple(findings),
                         gates_passed=passed)


def skipped_file_finding(change: FileChange) -> Finding:
    """A changed Markdown file that could not be read (binary, not UTF-8, too large): a warning on line 1."""
    return Finding(
        gate=SKIPPED_GATE,
        rule=SKIPPED_RULE,
        severity=Severity.WARNING,
        path=change.path,
        line=1,
        message=SKIPPED_MESSAGE.format(reason=change.skip_reason or "unreadable"),
    )


def explain(rule: Rule, fields: Mapping[str, str]) -> str:
    """The rule's message and example, filled in: "No recovery time: add RTO or MTTR …, e.g. `RTO: 15 min`."."""
    return _explain(rule.message, rule.example, tuple(fields.items()))


@lru_cache(maxsize=4096)
def _explain(template: str, example_template: str, fields: tuple[tuple[str, str], ...]) -> str:
    values = _Fields(fields)
    message = template.format_map(values).strip()
    example = example_template.format_map(values).strip()
    if not example:
        return message if message.endswith((".", "!", "?", "`")) else message + "."
    return f"{message.rstrip('.')}{EXAMPLE_JOINER}{example}" + ("" if example.endswith((".", "!", "?")) else ".")


def _finding(
    gate: Gate, rule: Rule, hit: checks.Hit, diagram: Diagram, subject: checks.Subject, file_text: str
) -> Finding:
    line_map = diagram.line_map
    line = line_map[hit.line] if hit.line is not None and hit.line < len(line_map) else diagram.line
    end_line = line_map[hit.end] if hit.end is not None and hit.line is not None and hit.end < len(line_map) else None
    suggestion = None
    if hit.replacement is not None and hit.line is not None and end_line is not None:
        suggestion = _with_prefixes(hit.replacement, hit.line, hit.end or hit.line, subject, line, file_text)
    return Finding(
        gate=gate.id,
        rule=rule.id,
        severity=rule.severity,
        path=diagram.path,
        line=line,
        message=explain(rule, hit.fields),
        end_line=end_line,
        suggestion=suggestion,
        blocking=gate.blocking and rule.severity is Severity.ERROR,
    )


def _with_prefixes(
    replacement: tuple[str, ...], first: int, last: int, subject: checks.Subject, file_line: int, file_text: str
) -> str | None:
    """Replacement code lines as file lines: each gets the container prefix ("> ", list indentation) of the
    code line it replaces (extra lines get the last one's). None when a prefix cannot be told for sure."""
    if not file_text:
        return "\n".join(replacement)
    file_lines = _lines(file_text)
    prefixes: list[str] = []
    for offset, code_index in enumerate(range(first, last + 1)):
        number = subject.diagram.line_map[code_index]
        if number - 1 >= len(file_lines):
            return None
        raw, code = file_lines[number - 1], subject.lines[code_index]
        if not raw.endswith(code):
            return None
        prefixes.append(raw[: len(raw) - len(code)] if code else _container_prefix(raw))
        if offset == 0 and number != file_line:
            return None
    out = []
    for index, text in enumerate(replacement):
        prefix = prefixes[min(index, len(prefixes) - 1)]
        out.append(prefix + text if text else prefix.rstrip())
    return "\n".join(out)


def _container_prefix(raw: str) -> str:
    """The prefix of a blank code line: its block-quote markers and indentation, nothing else."""
    return raw if not raw.strip(" \t>") else ""


@lru_cache(maxsize=64)
def _lines(text: str) -> list[str]:
    return _LINE_BREAK.split(text)


@lru_cache(maxsize=64)
def _offsets(text: str) -> list[int]:
    """Character offset of the start of every file line, plus one past the end of the text."""
    if "\r" in text:
        offsets = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]
    else:
        # One "\n" per line break: the offsets are running sums of line lengths plus one (all in C).
        offsets = list(accumulate(map((1).__add__, map(len, _lines(text)[:-1])), initial=0))
    offsets.append(len(text) + 1)
    return offsets


@lru_cache(maxsize=64)
def _expansions(text: str) -> dict[str, bool]:
    """Per file: acronym → whether the file spells it out (filled as acronyms are asked about)."""
    return {}


def _is_expanded(text: str, acronym: str) -> bool:
    known = _expansions(text)
    if acronym not in known:
        known[acronym] = checks.is_expanded(text, acronym)
    return known[acronym]


@lru_cache(maxsize=64)
def _headings(text: str) -> tuple[tuple[int, int], ...]:
    """(file line, level) of every heading outside fenced code blocks: ATX ("## Title") and setext (a line of
    "=" or "-" under a paragraph line). Only lines that could matter are visited: fences, "#" lines,
    underlines."""
    offsets = _offsets(text)
    lines = _lines(text)
    out: list[tuple[int, int]] = []
    fence: str | None = None
    for found in _HEADING_CANDIDATE.finditer(text):
        number = bisect_right(offsets, found.start())
        marks = found.group("fence")
        if fence is not None:
            if marks and marks[0] == fence[0] and len(marks) >= len(fence) and not found.group("rest").strip():
                fence = None
            continue
        if marks:
            fence = marks
        elif found.group("atx"):
            out.append((number, len(found.group("atx").strip())))
        elif found.group("underline") and number > 1:
            start = number - 1
            while start >= 1 and _is_paragraph_text(lines[start - 1]):
                start -= 1
            if start < number - 1:
                out.append((start + 1, 1 if found.group("underline")[0] == "=" else 2))
    return tuple(out)


def _is_paragraph_text(raw: str) -> bool:
    return bool(raw.strip()) and not _NOT_PARAGRAPH.match(raw) and not _SETEXT_UNDERLINE.match(raw)


def section_around(text: str, line: int) -> str:
    """The Markdown section holding file ``line``: from the nearest heading above it to just before the next
    heading of the same or a higher level (from the top of the file when no heading precedes it)."""
    offsets = _offsets(text)
    first, level = 1, 0
    headings = _headings(text)
    for number, depth in headings:
        if number > line:
            break
        first, level = number, depth
    last = len(offsets) - 1
    for number, depth in headings:
        if number > line and (level == 0 or depth <= level):
            last = number - 1
            break
    return text[offsets[first - 1] : max(offsets[first - 1], offsets[min(last, len(offsets) - 1)] - 1)]
