"""Command-line renderings of a CheckResult: human text, stable JSON, GitHub Actions workflow commands.

Pure: a CheckResult (and optionally the checked files' texts) in, a string out. The JSON schema is a public
interface documented in the README; its key order is fixed here and must only ever grow at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bot.gates.syntax_errors import plain_text
from bot.model import CategoryTotal, CheckResult, DiagramResult, Finding, Severity
from bot.progress import totals_row

PASS_MARK, FAIL_MARK = "✓", "✗"

# ANSI SGR sequences, used only when the caller asks for colour (a TTY).
RESET = "\x1b[0m"
BOLD = "\x1b[1m"
DIM = "\x1b[2m"
RED = "\x1b[31m"
GREEN = "\x1b[32m"
YELLOW = "\x1b[33m"
CYAN = "\x1b[36m"
SEVERITY_COLORS = {Severity.ERROR: RED, Severity.WARNING: YELLOW, Severity.NOTICE: CYAN}
SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.NOTICE: 2}

# GitHub Actions workflow commands: https://docs.github.com/actions/reference/workflow-commands-for-github-actions
# Escaping follows actions/toolkit packages/core/src/command.ts (escapeData / escapeProperty).
GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTICE: "notice"}
_DATA_ESCAPES = (("%", "%25"), ("\r", "%0D"), ("\n", "%0A"))
_PROPERTY_ESCAPES = _DATA_ESCAPES + ((":", "%3A"), (",", "%2C"))

SUGGESTION_INTRO = "Suggested replacement:"
# GitHub shows at most this many annotations of each kind (error, warning, notice) per step and drops the rest.
ANNOTATIONS_PER_STEP = 10
# A step's summary may hold 1 MiB; this many error lines (a few hundred bytes each) stay well inside it.
JOB_SUMMARY_MAX_ERRORS = 2_000


# ---------------------------------------------------------------------------------------------------------------
# Shared phrasing (also used by bot.review for the check run and the PR summary)


def plural(count: int, noun: str, plural_noun: str | None = None) -> str:
    """``1 diagram``, ``3 diagrams``, ``1,240 diagrams``."""
    word = noun if count == 1 else (plural_noun or noun + "s")
    return f"{count:,} {word}"


def verdict_headline(result: CheckResult) -> str:
    """One sentence on the whole run: ``3 of 5 diagrams fail the quality gates``."""
    total = len(result.diagrams)
    failed = sum(1 for d in result.diagrams if not d.passed)
    blocked_files = len({f.path for f in result.file_findings if f.blocking})
    if total == 0 and not result.file_findings:
        return "No new or changed diagrams to check"
    if failed:
        head = f"{failed:,} of {plural(total, 'diagram')} {'fails' if total == 1 else 'fail'} the quality gates"
    elif total:
        head = ("The diagram passes the quality gates" if total == 1
                else f"All {plural(total, 'diagram')} pass the quality gates")
    else:
        head = "No diagrams checked"
    if blocked_files:
        head += f"; {plural(blocked_files, 'file')} could not be checked"
    return head


def findings_tally(findings: Iterable[Finding], noun: str = "finding", plural_noun: str | None = None) -> str:
    """``7 findings (4 errors, 2 warnings, 1 notice)``; ``no findings`` when empty (``noun``: ``new finding``)."""
    counts = {severity: 0 for severity in Severity}
    for finding in findings:
        counts[finding.severity] += 1
    total = sum(counts.values())
    if not total:
        return f"no {plural_noun or noun + 's'}"
    parts = [plural(n, severity.value) for severity, n in counts.items() if n]
    return f"{plural(total, noun, plural_noun)} ({', '.join(parts)})"


def diagram_type(result: DiagramResult) -> str:
    """mermaid's detected type when the parse worked, else the keyword the diagram declares."""
    return result.syntax.type or result.diagram.declared_type


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """File order, then line, then the most severe first."""
    return sorted(findings, key=lambda f: (f.path, f.line, SEVERITY_ORDER[f.severity], f.gate, f.rule))


