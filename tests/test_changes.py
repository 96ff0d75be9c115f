"""bot.changes on real git repositories: what a pull request did to each Markdown file's diagrams."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.changes import collect_all, collect_changes, decode_markdown, too_large_reason
from bot.gitrepo import GitError, GitRepo
from bot.model import DiagramStatus, FileChange
from scratch import ScratchRepo


FLOW = "flowchart TD\n  A --> B\n  B --> C\n  C --> D\n"
SEQ = "sequenceDiagram\n  A->>B: hi\n  B->>A: ok\n"
PIE = 'pie\n  "a" : 1\n  "b" : 2\n'
LIMIT = 2_000


def fenced(*codes: str, prose: str = "Some text.") -> str:
    return "# Title\n\n" + "".join(f"{prose}\n\n```mermaid\n{code}```\n\n" for code in codes)


@pytest.fixture
def pull_request(tmp_path: Path) -> ScratchRepo:
    """main → feature (the pull request) → main moves on with its own diagram edits."""
    repo = ScratchRepo(tmp_path / "work")
    repo.write("docs/a.md", fenced(FLOW, SEQ))
    repo.write("docs/b.md", fenced(PIE))
    repo.write("docs/gone.md", fenced(FLOW, PIE))
    repo.write("docs/old-name.md", fenced(FLOW, SEQ, prose="A long paragraph that keeps the rename similar. " * 5))
    repo.write("docs/was-text.txt", fenced(PIE))
    repo.write("docs/notes.txt", "notes\n")
    repo.write("docs/shrinks.md", fenced(PIE) + "x" * LIMIT)
    repo.commit("base")

    repo.git("checkout", "-q", "-b", "feature")
    repo.write("docs/a.md", fenced(FLOW.replace("C --> D", "C --> E"), SEQ))
    repo.write("docs/new.md", fenced(SEQ))
    (repo.path / "docs/gone.md").unlink()
    repo.git("mv", "docs/old-name.md", "docs/new-name.md")
    repo.write("docs/new-name.md", (repo.path / "docs/new-name.md").read_text() + "One more line.\n")
    repo.git("mv", "docs/was-text.txt", "docs/was-text.md")
    repo.write("docs/notes.txt", "notes changed\n")
    repo.write("docs/bin.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    repo.write("docs/latin.md", b"caf\xe9\n")
    repo.write("docs/big.md", fenced(FLOW) + "y" * (3 * LIMIT))
    repo.write("docs/shrinks.md", fenced(PIE, SEQ))
    repo.write("docs/bom.md", "\ufeff```mermaid\r\npie\r\n```\r\n".encode())
    repo.commit("pull request")

    repo.git("checkout", "-q", "main")
    repo.write("docs/b.md", fenced(PIE.replace('"b" : 2', '"b" : 3')))
    repo.write("docs/main-only.md", fenced(SEQ))
    repo.commit("main moves on")
    return repo


def _by_path(changes: tuple[FileChange, ...]) -> dict[str, FileChange]:
    return {c.path: c for c in changes}


def _statuses(change: FileChange) -> list[str]:
    return [d.status.value for d in change.diagrams]


def test_collect_changes_classifies_every_file(pull_request: ScratchRepo) -> None:
    changes = collect_changes(GitRepo(pull_request.path), "main", "feature", max_bytes=LIMIT)
    files = _by_path(changes)
    assert [c.path for c in changes] == sorted(files)
    assert sorted(files) == [
        "docs/a.md", "docs/big.md", "docs/bin.md", "docs/bom.md", "docs/gone.md", "docs/latin.md",
        "docs/new-name.md", "docs/new.md", "docs/shrinks.md", "docs/was-text.md",
    ]

    a = files["docs/a.md"]
    assert (a.change, _statuses(a)) == ("M", ["modified", "unchanged"])
    assert a.diagrams[0].old.code == FLOW and "C --> E" in a.diagrams[0].new.code
    assert a.text == fenced(FLOW.replace("C --> D", "C --> E"), SEQ)

    assert (files["docs/new.md"].change, _statuses(files["docs/new.md"])) == ("A", ["added"])

    gone = files["docs/gone.md"]
    assert (gone.change, _statuses(gone), gone.text) == ("D", ["removed", "removed"], "")
    assert [d.old.code for d in gone.diagrams] == [FLOW, PIE]

    renamed = files["docs/new-name.md"]
    assert (renamed.change, renamed.old_path) == ("R", "docs/old-name.md")
    assert _statuses(renamed) == ["unchanged", "unchanged"]
    assert [d.old.path for d in renamed.diagrams] == ["docs/old-name.md"] * 2

    assert (files["docs/was-text.md"].change, _statuses(files["docs/was-text.md"])) == ("A", ["added"])
    assert _statuses(files["docs/shrinks.md"]) == ["unchanged", "added"]

    bom = files["docs/bom.md"]
    assert bom.text == "```mermaid\r\npie\r\n```\r\n"
    assert [(d.new.line, d.new.code) for d in bom.diagrams] == [(1, "pie\n")]


def test_unreadable_files_get_a_reason_not_a_crash(pull_request: ScratchRepo) -> None:
    files = _by_path(collect_changes(GitRepo(pull_request.path), "main", "feature", max_bytes=LIMIT))
    assert files["docs/bin.md"].skip_reason == "binary file"
    assert files["docs/latin.md"].skip_reason == "not valid UTF-8 (byte 0xe9 at offset 3)"
    assert files["docs/big.md"].skip_reason == "6.1 kB is over the 2 kB limit"
    for path in ("docs/bin.md", "docs/latin.md", "docs/big.md"):
        assert files[path].diagrams == () and files[path].text == ""
    assert all(files[p].skip_reason is None for p in files if p not in ("docs/bin.md", "docs/latin.md", "docs/big.md"))


def test_changes_on_the_base_branch_only_are_not_the_pull_requests(pull_request: ScratchRepo) -> None:
    repo = GitRepo(pull_request.path)
    files = _by_path(collect_changes(repo, "main", "feature", max_bytes=LIMIT))
    assert "docs/b.md" not in files and "docs/main-only.md" not in files
    # Same answer from the merge base itself, and nothing at all between a branch and itself.
    assert files == _by_path(collect_changes(repo, repo.merge_base("main", "feature"), "feature", max_bytes=LIMIT))
    assert collect_changes(repo, "feature", "feature") == ()


def test_a_pull_request_that_is_behind_reports_only_its_own_work(pull_request: ScratchRepo) -> None:
    """Head's base branch since the branch point is not reverted by the pull request."""
    repo = GitRepo(pull_request.path)
    changes = collect_changes(repo, "feature", "main", max_bytes=LIMIT)
    assert sorted(c.path for c in changes) == ["docs/b.md", "docs/main-only.md"]
    assert _statuses(_by_path(changes)["docs/b.md"]) == ["modified"]


