"""The progress issue as a job: count a revision, measure gate health, record merges, render, publish.

Shared by `atlas-bot progress` (offline or `--publish` from GitHub Actions) and the App's push handler. Counting
is `bot.counting` (cached by blob), rendering is `bot.progress` (pure), publishing is `bot.github`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone

from bot.check import run_all
from bot.config import Config
from bot.counting import DiagramCounter, ProgressUpdater, render_at
from bot.github.progress_issue import LEFT_CLOSED
from bot.gitrepo import GitError, GitRepo
from bot.model import CheckResult
from bot.progress import (
    MergeRecord,
    build_snapshot,
    category_totals,
    merge_record,
    render_progress_json,
)
from bot.progress_store import ProgressStore

log = logging.getLogger(__name__)

# GitHub's merge commit subject, or the "(#123)" a squash or rebase merge appends to the title.
MERGE_SUBJECT = re.compile(r"^Merge pull request #(?P<merge>\d+)\b|\(#(?P<squash>\d+)\)\s*$")
DEFAULT_API_URL = "https://api.github.com"
# First-parent commits scanned per merge wanted: direct pushes between merges take their share of the window.
MERGE_SCAN_FACTOR = 3


class PublishSetupError(Exception):
    """`--publish` without what it needs (token, repository name)."""


class LeftClosed(Exception):
    """The issue is closed and ``when_closed: leave`` keeps it so: nothing was published (nor remembered as
    published, so the update after a person reopens it writes the current numbers)."""


def gate_health(result: CheckResult, config: Config) -> dict[str, tuple[int, int]]:
    """Gate title → (diagrams passing, diagrams the gate applies to), over one check result."""
    titles = {gate.id: gate.title for gate in config.gates}
    counts: dict[str, list[int]] = {}
    for diagram in result.diagrams:
        for gate_id, passed in diagram.gates_passed.items():
            tally = counts.setdefault(gate_id, [0, 0])
            tally[0] += int(passed)
            tally[1] += 1
    return {titles.get(gate_id, gate_id): (p, t) for gate_id, (p, t) in counts.items()}


def recent_merges(repo: GitRepo, counter: DiagramCounter, config: Config, head: str, limit: int) -> list[MergeRecord]:
    """The latest merged pull requests on ``head``'s first-parent line, with the category deltas each made."""
    records = []
    for commit in reversed(repo.first_parent_log(None, head, limit=limit * MERGE_SCAN_FACTOR)):
        match = MERGE_SUBJECT.search(commit.subject)
        if match is None or commit.parent is None:
            continue
        try:
            totals = category_totals(config, counter.counts_at(commit.parent), counter.counts_at(commit.sha))
        except GitError:
            # A shallow clone (GitHub Actions' default) lacks older parents: those merges are left out.
            continue
        number = int(match.group("merge") or match.group("squash"))
        merged_at = datetime.fromtimestamp(commit.committed_at, timezone.utc)
        records.append(merge_record(number, commit.subject, merged_at, commit.sha, totals))
    return records[-limit:] if limit else []


