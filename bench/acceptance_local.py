"""Acceptance runs of the adoption paths (issue 10): the Action's output on a 402-diagram pull request, the
pre-commit hook, `check --fix`, SARIF, a pip install that registers, and the Dockerfile lint.

1. **402-diagram pull request**: the corpus's ``docs/costs`` (402 diagrams) added on top of the rest of the
   corpus, checked as the Action checks it (``--format github`` with ``GITHUB_STEP_SUMMARY``). Every blocking
   error must be visible in the annotations GitHub keeps (10 of each kind per step) or in the job summary;
   the summary is rendered with cmark-gfm (GitHub's extensions) to show it renders.
2. **pre-commit**: a sample repository whose .pre-commit-config.yaml uses this checkout's hook; a broken
   diagram that is staged but not committed must fail ``pre-commit run --all-files``; ``atlas-bot check --fix``
   makes it parse and the hook then passes.
3. **SARIF** of the 402-diagram run validates against the SARIF 2.1.0 schema (tests/schemas).
4. **pip install** of the package into a fresh venv; ``atlas-bot register --webhook-url …`` serves the
   manifest page with the URL filled in.
5. **hadolint** on the Dockerfile.

    .venv/bin/python bench/acceptance_local.py --corpus /work/corpus/docs [--skip-pre-commit] [--skip-pip]

Needs the corpus (not in the repository) and, for 2 and 4, the package registries (pre-commit and pip install
the hook's and the venv's dependencies).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cmarkgfm
import jsonschema
from cmarkgfm.cmark import Options

ROOT = Path(__file__).resolve().parent.parent
BOT = [sys.executable, "-m", "bot.cli"]
GIT_ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.invalid",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.invalid",
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}
BROKEN = "# Costs\n\n```mermaid\nflowchart LR\n    CDN[Open Connect (CDN) $1.2M/month] --> ISP[ISP peering]\n```\n"
WEBHOOK_URL = "https://atlas.test.invalid/webhook"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


def big_pull_request(corpus: Path, work: Path) -> dict:
    repo = work / "atlas"
    shutil.copytree(corpus, repo / "docs", ignore=shutil.ignore_patterns("costs"))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base: the corpus without docs/costs")
    base = git(repo, "rev-parse", "HEAD")
    shutil.copytree(corpus / "costs", repo / "docs" / "costs")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "add docs/costs")
    head = git(repo, "rev-parse", "HEAD")
    env = {**os.environ, "ATLAS_DATA_DIR": str(work / "data"), "GITHUB_STEP_SUMMARY": str(work / "summary.md")}

    started = time.monotonic()
    github = subprocess.run([*BOT, "check", "--repo", str(repo), "--base", base, "--head", head, "--format",
                             "github"], env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.monotonic() - started
    document = json.loads(subprocess.run([*BOT, "check", "--repo", str(repo), "--base", base, "--head", head,
                                          "--format", "json"], env=env, capture_output=True, text=True,
                                         cwd=ROOT).stdout)
    sarif = json.loads(subprocess.run([*BOT, "check", "--repo", str(repo), "--base", base, "--head", head,
                                       "--format", "sarif"], env=env, capture_output=True, text=True,
                                      cwd=ROOT).stdout)
    schema = json.loads((ROOT / "tests" / "schemas" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)

    blocking = {(d["path"], f["line"], f["rule"]) for d in document["diagrams"] for f in d["findings"]
                if f["severity"] == "error" and f["gate"] == "technical"}
    annotated = set()
    for line in github.stdout.splitlines():
        match = re.match(r"::error file=([^,]+),line=(\d+),endLine=\d+,title=Atlas technical/(\w+)::", line)
        if match:
            annotated.add((match.group(1), int(match.group(2)), match.group(3)))
    summary = (work / "summary.md").read_text()
    in_summary = {item for item in blocking if f"`{item[0]}:{item[1]}` technical/{item[2]}" in summary}
    html = cmarkgfm.github_flavored_markdown_to_html(summary, options=Options.CMARK_OPT_UNSAFE)
    unseen = blocking - annotated - in_summary
    return {
        "diagrams checked": len(document["diagrams"]),
        "findings": sum(len(d["findings"]) for d in document["diagrams"]),
        "blocking errors": len(blocking),
        "annotated (errors)": len(annotated),
        "listed in the job summary": len(in_summary),
        "blocking errors nowhere": len(unseen),
        "left-out line": next((l for l in github.stdout.splitlines() if "not shown as annotations" in l), ""),
        "job summary bytes": len(summary.encode()),
        "job summary renders (table rows in HTML)": html.count("<tr>"),
        "SARIF results (schema-valid)": len(sarif["runs"][0]["results"]),
        "check --format github seconds": round(seconds, 2),
        "exit status": github.returncode,
    }


def pre_commit(work: Path) -> dict:
    sample = work / "sample"
    (sample / "docs" / "costs").mkdir(parents=True)
    (sample / "docs" / "costs" / "ok.md").write_text("# Fine\n\nNothing to draw yet.\n")
    git(sample, "init", "-q", "-b", "main")
    rev = git(ROOT, "rev-parse", "HEAD")
    (sample / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {ROOT}\n    rev: {rev}\n    hooks:\n      - id: atlas-bot\n")
    git(sample, "add", "-A")
    git(sample, "commit", "-qm", "sample")
    (sample / "docs" / "costs" / "cdn.md").write_text(BROKEN)
    git(sample, "add", "docs/costs/cdn.md")  # staged, never committed
    env = {**GIT_ENV, "PRE_COMMIT_HOME": str(work / "pre-commit-home"), "ATLAS_DATA_DIR": str(work / "data")}
    pre_commit_bin = Path(sys.executable).parent / "pre-commit"
    first = subprocess.run([str(pre_commit_bin), "run", "--all-files"], cwd=sample, env=env, capture_output=True,
                           text=True)
    fix = subprocess.run([*BOT, "check", "--repo", str(sample), "--fix", "docs/costs/cdn.md"], cwd=sample, env=env,
                         capture_output=True, text=True)
    git(sample, "add", "docs/costs/cdn.md")
    second = subprocess.run([str(pre_commit_bin), "run", "--all-files"], cwd=sample, env=env, capture_output=True,
                            text=True)
    return {
        "pre-commit before the fix: exit": first.returncode,
        "reports the syntax error": "technical/syntax" in first.stdout,
        "check --fix": fix.stderr.strip().splitlines()[-1] if fix.stderr.strip() else f"exit {fix.returncode}",
        "pre-commit after the fix: exit": second.returncode,
        "syntax error after the fix": "technical/syntax" in second.stdout,
    }


def pip_register(work: Path) -> dict:
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    started = time.monotonic()
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
                   check=True)
    installed = time.monotonic() - started
    env = {**os.environ, "ATLAS_DATA_DIR": str(work / "register-data")}
    process = subprocess.Popen([str(venv / "bin" / "atlas-bot"), "register", "--webhook-url", WEBHOOK_URL,
                                "--port", "0"], stdout=subprocess.PIPE, text=True, env=env, cwd=work)
    try:
        first = process.stdout.readline() if process.stdout else ""
        address = re.search(r"Open (http://127\.0\.0\.1:\d+/)", first).group(1)
        page = urllib.request.urlopen(address, timeout=10).read().decode()
    finally:
        process.terminate()
        process.wait(10)
    refused = subprocess.run([str(venv / "bin" / "atlas-bot"), "register", "--port", "0"], capture_output=True,
                             text=True, env=env, cwd=work)
    return {
        "pip install seconds": round(installed, 1),
        "manifest page served": "Create GitHub App" in page,
        "webhook URL in the page": WEBHOOK_URL in page,
        "without --webhook-url": refused.stderr.strip(),
    }


def hadolint() -> dict:
    binary = Path(sys.executable).parent / "hadolint"
    done = subprocess.run([str(binary), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    return {"hadolint exit": done.returncode, "hadolint output": done.stdout.strip() or "(none)"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, required=True, help="the corpus's docs folder")
    parser.add_argument("--skip-pre-commit", action="store_true")
    parser.add_argument("--skip-pip", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atlas-acceptance-") as scratch:
        work = Path(scratch)
        sections = [("402-diagram pull request", big_pull_request(args.corpus, work))]
        if not args.skip_pre_commit:
            sections.append(("pre-commit hook and --fix", pre_commit(work)))
        if not args.skip_pip:
            sections.append(("pip install, register", pip_register(work)))
        sections.append(("Dockerfile", hadolint()))
    for title, figures in sections:
        print(f"\n{title}")
        for key, value in figures.items():
            print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
