"""bot.cli and bot.check end to end: real git repositories built here, real mermaid in Node, every format."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import changes, check
from bot.check import projected_counts, run_all, run_check, syntax_fixes
from bot.cli import EXIT_BLOCKED, EXIT_OK, EXIT_USAGE, main
from bot.config import load_config
from bot.paths import default_rules_dir
from bot.gates.mermaid import FILE_RESULTS, TIMEOUT_ERROR, MermaidPool, VerdictCache
from bot.gitrepo import GitRepo
from bot.model import Diagram, DiagramChange, DiagramStatus, FileChange, SyntaxVerdict
from scratch import ScratchRepo

GOOD = """# Payments

```mermaid
flowchart LR
    API["Payments API<br/>Java 21, 2K req/s"] --> DB["PostgreSQL 16<br/>p99 4 ms"]
    classDef service fill:#10B981
```
"""
BROKEN = """# Costs

```mermaid
flowchart LR
    CDN[Open Connect (CDN)] --> TOTAL[Total]
```
"""
BROKEN_LINE = 5  # file line of the CDN node


@pytest.fixture
def atlas(scratch: ScratchRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """main: one good diagram; branch `pr`: adds a broken one and a second good one elsewhere."""
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    scratch.write("docs/systems/payments.md", GOOD)
    scratch.commit("base")
    scratch.git("checkout", "-q", "-b", "pr")
    scratch.write("docs/costs/cdn.md", BROKEN)
    scratch.write("docs/systems/ledger.md", GOOD.replace("Payments", "Ledger"))
    scratch.commit("pr")
    scratch.git("checkout", "-q", "main")
    return scratch.path


def run_probe(probe: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -c probe ARGS...`` in a process of its own, from the repository's root."""
    return subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parent.parent)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def counted_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Revisions bot.check.run_all really checked (not answered from a remembered output)."""
    runs: list[str] = []
    run_all_for_real = check.run_all

    def counting(repo, config, pool, *, rev, **kwargs):
        runs.append(rev)
        return run_all_for_real(repo, config, pool, rev=rev, **kwargs)

    monkeypatch.setattr(check, "run_all", counting)
    return runs


def test_a_revision_checked_before_is_answered_from_its_remembered_output(
    atlas: Path, capsys, counted_runs: list[str]
) -> None:
    first = run_cli(capsys, "check", "--repo", str(atlas), "--all", "--rev", "pr", "--format", "json")
    again = run_cli(capsys, "check", "--repo", str(atlas), "--all", "--rev", "pr", "--format", "json")
    assert again == first and first[0] == EXIT_BLOCKED
    assert len(counted_runs) == 1
    text = run_cli(capsys, "check", "--repo", str(atlas), "--all", "--rev", "pr")  # another format
    assert run_cli(capsys, "check", "--repo", str(atlas), "--all", "--rev", "pr") == text
    assert len(counted_runs) == 2


def test_a_remembered_output_is_not_used_for_another_commit_configuration_or_installation(
    atlas: Path, scratch: ScratchRepo, capsys, counted_runs: list[str], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def check_all(*extra: str) -> tuple[int, str, str]:
        return run_cli(capsys, "check", "--repo", str(atlas), "--all", "--rev", "pr", "--format", "json", *extra)

    check_all()
    scratch.git("checkout", "-q", "pr")
    scratch.write("docs/costs/cdn.md", GOOD.replace("Payments", "CDN"))
    scratch.commit("fix the CDN diagram")
    fixed = check_all()
    assert fixed[0] == EXIT_OK and len(counted_runs) == 2  # pr moved: a new commit is checked
    override = tmp_path / "override.yml"
    override.write_text("limits:\n  max_nodes: 1\n")
    strict = check_all("--config", str(override))
    override.write_text("limits:\n  max_nodes: 50\n")
    assert check_all("--config", str(override)) != strict
    assert len(counted_runs) == 4
    rules = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), rules)
    monkeypatch.setenv("ATLAS_RULES_DIR", str(rules))
    check_all()
    (rules / "gates.yml").write_text((rules / "gates.yml").read_text() + "\n# edited\n")
    check_all()
    assert len(counted_runs) == 6  # other default rules, twice: another installation each time


def test_an_unsettled_result_is_not_remembered(atlas: Path, capsys, counted_runs: list[str], tmp_path: Path) -> None:
    spent = tmp_path / "spent.yml"
    spent.write_text("gate_budget: {change_seconds: 0.000001}\n")
    for _ in range(2):
        run_cli(capsys, "check", "--repo", str(atlas), "--all", "--rev", "pr", "--format", "json", "--config",
                str(spent))
    assert len(counted_runs) == 2


def test_the_command_leaves_after_check_with_its_output_and_stores_whole(atlas: Path, tmp_path: Path) -> None:
    """``atlas-bot check`` skips the interpreter's teardown: the output, the exit code, the stored verdicts and
    the remembered output must all be there all the same."""
    probe = ("import atexit, sys\nfrom bot.cli import run\n"
             "atexit.register(lambda: print('interpreter torn down', file=sys.stderr))\nrun()")
    command = ["check", "--repo", str(atlas), "--all", "--rev", "pr", "--format", "json"]
    done = run_probe(probe, *command)
    assert done.returncode == EXIT_BLOCKED, done.stderr
    assert "interpreter torn down" not in done.stderr
    assert {d["path"] for d in json.loads(done.stdout)["diagrams"]} == {
        "docs/costs/cdn.md", "docs/systems/ledger.md", "docs/systems/payments.md"}
    data = tmp_path / "data"
    with sqlite3.connect(data / "mermaid-verdicts.sqlite3") as verdicts:
        # the three diagrams and the suggested fix of the broken one
        assert verdicts.execute("SELECT COUNT(*) FROM verdicts_v2").fetchone()[0] == 4
    with sqlite3.connect(data / "check-outputs.sqlite3") as outputs:
        assert outputs.execute("SELECT COUNT(*) FROM outputs").fetchone()[0] == 1
    again = run_probe(probe, *command)
    assert (again.returncode, again.stdout) == (done.returncode, done.stdout)


def test_check_loads_neither_pygithub_nor_the_app(atlas: Path) -> None:
    """``check`` imports only what it needs: PyGithub, pydantic and the App's modules cost start-up time."""
    probe = ("import sys\nfrom bot.cli import main\ncode = main(sys.argv[1:])\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('github', 'pydantic')"
             " or m in ('bot.github', 'bot.progress_job', 'bot.register', 'bot.settings')))\n"
             "sys.exit(code)")
    done = run_probe(probe, "check", "--repo", str(atlas), "--all", "--format", "json")
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"


