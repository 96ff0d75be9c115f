"""bot.progress_job: counts, gate health and merged pull requests of a real git history, rendered and published."""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone

from bot.config import load_config
from bot.github.progress_issue import LEFT_CLOSED, IssueRef
from bot.gitrepo import GitRepo
from bot.model import SyntaxVerdict
from bot.progress import REGION_END, REGION_START, merge_region
from bot.progress_job import ProgressJob, recent_merges
from bot.counting import DiagramCounter
from bot.progress_store import ProgressStore
from scratch import ScratchRepo

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
DIAGRAM = "```mermaid\nflowchart LR\n    API[Orders API] --> DB[(PostgreSQL 16)]\n```\n"


class AlwaysParses:
    """A stand-in for the mermaid pool: every diagram parses (gate health still runs every other gate)."""

    version, cache = "test", None

    def parse_many(self, codes, on_progress=None, on_verdict=None, on_drained=None):
        return [SyntaxVerdict(ok=True, type="flowchart-v2") for _ in codes]


class RecordingClient:
    """The slice of bot.github.RepoClient the job uses: the issue body as GitHub would keep it."""

    def __init__(self) -> None:
        self.body: str | None = None
        self.writes = 0
        self.closed = False  # by a person, with when_closed: leave

    def upsert_progress_issue(self, region, settings) -> IssueRef:
        if self.closed:
            return IssueRef(1, "", "closed", LEFT_CLOSED)
        text = region(self.body) if callable(region) else region
        self.body = merge_region(self.body, text)
        self.writes += 1
        return IssueRef(1, "", "open", "updated")


def merged_history(scratch: ScratchRepo) -> ScratchRepo:
    """main: a base page; then PR #12 (merge commit) adds two systems diagrams, PR #15 (squash) one cost one."""
    scratch.write("docs/systems/base.md", "# Base\n\n" + DIAGRAM)
    scratch.commit("initial")
    scratch.git("checkout", "-q", "-b", "feature")
    scratch.write("docs/systems/orders.md", "# Orders\n\n" + DIAGRAM + "\n" + DIAGRAM)
    scratch.commit("orders")
    scratch.git("checkout", "-q", "main")
    scratch.git("merge", "-q", "--no-ff", "feature", "-m", "Merge pull request #12 from atlas/feature")
    scratch.write("docs/costs/cdn.md", "# CDN cost\n\n" + DIAGRAM)
    scratch.commit("Add the CDN cost breakdown (#15)")
    scratch.write("README.md", "no pull request here\n")
    scratch.commit("direct push")
    return scratch


def test_recent_merges_come_from_first_parent_history_with_their_deltas(scratch: ScratchRepo) -> None:
    repo = GitRepo(merged_history(scratch).path)
    records = recent_merges(repo, DiagramCounter(repo), load_config(), "main", limit=10)
    assert [(r.number, r.delta, r.deltas) for r in records] == [
        (12, 2, (("Architecture Deep-Dives", 2),)),
        (15, 1, (("Cost Breakdowns", 1),)),
    ]
    assert [r.number for r in recent_merges(repo, DiagramCounter(repo), load_config(), "main", limit=1)] == [15]


def test_region_shows_totals_gate_health_and_merges(scratch: ScratchRepo, tmp_path) -> None:
    repo = GitRepo(merged_history(scratch).path)
    job = ProgressJob(ProgressStore(tmp_path / "store.sqlite3"), AlwaysParses(), clock=lambda: NOW)
    region = job.region(repo, load_config(), "atlas/docs", "main")
    assert region.startswith(REGION_START) and region.endswith(REGION_END)
    assert "| Architecture Deep-Dives | 3 | 240 |" in region
    assert "| Cost Breakdowns | 1 | 60 |" in region
    assert "| Technical | 4 of 4 |" in region
    assert "#12" in region and "#15" in region


def test_publish_writes_once_per_change_and_keeps_text_around_the_region(scratch: ScratchRepo, tmp_path) -> None:
    repo = GitRepo(merged_history(scratch).path)
    client = RecordingClient()
    client.body = "Maintainers' notes above the numbers."
    job = ProgressJob(ProgressStore(tmp_path / "store.sqlite3"), AlwaysParses(), clock=lambda: NOW)
    config = load_config()
    assert job.publish(repo, config, "atlas/docs", client, rev="main") is True
    assert job.publish(repo, config, "atlas/docs", client, rev="main") is False  # same head: nothing to write
    assert client.writes == 1
    assert client.body.startswith("Maintainers' notes above the numbers.")

    scratch.write("docs/incidents/s3.md", "# S3\n\n" + DIAGRAM)
    scratch.commit("Add the S3 incident (#16)")
    assert job.publish(repo, config, "atlas/docs", client, rev="main") is True
    assert client.writes == 2 and "#16" in client.body and "| Incident Anatomies | 1 | 100 |" in client.body


def test_an_issue_left_closed_is_updated_once_a_person_reopens_it(scratch: ScratchRepo, tmp_path) -> None:
    repo = GitRepo(merged_history(scratch).path)
    client = RecordingClient()
    client.closed = True
    job = ProgressJob(ProgressStore(tmp_path / "store.sqlite3"), AlwaysParses(), clock=lambda: NOW)
    config = load_config()
    assert job.publish(repo, config, "atlas/docs", client, rev="main") is False
    client.closed = False  # reopened; nothing was merged since
    assert job.publish(repo, config, "atlas/docs", client, rev="main") is True
    assert client.writes == 1 and "#15" in client.body


def test_publish_holds_the_repositorys_shared_lock(scratch: ScratchRepo, tmp_path) -> None:
    repo = GitRepo(merged_history(scratch).path)
    held: list[str] = []

    @contextlib.contextmanager
    def lock(name: str):
        held.append(name)
        yield

    job = ProgressJob(ProgressStore(tmp_path / "store.sqlite3"), AlwaysParses(), clock=lambda: NOW, lock=lock)
    job.publish(repo, load_config(), "atlas/docs", RecordingClient(), rev="main")
    assert held == ["progress:atlas/docs"]
