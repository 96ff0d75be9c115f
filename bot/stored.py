"""Plain-text forms of derived results (syntax suggestions, a file's gate results) and the version strings they
are stored under.

A stored result is only read back under the exact version that produced it: the mermaid version, the source of
the code that computed it, and the merged configuration. Anything else that changes the result is in the key.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from bot.gates.fixes import SyntaxFix
from bot.model import (
    Diagram,
    DiagramResult,
    DiagramStatus,
    Finding,
    Severity,
    SyntaxVerdict,
)


def source_revision(*modules: ModuleType) -> str:
    """A short digest of the modules' source files: results they computed are stale once any of them changes."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


def config_digest(config: Any) -> str:
    """A digest of a merged configuration's content (sets sorted, so it is the same in every process)."""
    return hashlib.sha256(json.dumps(_plain(config), sort_keys=True).encode()).hexdigest()[:16]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(item) for item in value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def fix_to_json(fix: SyntaxFix | None) -> str:
    """A suggestion as stored: the fields in order, as ``dataclasses.asdict`` gives them, built by hand (asdict
    deep-copies every value; tests/test_stored.py holds the keys to the dataclass)."""
    if fix is None:
        return "null"
    return json.dumps({"start": fix.start, "end": fix.end, "replacement": fix.replacement,
                       "description": fix.description})


def fix_from_json(text: str) -> SyntaxFix | None:
    data = json.loads(text)
    if data is None:
        return None
    return SyntaxFix(data["start"], data["end"], tuple(data["replacement"]), data["description"])


def results_to_json(results: Sequence[DiagramResult]) -> str:
    """A file's gate results with their diagrams, so that a file seen before need not be read or extracted
    again (the merge-base fields are not stored: they belong to one pull request, never to a file's text).

    The dicts are built by hand, keys in field order (what ``dataclasses.asdict`` gave, at a fraction of its
    cost: it deep-copies every value); ``tests/test_stored.py`` holds the field lists to the dataclasses."""
    return json.dumps([
        {
            "diagram": _diagram_dict(result.diagram),
            "status": result.status.value,
            "syntax": _verdict_dict(result.syntax),
            "findings": [_finding_dict(f) for f in result.findings],
            "gates_passed": result.gates_passed,
            "gates_advised": sorted(result.gates_advised),
        }
        for result in results
    ])


def _diagram_dict(diagram: Diagram) -> dict[str, Any]:
    # line_map as the bounds of its range: extraction puts code lines on consecutive file lines
    # (bot.content), and a list of every line number costs more to decode than all the rest.
    line_map = diagram.line_map
    bounds = [line_map[0], line_map[-1] + 1] if line_map else [diagram.line + 1] * 2
    return {"path": diagram.path, "line": diagram.line, "code": diagram.code, "line_map": bounds,
            "info": diagram.info, "index": diagram.index, "closed": diagram.closed}


def _verdict_dict(verdict: SyntaxVerdict) -> dict[str, Any]:
    return {"ok": verdict.ok, "error": verdict.error, "error_line": verdict.error_line, "type": verdict.type}


def _finding_dict(finding: Finding) -> dict[str, Any]:
    return {
        "gate": finding.gate,
        "rule": finding.rule,
        "severity": finding.severity.value,
        "path": finding.path,
        "line": finding.line,
        "message": finding.message,
        "end_line": finding.end_line,
        "suggestion": finding.suggestion,
        "blocking": finding.blocking,
    }


def results_from_json(text: str) -> list[DiagramResult]:
    """The results stored by ``results_to_json``, diagrams included, in order."""
    return [
        DiagramResult(
            diagram=_diagram_from(item["diagram"]),
            status=_STATUSES[item["status"]],
            syntax=_verdict_from(item["syntax"]),
            findings=tuple(_finding_from(f) for f in item["findings"]),
            gates_passed=item["gates_passed"],
            gates_advised=frozenset(item["gates_advised"]),
        )
        for item in json.loads(text)
    ]


def _diagram_from(data: Mapping[str, Any]) -> Diagram:
    return Diagram(data["path"], data["line"], data["code"], tuple(range(*data["line_map"])), data["info"],
                   data["index"], data["closed"])


# Enum members by value: calling the enum costs more than all the rest of rebuilding a stored finding.
_STATUSES = {status.value: status for status in DiagramStatus}
_SEVERITIES = {severity.value: severity for severity in Severity}


def _verdict_from(data: Mapping[str, Any]) -> SyntaxVerdict:
    return SyntaxVerdict(data["ok"], data["error"], data["error_line"], data["type"])


def _finding_from(data: Mapping[str, Any]) -> Finding:
    return Finding(data["gate"], data["rule"], _SEVERITIES[data["severity"]], data["path"], data["line"],
                   data["message"], data["end_line"], data["suggestion"], data["blocking"])