def test_a_remembered_output_loads_neither_gitpython_nor_the_pool_nor_the_gates(atlas: Path) -> None:
    """The remembered answer needs one git process and one SQLite read: GitPython (~80 ms to import), the
    mermaid pool and the gates would be a third of its time."""
    probe = ("import sys\nfrom bot.cli import main\ncode = main(sys.argv[1:])\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'git'"
             " or m in ('bot.gates.mermaid', 'bot.gates.engine', 'bot.check', 'bot.config')))\n"
             "sys.exit(code)")
    first, again = (run_probe(probe, "check", "--repo", str(atlas), "--all", "--format", "json") for _ in range(2))
    assert first.returncode == again.returncode == EXIT_OK, first.stderr + again.stderr
    assert first.stdout.splitlines()[-1] != "[]"  # the probe sees what a real check loads
    assert again.stdout.splitlines()[-1] == "[]"
    assert again.stdout.splitlines()[:-1] == first.stdout.splitlines()[:-1]  # the same answer


def test_version_and_help_still_work(capsys) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == EXIT_OK and out.startswith("atlas-bot ") and "(mermaid " in out
    code, out, _ = run_cli(capsys, "--help")
    assert code == EXIT_OK and "--version" in out


def test_json_lists_added_diagrams_with_verdicts_suggestions_and_totals(atlas: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "check", "--repo", str(atlas), "--base", "main", "--head", "pr",
                           "--format", "json")
    assert code == EXIT_BLOCKED
    document = json.loads(out)
    assert list(document) == ["base", "head", "diagrams", "totals", "file_findings"]
    by_path = {d["path"]: d for d in document["diagrams"]}
    assert set(by_path) == {"docs/costs/cdn.md", "docs/systems/ledger.md"}  # payments.md is unchanged
    broken = by_path["docs/costs/cdn.md"]
    assert broken["status"] == "added" and broken["syntax"]["ok"] is False and broken["passed"] is False
    syntax = next(f for f in broken["findings"] if f["rule"] == "syntax")
    assert (syntax["line"], syntax["end_line"]) == (BROKEN_LINE, BROKEN_LINE)
    assert syntax["suggestion"] == '    CDN["Open Connect (CDN)"] --> TOTAL[Total]'
    assert by_path["docs/systems/ledger.md"]["syntax"] == {"ok": True, "error": None}
    assert document["totals"]["systems"] == {"title": "Architecture Deep-Dives", "before": 1, "after": 2,
                                             "target": 240}
    assert document["totals"]["costs"]["before"] == 0 and document["totals"]["costs"]["after"] == 1


