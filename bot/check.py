"""One check run: changed diagrams → mermaid verdicts → syntax fixes → gates → CheckResult.

This is the glue every entry point shares (CLI, GitHub App worker, Actions workflow). Git and the mermaid
workers are handed in; everything after them is the pure core.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

from bot.changes import collect_all, collect_changes
from bot.config import Config
from bot.counting import DiagramCounter
from bot.gates.engine import evaluate_diagram, skipped_file_finding
from bot.gates import fixes as fix_rules
from bot.gates.fixes import SyntaxFix, choose_fixes
from bot.gates.mermaid import MermaidPool, code_hash
from bot.gitrepo import GitRepo
from bot.model import CheckResult, DiagramResult, DiagramStatus, FileChange, SyntaxVerdict
from bot.progress import category_totals
from bot.progress_store import ProgressStore

ProgressCallback = Callable[[int, int], None]

# Cached suggestions are only valid for the fix rules that found them: their source is their revision.
FIXES_REVISION = hashlib.sha256(Path(fix_rules.__file__).read_bytes()).hexdigest()[:16]

# Statuses whose diagram text is new in this run and therefore goes through the gates.
CHECKED_STATUSES = frozenset({DiagramStatus.ADDED, DiagramStatus.MODIFIED, DiagramStatus.CHECKED})


def run_check(
    repo: GitRepo,
    config: Config,
    pool: MermaidPool,
    *,
    base: str,
    head: str,
    store: ProgressStore | None = None,
    on_progress: ProgressCallback | None = None,
) -> CheckResult:
    """Check the diagrams a pull request adds or modifies (from the merge base of base and head to head).

    ``store`` keeps diagram counts by blob between runs (the category totals need the base's counts).
    """
    base_sha, head_sha = repo.resolve(base), repo.resolve(head)
    changes = collect_changes(repo, base_sha, head_sha, max_bytes=config.max_file_bytes)
    before = DiagramCounter(repo, store).counts_at(base_sha)
    after = projected_counts(before, changes)
    return _evaluate(config, pool, changes, base=base_sha, head=head_sha, before=before, after=after,
                     on_progress=on_progress)


def run_all(
    repo: GitRepo,
    config: Config,
    pool: MermaidPool,
    *,
    rev: str,
    on_progress: ProgressCallback | None = None,
) -> CheckResult:
    """Check every diagram of every Markdown file at one revision."""
    sha = repo.resolve(rev)
    changes = collect_all(repo, sha, max_bytes=config.max_file_bytes)
    counts = {c.path: len(c.diagrams) for c in changes if c.diagrams}
    return _evaluate(config, pool, changes, base=None, head=sha, before=counts, after=counts,
                     on_progress=on_progress)


def projected_counts(before: Mapping[str, int], changes: Iterable[FileChange]) -> dict[str, int]:
    """Diagram counts per file after the changes land on top of ``before`` (the base branch's counts).

    A file's count moves by the PR's own difference (head minus merge base), so diagrams the base branch
    gained since the PR branched off are kept.
    """
    after = Counter(before)
    for change in changes:
        if change.skip_reason:
            continue
        old_count = sum(1 for d in change.diagrams if d.old is not None)
        new_count = sum(1 for d in change.diagrams if d.new is not None)
        after[change.old_path or change.path] -= old_count
        after[change.path] += new_count
    return {path: count for path, count in after.items() if count > 0}


def syntax_fixes(pool: MermaidPool, items: Sequence[tuple[str, SyntaxVerdict]]) -> list[SyntaxFix | None]:
    """``choose_fixes`` over the pool, remembered in the pool's cache by diagram text and fix-rules revision."""
    cache = pool.cache
    if cache is None or not items:
        return choose_fixes(items, pool.parse_many)
    version = f"{pool.version}/{FIXES_REVISION}"
    shas = [code_hash(code) for code, _ in items]
    known = cache.get_fixes(version, shas)
    todo = [i for i, sha in enumerate(shas) if sha not in known]
    found = dict(zip(todo, choose_fixes([items[i] for i in todo], pool.parse_many)))
    cache.put_fixes(version, {shas[i]: json.dumps(asdict(fix) if fix else None) for i, fix in found.items()})
    return [found[i] if i in found else _fix_from_json(known[sha]) for i, sha in enumerate(shas)]


def _fix_from_json(text: str) -> SyntaxFix | None:
    data = json.loads(text)
    return None if data is None else SyntaxFix(data["start"], data["end"], tuple(data["replacement"]),
                                               data["description"])


def _evaluate(
    config: Config,
    pool: MermaidPool,
    changes: tuple[FileChange, ...],
    *,
    base: str | None,
    head: str,
    before: Mapping[str, int],
    after: Mapping[str, int],
    on_progress: ProgressCallback | None,
) -> CheckResult:
    work = [(change, item) for change in changes for item in change.diagrams if item.status in CHECKED_STATUSES]
    verdicts = pool.parse_many([item.new.code for _, item in work], on_progress=on_progress)
    failing = [i for i, verdict in enumerate(verdicts) if not verdict.ok]
    fixes = dict(zip(failing, syntax_fixes(pool, [(work[i][1].new.code, verdicts[i]) for i in failing])))
    results: list[DiagramResult] = []
    for i, ((change, item), verdict) in enumerate(zip(work, verdicts)):
        results.append(evaluate_diagram(
            config, item.new, status=item.status, category=config.category_of(change.path),
            file_text=change.text, verdict=verdict, syntax_fix=fixes.get(i),
        ))
    return CheckResult(
        base=base,
        head=head,
        diagrams=tuple(results),
        file_findings=tuple(skipped_file_finding(c) for c in changes if c.skip_reason),
        totals=category_totals(config, before, after),
        removed=tuple(item.old for c in changes for item in c.diagrams
                      if item.status is DiagramStatus.REMOVED and item.old is not None),
    )
