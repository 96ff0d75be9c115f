"""Plain data shared by the pure core: diagrams, changes, findings, results.

Nothing here performs I/O or imports PyGithub or GitPython; every module that talks to the outside world
returns these types, and every pure module takes them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTICE = "notice"


class DiagramStatus(str, enum.Enum):
    """What a pull request did to one diagram (``CHECKED`` is used by ``--all`` runs)."""

    ADDED = "added"
    MODIFIED = "modified"
    UNCHANGED = "unchanged"
    MOVED = "moved"
    REMOVED = "removed"
    CHECKED = "checked"


@dataclass(frozen=True)
class Diagram:
    """One mermaid fence in one Markdown file.

    ``line`` is the 1-based file line of the opening fence; ``line_map[i]`` is the 1-based file line of code
    line ``i`` (so a parser error on diagram line ``n`` sits on file line ``line_map[n - 1]``).
    ``index`` is the fence's position among the file's mermaid fences (0-based).
    """

    path: str
    line: int
    code: str
    line_map: tuple[int, ...]
    info: str = "mermaid"
    index: int = 0
    closed: bool = True

    @property
    def end_line(self) -> int:
        """Last file line that belongs to the diagram's code (the fence line itself when it is empty)."""
        return self.line_map[-1] if self.line_map else self.line

    @property
    def declared_type(self) -> str:
        """The first keyword of the first meaningful line (``flowchart``, ``sequenceDiagram``, ...)."""
        for raw in self.code.splitlines():
            text = raw.strip()
            if not text or text.startswith("%%") or text == "---":
                continue
            return text.split()[0].rstrip(":;")
        return ""


@dataclass(frozen=True)
class DiagramChange:
    """One diagram's fate between base and head; ``old`` is set for modified, moved and removed diagrams."""

    status: DiagramStatus
    new: Diagram | None
    old: Diagram | None = None

    @property
    def path(self) -> str:
        return (self.new or self.old).path  # type: ignore[union-attr]


@dataclass(frozen=True)
class FileChange:
    """A changed Markdown file between the merge base and head.

    ``change`` is git's letter (A, M, D, R). ``skip_reason`` is set when the file could not be read as
    Markdown (binary, not UTF-8, too large); such a file has no diagrams and yields a finding instead.
    ``text`` is the head version (empty for deleted or skipped files) for gates that read the section
    around a diagram. ``blob`` is git's id of the head version when the file is checked whole from a tree
    (``--all``): with the path it identifies the text without reading it, so a file whose results are stored
    has only its diagrams (from those results) and an empty ``text``.
    """

    path: str
    change: str
    old_path: str | None = None
    diagrams: tuple[DiagramChange, ...] = ()
    skip_reason: str | None = None
    text: str = ""
    blob: str | None = None


@dataclass(frozen=True)
class SyntaxVerdict:
    """mermaid.parse's verdict on one diagram text.

    ``error_line`` is the 1-based line inside the diagram code the parser blamed, when it said one.
    ``type`` is mermaid's detected diagram type (``flowchart-v2``, ``sequence``, ...) when the parse worked.
    """

    ok: bool
    error: str | None = None
    error_line: int | None = None
    type: str | None = None


@dataclass(frozen=True)
class Finding:
    """One thing a gate found, explained: what is missing, where, and what would pass.

    ``line``..``end_line`` are 1-based file lines; ``suggestion``, when set, is the exact text that replaces
    those lines (without a trailing newline) and is known to fix the finding.
    """

    gate: str
    rule: str
    severity: Severity
    path: str
    line: int
    message: str
    end_line: int | None = None
    suggestion: str | None = None
    blocking: bool = False

    @property
    def last_line(self) -> int:
        return self.end_line if self.end_line is not None else self.line


@dataclass(frozen=True)
class DiagramResult:
    diagram: Diagram
    status: DiagramStatus
    syntax: SyntaxVerdict
    findings: tuple[Finding, ...]
    # Gate id -> whether the gate's pass condition holds (only gates that apply to the diagram's category).
    gates_passed: dict[str, bool] = field(default_factory=dict)
    # Gates that pass by their condition but where an advice rule (one the condition does not name) fired.
    gates_advised: frozenset[str] = frozenset()
    # A modified diagram's version at the merge base and what the gates found there: a finding the same diagram
    # already had is not new to the pull request (None when there is no base version to compare with).
    base_diagram: Diagram | None = None
    base_findings: tuple[Finding, ...] = ()

    @property
    def passed(self) -> bool:
        return not any(f.blocking for f in self.findings)


@dataclass(frozen=True)
class CategoryTotal:
    """Diagram count of one category folder before and after a change (or at one revision: before == after)."""

    folder: str
    title: str
    before: int
    after: int
    target: int | None


@dataclass(frozen=True)
class CheckResult:
    """Everything one check run produced; the review, the summary, the CLI output are all rendered from it."""

    base: str | None
    head: str
    diagrams: tuple[DiagramResult, ...]
    file_findings: tuple[Finding, ...] = ()
    totals: tuple[CategoryTotal, ...] = ()
    removed: tuple[Diagram, ...] = ()
    # False when a later run may answer differently: a mermaid timeout or crash, a suggestion search that met
    # one, or gates cut short by the time budget.
    settled: bool = True

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.file_findings + tuple(f for d in self.diagrams for f in d.findings)

    @property
    def passed(self) -> bool:
        return not any(f.blocking for f in self.findings)
