"""Local use: `check PATH...` without git, the work tree and the index against a base, --fix / --dry-run,
SARIF (validated against the vendored SARIF 2.1.0 schema), the pre-commit hook, --version, and the Actions
output (annotations within GitHub's per-step limits, the job summary)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from bot.cli import EXIT_BLOCKED, EXIT_OK, EXIT_USAGE, main
from bot.local_fix import apply_suggestions, unified_diff
from bot.model import CheckResult, Finding, Severity
from bot.render import ANNOTATIONS_PER_STEP, annotated_findings, job_summary, rank_findings, render_github
from scratch import ScratchRepo
from test_cli import BROKEN, GOOD

ROOT = Path(__file__).resolve().parent.parent
SARIF_SCHEMA = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"

FIXED_LINE = '    CDN["Open Connect (CDN)"] --> TOTAL[Total]'


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A plain folder (no git) with one broken and one good diagram, and a file that is not Markdown."""
    root = tmp_path / "atlas"
    (root / "docs" / "costs").mkdir(parents=True)
    (root / "docs" / "systems").mkdir(parents=True)
    (root / "docs" / "costs" / "cdn.md").write_text(BROKEN)
    (root / "docs" / "systems" / "ledger.md").write_text(GOOD)
    (root / "docs" / "notes.txt").write_text(BROKEN)
    (root / "docs" / ".git").mkdir()
    (root / "docs" / ".git" / "stray.md").write_text(BROKEN)  # a nested repository's git directory
    return root


def syntax_ok(document: dict, path: str) -> bool:
    return next(d for d in document["diagrams"] if d["path"] == path)["syntax"]["ok"]


# -- files and folders, no git ---------------------------------------------------------------------------------


def test_paths_check_every_diagram_of_files_and_folders_without_git(folder: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "check", "--repo", str(folder), str(folder / "docs"), "--format", "json")
    assert code == EXIT_BLOCKED
    document = json.loads(out)
    assert [(d["path"], d["status"]) for d in document["diagrams"]] == [
        ("docs/costs/cdn.md", "checked"), ("docs/systems/ledger.md", "checked")]
    assert not syntax_ok(document, "docs/costs/cdn.md")

    code, out, _ = run_cli(capsys, "check", "--repo", str(folder), str(folder / "docs/systems/ledger.md"),
                           "--format", "json")
    assert [d["path"] for d in json.loads(out)["diagrams"]] == ["docs/systems/ledger.md"]


def test_fix_applies_the_verified_suggestion_and_the_diagram_then_parses(folder: Path, capsys) -> None:
    target = folder / "docs/costs/cdn.md"
    code, out, err = run_cli(capsys, "check", "--repo", str(folder), str(target), "--fix", "--dry-run")
    assert target.read_text() == BROKEN  # a dry run writes nothing
    assert f"+{FIXED_LINE}" in out and "--- a/docs/costs/cdn.md" in out
    assert "would apply 1 suggestion in 1 file" in err and code == EXIT_BLOCKED

    code, out, err = run_cli(capsys, "check", "--repo", str(folder), str(target), "--fix", "--format", "json")
    assert FIXED_LINE in target.read_text().splitlines()
    assert "applied 1 suggestion in 1 file" in err
    assert syntax_ok(json.loads(out), "docs/costs/cdn.md")  # the report is of the fixed file


def test_paths_read_the_repository_config_from_disk(folder: Path, capsys) -> None:
    (folder / ".github").mkdir()
    (folder / ".github/atlas-bot.yml").write_text("exclude:\n  - docs/costs/**\n")
    code, out, _ = run_cli(capsys, "check", "--repo", str(folder), str(folder / "docs"), "--format", "json")
    assert code == EXIT_OK
    assert [d["path"] for d in json.loads(out)["diagrams"]] == ["docs/systems/ledger.md"]


# -- work tree and index against a base ------------------------------------------------------------------------


@pytest.fixture
def repo(scratch: ScratchRepo) -> ScratchRepo:
    scratch.write("docs/systems/ledger.md", GOOD)
    scratch.commit("base")
    return scratch


