"""Benchmark of the mermaid syntax pool: cold (empty cache, fresh workers) and warm (cache filled) runs over
every mermaid fence of a docs tree, with every verdict compared against a reference verdicts JSONL.

    .venv/bin/python bench/bench_mermaid.py --docs /tmp/corpus/docs \
        --verdicts ../shared/corpus/verdicts-mermaid-11.17.2.jsonl

--docs defaults to /tmp/corpus/docs, where the Atlas corpus is unpacked on the team's machine. A fence's path
is reported relative to the parent of --docs (so "docs/capacity/x.md"), its line is the 1-based opening-fence
line, as in the reference file. --verify-copy makes every worker also run mermaid's original config copy and
fail the diagram on any difference from the fast one (slow; a correctness check, not a timing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from markdown_it import MarkdownIt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.gates.mermaid import MermaidPool, VerdictCache, parses  # noqa: E402
from bot.model import SyntaxVerdict  # noqa: E402

DEFAULT_DOCS = "/tmp/corpus/docs"
MISMATCHES_SHOWN = 20


def extract(docs: Path) -> list[tuple[str, int, str]]:
    """(path, opening-fence line, code) of every CommonMark fence whose info string starts with ``mermaid``."""
    md = MarkdownIt("commonmark")
    fences = []
    for file in sorted(docs.rglob("*.md")):
        path = file.relative_to(docs.parent).as_posix()
        for token in md.parse(file.read_text("utf-8")):
            if token.type == "fence" and token.info.split(maxsplit=1)[:1] == ["mermaid"] and token.map:
                fences.append((path, token.map[0] + 1, token.content))
    return fences


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(codes: list[str], cache_path: Path, workers: int | None) -> tuple[float, list[SyntaxVerdict]]:
    """Wall time of one end-to-end pool run (workers started, diagrams judged, workers stopped)."""
    cache = VerdictCache(cache_path)
    start, cpu, workers_cpu = time.perf_counter(), time.process_time(), children_cpu()
    with MermaidPool(workers=workers, cache=cache) as pool:
        verdicts = pool.parse_many(codes)
    elapsed = time.perf_counter() - start
    print(f"  CPU: this process {time.process_time() - cpu:.2f} s, workers {children_cpu() - workers_cpu:.2f} s; "
          f"load average {os.getloadavg()[0]:.2f}")
    cache.close()
    return elapsed, verdicts


def compare(fences: list[tuple[str, int, str]], verdicts: list[SyntaxVerdict], reference: Path) -> int:
    expected = {}
    for line in reference.read_text("utf-8").splitlines():
        row = json.loads(line)
        expected[(row["path"], row["line"])] = (row["ok"], row["type"])
    equal, problems = 0, []
    for (path, line, _), verdict in zip(fences, verdicts):
        want = expected.pop((path, line), None)
        # The reference is mermaid.parse's: a diagram that parses but fails to draw counts as parsing.
        if want == (parses(verdict), verdict.type):
            equal += 1
        else:
            problems.append(f"  {path}:{line} expected {want}, got {(verdict.ok, verdict.type)} {verdict.error!r:.120}")
    problems += [f"  {path}:{line} in the reference but not extracted" for path, line in expected]
    print(f"verdicts equal to {reference}: {equal} of {len(fences)} extracted ({len(expected)} reference rows unmatched)")
    for problem in problems[:MISMATCHES_SHOWN]:
        print(problem)
    return len(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, default=Path(DEFAULT_DOCS), help=f"docs tree (default {DEFAULT_DOCS})")
    parser.add_argument("--verdicts", type=Path, help="reference JSONL of {path, line, ok, type} to compare with")
    parser.add_argument("--cold", type=int, default=3, help="cold runs (fresh cache, fresh workers); default 3")
    parser.add_argument("--warm", type=int, default=5, help="warm runs (cache filled by the cold runs); default 5")
    parser.add_argument("--workers", type=int, help="pool size (default: one per usable CPU)")
    parser.add_argument("--verify-copy", action="store_true", help="check the fast config copy on every call")
    args = parser.parse_args()
    if args.verify_copy:
        os.environ["ATLAS_MERMAID_VERIFY_COPY"] = "1"

    print("reproduce:", shlex.join([sys.executable, *sys.argv]))
    start = time.perf_counter()
    fences = extract(args.docs)
    print(f"extracted {len(fences)} diagrams ({len({c for *_, c in fences})} distinct) "
          f"in {time.perf_counter() - start:.2f} s")
    codes = [code for *_, code in fences]

    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as tmp:
        cold, warm = [], []
        verdicts: list[SyntaxVerdict] = []
        for run in range(args.cold):
            cache_path = Path(tmp) / f"cold-{run}" / "verdicts.sqlite3"
            elapsed, verdicts = timed_run(codes, cache_path, args.workers)
            cold.append(elapsed)
            print(f"cold run {run + 1}: {elapsed:.2f} s")
        for run in range(args.warm):
            elapsed, warm_verdicts = timed_run(codes, cache_path, args.workers)
            warm.append(elapsed)
            print(f"warm run {run + 1}: {elapsed:.3f} s")
            if warm_verdicts != verdicts:
                print("  warm verdicts differ from the cold ones")
                return 1
    if cold:
        print(f"cold median {statistics.median(cold):.2f} s over {len(cold)} runs; "
              f"{len(codes) / statistics.median(cold):.0f} diagrams/s")
    if warm:
        print(f"warm median {statistics.median(warm):.3f} s over {len(warm)} runs")
    failures = sum(not v.ok for v in verdicts)
    print(f"render-stage failures (parse fine, drawing throws): {sum(parses(v) and not v.ok for v in verdicts)}")
    print(f"syntax failures: {failures}; timeouts/crashes: "
          f"{sum(1 for v in verdicts if v.error and v.error.startswith(('mermaid did not', 'the mermaid worker')))}")
    if args.verify_copy:
        differences = [v.error for v in verdicts if v.error and "fast copy" in v.error]
        print(f"fast-copy verification: {len(differences)} diagrams with a difference")
        if differences:
            print("  first:", differences[0])
            return 1
    if args.verdicts and verdicts:
        return 1 if compare(fences, verdicts, args.verdicts) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
