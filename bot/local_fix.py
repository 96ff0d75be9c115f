"""``atlas-bot check --fix``: the findings' suggestions applied to a file's text, and the diff they make.

A suggestion is the exact text that replaces file lines ``line``..``end_line`` (see bot.model.Finding); those
offered are already verified (a syntax fix is only offered when mermaid parses the corrected diagram). Two
suggestions for overlapping lines cannot both apply to the same text: the first in file order wins and the
other is left for the next run, which sees the new text.

Pure: text and findings in, text out.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

from bot.model import Finding


@dataclass(frozen=True)
class FixOutcome:
    text: str
    applied: int
    overlapping: int


def apply_suggestions(text: str, findings: Iterable[Finding]) -> FixOutcome:
    """``text`` with every suggestion applied whose lines no earlier suggestion already replaced."""
    lines = text.splitlines(keepends=True)
    chosen: list[Finding] = []
    taken_until = 0
    # A suggestion for lines the text no longer has belongs to another version of the file.
    candidates = sorted((f for f in findings if f.suggestion is not None and 1 <= f.line <= f.last_line <= len(lines)),
                        key=lambda f: (f.line, f.last_line))
    for finding in candidates:
        if finding.line <= taken_until:
            continue
        chosen.append(finding)
        taken_until = finding.last_line
    for finding in reversed(chosen):
        last = _line_ending(lines[finding.last_line - 1])
        inner = last or _line_ending(lines[0]) or "\n"
        parts = finding.suggestion.split("\n") if finding.suggestion else []
        lines[finding.line - 1:finding.last_line] = [part + inner for part in parts[:-1]] + [
            part + last for part in parts[-1:]]
    return FixOutcome("".join(lines), applied=len(chosen), overlapping=len(candidates) - len(chosen))


def _line_ending(line: str) -> str:
    """The line's own ending (a last line without one gets none), so a CRLF file stays CRLF."""
    for ending in ("\r\n", "\n", "\r"):
        if line.endswith(ending):
            return ending
    return ""


def unified_diff(path: str, before: str, after: str) -> str:
    """``git diff``-style text of one file's change (empty when nothing changed)."""
    return "".join(difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                        fromfile=f"a/{path}", tofile=f"b/{path}"))