def test_uncommitted_edits_count_unless_a_head_is_named(repo: ScratchRepo, capsys) -> None:
    repo.write("docs/costs/cdn.md", BROKEN)  # untracked, never committed
    code, out, _ = run_cli(capsys, "check", "--repo", str(repo.path), "--base", "HEAD", "--format", "json")
    assert code == EXIT_BLOCKED
    assert [d["path"] for d in json.loads(out)["diagrams"]] == ["docs/costs/cdn.md"]

    code, out, _ = run_cli(capsys, "check", "--repo", str(repo.path), "--base", "HEAD", "--head", "HEAD",
                           "--format", "json")
    assert code == EXIT_OK and json.loads(out)["diagrams"] == []
    assert repo.git("status", "--porcelain") == "?? docs/costs/"  # the index was not touched


def test_staged_checks_the_index_only(repo: ScratchRepo, capsys) -> None:
    repo.write("docs/costs/cdn.md", BROKEN)
    code, out, _ = run_cli(capsys, "check", "--repo", str(repo.path), "--staged", "--format", "json")
    assert code == EXIT_OK and json.loads(out)["diagrams"] == []
    repo.git("add", "docs/costs/cdn.md")
    repo.write("docs/costs/cdn.md", BROKEN.replace("(CDN)", "CDN"))  # the unstaged edit would parse
    code, out, _ = run_cli(capsys, "check", "--repo", str(repo.path), "--staged", "--format", "json")
    assert code == EXIT_BLOCKED and not syntax_ok(json.loads(out), "docs/costs/cdn.md")


def test_fix_on_the_work_tree_against_a_base(repo: ScratchRepo, capsys) -> None:
    repo.write("docs/costs/cdn.md", BROKEN)
    code, _, _ = run_cli(capsys, "check", "--repo", str(repo.path), "--base", "HEAD", "--fix")
    assert code == EXIT_OK
    assert FIXED_LINE in (repo.path / "docs/costs/cdn.md").read_text()


@pytest.mark.parametrize("args, reason", [
    (["check", "docs", "--base", "main"], "PATH arguments are checked as they are on disk"),
    (["check", "--staged", "--head", "HEAD"], "--staged checks the index"),
    (["check", "--base", "HEAD", "--dry-run"], "--dry-run goes with --fix"),
    (["check", "--all", "--fix"], "--fix changes files on disk"),
    (["check", "{repo}/no-such.md"], "no such file or folder"),
    (["check"], "say what to check"),
    (["check", "--all", "--review", "7"], "--review publishes a pull request's review"),
])
def test_local_usage_errors_exit_2_with_one_line(repo: ScratchRepo, capsys, args: list[str], reason: str) -> None:
    code, out, err = run_cli(capsys, *[a.format(repo=repo.path) for a in args], "--repo", str(repo.path))
    assert code == EXIT_USAGE and reason in err and err.count("\n") == 1


# -- pre-commit, SARIF, --version ------------------------------------------------------------------------------


def test_pre_commit_hook_runs_check_on_the_files_pre_commit_passes(folder: Path, capsys, monkeypatch) -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    (hook,) = hooks
    assert hook["id"] == "atlas-bot" and hook["types"] == ["markdown"] and hook["language"] == "python"
    program, *args = shlex.split(hook["entry"])
    assert program == "atlas-bot"
    monkeypatch.chdir(folder)
    # pre-commit appends the staged Markdown files' names, relative to the repository root.
    code, out, _ = run_cli(capsys, *args, "docs/costs/cdn.md", "docs/systems/ledger.md")
    assert code == EXIT_BLOCKED and "docs/costs/cdn.md:5: error [technical/syntax]" in out


def test_sarif_validates_against_the_sarif_2_1_0_schema(folder: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "check", "--repo", str(folder), str(folder / "docs"), "--format", "sarif")
    assert code == EXIT_BLOCKED
    log = json.loads(out)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(log)
    (run,) = log["runs"]
    syntax = next(r for r in run["results"] if r["ruleId"] == "technical/syntax")
    assert syntax["level"] == "error" and syntax["properties"]["blocking"] is True
    assert syntax["locations"][0]["physicalLocation"]["region"] == {"startLine": 5, "endLine": 5}
    replacement = syntax["fixes"][0]["artifactChanges"][0]["replacements"][0]
    assert replacement["insertedContent"]["text"] == FIXED_LINE + "\n"
    assert run["tool"]["driver"]["rules"][syntax["ruleIndex"]]["id"] == "technical/syntax"


def test_version_names_the_bot_and_its_pinned_mermaid(capsys) -> None:
    code, out, _ = run_cli(capsys, "--version")
    pinned = json.loads((ROOT / "bot/mermaid/package.json").read_text())["dependencies"]["mermaid"]
    assert code == 0 and out.startswith("atlas-bot ") and f"(mermaid {pinned})" in out


