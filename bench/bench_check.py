"""Acceptance benchmark of `atlas-bot check --all --format json` on a real Atlas docs tree.

Builds a git repository with the tree as one commit on top of an empty one, then runs the CLI as a user would:
cold (a fresh ATLAS_DATA_DIR, so no cached verdict) and warm (the same data dir again), several times each.
Checks every diagram's syntax verdict and type against a verdicts file of mermaid's own `mermaid.parse`, and
counts the failing diagrams that carry a syntax suggestion.

    .venv/bin/python bench/bench_check.py --docs /path/to/docs --verdicts verdicts-mermaid-11.17.2.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.gates.mermaid import RENDER_PREFIX  # noqa: E402
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]


def build_repo(docs: Path, target: Path) -> Path:
    """`docs/` of the corpus as one commit on top of an empty one (the verdict paths start with docs/)."""
    repo = target / "atlas"
    repo.mkdir()
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", "empty"], cwd=repo, check=True)
    shutil.copytree(docs, repo / "docs")
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "corpus"], cwd=repo, check=True)
    subprocess.run(["git", "gc", "-q"], cwd=repo, check=True)
    return repo


def run_check(repo: Path, data_dir: Path) -> tuple[float, dict]:
    env = {**os.environ, "ATLAS_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bot.cli", "check", "--repo", str(repo), "--all",
                           "--format", "json"], env=env, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"atlas-bot check failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, json.loads(done.stdout)


def compare(result: dict, verdicts_path: Path) -> dict[str, int]:
    expected = {}
    with verdicts_path.open() as lines:
        for line in lines:
            row = json.loads(line)
            expected[(row["path"], row["line"])] = row
    seen = {(d["path"], d["line"]): d for d in result["diagrams"]}
    # The reference is mermaid.parse's: a diagram that parses but fails to draw counts as parsing.
    def parsed(diagram: dict) -> bool:
        return diagram["syntax"]["ok"] or (diagram["syntax"]["error"] or "").startswith(RENDER_PREFIX)

    same = sum(1 for key, row in expected.items()
               if key in seen and parsed(seen[key]) == row["ok"]
               and (not row["ok"] or seen[key]["type"] == row["type"]))
    failing = [d for d in result["diagrams"] if not d["syntax"]["ok"]]
    with_fix = sum(1 for d in failing
                   if any(f["rule"] == "syntax" and f["suggestion"] is not None for f in d["findings"]))
    return {"expected": len(expected), "listed": len(seen), "same_verdict": same,
            "missing": len(set(expected) - set(seen)), "extra": len(set(seen) - set(expected)),
            "failing": len(failing), "failing_with_suggestion": with_fix,
            "render_stage_failures": sum(1 for d in failing if parsed(d))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, required=True, help="the corpus's docs/ folder")
    parser.add_argument("--verdicts", type=Path, required=True, help="mermaid verdicts JSONL for that corpus")
    parser.add_argument("--runs", type=int, default=3, help="cold and warm runs each (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as scratch:
        repo = build_repo(args.docs, Path(scratch))
        cold, warm = [], []
        for run in range(args.runs):
            data_dir = Path(scratch) / f"data-{run}"
            elapsed, result = run_check(repo, data_dir)
            cold.append(elapsed)
            if run == 0:
                print("verdicts:", json.dumps(compare(result, args.verdicts)))
            warm.append(run_check(repo, data_dir)[0])
    load = os.getloadavg()[0]
    print(f"cold: median {statistics.median(cold):.2f} s over {args.runs} runs {[round(t, 2) for t in cold]}")
    print(f"warm: median {statistics.median(warm):.2f} s over {args.runs} runs {[round(t, 2) for t in warm]}")
    print(f"load average at the end: {load:.1f} on {os.cpu_count()} cores")
    print("reproduce: .venv/bin/python bench/bench_check.py --docs DOCS --verdicts VERDICTS --runs", args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
