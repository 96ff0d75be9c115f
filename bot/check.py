"""One check run: changed diagrams → mermaid verdicts → syntax fixes → gates → CheckResult.

This is the glue every entry point shares (CLI, GitHub App worker, Actions workflow). Git and the mermaid
workers are handed in; everything after them is the pure core.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

from bot import content, model, stored
from bot.changes import collect_changes, texts_at, whole_files
from bot.config import Config
from bot.gates import checks, engine, syntax_errors
from bot.gates import fixes as fix_rules
from bot.gates.engine import BUDGET_RULE, change_deadline, evaluate_diagram, skipped_file_finding, with_syntax_fix
from bot.gates.fixes import SyntaxFix, apply_fix, candidate_fixes, choose_fixes
from bot.gates.mermaid import (
    CACHE_TABLE,
    FILE_RESULTS,
    SUGGESTIONS,
    MermaidPool,
    Prefetch,
    code_hash,
    is_transient,
)
from bot.gitrepo import GitRepo
from bot.model import (
    CheckResult,
    DiagramChange,
    DiagramResult,
    DiagramStatus,
    FileChange,
    SyntaxVerdict,
)
from bot.progress import category_totals
from bot.stored import (
    config_digest,
    fix_from_json,
    fix_to_json,
    results_from_json,
    results_to_json,
    source_revision,
)
from bot.suppress import apply_suppressions

if TYPE_CHECKING:
    from bot.progress_store import ProgressStore

ProgressCallback = Callable[[int, int], None]

# Stored suggestions and gate results are only valid for the code that computed them: its source is its revision.
FIXES_REVISION = source_revision(fix_rules, stored)
RESULTS_REVISION = source_revision(fix_rules, engine, checks, syntax_errors, model, content, stored)

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
    from bot.counting import DiagramCounter  # only a change needs the base's counts: --all starts faster

    base_sha, head_sha = repo.resolve(base), repo.resolve(head)
    changes = collect_changes(repo, base_sha, head_sha, max_bytes=config.max_file_bytes)
    before = DiagramCounter(repo, store).counts_at(base_sha)
    after = projected_counts(before, changes)
    result = _evaluate(config, pool, changes, base=base_sha, head=head_sha, before=before, after=after,
                       on_progress=on_progress)
    return with_base_findings(repo, config, pool, result, changes, repo.merge_base(base_sha, head_sha))


def with_base_findings(repo: GitRepo, config: Config, pool: MermaidPool, result: CheckResult,
                       changes: Iterable[FileChange], merge_base: str) -> CheckResult:
    """The result with each modified diagram's merge-base version and the gates' findings on it, so the review
    can tell what a pull request brings from what was already there (verdicts come from the pool's cache)."""
    olds = {(c.path, item.new.index): item.old for c in changes for item in c.diagrams
            if item.status is DiagramStatus.MODIFIED and item.new is not None and item.old is not None}
    if not olds:
        return result
    texts = texts_at(repo, merge_base, {old.path for old in olds.values()})
    verdicts = dict(zip(olds, pool.parse_many([old.code for old in olds.values()]), strict=True))

    def with_base(item: DiagramResult) -> DiagramResult:
        key = (item.diagram.path, item.diagram.index)
        old = olds.get(key)
        if old is None:
            return item
        at_base = evaluate_diagram(config, old, status=DiagramStatus.MODIFIED, category=config.category_of(old.path),
                                   file_text=texts.get(old.path, ""), verdict=verdicts[key], syntax_fix=None)
        return replace(item, base_diagram=old, base_findings=at_base.findings)

    return replace(result, diagrams=tuple(map(with_base, result.diagrams)))


def run_all(
    repo: GitRepo,
    config: Config,
    pool: MermaidPool,
    *,
    rev: str,
    on_progress: ProgressCallback | None = None,
) -> CheckResult:
    """Check every diagram of every Markdown file at one revision. A file whose results are stored is looked
    up by its path and blob id, and neither read nor extracted."""
    sha = repo.resolve(rev)
    listed = repo.list_files(sha)
    stored = _stored_whole_files(pool, config, listed)
    changes = whole_files(repo, listed, max_bytes=config.max_file_bytes,
                          known={entry: [result.diagram for result in results] for entry, results in stored.items()})
    return run_files(config, pool, changes, head=sha, on_progress=on_progress,
                     stored={path: results for (path, _), results in stored.items()})


def _stored_whole_files(pool: MermaidPool, config: Config,
                        files_at: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[DiagramResult]]:
    """Stored results of whole files, by (path, blob id), looked up in one query."""
    if not pool.cache:
        return {}
    keys = {entry: whole_file_key(*entry) for entry in files_at}
    found = pool.cache.get_stored(FILE_RESULTS, file_results_version(pool, config), keys.values())
    return {entry: results_from_json(found[key]) for entry, key in keys.items() if key in found}


def run_files(
    config: Config,
    pool: MermaidPool,
    changes: tuple[FileChange, ...],
    *,
    head: str,
    on_progress: ProgressCallback | None = None,
    stored: Mapping[str, Sequence[DiagramResult]] = MappingProxyType({}),
) -> CheckResult:
    """Check every diagram of whole files (a revision's, or files read from disk: ``bot.changes.collect_paths``).

    ``stored`` holds the results of files already looked up, by path (those files were not read)."""
    counts = {c.path: len(c.diagrams) for c in changes if c.diagrams}
    return _evaluate(config, pool, changes, base=None, head=head, before=counts, after=counts,
                     on_progress=on_progress, stored=stored)


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


class _TransientWatch:
    """A pool as one step of a run sees it, noting whether any verdict it handed out was transient."""

    def __init__(self, pool: MermaidPool) -> None:
        self.pool, self.version, self.cache = pool, pool.version, pool.cache
        self.seen = False

    def parse_many(self, codes: Sequence[str], on_progress: ProgressCallback | None = None) -> list[SyntaxVerdict]:
        verdicts = self.pool.parse_many(codes, on_progress=on_progress)
        self.seen = self.seen or any(map(is_transient, verdicts))
        return verdicts


class _GateClock:
    """Seconds spent evaluating gates in one run: the clock a change's time budget is measured on, since gates
    run while mermaid parses and waiting for verdicts is not gate time."""

    def __init__(self) -> None:
        self._spent = 0.0
        self._since: float | None = None

    def __call__(self) -> float:
        return self._spent + (0.0 if self._since is None else time.monotonic() - self._since)

    @contextmanager
    def running(self) -> Iterator[None]:
        self._since = time.monotonic()
        try:
            yield
        finally:
            self._spent += time.monotonic() - self._since
            self._since = None


def syntax_fixes(
    pool: MermaidPool,
    items: Sequence[tuple[str, SyntaxVerdict]],
    candidates: Sequence[list[SyntaxFix] | None] | None = None,
) -> list[SyntaxFix | None]:
    """``choose_fixes`` over the pool, remembered in the pool's cache by diagram text and fix-rules revision
    (``candidates`` as for ``choose_fixes``).

    Diagrams whose verdict is transient (a timeout or crash) get no suggestion; when a candidate's parse was
    transient, "no suggestion" is not remembered, since the candidate may parse next time.
    """
    wanted = [i for i, (_, verdict) in enumerate(items) if not is_transient(verdict)]
    keys = {i: code_hash(items[i][0]) for i in wanted}
    version = f"{pool.version}/{FIXES_REVISION}"
    known = pool.cache.get_stored(SUGGESTIONS, version, keys.values()) if pool.cache and keys else {}
    todo = [i for i in wanted if keys[i] not in known]
    watch = _TransientWatch(pool)
    found = dict(zip(todo, choose_fixes([items[i] for i in todo], watch.parse_many,
                                        candidates=[candidates[i] for i in todo] if candidates else None),
                     strict=True))
    lasting = {keys[i]: fix_to_json(fix) for i, fix in found.items() if fix is not None or not watch.seen}
    if pool.cache and lasting:
        pool.cache.put_stored(SUGGESTIONS, version, lasting)
    return [found[i] if i in found else fix_from_json(known[keys[i]]) if i in keys else None
            for i in range(len(items))]


def prefetch_fixes(pool: MermaidPool, items: Sequence[tuple[str, list[SyntaxFix]]]) -> Prefetch:
    """Hand the pool, without waiting, the first candidate fix of each rejected diagram (code, its
    ``candidate_fixes``) whose suggestion is not remembered: the first round of ``choose_fixes``, whose
    ``syntax_fixes`` call then finds those verdicts in the pool's cache."""
    keys = [code_hash(code) for code, _ in items]
    known = pool.cache.get_stored(SUGGESTIONS, f"{pool.version}/{FIXES_REVISION}", keys) if pool.cache else {}
    return pool.prefetch([apply_fix(code, candidates[0]) for (code, candidates), key in zip(items, keys, strict=True)
                          if candidates and key not in known])


def file_results_version(pool: MermaidPool, config: Config) -> str:
    """What a file's stored results depend on besides the file: the configuration, the verdicts' meaning
    (mermaid version, verdict table) and the code that computed them."""
    return f"{pool.version}/{CACHE_TABLE}/{RESULTS_REVISION}/{config_digest(config)}"


def file_results_key(change: FileChange, checked: Sequence[DiagramChange]) -> str:
    """What identifies a file's results under one version: a whole file from a tree by its path and blob id
    (known without reading it), any other by its path, text and which of its diagrams are checked."""
    if change.blob is not None:
        return whole_file_key(change.path, change.blob)
    return code_hash("\0".join([change.path, change.text, *(item.status.value for item in checked)]))


def whole_file_key(path: str, blob: str) -> str:
    return code_hash("\0".join(["git blob", path, blob]))


def _by_file(work: Sequence[tuple[int, DiagramChange]],
             results: Sequence[DiagramResult | None]) -> dict[int, list[DiagramResult | None]]:
    """The results of ``work`` grouped by the index of their file, in order."""
    of_file: dict[int, list[DiagramResult | None]] = {}
    for (i, _), result in zip(work, results, strict=True):
        of_file.setdefault(i, []).append(result)
    return of_file


def _lasting(results: Sequence[DiagramResult], *, fixes_transient: bool) -> bool:
    """Whether a file's results may be stored and read back: not when a verdict among them is a timeout or
    crash, or a missing suggestion may come from one (``fixes_transient``: a candidate's parse was), or the time
    budget cut its gates short; such a file is evaluated again next time."""
    return not any(is_transient(r.syntax) or (fixes_transient and not r.syntax.ok)
                   or any(f.rule == BUDGET_RULE for f in r.findings) for r in results)


def _store_fix_free_files(pool: MermaidPool, version: str, keys: Mapping[int, str],
                          work: Sequence[tuple[int, DiagramChange]], results: Sequence[DiagramResult | None],
                          verdicts: Sequence[SyntaxVerdict]) -> set[int]:
    """Store the lasting results of the files whose every diagram parsed (no suggestion can change them), and
    say which files those are."""
    if not pool.cache:
        return set()
    rejected = {work[n][0] for n, verdict in enumerate(verdicts) if not verdict.ok}
    final: dict[int, list[DiagramResult]] = {}
    for i, rs in _by_file(work, results).items():
        done = [r for r in rs if r is not None]
        if i not in rejected and len(done) == len(rs) and _lasting(done, fixes_transient=False):
            final[i] = done
    if final:
        pool.cache.put_stored(FILE_RESULTS, version, {keys[i]: results_to_json(rs) for i, rs in final.items()})
    return set(final)


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
    stored: Mapping[str, Sequence[DiagramResult]] = MappingProxyType({}),
) -> CheckResult:
    changes = tuple(change for change in changes if not config.is_excluded(change.path))
    checked = {i: [item for item in change.diagrams if item.status in CHECKED_STATUSES]
               for i, change in enumerate(changes)}
    version = file_results_version(pool, config)
    keys = {i: file_results_key(changes[i], items) for i, items in checked.items()
            if (items or changes[i].blob) and changes[i].path not in stored}
    known = pool.cache.get_stored(FILE_RESULTS, version, keys.values()) if pool.cache and keys else {}
    per_file = {i: results_from_json(known[keys[i]]) for i in keys if keys[i] in known}
    per_file.update((i, list(stored[change.path])) for i, change in enumerate(changes) if change.path in stored)

    work = [(i, item) for i in keys if i not in per_file for item in checked[i]]
    clock = _GateClock()
    deadline = change_deadline(config, now=0.0)
    results: list[DiagramResult | None] = [None] * len(work)

    def evaluate(n: int, verdict: SyntaxVerdict, fix: SyntaxFix | None) -> None:
        i, item = work[n]
        with clock.running():
            results[n] = evaluate_diagram(
                config, item.new, status=item.status, category=config.category_of(changes[i].path),
                file_text=changes[i].text, verdict=verdict, syntax_fix=fix, deadline=deadline, clock=clock,
            )

    # Gates run on each diagram as soon as its verdict arrives, while mermaid parses the rest, and fix
    # candidates are built for each one it rejects. A rejected diagram's fix, found by parsing the candidates
    # (a few rounds of one call each), then changes only its syntax finding (with_syntax_fix). The first
    # candidates of the diagrams rejected so far are handed to the pool once it has handed out every diagram,
    # so the workers parse them while this thread runs the gates on the last verdicts.
    prepared: dict[int, list[SyntaxFix]] = {}
    prefetched: list[Prefetch] = []

    def take(n: int, verdict: SyntaxVerdict) -> None:
        if verdict.ok:
            evaluate(n, verdict, None)
        elif not is_transient(verdict):
            prepared[n] = candidate_fixes(work[n][1].new.code, verdict)
            evaluate(n, verdict, None)

    def drained() -> None:
        if prepared:
            prefetched.append(prefetch_fixes(pool, [(work[n][1].new.code, fixes) for n, fixes in prepared.items()]))

    try:
        verdicts = pool.parse_many([item.new.code for _, item in work], on_progress=on_progress, on_verdict=take,
                                   on_drained=drained)
        # While the workers finish the prefetched candidates, the results no fix can change are stored.
        stored_early = _store_fix_free_files(pool, version, keys, work, results, verdicts)
        for prefetch in prefetched:
            pool.settle(prefetch)
    except BaseException:
        for prefetch in prefetched:
            pool.discard(prefetch)
        raise
    failing = [n for n, verdict in enumerate(verdicts) if not verdict.ok]
    watch = _TransientWatch(pool)
    fixes = dict(zip(failing, syntax_fixes(watch, [(work[n][1].new.code, verdicts[n]) for n in failing],
                                           [prepared.get(n) for n in failing]), strict=True))
    for n, verdict in enumerate(verdicts):
        fix = fixes.get(n)
        result = results[n]
        if result is not None and fix is not None:
            i, _ = work[n]
            with clock.running():
                results[n] = with_syntax_fix(config, result, category=config.category_of(changes[i].path),
                                             file_text=changes[i].text, syntax_fix=fix)
        if results[n] is None:  # a pool that hands out verdicts only at the end, or a fix only all gates can add
            evaluate(n, verdict, fix)
    fresh: dict[int, list[DiagramResult]] = _by_file(work, results)  # type: ignore[assignment]  # all set above
    lasting = {i for i, rs in fresh.items() if _lasting(rs, fixes_transient=watch.seen)}
    # A whole file without diagrams is stored too (no results): a warm run then reads no blob at all.
    lasting |= {i for i in keys if not checked[i] and i not in per_file}
    if pool.cache and lasting - stored_early:
        pool.cache.put_stored(FILE_RESULTS, version, {keys[i]: results_to_json(fresh.get(i, ()))
                                                      for i in lasting - stored_early})
    per_file.update(fresh)
    return CheckResult(
        base=base,
        head=head,
        diagrams=tuple(apply_suppressions(result) for i in sorted(per_file) for result in per_file[i]),
        file_findings=tuple(skipped_file_finding(c) for c in changes if c.skip_reason),
        totals=category_totals(config, before, after),
        removed=tuple(item.old for c in changes for item in c.diagrams
                      if item.status is DiagramStatus.REMOVED and item.old is not None),
        settled=lasting >= fresh.keys(),
    )