def test_all_checks_every_diagram_at_a_revision(atlas: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "check", "--repo", str(atlas), "--all", "--rev", "pr", "--format", "json")
    document = json.loads(out)
    assert code == EXIT_BLOCKED
    assert document["base"] is None
    assert sorted(d["path"] for d in document["diagrams"]) == [
        "docs/costs/cdn.md", "docs/systems/ledger.md", "docs/systems/payments.md"]
    assert {d["status"] for d in document["diagrams"]} == {"checked"}


def test_clean_change_exits_zero_and_github_format_annotates(atlas: Path, scratch: ScratchRepo, capsys) -> None:
    scratch.git("checkout", "-q", "-b", "clean")
    scratch.write("docs/systems/orders.md", GOOD.replace("Payments", "Orders"))
    scratch.commit("orders")
    code, out, _ = run_cli(capsys, "check", "--repo", str(atlas), "--base", "main", "--head", "clean",
                           "--format", "github")
    assert code == EXIT_OK
    assert "::error" not in out

    code, out, _ = run_cli(capsys, "check", "--repo", str(atlas), "--base", "main", "--head", "pr",
                           "--format", "github")
    assert code == EXIT_BLOCKED
    assert f"::error file=docs/costs/cdn.md,line={BROKEN_LINE}," in out


def test_text_format_shows_the_suggestion_as_a_diff(atlas: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "check", "--repo", str(atlas), "--base", "main", "--head", "pr")
    assert code == EXIT_BLOCKED
    assert "docs/costs/cdn.md" in out
    assert "-     CDN[Open Connect (CDN)] --> TOTAL[Total]" in out
    assert '+     CDN["Open Connect (CDN)"] --> TOTAL[Total]' in out
    assert "\x1b[" not in out  # not a terminal: no colour


@pytest.mark.parametrize("args, reason", [
    (["check", "--repo", "{repo}"], "say what to check"),
    (["check", "--repo", "{repo}", "--all", "--base", "main"], "--all checks one revision"),
    (["check", "--repo", "{repo}", "--base", "no-such-branch"], "unknown revision"),
    (["check", "--repo", "{repo}/missing", "--base", "main"], "no such directory"),
    (["check", "--repo", "{repo}", "--base", "main", "--config", "{repo}/none.yml"], "no such file"),
    (["check", "--repo", "{repo}", "--base", "main", "--format", "xml"], "invalid choice"),
])
def test_usage_errors_exit_2_with_one_line(atlas: Path, capsys, args: list[str], reason: str) -> None:
    code, out, err = run_cli(capsys, *[a.format(repo=atlas) for a in args])
    assert code == EXIT_USAGE
    assert out == ""
    assert reason in err and err.count("\n") == 1


