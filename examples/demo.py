"""The README's main job: a sample Atlas repository, a pull request against it, and atlas-bot's review.

1. Builds a git repository from examples/sample-atlas: `base/` as the main branch, `pr/` as a pull-request
   branch on top of it (good and bad diagrams, a modified one).
2. Runs `atlas-bot check` on the pull request, as a contributor or the Actions workflow would.
3. Runs the GitHub App path locally: the webhook server and its workers (uvicorn on 127.0.0.1), a GitHub API
   emulator serving that repository, a signed `pull_request` delivery; then prints what the bot posted.

Usage: python examples/demo.py [--keep DIR] [--skip-app]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample-atlas"
AUTHOR = ["-c", "user.name=Atlas Contributor", "-c", "user.email=contributor@users.noreply.github.com"]


def build_sample_repository(target: Path) -> Path:
    """A repository with `main` (examples/sample-atlas/base) and `add-netflix-storage` (…/pr) on top of it."""
    repo = target / "sample-atlas"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(["git", *AUTHOR, *args], cwd=repo, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    shutil.copytree(SAMPLE / "base", repo, dirs_exist_ok=True)
    git("add", "-A")
    git("commit", "-q", "-m", "Atlas: Netflix request flow and the S3 2017 incident")
    git("checkout", "-q", "-b", "add-netflix-storage")
    shutil.rmtree(repo / "docs")
    shutil.copytree(SAMPLE / "pr", repo, dirs_exist_ok=True)
    git("add", "-A")
    git("commit", "-q", "-m", "Add Netflix storage and cost diagrams")
    git("checkout", "-q", "main")
    return repo


def show_cli_check(repo: Path) -> None:
    print("=" * 100)
    print(f"$ atlas-bot check --repo {repo} --base main --head add-netflix-storage")
    print("=" * 100, flush=True)
    # Exit code 1 means "a blocking gate failed", which is what this sample pull request is built to show.
    completed = subprocess.run([sys.executable, "-m", "bot.cli", "check", "--repo", str(repo), "--base", "main",
                                "--head", "add-netflix-storage"], cwd=ROOT)
    if completed.returncode not in (0, 1):
        raise SystemExit(f"atlas-bot check failed with exit code {completed.returncode}")


def show_app_review(repo: Path, workdir: Path) -> None:
    from examples.app_demo import run_app_demo

    print("=" * 100)
    print("GitHub App path: webhook → queue → worker → GitHub API emulator (all on 127.0.0.1)")
    print("=" * 100, flush=True)
    print(run_app_demo(repo, workdir))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="build the sample repository here and keep it")
    parser.add_argument("--skip-app", action="store_true", help="only the CLI check, not the App path")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="atlas-demo-") as scratch:
        workdir = args.keep or Path(scratch)
        repo = build_sample_repository(workdir)
        show_cli_check(repo)
        if not args.skip_app:
            show_app_review(repo, workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
