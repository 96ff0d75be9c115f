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
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from bot.gates import checks
from bot.model import Diagram, DiagramResult, DiagramStatus, FileChange, Finding, Severity, SyntaxVerdict

if TYPE_CHECKING:
    from bot.config import Config, Gate, Rule
    from bot.gates.fixes import SyntaxFix

EXAMPLE_JOINER = ", e.g. "
# Per-file work (lines, headings, acronym expansions) is kept for this many files: diagrams arrive grouped by
# file, and a few files' texts is all the memory it should hold.
FILE_CACHE_SIZE = 16
SKIPPED_GATE = "technical"
SKIPPED_RULE = "unreadable_file"
SKIPPED_MESSAGE = (
    "This Markdown file was not checked ({reason}), so its diagrams were neither reviewed nor counted. "
    "Keep Markdown files as UTF-8 text under the size limit (max_file_bytes in .github/atlas-bot.yml)."
)
# CommonMark line endings: LF, CR LF or a lone CR (file lines are numbered the way the fence finder numbers them).
_LINE_BREAK = re.compile(r"\r\n?|\n")
# A line break and a line that can open or close a fence (in a list or quote too), an ATX heading, or a setext
# underline. Starting with a literal "\n" lets the scan jump from line break to line break.
_HEADING_CANDIDATE = re.compile(
    r"\n(?:[ \t>]*(?P<fence>`{3,}|~{3,})(?P<rest>[^\n]*)|(?P<atx> {0,3}#{1,6})(?=[ \t\n])"
    r"| {0,3}(?P<underline>=+|-+)[ \t]*(?=\n))"
)
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
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
        evidence_text=evidence_text,
        expansions=lambda: _expansions(file_text or diagram.code),
    )
    findings: list[Finding] = []
    passed: dict[str, bool] = {}
    for gate in config.gates:
        if not gate.applies_to(category):
            continue
        gate_findings: list[Finding] = []
        for rule in gate.rules:
            if not rule.applies_to(category):
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
    if hit.replacement is not None and hit.end is not None and end_line is not None:
        suggestion = _with_prefixes(hit.replacement, hit.line, hit.end, subject, file_text)
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
    replacement: tuple[str, ...], first: int, last: int, subject: checks.Subject, file_text: str
) -> str | None:
    """Replacement code lines as file lines: each gets the container prefix ("> ", list indentation) of the
    code line it replaces (extra lines get the last one's). None when a prefix cannot be told for sure."""
    if not file_text:
        return "\n".join(replacement)
    file_lines = _lines(file_text)
    prefixes: list[str] = []
    for code_index in range(first, last + 1):
        number = subject.diagram.line_map[code_index]
        if number - 1 >= len(file_lines):
            return None
        raw, code = file_lines[number - 1], subject.lines[code_index]
        if not raw.endswith(code):
            return None
        prefixes.append(raw[: len(raw) - len(code)] if code else _container_prefix(raw))
    out = []
    for index, text in enumerate(replacement):
        prefix = prefixes[min(index, len(prefixes) - 1)]
        out.append(prefix + text if text else prefix.rstrip())
    return "\n".join(out)


def _container_prefix(raw: str) -> str:
    """The prefix of a blank code line: its block-quote markers and indentation, nothing else."""
    return raw if not raw.strip(" \t>") else ""


@lru_cache(maxsize=FILE_CACHE_SIZE)
def _lines(text: str) -> list[str]:
    return _LINE_BREAK.split(text)


@lru_cache(maxsize=FILE_CACHE_SIZE)
def _expansions(text: str) -> checks.Expansions:
    """One per file, so each acronym is looked up once per file, whichever diagram asks."""
    return checks.Expansions(text)


@lru_cache(maxsize=FILE_CACHE_SIZE)
def _headings(text: str) -> tuple[str, tuple[tuple[int, int, int], ...]]:
    """The text with "\n" line breaks, and (line, level, offset of the line) of every heading outside fenced
    code blocks: ATX ("## Title") and setext (a line of "=" or "-" under a paragraph). Only lines that can
    matter are visited (fences, "#" lines, underlines), found by one scan for a line break and what follows."""
    if "\r" in text:
        text = _LINE_BREAK.sub("\n", text)
    framed = "\n" + text + "\n"
    out: list[tuple[int, int, int]] = []
    fence: str | None = None
    counted_to, breaks = 0, 0
    for found in _HEADING_CANDIDATE.finditer(framed):
        at = found.start()  # the break before the line, so the line starts at ``at`` in ``text``
        breaks += framed.count("\n", counted_to, at)
        counted_to = at
        number = breaks + 1
        marks = found.group("fence")
        if fence is not None:
            if marks and marks[0] == fence[0] and len(marks) >= len(fence) and not found.group("rest").strip():
                fence = None
            continue
        if marks:
            fence = marks
        elif found.group("atx"):
            out.append((number, len(found.group("atx").strip()), at))
        elif found.group("underline"):
            start, offset = number, at
            while start > 1:
                previous = text.rfind("\n", 0, offset - 1) + 1
                if not _is_paragraph_text(text[previous : offset - 1]):
                    break
                start, offset = start - 1, previous
            if start < number:
                out.append((start, 1 if found.group("underline")[0] == "=" else 2, offset))
    return text, tuple(out)


def _is_paragraph_text(raw: str) -> bool:
    return bool(raw.strip()) and not _NOT_PARAGRAPH.match(raw) and not _SETEXT_UNDERLINE.match(raw)


def section_around(text: str, line: int) -> str:
    """The Markdown section holding file ``line``: from the nearest heading above it to just before the next
    heading of the same or a higher level (from the top of the file when no heading precedes it). Line breaks
    come back as "\n"."""
    text, headings = _headings(text)
    start, level = 0, 0
    for number, depth, offset in headings:
        if number > line:
            break
        start, level = offset, depth
    end = len(text)
    for number, depth, offset in headings:
        if number > line and (level == 0 or depth <= level):
            end = offset - 1
            break
    return text[start:end].removesuffix("\n") if end == len(text) else text[start:end]
