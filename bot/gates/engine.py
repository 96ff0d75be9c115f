"""Rules → findings: every gate that applies to a diagram's category, judged by its pass condition, explained.

A finding says what is missing, on which file line (the fence line for whole-diagram findings, the exact line
for line findings such as a placeholder, a legacy colour or an unexplained acronym) and what would pass; when a
check knows a replacement (a syntax fix that parses, the modern colour of a plane) the finding carries it as a
suggestion for the file lines it replaces, container prefixes (block quotes, list indentation) included.

A gate with a pass condition (``Gate.condition``) passes a diagram when the condition holds over its rules (a
rule holds when it found nothing); when it fails, it is ONE finding naming every missing part with an example,
and the hits of the rules the condition does not name are notices (advice; ``gates_advised``). A gate without
a condition (technical) passes when it found no error and no warning, each finding on its own line. A finding
blocks when its gate blocks and its severity is ``error``. Gates that do not apply to the category are absent
from ``gates_passed``; gates left when the time budget runs out are there as not passed, named in one finding.

Pure: no I/O. The configuration has compiled every rule's check already.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING

from bot.config import Condition
from bot.gates import checks
from bot.model import Diagram, DiagramResult, DiagramStatus, FileChange, Finding, Severity, SyntaxVerdict

if TYPE_CHECKING:
    from bot.config import Config, Gate, Rule
    from bot.gates.fixes import SyntaxFix

EXAMPLE_JOINER = ", e.g. "
# The rule id of a failing gate's one finding, and of the finding naming gates left unevaluated.
GATE_RULE = "gate"
BUDGET_RULE = "time_budget"
_SEVERITY_ORDER = (Severity.ERROR, Severity.WARNING, Severity.NOTICE)
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
# underline. Starting with a literal "\n" lets the scan jump from line break to line break. The repeats are
# possessive: what follows each is none of the characters it repeats, so giving some back could never match,
# and trying to costs most of the scan on indented and list lines.
_HEADING_CANDIDATE = re.compile(
    r"\n(?:[ \t>]*+(?P<fence>`{3,}|~{3,})(?P<rest>[^\n]*)|(?P<atx> {0,3}+#{1,6}+)(?=[ \t\n])"
    r"| {0,3}+(?P<underline>=++|-++)[ \t]*+(?=\n))"
)
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# Lines that are not paragraph text, so a "---" under them is a rule, not a heading underline.
_NOT_PARAGRAPH = re.compile(r"^ {0,3}(?:[-*+>|]|\d+[.)]|#|<|```|~~~)")


class _Fields(dict[str, str]):
    """Message fields; a field a hit did not fill reads as empty rather than failing the whole run."""

    def __missing__(self, key: str) -> str:
        return ""


def change_deadline(config: Config, now: float | None = None) -> float:
    """The monotonic time by which gate evaluation of one change (a check run, a pull request) must end."""
    return (time.monotonic() if now is None else now) + config.gate_budget.change_seconds


def evaluate_diagram(
    config: Config,
    diagram: Diagram,
    *,
    status: DiagramStatus,
    category: str | None,
    file_text: str,
    verdict: SyntaxVerdict,
    syntax_fix: SyntaxFix | None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DiagramResult:
    """Run every enabled gate that applies to ``category`` on one diagram, within the diagram's time budget
    and the change's ``deadline`` (monotonic; see ``change_deadline``): gates left when either runs out are
    not passed and are named in one finding."""
    subject = _subject(diagram, verdict, syntax_fix, file_text)
    findings: list[Finding] = []
    passed: dict[str, bool] = {}
    advised: set[str] = set()
    started = clock()
    own_deadline = started + config.gate_budget.diagram_seconds
    not_evaluated: list[Gate] = []
    for gate in config.gates:
        if not gate.applies_to(category):
            continue
        now = clock()
        if not_evaluated or now > own_deadline or (deadline is not None and now > deadline):
            not_evaluated.append(gate)
            passed[gate.id] = False
            continue
        gate_findings, passed[gate.id], gate_advised = _run_gate(config, gate, category, subject, file_text)
        findings.extend(gate_findings)
        if gate_advised:
            advised.add(gate.id)
    if not_evaluated:
        spent = clock() - started
        findings.append(_budget_finding(config, not_evaluated, diagram, spent, own_deadline, deadline, clock()))
    return DiagramResult(diagram=diagram, status=status, syntax=verdict, findings=tuple(findings),
                         gates_passed=passed, gates_advised=frozenset(advised - {g for g, ok in passed.items()
                                                                                  if not ok}))


def _subject(diagram: Diagram, verdict: SyntaxVerdict, syntax_fix: SyntaxFix | None,
             file_text: str) -> checks.Subject:
    section: list[str] = []

    def evidence_text(kind: str) -> str:
        if kind == checks.EVIDENCE_DIAGRAM or not file_text:
            return diagram.code
        if kind == checks.EVIDENCE_FILE:
            return file_text
        if not section:
            section.append(section_around(file_text, diagram.line))
        return section[0]

    return checks.Subject(
        diagram,
        verdict=verdict,
        syntax_fix=syntax_fix,
        evidence_text=evidence_text,
        expansions=lambda: _expansions(file_text or diagram.code),
    )


def _run_gate(config: Config, gate: Gate, category: str | None, subject: checks.Subject,
              file_text: str) -> tuple[list[Finding], bool, bool]:
    """One gate on one diagram: its findings, whether it passes, and whether an advice rule fired."""
    diagram = subject.diagram
    hits = {rule.id: _rule_hits(config, gate, rule, subject) for rule in gate.rules if rule.applies_to(category)}
    if gate.condition is None:
        findings = [_finding(gate, rule, hit, diagram, subject, file_text)
                    for rule in gate.rules for hit in hits.get(rule.id, ())]
        return findings, _holds_without_condition(findings), False
    verdict_of_gate = judge(gate, hits)
    findings = [] if verdict_of_gate.holds else [_gate_finding(gate, verdict_of_gate, hits, diagram)]
    required = set(gate.condition.rule_ids())
    advice = [_advice(gate, rule, hit, diagram)
              for rule in gate.rules if rule.id not in required for hit in hits.get(rule.id, ())]
    return findings + advice, verdict_of_gate.holds, bool(advice)


def _rule_hits(config: Config, gate: Gate, rule: Rule, subject: checks.Subject) -> list[checks.Hit]:
    return list(checks.CHECKS[rule.check].run(config.compiled[(gate.id, rule.id)], subject, gate.evidence))


def _holds_without_condition(findings: Sequence[Finding]) -> bool:
    """A gate without a condition passes when it found no error and no warning."""
    return all(f.severity is Severity.NOTICE for f in findings)


def with_syntax_fix(config: Config, result: DiagramResult, *, category: str | None, file_text: str,
                    syntax_fix: SyntaxFix) -> DiagramResult | None:
    """``result``, of evaluate_diagram without a syntax fix, as evaluate_diagram gives it with ``syntax_fix``
    (None where that cannot be told without evaluating every gate again). Only the mermaid_syntax check reads
    the fix, and it finds one hit on a diagram mermaid rejects with or without one, so only the findings of
    the gates holding it change: those gates are run again (in a gate without a condition only the syntax
    rules, see _syntax_rules_again) and their findings put where theirs were. So the gates of a rejected
    diagram can run as soon as its verdict arrives, and its fix be added once found."""
    if result.syntax.ok or any(f.rule == BUDGET_RULE for f in result.findings):
        return None
    subject = _subject(result.diagram, result.syntax, syntax_fix, file_text)
    rerun: dict[str, list[Finding]] = {}
    for gate in config.gates:
        if gate.applies_to(category) and any(rule.check == checks.SYNTAX_CHECK for rule in gate.rules):
            if gate.condition is None:
                gate_findings = _syntax_rules_again(config, gate, category, subject, file_text, result.findings)
                holds, advised = _holds_without_condition(gate_findings), False
            else:
                gate_findings, holds, advised = _run_gate(config, gate, category, subject, file_text)
            if holds != result.gates_passed.get(gate.id) or (advised and holds) != (gate.id in result.gates_advised):
                return None
            rerun[gate.id] = gate_findings
    findings: list[Finding] = []
    placed: set[str] = set()
    for finding in result.findings:  # a gate's findings are consecutive, in the order the gates ran
        if finding.gate not in rerun:
            findings.append(finding)
        elif finding.gate not in placed:
            findings.extend(rerun[finding.gate])
            placed.add(finding.gate)
    if placed != rerun.keys():  # a gate that found nothing before: where its findings go is not known
        return None
    return replace(result, findings=tuple(findings))


def _syntax_rules_again(config: Config, gate: Gate, category: str | None, subject: checks.Subject,
                        file_text: str, findings: Sequence[Finding]) -> list[Finding]:
    """The findings of a gate without a condition on ``subject``, as _run_gate gives them, from the gate's
    earlier ``findings``: they come rule by rule in the gate's order, and only the syntax check reads the fix,
    so its rules are run again and every other rule's findings (diagram size, placeholders, colours) are kept
    where they were instead of being found again, which would read the diagram again."""
    diagram = subject.diagram
    found: list[Finding] = []
    for rule in gate.rules:
        if not rule.applies_to(category):
            continue
        if rule.check == checks.SYNTAX_CHECK:
            found.extend(_finding(gate, rule, hit, diagram, subject, file_text)
                         for hit in _rule_hits(config, gate, rule, subject))
        else:
            found.extend(f for f in findings if f.gate == gate.id and f.rule == rule.id)
    return found


@dataclass(frozen=True)
class GateVerdict:
    """Whether a gate's condition holds, and if not, what is missing: rule ids required on their own and
    ``any`` conditions none of whose members held."""

    holds: bool
    unmet: tuple[str | Condition, ...] = ()


def judge(gate: Gate, hits: Mapping[str, Sequence[checks.Hit]]) -> GateVerdict:
    """The gate's condition over its rules: a rule holds when it ran and found nothing; a rule that did not
    run (disabled, or not for this category) is left out of the condition, as if it were not named."""
    assert gate.condition is not None
    condition = _pruned(gate.condition, hits)
    if condition is None or _holds(condition, hits):
        return GateVerdict(True)
    return GateVerdict(False, tuple(_unmet(condition, hits)))


def _pruned(condition: Condition, ran: Mapping[str, object]) -> Condition | None:
    items: list[str | Condition] = []
    for item in condition.items:
        kept = _pruned(item, ran) if isinstance(item, Condition) else (item if item in ran else None)
        if kept is not None:
            items.append(kept)
    return Condition(condition.kind, tuple(items)) if items else None


def _holds(item: str | Condition, hits: Mapping[str, Sequence[checks.Hit]]) -> bool:
    if isinstance(item, str):
        return not hits[item]
    results = (_holds(child, hits) for child in item.items)
    return all(results) if item.kind == "all" else any(results)


def _unmet(condition: Condition, hits: Mapping[str, Sequence[checks.Hit]]) -> Iterator[str | Condition]:
    if condition.kind == "any":
        yield condition
        return
    for child in condition.items:
        if _holds(child, hits):
            continue
        if isinstance(child, Condition):
            yield from _unmet(child, hits)
        else:
            yield child


def _gate_finding(gate: Gate, verdict: GateVerdict, hits: Mapping[str, Sequence[checks.Hit]],
                  diagram: Diagram) -> Finding:
    """One finding for a failing gate: each missing part with an example that would pass. It sits on the
    line of the hits when every missing part is found on lines (an unexplained acronym), else on the fence."""
    rules = {rule.id: rule for rule in gate.rules}
    parts: list[str] = []
    lines: list[int] = []
    on_fence = False
    severities: list[Severity] = []
    for item in verdict.unmet:
        if isinstance(item, str):
            rule = rules[item]
            severities.append(rule.severity)
            rule_hits = hits[item]
            located = [hit for hit in rule_hits if hit.line is not None]
            on_fence = on_fence or len(located) < len(rule_hits)
            described = []
            for hit in rule_hits:
                text = _fill(rule.message, hit.fields)
                if hit.line is not None:
                    line = _file_line(diagram, hit.line)
                    lines.append(line)
                    text += f" (line {line})"
                described.append(text)
            parts.append(_with_example("; ".join(described), _fill(rule.example, rule_hits[0].fields)))
        else:
            on_fence = True
            members = list(item.rule_ids())
            severities.extend(rules[m].severity for m in members)
            examples = [_fill(rules[m].example, hits[m][0].fields) for m in members if rules[m].example]
            parts.append(_with_example("none of: " + ", ".join(_title(child, rules) for child in item.items),
                                       " or ".join(examples)))
    severity = min(severities, key=_SEVERITY_ORDER.index)
    message = f"{gate.title}: " + "; and ".join(parts)
    return Finding(
        gate=gate.id,
        rule=GATE_RULE,
        severity=severity,
        path=diagram.path,
        line=diagram.line if on_fence or not lines else min(lines),
        message=message if message.endswith((".", "!", "?")) else message + ".",
        blocking=gate.blocking and severity is Severity.ERROR,
    )


def _title(item: str | Condition, rules: Mapping[str, Rule]) -> str:
    if isinstance(item, str):
        return rules[item].title
    joiner = " and " if item.kind == "all" else " or "
    return "(" + joiner.join(_title(child, rules) for child in item.items) + ")"


def _fill(template: str, fields: Mapping[str, str]) -> str:
    return template.format_map(_Fields(fields)).strip()


def _with_example(text: str, example: str) -> str:
    return f"{text} — e.g. {example}" if example else text


def _file_line(diagram: Diagram, code_line: int) -> int:
    line_map = diagram.line_map
    return line_map[code_line] if code_line < len(line_map) else diagram.line


def _advice(gate: Gate, rule: Rule, hit: checks.Hit, diagram: Diagram) -> Finding:
    """An advice rule's hit: a notice on its own line (the fence for whole-diagram hits), never blocking."""
    return Finding(
        gate=gate.id,
        rule=rule.id,
        severity=Severity.NOTICE,
        path=diagram.path,
        line=diagram.line if hit.line is None else _file_line(diagram, hit.line),
        message=explain(rule, hit.fields),
    )


