"""Tests of bot.counting and bot.progress_store: CommonMark-exact counts over git, incremental = cold, caches,
history persistence, and serialised progress updates."""

from __future__ import annotations

import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Category, Config
from bot.content import count_diagrams
from bot.counting import DiagramCounter, ProgressUpdater, render_at
from bot.gitrepo import GitRepo
from bot.progress import REGION_END, REGION_START, MergeRecord, merge_region, parse_history
from bot.progress_store import ProgressStore
from scratch import ScratchRepo

NOW = datetime(2024, 9, 30, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def repo(scratch: ScratchRepo) -> ScratchRepo:
    return scratch


def fences(n: int, tag: int = 0) -> str:
    """A Markdown document with ``n`` mermaid fences and one fence of another language."""
    parts = [f"# Doc {tag}\n"]
    parts += [f"```mermaid\nflowchart LR\n  A{tag}_{i} --> B\n```\n" for i in range(n)]
    parts.append("```python\nprint('not a diagram')\n```\n")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- CommonMark counting

TRICKY = {
    "docs/a/plain.md": ("```mermaid\ngraph TD\n```\n", 1),
    "docs/a/tilde.md": ("~~~mermaid\ngraph TD\n~~~\n", 1),
    "docs/a/indent3.md": ("   ```mermaid\n   graph TD\n   ```\n", 1),
    "docs/a/indent4.md": ("    ```mermaid\n    graph TD\n    ```\n", 0),  # indented code block
    "docs/a/longer.md": ("````mermaid\ngraph TD\n```\nstill inside\n````\n```mermaid\nx\n```\n", 2),
    "docs/a/quote.md": ("> ```mermaid\n> graph TD\n> ```\n", 1),
    "docs/a/list.md": ("- item\n\n  ```mermaid\n  graph TD\n  ```\n", 1),
    "docs/a/case.md": ("```Mermaid\ngraph TD\n```\n```mermaidjs\nx\n```\n", 0),
    "docs/a/attrs.md": ("```mermaid {init: {'theme': 'dark'}}\ngraph TD\n```\n", 1),
    "docs/a/unclosed.md": ("text\n\n```mermaid\ngraph TD\nno closing fence", 1),
    "docs/a/backtick-info.md": ("```mermaid `x`\ngraph TD\n```\n", 0),  # backtick in info: not a fence
    "docs/a/html.md": ("<div>\n```mermaid\ngraph TD\n```\n</div>\n", 0),  # inside an HTML block
    "docs/a/crlf.md": ("```mermaid\r\ngraph TD\r\n```\r\n", 1),
    "docs/b/none.md": ("# nothing here\n", 0),
    "README.md": ("```mermaid\npie\n```\n", 1),
    "docs/a/other.txt": ("```mermaid\ngraph TD\n```\n", 0),  # not Markdown
}


def test_counts_follow_commonmark(repo: ScratchRepo):
    for path, (text, _) in TRICKY.items():
        repo.write(path, text)
    sha = repo.commit()
    counts = DiagramCounter(GitRepo(repo.path)).counts_at(sha)
    expected = {path: n for path, (_, n) in TRICKY.items() if n}
    assert counts == expected
    # The counter and the engine's parser agree file by file.
    assert all(count_diagrams(TRICKY[path][0]) == n for path, n in counts.items())


def test_non_utf8_blob_is_counted_not_dropped(repo: ScratchRepo):
    (repo.path / "docs").mkdir(parents=True)
    (repo.path / "docs" / "latin1.md").write_bytes("caf\xe9\n\n```mermaid\ngraph TD\n```\n".encode("latin-1"))
    sha = repo.commit()
    assert DiagramCounter(GitRepo(repo.path)).counts_at(sha) == {"docs/latin1.md": 1}


# ----------------------------------------------------------------------------------------------- caching


class SpyRepo:
    """Wraps a GitRepo and records which blobs were read."""

    def __init__(self, inner: GitRepo) -> None:
        self.inner = inner
        self.read: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def read_blobs(self, shas):
        shas = list(shas)
        self.read.extend(shas)
        return self.inner.read_blobs(shas)


def _blob(repo: ScratchRepo, rev: str, path: str) -> str:
    return repo.git("rev-parse", f"{rev}:{path}")


def test_incremental_reads_only_changed_files(repo: ScratchRepo):
    for i in range(20):
        repo.write(f"docs/c{i % 3}/f{i}.md", fences(1 + i % 4, i))
    first = repo.commit()
    spy = SpyRepo(GitRepo(repo.path))
    counter = DiagramCounter(spy)
    counter.counts_at(first)
    assert len(spy.read) == 20
    repo.write("docs/c0/f0.md", fences(7, 100))
    repo.write("docs/c1/new.md", fences(2, 101))
    repo.move("docs/c2/f2.md", "docs/moved/f2.md")  # same blob: nothing to read
    repo.remove("docs/c1/f1.md")
    second = repo.commit()
    spy.read.clear()
    counts = counter.counts_at(second)
    assert sorted(spy.read) == sorted([_blob(repo, second, "docs/c0/f0.md"), _blob(repo, second, "docs/c1/new.md")])
    assert counts == DiagramCounter(GitRepo(repo.path)).counts_at(second)
    assert counts["docs/c0/f0.md"] == 7 and "docs/c1/f1.md" not in counts and counts["docs/moved/f2.md"] == 3
    # Counted commits come from the commit cache: no listing, no reads; going back is free too.
    spy.read.clear()
    assert counter.counts_at(first) == DiagramCounter(GitRepo(repo.path)).counts_at(first)
    assert spy.read == [] and counter.last_stats.from_commit_cache


def test_store_survives_a_restart_and_separates_schemes(repo: ScratchRepo, tmp_path: Path):
    repo.write("docs/a/x.md", fences(3))
    sha = repo.commit()
    with ProgressStore.in_data_dir(tmp_path / "data") as store:
        assert DiagramCounter(GitRepo(repo.path), store).counts_at(sha) == {"docs/a/x.md": 3}
    with ProgressStore.in_data_dir(tmp_path / "data") as store:
        spy = SpyRepo(GitRepo(repo.path))
        assert DiagramCounter(spy, store).counts_at(sha) == {"docs/a/x.md": 3}
        assert spy.read == []
        # A new counting scheme never reuses numbers from the old one.
        assert DiagramCounter(spy, store, scheme="other").counts_at(sha) == {"docs/a/x.md": 3}
        assert len(spy.read) == 1


# ------------------------------------------------------------------------------- incremental == cold (property)

PATHS = ["docs/a/one.md", "docs/a/two.md", "docs/b/three.md", "docs/c/d/deep.md", "docs/top.md", "notes.md",
         "docs/b/four.markdown"]

operation = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(PATHS), st.integers(0, 4), st.integers(0, 3)),
    st.tuples(st.just("delete"), st.sampled_from(PATHS), st.just(0), st.just(0)),
    st.tuples(st.just("move"), st.sampled_from(PATHS), st.sampled_from(range(len(PATHS))), st.just(0)),
)


