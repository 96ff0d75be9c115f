"""Gates against hand labels: per gate a confusion matrix, balanced accuracy, and every disagreement.

A labels file is JSON Lines, one labelled diagram a line:
``{"commit": SHA, "path": "docs/...", "line": N, "labels": {"three_am": {"pass": true, "why": "..."}, ...}}``
(``line`` is the fence line; ``commit`` may be omitted when the caller gives a revision for every row). Each
row's file is read at its commit, its diagram found by fence line and judged by the gates alone: the syntax
verdict is not asked of mermaid (the content gates do not use it), so scoring needs no Node.

Pure: the caller reads the files (``read_file``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot.config import Config
from bot.content import extract_diagrams
from bot.gates.engine import evaluate_diagram
from bot.model import DiagramStatus, Finding, SyntaxVerdict

# The gate every diagram is scored without: mermaid's verdict is not asked for.
UNSCORED_GATES = frozenset({"technical"})
_PARSED = SyntaxVerdict(ok=True)


class LabelsError(ValueError):
    """A labels file line that cannot be used; ``str()`` names the line."""


@dataclass(frozen=True)
class Label:
    commit: str | None
    path: str
    line: int
    gates: Mapping[str, tuple[bool, str]]  # gate id → (passes, why)


@dataclass(frozen=True)
class Disagreement:
    path: str
    line: int
    expected: bool
    why: str
    reasons: tuple[str, ...]  # the gate's own findings (empty when it passed)


@dataclass
class GateScore:
    """Counts with "pass" as the positive class."""

    gate: str
    true_pass: int = 0
    false_pass: int = 0
    true_fail: int = 0
    false_fail: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)

    @property
    def balanced_accuracy(self) -> float | None:
        """The mean of the pass recall and the fail recall (None while either class has no label): failing
        every diagram scores 0.5 however skewed the labels are."""
        passes, fails = self.true_pass + self.false_fail, self.true_fail + self.false_pass
        if not passes or not fails:
            return None
        return (self.true_pass / passes + self.true_fail / fails) / 2


@dataclass(frozen=True)
class Report:
    scores: tuple[GateScore, ...]
    missing: tuple[str, ...]  # labelled diagrams that were not found, as "path:line (why)"


def read_labels(lines: Iterable[str], source: str = "labels") -> list[Label]:
    out = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
            gates = {gate: (bool(entry["pass"]), str(entry.get("why", ""))) for gate, entry in row["labels"].items()}
            out.append(Label(row.get("commit"), str(row["path"]), int(row["line"]), gates))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LabelsError(f"{source}:{number}: not a labelled diagram ({exc})") from None
    return out


def every_category(config: Config) -> Config:
    """The configuration with every gate and rule judging every diagram (``categories: "*"``): how each gate
    is calibrated on its own, whatever the shipped scopes."""
    gates = tuple(
        dataclasses.replace(gate, categories=None,
                            rules=tuple(dataclasses.replace(rule, categories=None) for rule in gate.rules))
        for gate in config.gates
    )
    return dataclasses.replace(config, gates=gates)


def score(config: Config, labels: Sequence[Label], read_file: Callable[[str | None, str], str | None]) -> Report:
    """Each labelled gate's verdict against the label. A gate that does not apply to the diagram's category
    counts as failing it (it would not mark the diagram as passing)."""
    scores: dict[str, GateScore] = {}
    missing: list[str] = []
    for label in labels:
        text = read_file(label.commit, label.path)
        if text is None:
            missing.append(f"{label.path}:{label.line} (no such file at {label.commit or 'the revision'})")
            continue
        diagram = next((d for d in extract_diagrams(label.path, text) if d.line == label.line), None)
        if diagram is None:
            missing.append(f"{label.path}:{label.line} (no mermaid fence on that line)")
            continue
        result = evaluate_diagram(config, diagram, status=DiagramStatus.UNCHANGED,
                                  category=config.category_of(label.path), file_text=text, verdict=_PARSED,
                                  syntax_fix=None)
        for gate, (expected, why) in label.gates.items():
            if gate in UNSCORED_GATES:
                continue
            entry = scores.setdefault(gate, GateScore(gate))
            actual = result.gates_passed.get(gate, False)
            if actual and expected:
                entry.true_pass += 1
            elif actual:
                entry.false_pass += 1
            elif expected:
                entry.false_fail += 1
            else:
                entry.true_fail += 1
            if actual != expected:
                reasons = tuple(_reason(f) for f in result.findings if f.gate == gate)
                entry.disagreements.append(Disagreement(label.path, label.line, expected, why, reasons))
    return Report(tuple(scores[g] for g in _gate_order(config, scores)), tuple(missing))


def _gate_order(config: Config, scores: Mapping[str, GateScore]) -> list[str]:
    known = [gate.id for gate in config.gates if gate.id in scores]
    return known + sorted(set(scores) - set(known))


def _reason(finding: Finding) -> str:
    return f"line {finding.line} [{finding.severity.value}] {finding.message}"


def render_report(report: Report, config: Config, *, disagreements: bool = True) -> str:
    titles = {gate.id: gate.title for gate in config.gates}
    lines = ["| Gate | Labelled pass: gate passes | gate fails | Labelled fail: gate fails | gate passes "
             "| Balanced accuracy |", "|---|---:|---:|---:|---:|---:|"]
    for entry in report.scores:
        accuracy = entry.balanced_accuracy
        shown = "n/a (one class only)" if accuracy is None else f"{accuracy:.1%}"
        lines.append(f"| {titles.get(entry.gate, entry.gate)} | {entry.true_pass} | {entry.false_fail} "
                     f"| {entry.true_fail} | {entry.false_pass} | {shown} |")
    if disagreements:
        for entry in report.scores:
            if not entry.disagreements:
                continue
            lines += ["", f"{titles.get(entry.gate, entry.gate)}: {len(entry.disagreements)} disagreement(s)"]
            for item in entry.disagreements:
                verdict = "labelled pass, gate fails" if item.expected else "labelled fail, gate passes"
                lines.append(f"- {item.path}:{item.line}: {verdict}")
                lines.append(f"    label: {item.why}")
                for reason in item.reasons or ("(no finding: the gate passed)",):
                    lines.append(f"    gate:  {reason}")
    if report.missing:
        lines += ["", f"Not found ({len(report.missing)}):", *(f"- {m}" for m in report.missing)]
    return "\n".join(lines) + "\n"