# -- applying suggestions (pure) -------------------------------------------------------------------------------


def _finding(line: int, end_line: int | None = None, suggestion: str | None = "x", *, severity=Severity.ERROR,
             blocking: bool = True, path: str = "docs/a.md", rule: str = "syntax") -> Finding:
    return Finding(gate="technical", rule=rule, severity=severity, path=path, line=line, message=f"m{line}",
                   end_line=end_line, suggestion=suggestion, blocking=blocking)


@pytest.mark.parametrize("text, findings, expected, applied, overlapping", [
    ("a\nb\nc\n", [_finding(2, suggestion="B")], "a\nB\nc\n", 1, 0),
    ("a\nb\nc\n", [_finding(1, 2, "A\nB\nX")], "A\nB\nX\nc\n", 1, 0),
    ("a\r\nb\r\n", [_finding(1, suggestion="A1\nA2")], "A1\r\nA2\r\nb\r\n", 1, 0),  # CRLF stays CRLF
    ("a\nb", [_finding(2, suggestion="B1\nB2")], "a\nB1\nB2", 1, 0),  # no newline at the end: still none
    ("a\nb\nc\n", [_finding(2, suggestion="")], "a\nc\n", 1, 0),  # an empty suggestion removes the lines
    ("a\nb\nc\n", [_finding(1, 2, "AB"), _finding(2, suggestion="B")], "AB\nc\n", 1, 1),  # overlap: first wins
    ("a\n", [_finding(1, suggestion=None), _finding(5, suggestion="far")], "a\n", 0, 0),
])
def test_apply_suggestions(text, findings, expected, applied, overlapping) -> None:
    outcome = apply_suggestions(text, findings)
    assert (outcome.text, outcome.applied, outcome.overlapping) == (expected, applied, overlapping)


def test_unified_diff_is_empty_without_a_change() -> None:
    assert unified_diff("a.md", "x\n", "x\n") == ""
    assert unified_diff("a.md", "x\n", "y\n").splitlines()[-2:] == ["-x", "+y"]


# -- GitHub Actions output -------------------------------------------------------------------------------------


def _result(findings: list[Finding]) -> CheckResult:
    return CheckResult(base="b" * 40, head="a" * 40, diagrams=(), file_findings=tuple(findings))


def test_annotations_rank_blocking_errors_first_and_keep_within_the_per_step_limits() -> None:
    errors = [_finding(100 + n, suggestion=None) for n in range(15)]
    advisory = [_finding(n, suggestion=None, severity=Severity.ERROR, blocking=False) for n in range(3)]
    warnings = [_finding(n, suggestion=None, severity=Severity.WARNING, blocking=False) for n in range(12)]
    shown, left_out = annotated_findings(warnings + advisory + errors)
    assert [f.severity for f in shown].count(Severity.ERROR) == ANNOTATIONS_PER_STEP
    assert [f.severity for f in shown].count(Severity.WARNING) == ANNOTATIONS_PER_STEP
    assert shown[:ANNOTATIONS_PER_STEP] == errors[:ANNOTATIONS_PER_STEP]  # blocking ones before advisory errors
    assert len(left_out) == 15 + 3 + 12 - 2 * ANNOTATIONS_PER_STEP
    output = render_github(_result(warnings + advisory + errors)).splitlines()
    assert sum(line.startswith("::error ") for line in output) == ANNOTATIONS_PER_STEP
    assert output[-2].startswith("atlas-bot: 10 more findings (8 errors, 2 warnings) not shown as annotations")
    assert rank_findings(advisory + errors)[0] == errors[0]


def test_job_summary_lists_every_blocking_error_past_the_annotation_limit() -> None:
    errors = [_finding(100 + n, suggestion=None) for n in range(13)]
    text = job_summary("## Atlas quality gates\n\n| table |", _result(errors))
    assert text.startswith("## Atlas quality gates")
    assert "3 more blocking errors" in text
    assert all(f"`docs/a.md:{line}`" in text for line in (110, 111, 112))
    assert "`docs/a.md:109`" not in text  # annotated already
    assert job_summary("summary", _result(errors[:3])) == "summary\n"