class SourceLines:
    """File lines by path, split once per file however many findings look at it."""

    def __init__(self, sources: Mapping[str, str] | None) -> None:
        self._sources = sources or {}
        self._split: dict[str, list[str]] = {}

    def lines(self, path: str) -> list[str]:
        """The file's lines; none when its text is not at hand."""
        if path not in self._split:
            self._split[path] = self._sources.get(path, "").splitlines()
        return self._split[path]

    def replaced(self, finding: Finding) -> list[str] | None:
        """The file lines a finding's suggestion replaces, or None when the file's text is not at hand."""
        if finding.path not in self._sources:
            return None
        return self.lines(finding.path)[finding.line - 1:finding.last_line]


# ---------------------------------------------------------------------------------------------------------------
# Text


class _Palette:
    """Wraps text in ANSI colour codes, or leaves it alone when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *codes: str) -> str:
        if not self.enabled or not codes:
            return text
        return "".join(codes) + text + RESET


def render_text(result: CheckResult, *, color: bool, sources: Mapping[str, str] | None = None,
                preexisting: frozenset[Finding] = frozenset()) -> str:
    """Human-readable report grouped by file, with suggestion diffs, totals and a one-line verdict.

    ``sources`` maps path → file text; with it a suggestion is shown as ``-`` old lines and ``+`` new lines,
    without it only the ``+`` lines. Findings in ``preexisting`` (a modified diagram already had them at the
    merge base) are marked as such, so a contributor sees which ones the change brings.
    """
    paint = _Palette(color)
    lines_of = SourceLines(sources)
    by_file: dict[str, tuple[list[DiagramResult], list[Finding]]] = {}
    for diagram in result.diagrams:
        by_file.setdefault(diagram.diagram.path, ([], []))[0].append(diagram)
    for finding in result.file_findings:
        by_file.setdefault(finding.path, ([], []))[1].append(finding)

    out: list[str] = []
    for path in sorted(by_file):
        diagrams, file_findings = by_file[path]
        out.append(paint(path, BOLD))
        for finding in sort_findings(file_findings):
            out.extend(_text_finding(finding, lines_of, paint))
        for diagram in sorted(diagrams, key=lambda d: d.diagram.line):
            out.append(_text_diagram_line(diagram, paint))
            for finding in sort_findings(diagram.findings):
                out.extend(_text_finding(finding, lines_of, paint, preexisting=finding in preexisting))
        out.append("")

    if result.totals:
        out.extend(_text_totals(result.totals, paint, changes_only=result.base is not None))
        out.append("")
    out.append(_text_footer(result, paint, preexisting))
    return "\n".join(out)


def _text_diagram_line(diagram: DiagramResult, paint: _Palette) -> str:
    mark = paint(PASS_MARK, GREEN) if diagram.passed else paint(FAIL_MARK, RED, BOLD)
    verdict = paint("passed", GREEN) if diagram.passed else paint("failed", RED)
    kind = diagram_type(diagram) or "?"
    return f"  {mark} line {diagram.diagram.line:<5} {diagram.status.value:<9} {kind:<14} {verdict}"


PREEXISTING_MARK = "(already there before this change)"


def _text_finding(finding: Finding, lines_of: SourceLines, paint: _Palette, *, preexisting: bool = False) -> list[str]:
    indent = "      "
    severity = paint(finding.severity.value, SEVERITY_COLORS[finding.severity])
    first, *rest = plain_text(finding.message).splitlines() or [""]
    mark = f" {paint(PREEXISTING_MARK, DIM)}" if preexisting else ""
    lines = [f"{indent}{finding.path}:{finding.line}: {severity} [{finding.gate}/{finding.rule}]{mark} {first}"]
    lines.extend(f"{indent}  {more}" for more in rest)
    if finding.suggestion is not None:
        for line in lines_of.replaced(finding) or ():
            lines.append(paint(f"{indent}  - {line}", RED))
        for line in finding.suggestion.splitlines():
            lines.append(paint(f"{indent}  + {line}", GREEN))
    return lines


def _text_totals(totals: Sequence[CategoryTotal], paint: _Palette, *, changes_only: bool) -> list[str]:
    """The category table; for a change (a base was given) only the rows it moves, then TOTAL over all rows."""
    table = [("Category", "Before", "After", "Target")]
    shown = [row for row in totals if row.before != row.after] if changes_only else list(totals)
    for row in (*shown, totals_row(totals)):
        target = f"{row.target:,}" if row.target is not None else "-"
        table.append((row.title, f"{row.before:,}", f"{row.after:,}", target))
    width = max(len(r[0]) for r in table)
    numbers = [max(len(r[i]) for r in table) for i in (1, 2, 3)]
    lines = []
    for n, (title, *cells) in enumerate(table):
        text = "  ".join([title.ljust(width), *(cell.rjust(w) for cell, w in zip(cells, numbers))])
        lines.append(paint(text, BOLD) if n in (0, len(table) - 1) else text)
    return lines


def _text_footer(result: CheckResult, paint: _Palette, preexisting: frozenset[Finding] = frozenset()) -> str:
    passed = sum(1 for d in result.diagrams if d.passed)
    failed = len(result.diagrams) - passed
    tally = findings_tally(result.findings)
    if preexisting:
        tally += f" ({len(preexisting):,} already there before this change)"
    parts = [f"{plural(len(result.diagrams), 'diagram')} checked: {passed:,} passed, {failed:,} failed", tally]
    if result.removed:
        parts.append(f"{plural(len(result.removed), 'diagram')} removed")
    return paint(" · ".join(parts), GREEN if result.passed else RED)


# ---------------------------------------------------------------------------------------------------------------
# JSON


def _json_finding(finding: Finding, *, with_path: bool = False) -> dict[str, Any]:
    item: dict[str, Any] = {"path": finding.path} if with_path else {}
    item.update(
        gate=finding.gate,
        rule=finding.rule,
        severity=finding.severity.value,
        line=finding.line,
        end_line=finding.last_line,
        message=finding.message,
        suggestion=finding.suggestion,
    )
    return item


def result_to_json(result: CheckResult) -> dict[str, Any]:
    """The JSON document as Python data, keys in schema order.

    ``file_findings`` (after ``totals``) carries findings that belong to no diagram (a file that could not be
    read); without it such a blocking finding would be invisible in the JSON.
    """
    return {
        "base": result.base,
        "head": result.head,
        "diagrams": [
            {
                "path": d.diagram.path,
                "line": d.diagram.line,
                "status": d.status.value,
                "type": diagram_type(d),
                "syntax": {"ok": d.syntax.ok, "error": d.syntax.error},
                "passed": d.passed,
                "findings": [_json_finding(f) for f in sort_findings(d.findings)],
            }
            for d in sorted(result.diagrams, key=lambda d: (d.diagram.path, d.diagram.line))
        ],
        "totals": {
            t.folder: {"title": t.title, "before": t.before, "after": t.after, "target": t.target}
            for t in result.totals
        },
        "file_findings": [_json_finding(f, with_path=True) for f in sort_findings(result.file_findings)],
    }


def render_json(result: CheckResult) -> str:
    """The CLI's ``--format json`` document (schema in the README) on one line, UTF-8 kept as is."""
    # No indent: json only uses its C encoder without one (indent=2 costs ~0.6 s on 4,000 diagrams).
    return json.dumps(result_to_json(result), ensure_ascii=False)