def _budget_finding(config: Config, gates: Sequence[Gate], diagram: Diagram, spent: float, own_deadline: float,
                    deadline: float | None, now: float) -> Finding:
    budget = config.gate_budget
    if deadline is not None and now > deadline and not now > own_deadline:
        why = (f"the change used up its gate budget of {budget.change_seconds:g} s before this diagram's turn "
               "(gate_budget.change_seconds)")
    else:
        why = (f"this diagram took {spent:.1f} s, past its gate budget of {budget.diagram_seconds:g} s "
               "(gate_budget.diagram_seconds)")
    titles = ", ".join(gate.title for gate in gates)
    return Finding(
        gate=gates[0].id,
        rule=BUDGET_RULE,
        severity=Severity.WARNING,
        path=diagram.path,
        line=diagram.line,
        message=(f"Not evaluated, so not passed: {titles}. {why}. Split the page or the diagram, or raise the "
                 "budget in .github/atlas-bot.yml."),
    )


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
    # The example belongs to the first paragraph (what is wrong); later ones, such as a parser's detail, follow.
    message, _, rest = template.format_map(values).strip().partition("\n\n")
    message, rest = message.strip(), rest.strip()
    example = example_template.format_map(values).strip()
    if not example:
        head = message if message.endswith((".", "!", "?", "`")) else message + "."
    else:
        head = f"{message.rstrip('.')}{EXAMPLE_JOINER}{example}" + ("" if example.endswith((".", "!", "?")) else ".")
    return f"{head}\n\n{rest}" if rest else head


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
    # Without a CR the only line break is LF, which str.split finds several times faster than the regex.
    return _LINE_BREAK.split(text) if "\r" in text else text.split("\n")


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