def test_job_summary_stays_inside_githubs_size_limit(monkeypatch) -> None:
    monkeypatch.setattr("bot.render.JOB_SUMMARY_MAX_ERRORS", 5)
    errors = [_finding(100 + n, suggestion=None) for n in range(ANNOTATIONS_PER_STEP + 8)]
    text = job_summary("summary", _result(errors))
    assert text.count("\n- `docs/a.md:") == 5 and "… and 3 more: `atlas-bot check` lists every one" in text


def test_github_format_writes_the_apps_summary_to_the_step_summary(folder: Path, capsys, monkeypatch,
                                                                  tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out, _ = run_cli(capsys, "check", "--repo", str(folder), str(folder / "docs"), "--format", "github")
    assert code == EXIT_BLOCKED and out.startswith("::error file=docs/costs/cdn.md,line=5")
    text = summary.read_text()
    assert "<!-- atlas-bot:summary -->" in text and "## Atlas quality gates" in text
    assert "| `cdn.md:3` " in text  # the summary table's row for the failing diagram (shortest unambiguous name)


# -- the Action's review, published with the workflow token (GitHub emulator) ----------------------------------


@pytest.fixture
def pull(repo: ScratchRepo, github_emulator, monkeypatch) -> int:
    repo.git("checkout", "-q", "-b", "pr")
    repo.write("docs/costs/cdn.md", BROKEN)
    repo.commit("pr")
    github_emulator.add_repo("octo/atlas", repo.path, default_branch="main")
    monkeypatch.setenv("GITHUB_TOKEN", github_emulator.token)
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/atlas")
    monkeypatch.setenv("GITHUB_API_URL", github_emulator.base_url)
    return github_emulator.add_pull("octo/atlas", "pr")


def test_review_is_published_with_the_workflow_token_and_a_rerun_writes_nothing(
        repo: ScratchRepo, pull: int, github_emulator, capsys) -> None:
    args = ["check", "--repo", str(repo.path), "--base", "main", "--head", "pr", "--format", "github",
            "--review", str(pull)]
    code, out, _ = run_cli(capsys, *args)
    assert code == EXIT_BLOCKED and "::error file=docs/costs/cdn.md,line=5" in out
    (review,) = [r for r in github_emulator.writes() if r.endpoint.endswith("/pulls/{pull_number}/reviews")]
    assert any("```suggestion\n" + FIXED_LINE in comment["body"] for comment in review.body["comments"])
    mark = github_emulator.mark()
    assert run_cli(capsys, *args)[0] == EXIT_BLOCKED
    assert github_emulator.writes(since=mark) == []


def test_a_token_that_cannot_write_falls_back_to_annotations(repo: ScratchRepo, pull: int, capsys,
                                                            monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "not-a-valid-token")
    code, out, _ = run_cli(capsys, "check", "--repo", str(repo.path), "--base", "main", "--head", "pr",
                           "--format", "github", "--review", str(pull))
    assert code == EXIT_BLOCKED
    assert "::warning title=atlas-bot review not published::" in out
    assert "::error file=docs/costs/cdn.md,line=5" in out


def test_the_work_tree_commit_holds_markdown_edits_and_hashes_nothing_else(repo: ScratchRepo) -> None:
    from bot.gitrepo import GitRepo

    repo.write("docs/systems/other.md", GOOD)
    repo.commit("second file")
    repo.write("docs/costs/New.MD", BROKEN)  # untracked, upper-case suffix
    repo.remove("docs/systems/other.md")  # deleted, not staged
    repo.write("build/output.bin", b"\x00not markdown")
    blob = repo.git("hash-object", "build/output.bin")
    with GitRepo(repo.path) as git_repo:
        head = git_repo.uncommitted(staged_only=False)
        assert head != git_repo.resolve("HEAD")
        assert [path for path, _ in git_repo.list_files(head)] == ["docs/costs/New.MD", "docs/systems/ledger.md"]
        assert git_repo.uncommitted(staged_only=True) == git_repo.resolve("HEAD")  # nothing staged
    assert subprocess.run(["git", "cat-file", "-e", blob], cwd=repo.path).returncode != 0
    assert repo.git("diff", "--cached", "--name-only") == ""  # the user's index is as it was


def test_github_format_summary_links_paths_to_the_repository(folder: Path, capsys, monkeypatch,
                                                             tmp_path: Path) -> None:
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/atlas")
    run_cli(capsys, "check", "--repo", str(folder), str(folder / "docs"), "--format", "github")
    assert "https://github.com/octo/atlas/blob/" in summary.read_text()
