"""What the bot posts, rendered as GitHub would (tests/github_page.py) in headless Chromium: nothing reaches past
the 880 px comment column, every mermaid block renders, a 400-diagram pull request's summary stays under
2,000 px.

Skipped with an install hint where Chromium is missing; never skipped in CI (``CI=true``).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone

import pytest

import github_page
from bot.config import Category, Config
from bot.model import (
    CategoryTotal,
    CheckResult,
    Diagram,
    DiagramResult,
    DiagramStatus,
    Finding,
    Severity,
    SyntaxVerdict,
)
from bot.progress import History, HistoryPoint, MergeRecord, build_snapshot, render_progress_region
from bot.review import build_publication

HEAD = "0123456789abcdef0123456789abcdef01234567"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SUMMARY_MAX_PX = 2_000
GATES = {"technical": True, "three_am": True, "new_hire": True, "cfo": True, "incident": True}


@pytest.fixture(scope="module", autouse=True)
def _chromium() -> None:
    reason = github_page.missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the screenshot test must run in CI: {reason}")
        pytest.skip(reason)


def _big_pull_request(diagrams: int = 400, blocking: int = 75) -> CheckResult:
    """``diagrams`` added diagrams in long-named files, ``blocking`` of them with a syntax error (and a
    suggestion), the rest with warnings and advice, like a pull request adding a whole category."""
    results = []
    for n in range(diagrams):
        stem = "amazon-aws-infrastructure-breakdown" if n % 3 else "database-spend-strategies"
        path = f"docs/costs/{stem}-{n // 3}.md"
        line = 3 + 40 * (n % 3)
        code = f"flowchart LR\n    CDN{n}[Edge (CDN)] --> API{n}[API]\n    API{n} --> DB{n}[(Postgres)]"
        diagram = Diagram(path, line, code, (line + 1, line + 2, line + 3))
        findings = [Finding("cfo", "cost", Severity.WARNING, path, line, "No infrastructure cost: add e.g. "
                            "`$12,000/month` to a node label.", end_line=line + 4)]
        gates = dict(GATES, cfo=False)
        if n < blocking:
            findings.append(Finding("technical", "syntax", Severity.ERROR, path, line + 2,
                                    "The label `Edge (CDN)` has brackets inside brackets: quote it.",
                                    suggestion=f'    CDN{n}["Edge (CDN)"] --> API{n}[API]', blocking=True))
            gates["technical"] = False
        if n % 5 == 0:
            findings.append(Finding("new_hire", "acronym", Severity.NOTICE, path, line + 2,
                                    "CDN is not explained in this file."))
        results.append(DiagramResult(diagram, DiagramStatus.ADDED, SyntaxVerdict(ok=n >= blocking), tuple(findings),
                                     gates, gates_advised=frozenset({"new_hire"}) if n % 5 == 0 else frozenset()))
    return CheckResult(base="b" * 40, head=HEAD, diagrams=tuple(results),
                       totals=(CategoryTotal("costs", "Cost Breakdowns", 0, diagrams, 60),
                               CategoryTotal("systems", "Architecture Deep-Dives", 900, 900, 240)))


def _patches(result: CheckResult) -> dict[str, str]:
    """Every file added in full: every finding is on a changed line."""
    return {path: "@@ -0,0 +1,130 @@\n" + "+x\n" * 130 for path in {d.diagram.path for d in result.diagrams}}


def _progress_region() -> str:
    titles = ("Architecture Deep-Dives", "Incident Anatomies", "Debugging Guides", "Guarantees", "Mechanisms",
              "Patterns", "Performance Profiles", "Scale Journeys", "Cost Breakdowns", "Migration Playbooks")
    config = Config(categories=tuple(Category(f"c{i}", title, 60 + 20 * i) for i, title in enumerate(titles)))
    snapshot = build_snapshot(config, HEAD, {f"docs/c{i}/f{j}.md": 3 + i for i in range(10) for j in range(20)})
    history = History((HistoryPoint(NOW, snapshot.total.diagrams, HEAD[:12]),))
    for week in range(7):
        history = history.with_merge(MergeRecord(40 + week, f"Add diagrams, batch {week + 1}",
                                                 NOW - timedelta(weeks=7 - week), f"{week:040x}", 60 + week))
    return render_progress_region(snapshot, history, 5, {"Technical": (800, 1000)}, now=NOW)


def _assert_legible(markdown: str, *, dark: bool = False) -> github_page.Measure:
    measured = github_page.measure(markdown, dark=dark)
    assert measured.overflow == [], f"past the {github_page.COLUMN_PX} px column: {measured.overflow}"
    blocks = len(re.findall(r"^```mermaid$", markdown, flags=re.MULTILINE))
    assert len(measured.mermaid) == blocks
    assert all(m["ok"] for m in measured.mermaid), measured.mermaid
    return measured


def test_a_400_diagram_pull_requests_summary_is_short_and_fits_the_column() -> None:
    result = _big_pull_request()
    publication = build_publication(result, Config(), pr_patches=_patches(result), head_sha=HEAD,
                                    repository_url="https://github.com/acme/atlas")
    measured = _assert_legible(publication.summary)
    assert measured.height < SUMMARY_MAX_PX


def test_the_review_and_its_comments_fit_the_column() -> None:
    result = _big_pull_request(diagrams=120, blocking=40)
    review = build_publication(result, Config(), pr_patches=_patches(result), head_sha=HEAD).review
    assert review is not None
    # The body, then the first comments as the conversation shows them under it.
    page = "\n\n---\n\n".join([review.body, *(c.body for c in review.comments[:5])])
    _assert_legible(page)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_progress_issue_renders_its_charts(dark: bool) -> None:
    _assert_legible(_progress_region(), dark=dark)