# ---------------------------------------------------------------------------------------------------------------
# GitHub Actions workflow commands


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR, LF)."""
    for raw, escaped in _DATA_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (``%``, CR, LF, ``:`` and ``,``)."""
    for raw, escaped in _PROPERTY_ESCAPES:
        text = text.replace(raw, escaped)
    return text


def workflow_command(name: str, properties: Mapping[str, object], message: str) -> str:
    """``::name key=value,key=value::message`` with every part escaped."""
    props = ",".join(f"{key}={escape_property(str(value))}" for key, value in properties.items())
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def annotation_message(finding: Finding) -> str:
    """The finding's message as plain text (annotations show no HTML), followed by its suggested replacement
    when it has one."""
    message = plain_text(finding.message)
    if finding.suggestion is None:
        return message
    return f"{message}\n\n{SUGGESTION_INTRO}\n{finding.suggestion}"


def rank_findings(findings: Iterable[Finding]) -> list[Finding]:
    """The order every cut list uses: blocking errors, then other errors, warnings, notices; file order within."""
    return sorted(findings, key=lambda f: (not f.blocking, SEVERITY_ORDER[f.severity], f.path, f.line, f.gate,
                                           f.rule))


def annotated_findings(findings: Iterable[Finding]) -> tuple[list[Finding], list[Finding]]:
    """(shown, left out): the most important findings within GitHub's per-step annotation limits."""
    shown: list[Finding] = []
    left_out: list[Finding] = []
    used = {severity: 0 for severity in Severity}
    for finding in rank_findings(findings):
        if used[finding.severity] < ANNOTATIONS_PER_STEP:
            used[finding.severity] += 1
            shown.append(finding)
        else:
            left_out.append(finding)
    return shown, left_out