def test_a_first_run_starts_the_workers_before_reading_the_configuration_and_stops_them_on_its_error(
        atlas: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    started = []
    start = MermaidPool._start

    def recorded(self: MermaidPool, count: int | None = None) -> None:
        start(self, count)
        started.extend(worker.proc for worker in self._workers if worker.proc not in started)

    monkeypatch.setattr(MermaidPool, "_start", recorded)
    code, _, err = run_cli(capsys, "check", "--repo", str(atlas), "--all", "--config", str(atlas / "none.yml"))
    assert code == EXIT_USAGE and "no such file" in err
    assert started, "a first run loads mermaid while the configuration and the tree are read"
    assert all(proc.returncode is not None for proc in started)  # none left running


def test_invalid_repository_config_exits_2_naming_file_and_line(atlas: Path, scratch: ScratchRepo, capsys) -> None:
    scratch.write(".github/atlas-bot.yml", "docs_root: docs\nno_such_key: 1\n")
    scratch.commit("config")
    code, _, err = run_cli(capsys, "check", "--repo", str(atlas), "--base", "main", "--head", "pr")
    assert code == EXIT_USAGE
    assert ".github/atlas-bot.yml:2" in err


def test_config_is_read_from_the_base_not_the_head(atlas: Path, scratch: ScratchRepo, capsys) -> None:
    """A pull request that switches the technical gate off in its own head still gets it."""
    scratch.git("checkout", "-q", "pr")
    scratch.write(".github/atlas-bot.yml", "gates:\n  technical:\n    enabled: false\n")
    scratch.commit("switch the gate off")
    scratch.git("checkout", "-q", "main")
    code, out, _ = run_cli(capsys, "check", "--repo", str(atlas), "--base", "main", "--head", "pr",
                           "--format", "json")
    assert code == EXIT_BLOCKED
    assert any(f["rule"] == "syntax" for d in json.loads(out)["diagrams"] for f in d["findings"])


def test_missing_mermaid_packages_are_an_error_not_a_pass(atlas: Path, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("ATLAS_MERMAID_DIR", str(tmp_path / "empty"))
    code, out, err = run_cli(capsys, "check", "--repo", str(atlas), "--base", "main", "--head", "pr")
    assert code == EXIT_USAGE
    assert out == ""
    assert "npm ci" in err


def test_progress_json_counts_per_category(atlas: Path, capsys) -> None:
    code, out, _ = run_cli(capsys, "progress", "--repo", str(atlas), "--rev", "pr", "--format", "json")
    assert code == EXIT_OK
    document = json.loads(out)
    rows = {row["folder"]: row for row in document["categories"]}
    assert rows["systems"]["diagrams"] == 2 and rows["costs"]["diagrams"] == 1
    assert document["total"]["diagrams"] == sum(row["diagrams"] for row in document["categories"])


def test_progress_publish_without_token_is_a_usage_error(atlas: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    code, _, err = run_cli(capsys, "progress", "--repo", str(atlas), "--publish")
    assert code == EXIT_USAGE
    assert "GITHUB_TOKEN" in err


def _diagram(path: str, code: str = "flowchart LR\n  A --> B\n") -> Diagram:
    return Diagram(path=path, line=1, code=code, line_map=(2, 3))


def test_projected_counts_apply_the_pull_requests_own_difference() -> None:
    before = {"docs/a.md": 2, "docs/old.md": 1, "docs/base-only.md": 4}
    changes = [
        FileChange("docs/a.md", "M", diagrams=(
            DiagramChange(DiagramStatus.UNCHANGED, _diagram("docs/a.md"), _diagram("docs/a.md")),
            DiagramChange(DiagramStatus.REMOVED, None, _diagram("docs/a.md")),
            DiagramChange(DiagramStatus.ADDED, _diagram("docs/a.md")),
            DiagramChange(DiagramStatus.ADDED, _diagram("docs/a.md")),
        )),
        FileChange("docs/new.md", "R", old_path="docs/old.md", diagrams=(
            DiagramChange(DiagramStatus.MOVED, _diagram("docs/new.md"), _diagram("docs/old.md")),)),
        FileChange("docs/bin.md", "A", skip_reason="binary file"),
    ]
    assert projected_counts(before, changes) == {"docs/a.md": 3, "docs/new.md": 1, "docs/base-only.md": 4}


def test_syntax_fixes_are_remembered_between_runs(tmp_path: Path) -> None:
    broken = "flowchart LR\n    CDN[Open Connect (CDN)] --> TOTAL[Total]\n"
    cache = VerdictCache(tmp_path / "cache.sqlite3")
    with MermaidPool(workers=1, cache=cache) as pool:
        verdict = pool.parse(broken)
        first = syntax_fixes(pool, [(broken, verdict)])
    assert first[0] is not None and first[0].replacement == ('    CDN["Open Connect (CDN)"] --> TOTAL[Total]',)

    class NoParsing:
        """A pool whose parser must not be needed: the suggestion comes from the cache."""

        version, cache = pool.version, VerdictCache(tmp_path / "cache.sqlite3")

        def parse_many(self, codes, on_progress=None, on_verdict=None, on_drained=None):
            raise AssertionError(f"parsed {len(codes)} diagrams on a warm run")

    assert syntax_fixes(NoParsing(), [(broken, verdict)]) == first


def test_run_check_follows_the_merge_base(atlas: Path, scratch: ScratchRepo) -> None:
    """Diagrams the base gained after the branch point are not part of the pull request."""
    scratch.write("docs/systems/base-only.md", GOOD.replace("Payments", "Search"))
    scratch.commit("base moves on")
    repo = GitRepo(atlas)
    with MermaidPool(workers=1, cache=None) as pool:
        result = run_check(repo, load_config(), pool, base="main", head="pr")
    assert sorted(d.diagram.path for d in result.diagrams) == ["docs/costs/cdn.md", "docs/systems/ledger.md"]
    systems = next(t for t in result.totals if t.folder == "systems")
    assert (systems.before, systems.after) == (2, 3)
    assert not result.passed
    assert result.diagrams[0].syntax == SyntaxVerdict(ok=False, error=result.diagrams[0].syntax.error,
                                                      error_line=result.diagrams[0].syntax.error_line, type=None)


def test_a_file_seen_before_costs_no_parse_and_gives_the_same_results(atlas: Path, tmp_path: Path) -> None:
    repo, config = GitRepo(atlas), load_config()
    cache = VerdictCache(tmp_path / "results.sqlite3")
    with MermaidPool(workers=1, cache=cache) as pool:
        first = run_all(repo, config, pool, rev="pr")

    class NoParsing:
        version, cache = pool.version, VerdictCache(tmp_path / "results.sqlite3")

        def parse_many(self, codes, on_progress=None, on_verdict=None, on_drained=None):
            assert not codes, f"parsed {len(codes)} diagrams of files seen before"
            return []

    assert run_all(repo, config, NoParsing(), rev="pr") == first
    # Another configuration is another result: nothing stored under the old one is reused.
    stricter = load_config(repo_config_text="limits:\n  max_nodes: 1\n")
    with pytest.raises(AssertionError, match="parsed 3 diagrams"):
        run_all(repo, stricter, NoParsing(), rev="pr")


class CountingReads:
    """Counts the blobs read and the files whose diagrams are extracted while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import bot.changes

        self.blobs: list[str] = []
        self.extracted: list[str] = []
        read_blobs, extract = GitRepo.read_blobs, bot.changes.extract_diagrams

        def counted_read(repo: GitRepo, shas):
            shas = list(shas)
            self.blobs.extend(shas)
            return read_blobs(repo, shas)

        def counted_extract(path: str, text: str):
            self.extracted.append(path)
            return extract(path, text)

        monkeypatch.setattr(GitRepo, "read_blobs", counted_read)
        monkeypatch.setattr(bot.changes, "extract_diagrams", counted_extract)


def test_a_warm_run_reads_no_blob_it_has_results_for(atlas: Path, scratch: ScratchRepo, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    scratch.git("checkout", "-q", "pr")
    scratch.write("docs/reference/notes.md", "# Notes\n\nNo diagram here.\n")
    scratch.commit("a file without diagrams")
    repo, config = GitRepo(atlas), load_config()
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "results.sqlite3")) as pool:
        cold = run_all(repo, config, pool, rev="pr")
        counting = CountingReads(monkeypatch)
        assert run_all(repo, config, pool, rev="pr") == cold
        assert (counting.blobs, counting.extracted) == ([], [])
        # A new version of one file is a new blob: that file alone is read again.
        scratch.write("docs/systems/ledger.md", GOOD.replace("Payments", "General ledger"))
        scratch.commit("ledger renamed")
        edited = run_all(repo, config, pool, rev="pr")
        assert counting.extracted == ["docs/systems/ledger.md"] and len(counting.blobs) == 1
        assert [d.diagram.path for d in edited.diagrams] == [d.diagram.path for d in cold.diagrams]
        # Another configuration is another version of every result: every file is read again.
        counting.extracted.clear()
        run_all(repo, load_config(repo_config_text="limits:\n  max_nodes: 1\n"), pool, rev="pr")
        assert sorted(counting.extracted) == ["docs/costs/cdn.md", "docs/reference/notes.md",
                                              "docs/systems/ledger.md", "docs/systems/payments.md"]


def test_a_first_check_starts_the_workers_before_reading_the_tree(atlas: Path, capsys,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []
    start, extract = MermaidPool.start, changes.extract_diagrams

    def starting(pool: MermaidPool, count: int | None = None) -> None:
        events.append("workers")
        start(pool, count)

    def extracting(path: str, text: str) -> list[Diagram]:
        events.append("extract")
        return extract(path, text)

    monkeypatch.setattr(MermaidPool, "start", starting)
    monkeypatch.setattr(changes, "extract_diagrams", extracting)
    args = ("check", "--repo", str(atlas), "--all", "--rev", "pr")
    run_cli(capsys, *args, "--format", "json")
    assert events[0] == "workers" and "extract" in events
    events.clear()
    run_cli(capsys, *args, "--format", "sarif")  # verdicts stored: workers start only if a parse needs them
    assert "workers" not in events


@pytest.mark.parametrize("output_format", ["json", "sarif", "text"])
def test_check_all_prints_the_same_warm_as_cold(atlas: Path, capsys, output_format: str) -> None:
    args = ("check", "--repo", str(atlas), "--all", "--rev", "pr", "--format", output_format)
    cold, warm = run_cli(capsys, *args), run_cli(capsys, *args)
    assert cold[0] == EXIT_BLOCKED and warm == cold


def commit_broken_line_moved_down(scratch: ScratchRepo) -> None:
    """main: the broken diagram; branch `pr`: the same diagram two lines lower with a good edge added below."""
    scratch.write("docs/costs/cdn.md", BROKEN)
    scratch.commit("base")
    scratch.git("checkout", "-q", "-b", "pr")
    scratch.write("docs/costs/cdn.md", "Intro.\n\n" + BROKEN.replace("[Total]", "[Total]\n    TOTAL --> BILL[Bill]"))
    scratch.commit("pr")


def test_a_modified_diagram_carries_what_the_gates_found_at_the_merge_base(scratch: ScratchRepo,
                                                                            monkeypatch: pytest.MonkeyPatch,
                                                                            tmp_path: Path) -> None:
    """The broken line was there before the pull request: its finding is already there, not new."""
    from bot.review import preexisting_findings

    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path / "data"))
    commit_broken_line_moved_down(scratch)
    with MermaidPool(workers=1, cache=None) as pool:
        result = run_check(GitRepo(scratch.path), load_config(), pool, base="main", head="pr")
    [diagram] = result.diagrams
    assert diagram.status is DiagramStatus.MODIFIED
    assert diagram.base_diagram is not None and diagram.base_diagram.line == 3
    syntax = next(f for f in diagram.findings if f.rule == "syntax")
    assert syntax.line == BROKEN_LINE + 2
    assert any(f.rule == "syntax" and f.line == BROKEN_LINE for f in diagram.base_findings)
    assert syntax in preexisting_findings(result)


def test_results_no_fix_can_change_are_stored_while_the_fix_candidates_are_parsed(
    atlas: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files whose every diagram parsed are stored as soon as the last verdict is in, before the run waits
    for the candidate fixes of the others; the rejected diagram's file is stored once its fix is known."""
    events: list[tuple[str, ...]] = []
    put_stored, syntax_fixes = VerdictCache.put_stored, check.syntax_fixes

    def storing(cache: VerdictCache, table: str, version: str, values) -> None:
        if table == FILE_RESULTS:
            events.append(("store", *sorted(json.loads(text)[0]["diagram"]["path"] for text in values.values())))
        put_stored(cache, table, version, values)

    def fixing(*args, **kwargs):
        events.append(("fixes",))
        return syntax_fixes(*args, **kwargs)

    monkeypatch.setattr(VerdictCache, "put_stored", storing)
    monkeypatch.setattr(check, "syntax_fixes", fixing)
    repo, config = GitRepo(atlas), load_config()
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "results.sqlite3")) as pool:
        cold = run_all(repo, config, pool, rev="pr")
        assert events == [("store", "docs/systems/ledger.md", "docs/systems/payments.md"), ("fixes",),
                          ("store", "docs/costs/cdn.md")]
        [broken] = [d for d in cold.diagrams if d.diagram.path == "docs/costs/cdn.md"]
        assert any(f.rule == "syntax" and f.suggestion for f in broken.findings)
        assert run_all(repo, config, pool, rev="pr") == cold  # read back as they were found


def test_results_cut_short_by_the_gate_budget_are_not_stored(atlas: Path, tmp_path: Path) -> None:
    repo = GitRepo(atlas)
    # A change deadline already passed: every gate of every diagram is reported as not evaluated.
    spent = load_config(repo_config_text="gate_budget: {change_seconds: 0.000001}\n")
    cache = VerdictCache(tmp_path / "results.sqlite3")
    with MermaidPool(workers=1, cache=cache) as pool:
        result = run_all(repo, spent, pool, rev="pr")
        assert all(any(f.rule == "time_budget" for f in d.findings) for d in result.diagrams)
        assert not any(all(d.gates_passed.values()) for d in result.diagrams)
        assert not result.settled

        class Counting:
            version, cache, parsed = pool.version, VerdictCache(tmp_path / "results.sqlite3"), []

            def parse_many(self, codes, on_progress=None, on_verdict=None, on_drained=None):
                self.parsed.extend(codes)
                return pool.parse_many(codes)

        counting = Counting()
        run_all(repo, spent, counting, rev="pr")
    assert len(counting.parsed) == len(result.diagrams)


def test_gates_and_fix_candidates_run_while_mermaid_parses_the_rest(
    atlas: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A diagram's gates run as soon as mermaid answers for it, a rejected one's fix candidates are built then
    too (the fix found by parsing them is added to its syntax finding afterwards), and the change's time budget
    counts gate work only: waiting for mermaid, even longer than the whole budget, does not cut the gates
    short."""
    events: list[str] = []
    evaluate, candidates = check.evaluate_diagram, check.candidate_fixes

    def recording_gates(config, diagram, **kwargs):
        events.append(f"gates {diagram.path}")
        return evaluate(config, diagram, **kwargs)

    def recording_candidates(code, verdict):
        events.append("candidates")
        return candidates(code, verdict)

    monkeypatch.setattr(check, "evaluate_diagram", recording_gates)
    monkeypatch.setattr(check, "candidate_fixes", recording_candidates)

    class Streaming:
        version, cache = "test", None

        def parse_many(self, codes, on_progress=None, on_verdict=None, on_drained=None):
            verdicts = []
            for index, code in enumerate(codes):
                if "[Open Connect (CDN)]" in code:
                    verdicts.append(SyntaxVerdict(ok=False, error="Parse error on line 2", error_line=2))
                else:
                    verdicts.append(SyntaxVerdict(ok=True, type="flowchart-v2"))
                if on_verdict is not None:  # the diagrams, not the fix candidates
                    time.sleep(0.8)  # mermaid at work: three diagrams outlast the budget
                    events.append(f"parsed {index}")
                    on_verdict(index, verdicts[-1])
            return verdicts

    budget = load_config(repo_config_text="gate_budget: {change_seconds: 2}\n")
    result = run_all(GitRepo(atlas), budget, Streaming(), rev="pr")
    paths = [d.diagram.path for d in result.diagrams]
    assert paths == ["docs/costs/cdn.md", "docs/systems/ledger.md", "docs/systems/payments.md"]
    assert events == ["parsed 0", "candidates", f"gates {paths[0]}", "parsed 1", f"gates {paths[1]}", "parsed 2",
                      f"gates {paths[2]}"]
    assert any(f.rule == "syntax" and f.suggestion for f in result.diagrams[0].findings)  # the fix was found
    assert not any(f.rule == "time_budget" for d in result.diagrams for f in d.findings)


def test_fix_candidates_are_parsed_while_the_last_verdicts_are_reported(
    scratch: ScratchRepo, tmp_path: Path
) -> None:
    """Once the pool has handed out every diagram, the first candidate of each diagram rejected so far goes to
    the workers, so they parse it while the gates run on the last verdicts; the suggestion is then found in
    the cache, and no diagram or candidate is parsed twice."""
    fences = [BROKEN.split("\n", 1)[1]] + [
        f"```mermaid\nflowchart LR\n    N{i}[Node {i}] --> M{i}[Next {i}]\n```\n" for i in range(80)
    ]
    scratch.write("docs/costs/many.md", "# Many\n\n" + "\n".join(fences))
    scratch.commit("many")

    class Recording(MermaidPool):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.prefetched: list[str] = []

        def prefetch(self, codes):
            self.prefetched.extend(codes)
            return super().prefetch(codes)

    with Recording(workers=1, cache=VerdictCache(tmp_path / "v.sqlite3")) as pool:
        result = run_all(GitRepo(scratch.path), load_config(), pool, rev="HEAD")
        parsed = pool.parses
    broken = result.diagrams[0]
    fix = next(f.suggestion for f in broken.findings if f.rule == "syntax")
    assert fix is not None and 'CDN["Open Connect (CDN)"]' in fix
    assert len(pool.prefetched) == 1 and 'CDN["Open Connect (CDN)"]' in pool.prefetched[0]
    assert parsed == len(result.diagrams) + 1


def test_gates_score_prints_the_matrix_and_each_disagreement(atlas: Path, tmp_path: Path, capsys) -> None:
    labels = tmp_path / "labels.jsonl"
    rows = [
        {"path": "docs/systems/payments.md", "line": 3, "labels": {
            "new_hire": {"pass": True, "why": "arrow, 2K req/s"},
            "three_am": {"pass": True, "why": "p99 4 ms and a command (labelled wrongly on purpose)"}}},
        {"path": "docs/systems/missing.md", "line": 1, "labels": {"new_hire": {"pass": False, "why": "x"}}},
    ]
    labels.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    code, out, _ = run_cli(capsys, "gates", "score", "--repo", str(atlas), "--labels", str(labels),
                           "--every-category")
    assert code == 0
    assert "| New Hire Test | 1 | 0 | 0 | 0 | n/a (one class only) |" in out
    assert "| 3 AM Test | 0 | 1 | 0 | 0 | n/a (one class only) |" in out
    assert "- docs/systems/payments.md:3: labelled pass, gate fails" in out
    assert "label: p99 4 ms and a command" in out and "gate:  line 3 [warning] 3 AM Test: none of:" in out
    assert "docs/systems/missing.md:1 (no such file at the revision)" in out


def test_gates_score_names_a_broken_labels_line(atlas: Path, tmp_path: Path, capsys) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"path": "docs/a.md", "line": 1, "labels": {}}\n{"path": "docs/a.md"}\n')
    code, _, err = run_cli(capsys, "gates", "score", "--repo", str(atlas), "--labels", str(labels))
    assert code == EXIT_USAGE and f"{labels}:2: not a labelled diagram" in err


class TimingOutPool:
    """The real pool, except that every diagram mermaid judges in one phase gets the pool's timeout verdict."""

    def __init__(self, pool: MermaidPool, *, phases: set[str]) -> None:
        self.pool, self.version, self.cache, self.phases, self.calls = pool, pool.version, pool.cache, phases, 0

    def parse_many(self, codes, on_progress=None, on_verdict=None, on_drained=None):
        self.calls += 1
        phase = "diagrams" if self.calls == 1 else "fixes"
        if phase in self.phases:
            return [SyntaxVerdict(ok=False, error=TIMEOUT_ERROR.format(timeout=10)) for _ in codes]
        return self.pool.parse_many(codes, on_progress=on_progress)


@pytest.mark.parametrize("phases", [{"diagrams"}, {"fixes"}], ids=["diagram-timeout", "fix-candidate-timeout"])
def test_nothing_derived_from_a_timeout_is_kept(atlas: Path, tmp_path: Path, phases: set[str]) -> None:
    """A timeout (or crash) is never a lasting verdict: the next run, e.g. /atlas recheck, parses again."""
    repo, config = GitRepo(atlas), load_config()
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "cache.sqlite3")) as pool:
        flaky = run_all(repo, config, TimingOutPool(pool, phases=phases), rev="pr")
        recheck = run_all(repo, config, pool, rev="pr")
    broken = next(d for d in recheck.diagrams if d.diagram.path == "docs/costs/cdn.md")
    assert not broken.syntax.ok and broken.syntax.error.startswith("Parse error")
    assert any(f.rule == "syntax" and f.suggestion is not None for f in broken.findings)
    assert [d.syntax.ok for d in recheck.diagrams] == [False, True, True]
    assert flaky != recheck
    assert not flaky.settled and recheck.settled