def _document(n: int, variant: int) -> str:
    """n diagrams written in one of a few CommonMark shapes (plain, tilde, quoted, listed)."""
    shapes = ["```mermaid\ngraph TD\n  A --> B{i}\n```\n", "~~~ mermaid\nsequenceDiagram\n  A->>B: {i}\n~~~\n",
              "> ```mermaid\n> pie\n>   \"x\" : {i}\n> ```\n",
              "1. step\n\n   ```mermaid\n   graph LR\n   X{i}\n   ```\n"]
    body = "\n".join(shapes[(variant + i) % len(shapes)].replace("{i}", str(i)) for i in range(n))
    return f"# Title {variant}\n\nSome text.\n\n{body}\n    ```mermaid\n    indented code, not a fence\n    ```\n"


@settings(max_examples=20, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=5))
def test_incremental_equals_cold_recount(commits):
    with tempfile.TemporaryDirectory() as tmp:
        repo = ScratchRepo(Path(tmp))
        model: dict[str, str] = {}
        counter = DiagramCounter(GitRepo(repo.path))
        shas = []
        for ops in commits:
            for kind, path, a, b in ops:
                if kind == "write":
                    model[path] = _document(a, b)
                    repo.write(path, model[path])
                elif kind == "delete" and path in model:
                    del model[path]
                    repo.remove(path)
                elif kind == "move" and path in model and PATHS[a] != path:
                    if PATHS[a] in model:
                        repo.remove(PATHS[a])
                    model[PATHS[a]] = model.pop(path)
                    repo.move(path, PATHS[a])
            shas.append(repo.commit())
            expected = {p: n for p, text in model.items() if (n := count_diagrams(text))}
            assert counter.counts_at(shas[-1]) == expected
            assert DiagramCounter(GitRepo(repo.path)).counts_at(shas[-1]) == expected
        # Revisiting an older commit through the same (warm) counter still equals its cold count.
        assert counter.counts_at(shas[0]) == DiagramCounter(GitRepo(repo.path)).counts_at(shas[0])


# -------------------------------------------------------------------------------------------- render_at


