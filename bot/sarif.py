"""``--format sarif``: a check result as a SARIF 2.1.0 log, for code scanning.

https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html. Each result carries the review's own finding
fingerprint as a partial fingerprint, so code scanning tracks one alert across pushes that move its lines (and
closes it when the finding goes), instead of guessing from line hashes.
"""

from __future__ import annotations

import json
from typing import Any

from bot.gates.syntax_errors import plain_text
from bot.model import CheckResult, Severity
from bot.render import SUGGESTION_INTRO
from bot.review import assign_fingerprints


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
SARIF_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTICE: "note"}
SRCROOT = "%SRCROOT%"


# The key under which a result's fingerprint is given; the version changes only if the fingerprint's recipe does.
FINGERPRINT_KEY = "atlasBotFinding/v1"


def result_to_sarif(result: CheckResult, *, tool_version: str) -> dict[str, Any]:
    """One run: a rule per gate/rule that fired, a result per finding, suggestions as SARIF fixes."""
    fingerprinted = assign_fingerprints(result, None)
    findings = [finding for finding, _ in fingerprinted]
    rule_ids = sorted({f"{f.gate}/{f.rule}" for f in findings})
    index = {rule_id: i for i, rule_id in enumerate(rule_ids)}
    rules = [{"id": rule_id, "name": rule_id.replace("/", "."),
              "shortDescription": {"text": f"Atlas quality gate {rule_id}"}} for rule_id in rule_ids]
    results = []
    for finding, fingerprint in fingerprinted:
        rule_id = f"{finding.gate}/{finding.rule}"
        region = {"startLine": max(1, finding.line), "endLine": max(1, finding.last_line)}
        location = {"physicalLocation": {"artifactLocation": {"uri": finding.path, "uriBaseId": SRCROOT},
                                         "region": region}}
        item: dict[str, Any] = {
            "ruleId": rule_id, "ruleIndex": index[rule_id], "level": SARIF_LEVELS[finding.severity],
            "message": {"text": plain_text(finding.message)}, "locations": [location],
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint},
            "properties": {"blocking": finding.blocking},
        }
        if finding.suggestion is not None:
            item["fixes"] = [{
                "description": {"text": SUGGESTION_INTRO.rstrip(":")},
                "artifactChanges": [{
                    "artifactLocation": {"uri": finding.path, "uriBaseId": SRCROOT},
                    "replacements": [{"deletedRegion": region,
                                      "insertedContent": {"text": finding.suggestion + "\n"}}],
                }],
            }]
        results.append(item)
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "atlas-bot", "version": tool_version, "rules": rules}},
        "originalUriBaseIds": {SRCROOT: {"description": {"text": "The repository root"}}},
        "results": results,
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(result: CheckResult, *, tool_version: str) -> str:
    """``--format sarif``: the SARIF 2.1.0 log, indented (code scanning uploads are read by people too)."""
    return json.dumps(result_to_sarif(result, tool_version=tool_version), ensure_ascii=False, indent=2)