def left_out_line(left_out: Sequence[Finding]) -> str:
    """``atlas-bot: 65 more findings (60 errors, 5 warnings) are not annotated …`` (empty when none are)."""
    if not left_out:
        return ""
    return (f"atlas-bot: {findings_tally(left_out).replace(' finding', ' more finding', 1)} not shown as "
            f"annotations (GitHub shows {ANNOTATIONS_PER_STEP} of each kind per step); the job summary and "
            "`atlas-bot check` list every blocking error")


def render_github(result: CheckResult) -> str:
    """Annotation commands for the most important findings (blocking errors first, within GitHub's per-step
    limits), a line saying how many were left out, then a plain summary line for the job log."""
    shown, left_out = annotated_findings(result.findings)
    lines = []
    for finding in shown:
        properties: dict[str, object] = {"file": finding.path}
        if finding.line >= 1:
            properties.update(line=finding.line, endLine=finding.last_line)
        properties["title"] = f"Atlas {finding.gate}/{finding.rule}"
        lines.append(workflow_command(GITHUB_COMMAND[finding.severity], properties, annotation_message(finding)))
    if left_out:
        lines.append(left_out_line(left_out))
    lines.append(f"atlas-bot: {verdict_headline(result)}; {findings_tally(result.findings)}")
    return "\n".join(lines)


def job_summary(summary_markdown: str, result: CheckResult) -> str:
    """The Actions job summary: the App's summary table, then every blocking error that is not an annotation
    (GitHub drops annotations past its per-step limit, so this is where the rest stays visible)."""
    _, left_out = annotated_findings(result.findings)
    blocking = [f for f in left_out if f.blocking]
    parts = [summary_markdown.rstrip("\n")]
    if blocking:
        parts += ["", f"<details><summary>{plural(len(blocking), 'more blocking error')} "
                      "(past GitHub's annotation limit)</summary>", ""]
        parts += [f"- `{f.path}:{f.line}` {f.gate}/{f.rule}: {escape_html(first_line(f.message))}"
                  for f in blocking[:JOB_SUMMARY_MAX_ERRORS]]
        if len(blocking) > JOB_SUMMARY_MAX_ERRORS:
            parts.append(f"- … and {len(blocking) - JOB_SUMMARY_MAX_ERRORS:,} more: "
                         "`atlas-bot check` lists every one")
        parts += ["", "</details>"]
    return "\n".join(parts) + "\n"


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def escape_html(text: str) -> str:
    """Text that stays text inside Markdown with HTML around it (``<``, ``>``, ``&``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
