"""Inline suppressions: a mermaid comment inside a diagram that silences one rule for that diagram.

    %% atlas-bot: ignore new_hire/orphan_nodes -- the legend nodes are meant to stand alone

A suppression names ``<gate>/<rule>`` (``<gate>/*`` for every rule of a gate) and says why after ``--``. It
removes the diagram's findings of that rule, and the gate it belonged to passes again when nothing else in it
fails. A suppression is itself reported when it suppresses nothing (it has outlived its finding) or gives no
reason (then it suppresses nothing either: an exemption nobody explained is not taken).

Pure: a DiagramResult in, a DiagramResult out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from bot.model import DiagramResult, Finding, Severity

GATE = "technical"
RULE_UNUSED = "unused_suppression"
RULE_NO_REASON = "suppression_without_reason"
ALL_RULES = "*"
EXAMPLE = "%% atlas-bot: ignore new_hire/orphan_nodes -- legend nodes stand alone"
MSG_UNUSED = ("This suppression of {target} silences nothing: the diagram has no such finding (any more). "
              "Remove the comment, or correct the gate/rule it names.")
MSG_NO_REASON = ("This suppression of {target} gives no reason, so it is not applied. Say why after `--`, "
                 f"e.g. `{EXAMPLE}`.")

_DIRECTIVE = re.compile(
    r"^\s*%%\s*atlas-bot:\s*ignore\s+(?P<gate>[\w-]+)/(?P<rule>[\w-]+|\*)(?:\s+--\s*(?P<reason>.*?))?\s*$"
)
# Every directive holds this text (a plain substring test rules the rest out).
_MARK = "atlas-bot:"
# Gate results of these severities make a gate fail (notices are advice), as in bot.gates.engine.
_FAILING = (Severity.ERROR, Severity.WARNING)


@dataclass(frozen=True)
class Suppression:
    """One ``%% atlas-bot: ignore`` comment: what it names, why, and the file line it sits on."""

    gate: str
    rule: str
    reason: str
    line: int

    @property
    def target(self) -> str:
        return f"{self.gate}/{self.rule}"

    def covers(self, finding: Finding) -> bool:
        return finding.gate == self.gate and self.rule in (ALL_RULES, finding.rule)


def suppressions_in(result: DiagramResult) -> list[Suppression]:
    """The suppression comments of a diagram, with the file line of each."""
    diagram = result.diagram
    if _MARK not in diagram.code:  # most diagrams have none: skip reading them line by line
        return []
    found = []
    for number, text in zip(diagram.line_map, diagram.code.splitlines()):
        match = _DIRECTIVE.match(text)
        if match:
            found.append(Suppression(match["gate"], match["rule"], (match["reason"] or "").strip(), number))
    return found


def apply_suppressions(result: DiagramResult) -> DiagramResult:
    """The result with suppressed findings removed, gates re-judged, and findings about the suppressions."""
    suppressions = suppressions_in(result)
    if not suppressions:
        return result
    active = [s for s in suppressions if s.reason]
    kept: list[Finding] = []
    used: set[Suppression] = set()
    for finding in result.findings:
        covering = [s for s in active if s.covers(finding)]
        used.update(covering)
        if not covering:
            kept.append(finding)
    touched = {f.gate for f in result.findings} - {f.gate for f in kept if f.severity in _FAILING}
    gates_passed = {gate: passed or gate in touched for gate, passed in result.gates_passed.items()}
    path = result.diagram.path
    for suppression in suppressions:
        if not suppression.reason:
            kept.append(_about(path, suppression, RULE_NO_REASON, MSG_NO_REASON))
        elif suppression not in used:
            kept.append(_about(path, suppression, RULE_UNUSED, MSG_UNUSED))
    return replace(result, findings=tuple(kept), gates_passed=gates_passed)


def _about(path: str, suppression: Suppression, rule: str, message: str) -> Finding:
    return Finding(gate=GATE, rule=rule, severity=Severity.WARNING, path=path, line=suppression.line,
                   message=message.format(target=f"`{suppression.target}`"))