class ProgressJob:
    """Renders and publishes one repository's progress region; the mermaid pool and store are handed in."""

    def __init__(self, store: ProgressStore, pool, *, updater: ProgressUpdater | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 lock: Callable[[str], AbstractContextManager[object]] | None = None) -> None:
        self.store = store
        self.pool = pool
        self.updater = updater or ProgressUpdater(store)
        self.clock = clock
        # lock("progress:<repo>"): the deployment's cross-process lock (``Coordinator.lock``), so that two
        # processes never race on one repository's issue.
        self.lock = lock or (lambda _name: nullcontext())
        self._health: tuple[str, dict[str, tuple[int, int]]] = ("", {})

    def region(self, repo: GitRepo, config: Config, repo_key: str, rev: str,
               issue_body: str | None = None) -> str:
        """The Markdown region at ``rev``: totals, gate health, velocity, the latest merges and the chart."""
        # Resolved once: every part of the region describes the same commit even if the branch moves meanwhile.
        sha = repo.resolve(rev)
        counter = DiagramCounter(repo, self.store)
        merges = recent_merges(repo, counter, config, sha, config.progress.recent_merges)
        _, region = render_at(counter, config, repo_key, sha, now=self.clock(),
                              gate_health=self._gate_health(repo, config, sha), merges=merges,
                              issue_body=issue_body)
        return region

    def _gate_health(self, repo: GitRepo, config: Config, sha: str) -> dict[str, tuple[int, int]]:
        # Verdicts are cached by content in the pool's cache, so only new diagrams cost a parse; the health of
        # one commit is kept because publishing renders twice (once to compare, once around the issue body).
        # Read and replaced as a whole: workers publishing other repositories at the same time swap the entry
        # under each other, and a lookup after the swap must not miss.
        cached_sha, health = self._health
        if cached_sha != sha:
            health = gate_health(run_all(repo, config, self.pool, rev=sha), config)
            self._health = (sha, health)
        return health

    def publish(self, repo: GitRepo, config: Config, repo_key: str, client, *, rev: str,
                force: bool = False) -> bool:
        """Serialised per repository: render the newest ``rev`` and update the issue when the text changed."""
        rendered: list[str] = []

        def render(head: str) -> str:
            rendered.append(head)
            return self.region(repo, config, repo_key, head)

        def publish(_region: str) -> None:
            # The issue gets the commit whose region was compared with the last published one, not ``rev``
            # resolved once more (the branch may have moved in between).
            issue = client.upsert_progress_issue(
                lambda body: self.region(repo, config, repo_key, rendered[-1], issue_body=body), config.progress)
            if issue.action == LEFT_CLOSED:
                raise LeftClosed(issue.number)

        try:
            with self.lock(f"progress:{repo_key}"):
                outcome = self.updater.update(repo_key, resolve_head=lambda: repo.resolve(rev), render=render,
                                              publish=publish, force=force)
        except LeftClosed:
            return False
        return outcome.published

    def __call__(self, job) -> bool:
        """The App's push / `/atlas progress` handler hands in a `bot.handlers.ProgressJob`."""
        return self.publish(job.repo, job.config, job.repository, job.client, rev=job.head_sha,
                            force=job.reason == "comment")


def progress_command(repo: GitRepo, config: Config, *, rev: str, output_format: str, publish: bool,
                     environ: Mapping[str, str]) -> str:
    """`atlas-bot progress`: the figures as JSON, the issue region as Markdown, or (--publish) update the issue."""
    from bot.gates.mermaid import MermaidPool, VerdictCache

    store = ProgressStore.in_data_dir()
    sha = repo.resolve(rev)
    if output_format == "json" and not publish:
        return render_progress_json(build_snapshot(config, sha, DiagramCounter(repo, store).counts_at(sha)))
    repo_key = environ.get("GITHUB_REPOSITORY") or str(repo.path)
    with MermaidPool(cache=VerdictCache()) as pool:
        job = ProgressJob(store, pool)
        if not publish:
            return job.region(repo, config, repo_key, sha) + "\n"
        client = actions_client(environ)
        published = job.publish(repo, config, repo_key, client, rev=rev)
    return f"progress issue of {repo_key}: {'updated' if published else 'unchanged'}\n"


def actions_client(environ: Mapping[str, str]):
    """A client on GitHub Actions' built-in token (GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_API_URL)."""
    from bot.github import GitHubClient

    token, full_name = environ.get("GITHUB_TOKEN"), environ.get("GITHUB_REPOSITORY")
    if not token or not full_name:
        raise PublishSetupError("--publish needs GITHUB_TOKEN and GITHUB_REPOSITORY (as GitHub Actions sets them)")
    return GitHubClient(lambda: token, environ.get("GITHUB_API_URL", DEFAULT_API_URL)).repo(full_name)
