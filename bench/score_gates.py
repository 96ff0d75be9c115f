"""Calibration of the four content gates: hand labels vs the gates, and the share of a docs tree passing each.

Builds the docs tree as a deterministic git repository (one empty commit, then `docs/` as one commit, both by
`bench <bench@example.invalid>` at 2026-01-01T00:00:00Z), so the commit every label names is rebuilt with the
same id wherever the tree is the same. Then:

1. `atlas-bot gates score` on the labels, with every gate judging every diagram (`--every-category`) and
   with the shipped category scopes: per gate the confusion matrix and the balanced accuracy;
2. every diagram of the tree through the content gates (no mermaid: content gates do not use its verdict):
   the share passing each gate, over the diagrams the gate applies to and over all diagrams.

    .venv/bin/python bench/score_gates.py --docs /path/to/docs --labels bench/data/gate-labels.jsonl
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.config import load_config  # noqa: E402
from bot.content import extract_diagrams, is_markdown_path  # noqa: E402
from bot.gates.engine import evaluate_diagram  # noqa: E402
from bot.gates.score import every_category  # noqa: E402
from bot.model import DiagramStatus, SyntaxVerdict  # noqa: E402

DATE = "2026-01-01T00:00:00Z"
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid", "GIT_AUTHOR_DATE": DATE,
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
            "GIT_COMMITTER_DATE": DATE}
CONTENT_GATES = ("three_am", "new_hire", "cfo", "incident")


def build_repo(docs: Path, target: Path) -> tuple[Path, str]:
    """`docs/` as one commit on top of an empty one, with fixed identity and dates: the same tree gives the
    same commit id."""
    repo = target / "atlas"
    repo.mkdir()
    env = {**os.environ, **IDENTITY}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("commit", "-q", "--allow-empty", "-m", "empty")
    shutil.copytree(docs, repo / "docs")
    git("add", "-A")
    git("commit", "-q", "-m", "corpus")
    return repo, git("rev-parse", "HEAD")


def score(repo: Path, labels: Path, *extra: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bot.cli", "gates", "score", "--repo", str(repo), "--labels",
                           str(labels), "--quiet", *extra], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"gates score failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def pass_shares(docs: Path) -> str:
    """Per gate: diagrams passing / diagrams judged, with the shipped scopes and with every category."""
    shipped = load_config()
    everywhere = every_category(shipped)
    counts = {name: (Counter(), Counter()) for name in ("shipped", "every")}
    total = 0
    verdict = SyntaxVerdict(ok=True)
    for path in sorted(docs.rglob("*")):
        relative = "docs/" + path.relative_to(docs).as_posix()
        if not path.is_file() or not is_markdown_path(relative):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for diagram in extract_diagrams(relative, text):
            total += 1
            for name, config in (("shipped", shipped), ("every", everywhere)):
                result = evaluate_diagram(config, diagram, status=DiagramStatus.CHECKED,
                                          category=config.category_of(relative), file_text=text, verdict=verdict,
                                          syntax_fix=None)
                judged, passing = counts[name]
                for gate in CONTENT_GATES:
                    if gate in result.gates_passed:
                        judged[gate] += 1
                        passing[gate] += result.gates_passed[gate]
    titles = {gate.id: gate.title for gate in shipped.gates}
    lines = [f"{total} diagrams", "",
             "| Gate | Passing, shipped scopes (of the diagrams judged) | Passing, every gate on every diagram |",
             "|---|---:|---:|"]
    for gate in CONTENT_GATES:
        cells = []
        for name in ("shipped", "every"):
            judged, passing = counts[name]
            share = passing[gate] / judged[gate] if judged[gate] else 0.0
            cells.append(f"{passing[gate]} / {judged[gate]} ({share:.1%})")
        lines.append(f"| {titles[gate]} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, required=True, help="the docs/ folder of an Atlas tree")
    parser.add_argument("--labels", type=Path, default=ROOT / "bench" / "data" / "gate-labels.jsonl")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo, commit = build_repo(args.docs.resolve(), Path(tmp))
        print(f"corpus commit {commit}\n")
        print("Every gate on for every category:\n")
        print(score(repo, args.labels.resolve(), "--every-category"))
        print("Shipped category scopes:\n")
        print(score(repo, args.labels.resolve()))
    print("Share of diagrams passing:\n")
    print(pass_shares(args.docs.resolve()))


if __name__ == "__main__":
    main()