def test_unknown_revisions_are_git_errors(pull_request: ScratchRepo) -> None:
    with pytest.raises(GitError, match="unknown revision 'nope'"):
        collect_changes(GitRepo(pull_request.path), "nope", "feature")


def test_collect_all_lists_every_markdown_file_as_checked(pull_request: ScratchRepo) -> None:
    files = _by_path(collect_all(GitRepo(pull_request.path), "feature", max_bytes=LIMIT))
    assert "docs/notes.txt" not in files and "docs/gone.md" not in files
    assert {p for p, f in files.items() if f.skip_reason} == {"docs/bin.md", "docs/latin.md", "docs/big.md"}
    # a, b (unchanged by the pull request), new, new-name, was-text, shrinks, bom
    assert sum(len(f.diagrams) for f in files.values()) == 2 + 1 + 1 + 2 + 1 + 2 + 1
    assert {d.status for f in files.values() for d in f.diagrams} == {DiagramStatus.CHECKED}
    assert all(d.old is None and d.new.path == f.path for f in files.values() for d in f.diagrams)
    assert files["docs/a.md"].change == "A" and files["docs/a.md"].text.startswith("# Title")
    assert set(_by_path(collect_all(GitRepo(pull_request.path), "feature", under="nowhere"))) == set()


@pytest.mark.parametrize(
    ("size", "limit", "expected"),
    [
        (1_400_000, 1_000_000, "1.4 MB is over the 1 MB limit"),
        (2_500, 2_000, "2.5 kB is over the 2 kB limit"),
        (1_000_001, 1_000_000, "1,000,001 bytes is over the 1,000,000-byte limit"),
        (120, 100, "120 bytes is over the 100 bytes limit"),
    ],
)
def test_too_large_reason(size: int, limit: int, expected: str) -> None:
    assert too_large_reason(size, limit) == expected


def test_decode_markdown() -> None:
    assert decode_markdown(b"\xef\xbb\xbf# T\n") == ("# T\n", None)
    assert decode_markdown(b"ok \xe2\x82\xac\n") == ("ok \u20ac\n", None)
    assert decode_markdown(b"\xe2\x82") == (None, "not valid UTF-8 (byte 0xe2 at offset 0)")
    assert decode_markdown(b"a\x00b") == (None, "binary file")
    assert decode_markdown(b"abc", max_bytes=2) == (None, "3 bytes is over the 2 bytes limit")