CONFIG = Config(categories=(Category("a", "Alpha", 10), Category("b", "Beta", 20)))


def test_render_at_records_history_and_recovers_it_from_the_issue(repo: ScratchRepo, tmp_path: Path):
    repo.write("docs/a/x.md", fences(2))
    first = repo.commit()
    counter = DiagramCounter(GitRepo(repo.path), ProgressStore(tmp_path / "s1.sqlite3"))
    _, region = render_at(counter, CONFIG, "o/r", first, now=NOW - timedelta(days=8), gate_health={})
    repo.write("docs/b/y.md", fences(5))
    second = repo.commit()
    merge = MergeRecord(3, "Add y", NOW, second, 5, (("Beta", 5),))
    snapshot, region = render_at(counter, CONFIG, "o/r", second, now=NOW, gate_health={"Technical": (6, 7)},
                                 merges=(merge,), issue_body=merge_region("mine", region))
    assert snapshot.total.diagrams == 7
    assert "| Beta | 5 | 20 |" in region and "#3 Add y: +5 diagrams" in region
    assert [p.total for p in counter.store.load_history("o/r").points] == [2, 7]
    # A bot with an empty store continues the history embedded in the issue.
    fresh = DiagramCounter(GitRepo(repo.path), ProgressStore())
    _, again = render_at(fresh, CONFIG, "o/r", second, now=NOW, gate_health={"Technical": (6, 7)},
                         issue_body=merge_region("mine", region))
    assert again == region
    assert parse_history(again).merges[-1].number == 3


# ------------------------------------------------------------------------------------------- concurrency


def _run(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args)
    thread.start()
    return thread


def test_two_merges_at_once_are_serialised_and_the_newest_head_wins():
    updater = ProgressUpdater()
    state = {"head": "A"}
    published: list[str] = []
    active, overlap = [0], [False]
    entered, release = threading.Event(), threading.Event()

    def render(head: str) -> str:
        active[0] += 1
        overlap[0] |= active[0] > 1
        if head == "A":
            entered.set()
            release.wait(5)
        active[0] -= 1
        return f"{REGION_START}\nhead {head}\n{REGION_END}"

    def update() -> None:
        updater.update("o/r", resolve_head=lambda: state["head"], render=render, publish=published.append)

    first = _run(update)
    assert entered.wait(5)
    state["head"] = "B"  # the second merge lands while the first update is rendering
    second = _run(update)
    release.set()
    first.join(5)
    second.join(5)
    assert not overlap[0]
    assert [p.split("\n")[1] for p in published] == ["head A", "head B"]
    # Nothing changed since: nothing is written.
    outcome = updater.update("o/r", resolve_head=lambda: "B", render=render, publish=published.append)
    assert not outcome.published and len(published) == 2


def test_merges_already_landed_publish_once():
    updater = ProgressUpdater()
    published: list[str] = []
    barrier = threading.Barrier(2)

    def update() -> None:
        barrier.wait(5)
        updater.update("o/r", resolve_head=lambda: "C", render=lambda head: f"region {head}",
                       publish=published.append)

    threads = [_run(update) for _ in range(2)]
    for thread in threads:
        thread.join(5)
    assert published == ["region C"]


def test_failed_publish_is_retried_and_other_repositories_are_not_blocked(tmp_path: Path):
    updater = ProgressUpdater(ProgressStore(tmp_path / "store.sqlite3"))
    calls: list[str] = []

    def failing(region: str) -> None:
        raise RuntimeError("GitHub is down")

    with pytest.raises(RuntimeError):
        updater.update("o/r", resolve_head=lambda: "A", render=str, publish=failing)
    assert updater.update("o/r", resolve_head=lambda: "A", render=str, publish=calls.append).published
    assert calls == ["A"]

    entered, release = threading.Event(), threading.Event()

    def slow(head: str) -> str:
        entered.set()
        release.wait(5)
        return head

    blocked = _run(lambda: updater.update("o/slow", resolve_head=lambda: "X", render=slow, publish=calls.append))
    assert entered.wait(5)
    assert updater.update("o/other", resolve_head=lambda: "Y", render=str, publish=calls.append).published
    release.set()
    blocked.join(5)
    assert calls == ["A", "Y", "X"]
    # The digest of what was published lives in the store: a restarted updater does not rewrite it.
    again = ProgressUpdater(ProgressStore(tmp_path / "store.sqlite3"))
    assert not again.update("o/r", resolve_head=lambda: "A", render=str, publish=calls.append).published
    assert again.update("o/r", resolve_head=lambda: "A", render=str, publish=calls.append, force=True).published
