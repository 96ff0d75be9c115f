"""Screenshots and heights of what the bot posts, rendered as GitHub would (tests/github_page.py: cmark-gfm with
GitHub's extensions, GitHub's stylesheet, mermaid, headless Chromium in an 880 px column).

Builds the big pull request of issue 10 from ``--docs``: the base commit holds every folder but ``costs/``, the
pull request adds ``costs/`` on top. Runs the real check (mermaid in Node, the gates) and ``build_publication``,
then reports:

- the summary's height in px (the issue asks for under 2,000) and whether anything overflows the column;
- whether every blocking error is visible where the author looks: the review (inline comments and body) or
  the summary's open rows;
- a progress issue region for the same tree with a recorded history (light and dark theme), mermaid blocks
  rendered.

With ``--shots DIR`` it writes PNGs there (``summary.png``, ``review.png``, ``progress-light.png``,
``progress-dark.png``). ``--review-module FILE`` takes ``build_publication`` from another version of
bot/review.py (``git show main:bot/review.py > old.py``) for a before/after comparison on the same result.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import github_page  # noqa: E402

from bot.check import run_check  # noqa: E402
from bot.config import load_config  # noqa: E402
from bot.counting import DiagramCounter  # noqa: E402
from bot.gates.mermaid import MermaidPool, VerdictCache  # noqa: E402
from bot.gitrepo import GitRepo  # noqa: E402
from bot.progress import History, MergeRecord, build_snapshot, render_progress_region  # noqa: E402
from bot.progress_store import ProgressStore  # noqa: E402
from bot.review import build_publication  # noqa: E402

ADDED_FOLDER = "costs"
GIT_ENV = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid"}
REPOSITORY_URL = "https://github.com/acme/atlas"
REVIEW_SHOT_PX = 1_400


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


def build_repo(docs: Path, where: Path) -> Path:
    """main: docs/ without costs/; branch pr: costs/ added."""
    repo = where / "atlas"
    repo.mkdir()
    shutil.copytree(docs, repo / "docs")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A", "docs")
    git(repo, "rm", "-rq", "--cached", f"docs/{ADDED_FOLDER}")
    git(repo, "commit", "-qm", "base: every folder but costs")
    git(repo, "checkout", "-qb", "pr")
    git(repo, "add", "-A", f"docs/{ADDED_FOLDER}")
    git(repo, "commit", "-qm", "Add the costs folder")
    return repo


def patches(repo: Path, base: str, head: str) -> dict[str, str]:
    """What GitHub's PR files API gives: per head path, the hunks without file headers."""
    out = {}
    for path in git(repo, "diff", "--name-only", f"{base}...{head}").splitlines():
        diff = git(repo, "diff", f"{base}...{head}", "--", path)
        out[path] = diff[diff.index("@@"):] if "@@" in diff else ""
    return out


def progress_region(repo: GitRepo, config, store: ProgressStore, sha: str) -> str:
    """The progress issue's region at ``sha`` with eight weekly merges recorded before it."""
    snapshot = build_snapshot(config, sha, DiagramCounter(repo, store).counts_at(sha))
    total = snapshot.total.diagrams
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    history = History()
    for week in range(8):
        delta = 40 + 5 * week
        history = history.with_merge(MergeRecord(100 + week, f"Add diagrams, batch {week + 1}",
                                                 start + timedelta(weeks=week), f"{week:040x}", delta))
    history = history.with_point(start + timedelta(weeks=8), total, sha[:12])
    return render_progress_region(snapshot, history, 5, {"Technical": (900, 1000), "3 AM test": (700, 1000)},
                                  now=start + timedelta(weeks=8, days=1))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location("review_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, required=True, help="an Atlas docs/ folder holding costs/")
    parser.add_argument("--shots", type=Path, help="write PNGs into this folder")
    parser.add_argument("--review-module", type=Path, help="another bot/review.py to take build_publication from")
    args = parser.parse_args()
    if (reason := github_page.missing()) is not None:
        print(f"cannot render: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="atlas-shots-") as tmp:
        repo_path = build_repo(args.docs.resolve(), Path(tmp))
        os.environ["ATLAS_DATA_DIR"] = str(Path(tmp) / "data")
        repo, config = GitRepo(repo_path), load_config()
        head = git(repo_path, "rev-parse", "pr")
        with MermaidPool(cache=VerdictCache()) as pool:
            result = run_check(repo, config, pool, base="main", head="pr")
        extra = {} if args.review_module else {"repository_url": REPOSITORY_URL}
        publish = _load(args.review_module).build_publication if args.review_module else build_publication
        publication = publish(result, config, pr_patches=patches(repo_path, "main", "pr"), head_sha=head, **extra)
        region = progress_region(repo, config, ProgressStore(), head)

    blocking = {(f.path, f.line) for f in result.findings if f.blocking}
    review = publication.review
    in_review = {(c.path, c.start_line or c.line) for c in review.comments} if review else set()
    in_review |= {(f.path, f.line) for f in result.findings if review and f"`{f.path}:{f.line}`" in review.body}
    print(f"pull request: {len(result.diagrams)} diagrams, {len(result.findings)} findings, "
          f"{len(blocking)} blocking errors in {sum(1 for d in result.diagrams if not d.passed)} diagrams")
    print(f"blocking errors visible in the review: {len(blocking & in_review)} of {len(blocking)}")

    pages = {"summary": (publication.summary, False), "review": (review.body if review else "", False),
             "progress-light": (region, False), "progress-dark": (region, True)}
    for name, (markdown, dark) in pages.items():
        if args.shots:
            args.shots.mkdir(parents=True, exist_ok=True)
            # The review body's lists run long on this pull request: its first screen is what a reader sees.
            measured = github_page.screenshot(markdown, args.shots / f"{name}.png", dark=dark,
                                              height=REVIEW_SHOT_PX if name == "review" else None)
        else:
            measured = github_page.measure(markdown, dark=dark)
        rendered = sum(1 for m in measured.mermaid if m["ok"])
        print(f"{name}: {measured.height:,} px tall in an {github_page.COLUMN_PX} px column; "
              f"{len(measured.overflow)} elements overflow; mermaid {rendered} of {len(measured.mermaid)} rendered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
