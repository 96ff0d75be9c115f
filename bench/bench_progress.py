"""Benchmark of the diagram counter: cold count of a docs tree, and the incremental count after a merge.

Builds a scratch git repository from ``--docs`` (an empty first commit, the tree as ``docs/`` in the second,
then a commit that edits five files), and times ``DiagramCounter.counts_at`` in-process:

- cold: a fresh store, every Markdown blob read (batched ``git cat-file --batch``) and counted;
- incremental: a store that counted the corpus commit, then the commit that edits five files;
- cached: the same commit again (commit cache);
- cold again after ``git gc`` (a clone or mirror holds packed objects, which inflate faster than loose ones).

The cold time is split into listing the tree, reading blobs and counting, and reading and counting are also
measured on their own, so it is clear which one dominates. Prints medians of ``--runs`` runs, wall time and
CPU time (this process plus its git processes): on a loaded machine wall time grows, CPU time does not.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.content import count_diagrams, is_markdown_path  # noqa: E402
from bot.counting import DiagramCounter  # noqa: E402
from bot.gitrepo import GitRepo  # noqa: E402
from bot.progress_store import ProgressStore  # noqa: E402

EDITED_FILES = 5
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
EXTRA_DIAGRAM = "\n```mermaid\nflowchart LR\n  Bench --> Edit\n```\n"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def build_repo(docs: Path, where: Path) -> tuple[Path, str, str]:
    """The scratch repository and its corpus and edit commits."""
    repo = where / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "empty")
    shutil.copytree(docs, repo / "docs")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "corpus")
    corpus = git(repo, "rev-parse", "HEAD")
    edited = sorted(p for p in (repo / "docs").rglob("*") if p.is_file() and is_markdown_path(p.name))
    for path in edited[:: max(1, len(edited) // EDITED_FILES)][:EDITED_FILES]:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(EXTRA_DIAGRAM)
    git(repo, "commit", "-q", "-am", f"edit {EDITED_FILES} files")
    return repo, corpus, git(repo, "rev-parse", "HEAD")


def _cpu() -> float:
    """CPU seconds used so far by this process and the git processes it waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


CPU: dict[str, float] = {}


def median_of(runs: int, func: Callable[[], object], name: str = "") -> tuple[float, object]:
    """Median wall time of ``runs`` calls (and, under ``name``, the median CPU time in ``CPU``)."""
    times, cpus, result = [], [], None
    for _ in range(runs):
        cpu, started = _cpu(), time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
        cpus.append(_cpu() - cpu)
    if name:
        CPU[name] = statistics.median(cpus)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, required=True, help="a docs/ tree of Markdown files")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    if not args.docs.is_dir():
        parser.error(f"--docs {args.docs}: not a directory")

    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        path, corpus, edit = build_repo(args.docs, Path(tmp))
        repo = GitRepo(path)

        phases = []

        def cold() -> dict[str, int]:
            counter = DiagramCounter(repo, ProgressStore())
            counts = counter.counts_at(corpus)
            phases.append(counter.last_stats)
            return counts

        cold_s, counts = median_of(args.runs, cold, "cold")
        warm_counters = []
        for _ in range(args.runs):
            counter = DiagramCounter(repo, ProgressStore())
            counter.counts_at(corpus)
            warm_counters.append(counter)
        incremental_stats = []

        def incremental() -> dict[str, int]:
            counter = warm_counters.pop()
            result = counter.counts_at(edit)
            incremental_stats.append(counter.last_stats)
            return result

        incremental_s, edit_counts = median_of(args.runs, incremental, "incremental")
        cached_counter = DiagramCounter(repo, ProgressStore())
        cached_counter.counts_at(edit)
        cached_s, _ = median_of(args.runs, lambda: cached_counter.counts_at(edit))

        files = repo.list_files(corpus, "", "")
        blobs = [blob for p, blob in files if is_markdown_path(p)]
        read_s, data = median_of(args.runs, lambda: repo.read_blobs(blobs), "read")
        count_s, _ = median_of(args.runs, lambda: sum(count_diagrams(b) for b in data.values()), "count")
        cold_check = DiagramCounter(repo, ProgressStore()).counts_at(edit)
        # A clone or a mirror fetched from GitHub holds packed objects, not the loose ones a fresh commit makes.
        git(path, "gc", "--quiet")
        packed_repo = GitRepo(path)
        packed_s, _ = median_of(args.runs, lambda: DiagramCounter(packed_repo, ProgressStore()).counts_at(corpus),
                                "packed")

    size = sum(len(b) for b in data.values())
    print(f"corpus: {len(blobs)} Markdown files, {size / 1e6:.1f} MB, {sum(counts.values())} diagrams "
          f"in {len(counts)} files; median of {args.runs} runs")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores "
          "(wall times grow with load; CPU times do not)")
    print(f"cold count (fresh store):            {cold_s * 1000:7.1f} ms wall, {CPU['cold'] * 1000:6.1f} ms CPU  "
          f"(list {statistics.median(s.list_seconds for s in phases) * 1000:.1f} ms, "
          f"read {statistics.median(s.read_seconds for s in phases) * 1000:.1f} ms, "
          f"counting after the last read {statistics.median(s.count_seconds for s in phases) * 1000:.1f} ms)")
    print(f"cold count, objects packed (git gc):  {packed_s * 1000:7.1f} ms wall, {CPU['packed'] * 1000:6.1f} ms CPU")
    print(f"  read all blobs alone (cat-file --batch): {read_s * 1000:7.1f} ms wall, "
          f"{CPU['read'] * 1000:6.1f} ms CPU")
    print(f"  count_diagrams alone, one thread:        {count_s * 1000:7.1f} ms wall, "
          f"{CPU['count'] * 1000:6.1f} ms CPU")
    print(f"incremental after a {EDITED_FILES}-file commit:     {incremental_s * 1000:7.1f} ms wall, "
          f"{CPU['incremental'] * 1000:6.1f} ms CPU  "
          f"({statistics.median(s.blobs_read for s in incremental_stats)} blobs read)")
    print(f"same commit again (commit cache):    {cached_s * 1000:7.1f} ms")
    print(f"incremental == cold recount: {edit_counts == cold_check} "
          f"({sum(edit_counts.values())} diagrams after the edit)")
    print("reproduce: " + shlex.join([".venv/bin/python", "bench/bench_progress.py", "--docs", str(args.docs),
                                      "--runs", str(args.runs)]))
    return 0 if edit_counts == cold_check else 1


if __name__ == "__main__":
    sys.exit(main())
