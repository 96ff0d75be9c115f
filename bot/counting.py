"""Diagram counts of a whole repository at any revision, incrementally, and serialised progress updates.

``DiagramCounter.counts_at(rev)`` lists the Markdown files at ``rev`` (one tree listing, no blob reads) and reads
only the blobs whose count is not known yet: a count is a function of a blob's bytes, so counts are cached by
blob sha, and the result of a commit is cached by commit sha. After a merge only the files the merge changed
are new blobs, so only they are read; the result equals a cold recount by construction (same blob, same
bytes, same count). Counting follows CommonMark through ``bot.content.count_diagrams``.

``ProgressUpdater`` serialises progress-issue updates per repository and publishes only what changed.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from importlib import metadata

from bot.config import Config
from bot.content import MARKDOWN_SUFFIXES, count_diagrams
from bot.gitrepo import GitRepo
from bot.progress import (
    History,
    MergeRecord,
    ProgressSnapshot,
    build_snapshot,
    parse_history,
    region_budget,
    render_progress_region,
)
from bot.progress_store import ProgressStore

log = logging.getLogger(__name__)


def _parser_version() -> str:
    """The installed cmark-gfm bindings' version (GitHub's parser, which decides what a fence is)."""
    try:
        return metadata.version("cmarkgfm")
    except metadata.PackageNotFoundError:
        return "unknown"


# Part of every cache key, so no number counted under other rules is reused: bump the number when
# bot.content's counting rules change; the parser's version is included because a parser upgrade may too.
COUNT_SCHEME = f"commonmark-1/cmarkgfm-{_parser_version()}"
# Blobs per `git cat-file --batch` process: small enough that counting starts while git still inflates the
# rest, large enough that process start-up stays a small share.
READ_BATCH = 256
# cmark-gfm runs without the GIL (cffi releases it), so two threads count two files at once; below this many
# blobs (an incremental count) threads cost more than they save.
COUNT_THREADS = 2
PARALLEL_MIN_BLOBS = 64


@dataclass(frozen=True)
class CountStats:
    """What the last ``counts_at`` did, for logs and benchmarks (seconds per phase; reading and counting
    overlap, so ``count_seconds`` is only the counting left after the last read)."""

    sha: str
    files_with_diagrams: int
    blobs_read: int
    from_commit_cache: bool
    list_seconds: float = 0.0
    read_seconds: float = 0.0
    count_seconds: float = 0.0


class DiagramCounter:
    """Per-file diagram counts of a repository at any revision, cached by blob and by commit."""

    def __init__(self, repo: GitRepo, store: ProgressStore | None = None, *,
                 scheme: str = COUNT_SCHEME) -> None:
        self.repo = repo
        self.store = store if store is not None else ProgressStore()
        self.scheme = scheme
        self.last_stats: CountStats | None = None

    def counts_at(self, rev: str) -> dict[str, int]:
        """``{path: diagrams}`` for every Markdown file at ``rev`` holding at least one diagram."""
        sha = self.repo.resolve(rev)
        cached = self.store.commit_counts(self.scheme, sha)
        if cached is not None:
            self.last_stats = CountStats(sha, len(cached), 0, True)
            return cached
        started = time.perf_counter()
        files = self.repo.list_files(sha, "", MARKDOWN_SUFFIXES)
        listed = time.perf_counter()
        known = self.store.blob_counts(self.scheme, (blob for _, blob in files))
        missing = list(dict.fromkeys(blob for _, blob in files if blob not in known))
        fresh, read_seconds, count_seconds = self._count_blobs(missing)
        absent = [blob for blob in missing if blob not in fresh]
        if absent:
            raise LookupError(f"{len(absent)} blob(s) listed at {sha} could not be read, e.g. {absent[0]}")
        self.store.put_blob_counts(self.scheme, fresh)
        known.update(fresh)
        counts = {path: known[blob] for path, blob in files if known[blob] > 0}
        self.store.put_commit_counts(self.scheme, sha, counts)
        self.last_stats = CountStats(sha, len(counts), len(fresh), False, listed - started, read_seconds,
                                     count_seconds)
        log.debug("counted %s: %d Markdown files, %d blobs read", sha, len(files), len(fresh))
        return counts

    def _count_blobs(self, blobs: list[str]) -> tuple[dict[str, int], float, float]:
        """Counts of these blobs, with the seconds spent reading and (not overlapped with reading) counting.

        Batches are read one after the other in this thread while a small pool counts the batches already
        read, so git's inflating and cmark's parsing overlap. The parser takes a blob's bytes as they are
        (cmark-gfm replaces invalid UTF-8 as GitHub's renderer does), so nothing is decoded first.
        """
        read_seconds = 0.0
        if len(blobs) < PARALLEL_MIN_BLOBS:
            started = time.perf_counter()
            data = self.repo.read_blobs(blobs)
            read_seconds = time.perf_counter() - started
            counts = {blob: count_diagrams(raw) for blob, raw in data.items()}
            return counts, read_seconds, time.perf_counter() - started - read_seconds
        pending: dict[str, Future[int]] = {}
        with ThreadPoolExecutor(COUNT_THREADS, thread_name_prefix="atlas-count") as pool:
            for i in range(0, len(blobs), READ_BATCH):
                started = time.perf_counter()
                data = self.repo.read_blobs(blobs[i:i + READ_BATCH])
                read_seconds += time.perf_counter() - started
                pending.update((blob, pool.submit(count_diagrams, raw)) for blob, raw in data.items())
            started = time.perf_counter()
            counts = {blob: future.result() for blob, future in pending.items()}
        return counts, read_seconds, time.perf_counter() - started


def render_at(
    counter: DiagramCounter,
    config: Config,
    repo_key: str,
    rev: str,
    *,
    now: datetime,
    gate_health: Mapping[str, tuple[int, int]],
    merges: Iterable[MergeRecord] = (),
    issue_body: str | None = None,
) -> tuple[ProgressSnapshot, str]:
    """Count at ``rev``, record the total (and ``merges``) in the stored history, render the issue region.

    ``issue_body`` (the issue as GitHub has it, when known) contributes the history embedded in it, so a bot
    whose store was lost continues the recorded history, and sizes the region so the whole body fits.
    """
    sha = counter.repo.resolve(rev)
    snapshot = build_snapshot(config, sha, counter.counts_at(sha))
    store = counter.store
    history: History = store.load_history(repo_key).merged(parse_history(issue_body))
    history = history.with_point(now, snapshot.total.diagrams, snapshot.rev[:12])
    for merge in merges:
        history = history.with_merge(merge)
    store.save_history(repo_key, history)
    region = render_progress_region(snapshot, history, config.progress.recent_merges, gate_health, now=now,
                                    max_chars=region_budget(issue_body))
    return snapshot, region


@dataclass(frozen=True)
class UpdateOutcome:
    """What one ``ProgressUpdater.update`` did: the head it rendered and whether it published."""

    head: str
    published: bool
    region: str


class ProgressUpdater:
    """Serialises progress updates per repository; renders the newest head; publishes only changes.

    Two merges landing together both call ``update``; the second waits for the first, then resolves the head
    again (so it renders the newest state, not the sha its event carried) and, when that renders the same
    region as the one just published, writes nothing.
    """

    def __init__(self, store: ProgressStore | None = None) -> None:
        # Without a store the digests live in an in-memory one: remembered for this process only.
        self._store = store if store is not None else ProgressStore()
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock_for(self, repo_key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(repo_key, threading.Lock())

    def update(
        self,
        repo_key: str,
        *,
        resolve_head: Callable[[], str],
        render: Callable[[str], str],
        publish: Callable[[str], None],
        force: bool = False,
    ) -> UpdateOutcome:
        """Under the repository's lock: head = ``resolve_head()``, region = ``render(head)``, then
        ``publish(region)`` unless it equals the last published region (``force`` publishes anyway, e.g. for
        an explicit ``/atlas progress``). A failed publish is not remembered, so the next update retries it.
        """
        with self._lock_for(repo_key):
            head = resolve_head()
            region = render(head)
            digest = hashlib.sha256(region.encode("utf-8")).hexdigest()
            if not force and digest == self._store.published_digest(repo_key):
                log.info("progress of %s at %s unchanged: nothing to publish", repo_key, head)
                return UpdateOutcome(head, False, region)
            publish(region)
            self._store.set_published_digest(repo_key, digest)
            log.info("published progress of %s at %s", repo_key, head)
            return UpdateOutcome(head, True, region)
