"""Syntax verdicts from mermaid itself: a pool of long-lived Node.js workers and a persistent verdict cache.

This is the one module that runs Node. Each worker (``bot/mermaid/worker.mjs``) loads the pinned ``mermaid``
package once and then judges diagrams sent over its stdin as JSON lines, answering one JSON line per diagram,
in order, so the first unanswered diagram of a worker is the one it is working on. That gives the two failure
rules: a diagram that runs past the timeout (in its worker's CPU time, where the system reports it) has its
worker killed and gets a timeout verdict; a worker that dies is replaced and its in-flight diagram retried once,
then reported. Verdicts are cached in SQLite by mermaid version and SHA-256 of the code, so an unchanged diagram
is never parsed twice.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import selectors
import shutil
import sqlite3
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bot.model import SyntaxVerdict
from bot.paths import data_dir, mermaid_dir
from bot.sqlite import write_transaction

log = logging.getLogger(__name__)

NODE = "node"
REQUIRED_PACKAGES = ("mermaid", "linkedom")
CACHE_FILE = "mermaid-verdicts.sqlite3"
CACHE_TABLE = "verdicts_v2"  # bump when the meaning of a stored verdict changes (e.g. error_line mapping)
# Tables of derived results: syntax suggestions by diagram text, gate results by file (bot.check).
SUGGESTIONS, FILE_RESULTS = "suggestions_v2", "file_results_v1"
STORED_TABLES = (SUGGESTIONS, FILE_RESULTS)
SQL_CHUNK = 500
# Rows kept per table of the verdict cache; past it the least recently used go (a row is used when it is stored
# or read back). A repository the corpus's size needs about 4,236 verdicts and 921 file results.
MAX_CACHE_ROWS = 200_000
CACHE_PRUNE_SECONDS = 60.0
START_TIMEOUT = 60.0
# A diagram's timeout counts the CPU its worker spends on it where the system says (Linux's /proc): workers run
# below normal priority, and on a busy machine one starved past the timeout in wall time is not stuck; its timeout
# verdict would fail a diagram mermaid accepts, differently on every run. A worker that gets no CPU for this many
# times the timeout (stopped, swapped out) is stopped all the same.
WALL_TIMEOUT_FACTOR = 6
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # units of /proc's CPU times
MAX_AHEAD = 32  # diagrams queued per worker: enough to ride out a busy moment of this process, few at the end
MAX_ATTEMPTS = 2
# Which worker takes which diagrams first: a worker's V8 compiles the code paths of every diagram type it meets,
# and type by type that warm-up is most of what a type costs the first time (591 corpus diagrams that are not
# flowcharts: ~2.1 s of one worker's CPU on first meeting, ~1.2 s once warm). So the first worker takes the
# diagrams that are not flowcharts before any flowchart, the others flowcharts first, and each takes the other
# kind only when its own has run out (flowcharts are most of an Atlas: 3,589 of the corpus's 4,236 diagrams).
# A routing hint only, read from the first keyword: every diagram still gets mermaid's own verdict.
FLOWCHART_LANE, OTHER_LANE = 0, 1
_FLOWCHART_START = re.compile(r"(?:[ \t]*(?:%%[^\n]*)?\r?\n)*[ \t]*(?:graph|flowchart)\b")
# Diagrams one call hands a worker per turn when calls share the pool: small, so a call with a few waits behind
# few of another's.
BATCH = 4
MAX_WAIT = 0.5  # longest wait for worker output before feeding calls that arrived meanwhile
REPORT_SLICE = 4  # verdicts a call reports to its caller between two top-ups of the workers
# While no worker needs feeding (each has over MAX_AHEAD // 2 diagrams queued), answers are left to pile up this
# long before waiting for them: a wake-up costs this process ~0.3 ms of CPU, and a cold corpus run woke ~4,500
# times, nearly once per verdict (~2,000 with it). No worker runs dry meanwhile: 17 of the corpus's diagrams take a
# worker 13.6 ms or more.
LINGER = 0.008
# The only variables a worker inherits: what Node and mermaid's date handling read, and the worker's own
# switches. Secrets (ATLAS_PRIVATE_KEY, ATLAS_WEBHOOK_SECRET, tokens) never reach a process that runs code
# from diagrams' parsers.
WORKER_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "NODE_OPTIONS",
              "ATLAS_MERMAID_TEST_HOOKS", "ATLAS_MERMAID_VERIFY_COPY", "ATLAS_MERMAID_CODE_CACHE_DIR")
# A worker's memory over a whole corpus, neither setting a limit (a diagram that needs more memory still gets it):
# - V8 lets the old generation grow to several times what survived its last full collection before collecting
#   again: the garbage of earlier diagrams piled up to ~150 MB on a live set of ~30 MB, and at start-up the
#   bundle's patched copies (16 MB each) to ~180 MB. Growing it by 20% at a time collects them early.
# - glibc gives each thread a malloc arena of its own; V8's compiler and GC threads left tens of MB stranded in
#   theirs (134-218 MB outside the heap at the peak; ~103 MB with one arena). One arena for all.
# And for CPU: V8's background threads (concurrent marking, optimising compiles) made one worker use ~1.3 cores,
# so two workers and this process overcommitted the cores the pool is sized to. With `--single-threaded` that
# work runs on the worker's own thread: a cold check of the whole corpus took 32.7 -> 27.8 s of worker CPU and
# 25.8 -> 21.7 s (medians of 4 interleaved runs, BENCHMARKS.md). Scheduling only: the verdicts are the same.
WORKER_NODE_FLAGS = ("--heap-growing-percent=20", "--single-threaded")
WORKER_MEMORY_ENV = {"MALLOC_ARENA_MAX": "1"}

INSTALL_HINT = "install the worker's packages with `npm ci --prefix {dir}`"
NO_NODE = "Node.js (`node`) was not found on PATH: install Node.js 18 or newer, then " + INSTALL_HINT
NO_PACKAGES = "the mermaid worker's packages are missing ({missing} under {dir}/node_modules); " + INSTALL_HINT
START_FAILED = "the mermaid worker did not start: {reason}"
TIMEOUT_ERROR = "mermaid did not finish parsing this diagram within {timeout:g} s; the worker was stopped"
CRASH_ERROR = "the mermaid worker exited ({reason}) while parsing this diagram, twice"
TRANSIENT_PREFIXES = tuple(message.split("{", 1)[0] for message in (TIMEOUT_ERROR, CRASH_ERROR))
# A diagram mermaid.parse accepts but mermaid.render throws on (the worker runs the browser-free steps).
RENDER_ERROR = "it parses, but drawing it fails: {error}"
RENDER_PREFIX = RENDER_ERROR.split("{", 1)[0]
POOL_CLOSED = "the mermaid pool was closed while this call waited for verdicts"
POOL_STOPPED = "the mermaid pool stopped its workers after an error in another call: {error!r}"


def is_transient(verdict: SyntaxVerdict) -> bool:
    """A verdict the pool made up because mermaid did not answer (timeout, worker crash), not mermaid's own: it
    may differ on the next try, so nothing derived from it may be kept."""
    return not verdict.ok and verdict.error is not None and verdict.error.startswith(TRANSIENT_PREFIXES)


def parses(verdict: SyntaxVerdict) -> bool:
    """Whether mermaid.parse itself accepts the diagram (true also when only drawing it fails)."""
    return verdict.ok or (verdict.error or "").startswith(RENDER_PREFIX)


class MermaidUnavailable(RuntimeError):
    """mermaid cannot be run here (no Node.js, packages not installed, worker cannot start)."""


def lane_of(code: str) -> int:
    """FLOWCHART_LANE for code that starts (after blank and ``%%`` lines) with ``graph`` or ``flowchart``."""
    return FLOWCHART_LANE if _FLOWCHART_START.match(code) else OTHER_LANE


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


class VerdictCache:
    """Persistent verdicts keyed by (mermaid version, SHA-256 of the diagram code), in SQLite (WAL, so the CLI
    and the server can share it). Only real parser verdicts are stored, never timeouts or crashes.

    The same file keeps results derived from verdicts (``get_stored``/``put_stored``), each under a version
    string that names everything the result depends on, so a stale entry is never read back.
    """

    def __init__(self, path: Path | None = None, *, max_rows: int = MAX_CACHE_ROWS,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = path or data_dir() / CACHE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._max_rows = max_rows
        self._clock = clock
        self._pruned_at = float("-inf")
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # A cache can lose its last writes in a power cut (WAL keeps it consistent): no fsync per commit, which
        # was most of the time a warm run spent marking the rows it read as used.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS {CACHE_TABLE} (version TEXT, sha TEXT, ok INTEGER, error TEXT,"
            " error_line INTEGER, type TEXT, used REAL NOT NULL DEFAULT 0, PRIMARY KEY (version, sha)) WITHOUT ROWID"
        )
        # Derived results stored beside the verdicts, as JSON text by key (see STORED_TABLES): a warm run then
        # needs neither fix candidates nor gate evaluation for what it has seen before.
        for table in STORED_TABLES:
            self._db.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (version TEXT, sha TEXT, value TEXT,"
                " used REAL NOT NULL DEFAULT 0, PRIMARY KEY (version, sha)) WITHOUT ROWID"
            )
        for table in (CACHE_TABLE, *STORED_TABLES):  # caches written before rows carried their last use
            if "used" not in {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN used REAL NOT NULL DEFAULT 0")

    def has_verdicts(self, version: str) -> bool:
        """Whether any verdict of ``version`` is stored (False: a first run, every diagram will be parsed)."""
        with self._lock:
            return self._db.execute(f"SELECT 1 FROM {CACHE_TABLE} WHERE version = ? LIMIT 1",
                                    (version,)).fetchone() is not None

    def get_many(self, version: str, shas: Iterable[str]) -> dict[str, SyntaxVerdict]:
        return {
            sha: SyntaxVerdict(ok=bool(ok), error=error, error_line=error_line, type=type_)
            for sha, ok, error, error_line, type_ in self._select(CACHE_TABLE, "ok, error, error_line, type",
                                                                  version, shas)
        }

    def put_many(self, version: str, verdicts: Mapping[str, SyntaxVerdict]) -> None:
        now = self._clock()
        self._write(f"INSERT OR REPLACE INTO {CACHE_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(version, sha, int(v.ok), v.error, v.error_line, v.type, now) for sha, v in verdicts.items()])

    def get_stored(self, table: str, version: str, keys: Iterable[str]) -> dict[str, str]:
        """Stored JSON texts of ``table`` (one of STORED_TABLES) by key, for one version of what made them."""
        return dict(self._select(table, "value", version, keys))

    def put_stored(self, table: str, version: str, values: Mapping[str, str]) -> None:
        now = self._clock()
        self._write(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?)",
                    [(version, key, value, now) for key, value in values.items()])

    def sizes(self) -> dict[str, int]:
        """Rows per table, for the ``/metrics`` store-size gauge."""
        with self._lock:
            return {table: self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    for table in (CACHE_TABLE, *STORED_TABLES)}

    def prune(self) -> int:
        """Drop the least recently used rows of each table past ``max_rows``; how many went."""
        dropped = 0
        with self._lock, write_transaction(self._db) as db:
            for table in (CACHE_TABLE, *STORED_TABLES):
                excess = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] - self._max_rows
                if excess > 0:
                    dropped += db.execute(
                        f"DELETE FROM {table} WHERE (version, sha) IN"
                        f" (SELECT version, sha FROM {table} ORDER BY used LIMIT ?)", (excess,)).rowcount
            self._pruned_at = self._clock()
        return dropped

    def _select(self, table: str, columns: str, version: str, keys: Iterable[str]) -> list[tuple]:
        """(key, *columns) rows of ``table`` for one version and the distinct ``keys``, asked for SQL_CHUNK keys
        at a time (SQLite caps the parameters of one statement); the rows found are marked used now."""
        wanted = list(dict.fromkeys(keys))
        rows: list[tuple] = []
        with self._lock:
            for start in range(0, len(wanted), SQL_CHUNK):
                chunk = wanted[start : start + SQL_CHUNK]
                rows.extend(self._db.execute(
                    f"SELECT sha, {columns} FROM {table} WHERE version = ? AND sha IN ({','.join('?' * len(chunk))})",
                    (version, *chunk),
                ))
            if rows:
                found = [row[0] for row in rows]
                with write_transaction(self._db) as db:
                    for start in range(0, len(found), SQL_CHUNK):
                        chunk = found[start : start + SQL_CHUNK]
                        db.execute(f"UPDATE {table} SET used = ? WHERE version = ? AND sha IN"
                                   f" ({','.join('?' * len(chunk))})", (self._clock(), version, *chunk))
        return rows

    def _write(self, statement: str, rows: list[tuple]) -> None:
        with self._lock, write_transaction(self._db) as db:
            db.executemany(statement, rows)
        if self._clock() - self._pruned_at >= CACHE_PRUNE_SECONDS:
            self.prune()

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(eq=False)
class _Call:
    """One parse_many call's share of the pool: its diagrams not yet sent to a worker (per lane: flowcharts,
    the others), and what came back."""
    codes: list[str]
    results: list[SyntaxVerdict | None] = field(init=False)
    attempts: list[int] = field(init=False)
    lanes: tuple[deque[int], deque[int]] = field(init=False)
    remaining: int = field(init=False)
    cacheable: set[int] = field(default_factory=set)
    answered: list[int] = field(default_factory=list)  # indexes with a verdict, not yet reported to the caller
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        self.results = [None] * len(self.codes)
        self.attempts = [0] * len(self.codes)
        self.lanes = (deque(), deque())
        for index, code in enumerate(self.codes):
            self.lanes[lane_of(code)].append(index)
        self.remaining = len(self.codes)

    @property
    def pending(self) -> int:
        """Diagrams not yet sent to a worker."""
        return len(self.lanes[FLOWCHART_LANE]) + len(self.lanes[OTHER_LANE])

    def take(self, lane: int) -> int:
        """The next diagram to send to a worker that prefers ``lane``: from that lane while it has any."""
        return (self.lanes[lane] or self.lanes[1 - lane]).popleft()

    def put_back(self, index: int) -> None:
        """A diagram sent to a worker that stopped before answering: first in its lane again."""
        self.lanes[lane_of(self.codes[index])].appendleft(index)

    def finish(self, index: int, verdict: SyntaxVerdict) -> None:
        self.results[index] = verdict
        self.remaining -= 1
        self.answered.append(index)


@dataclass(frozen=True)
class Prefetch:
    """Codes handed to the pool with ``MermaidPool.prefetch``: their hashes (the cache keys) and their call."""

    shas: list[str]
    call: _Call


_Job = tuple[int, _Call, int]  # (id sent to the worker, the call it belongs to, index in that call's codes)


@dataclass(eq=False)
class _Worker:
    proc: subprocess.Popen[bytes]
    ready: bool = False
    since: float = field(default_factory=time.monotonic)  # start-up began, or the in-flight diagram began
    cpu_since: float | None = None  # the worker's CPU seconds when the in-flight diagram began (None: unknown)
    recheck: float = 0.0  # past the timeout but short of its CPU: when it could next have used it all
    stat: int | None = None  # an open /proc/<pid>/stat, where there is one
    inbox: bytes = b""  # unparsed stdout
    outbox: bytes = b""  # stdin not yet written
    queued: deque[_Job] = field(default_factory=deque)  # jobs sent, in the order they will be answered
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=20))


class MermaidPool:
    """Long-lived mermaid workers that turn diagram code into SyntaxVerdicts.

    Workers (``workers``, default one per usable CPU) start on the first parse that needs them, all at once,
    or earlier with ``start()``, and stay up until ``close()``. Without a ``cache`` nothing is remembered
    between calls. Raises MermaidUnavailable when Node.js or the worker's packages are missing, or a worker
    cannot start; never answers without mermaid.

    Threads share the workers: concurrent ``parse_many`` calls hand them BATCH diagrams at a time in turn, so
    a call with a few diagrams is answered while one with thousands is still running. Whichever waiting
    caller finds no one driving runs one turn of the scheduler, then hands the role on; the lock is let go
    while waiting for workers and while calling progress callbacks.
    """

    def __init__(self, *, workers: int | None = None, cache: VerdictCache | None = None, timeout: float = 10.0):
        self._node = shutil.which(NODE)
        if self._node is None:
            raise MermaidUnavailable(NO_NODE.format(dir=mermaid_dir()))
        self._dir = mermaid_dir()
        missing = [p for p in REQUIRED_PACKAGES if not (self._dir / "node_modules" / p / "package.json").is_file()]
        if missing:
            raise MermaidUnavailable(NO_PACKAGES.format(missing=", ".join(missing), dir=self._dir))
        package = json.loads((self._dir / "node_modules" / "mermaid" / "package.json").read_text("utf-8"))
        self.version: str = package["version"]
        self._size = workers or _usable_cpus()
        self.cache = cache
        self._timeout = timeout
        self._workers: list[_Worker] = []
        self._calls: list[_Call] = []  # calls with work, the next to be fed first
        self._job_ids = itertools.count()
        self.parses = 0  # diagrams handed to a worker so far (one retried after a crash counts again)
        self._driving = False  # a thread is running a scheduler turn (only it touches the workers then)
        self._closing = False  # close() waits for the current turn: no caller starts another
        self._cond = threading.Condition(threading.RLock())
        # Every worker's stdout and stderr, and the stdin of one whose input did not all fit in its pipe: kept
        # from turn to turn (a selector per turn cost more than the rest of the turn's bookkeeping).
        self._selector = selectors.DefaultSelector()

    def __enter__(self) -> MermaidPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def start(self, count: int | None = None) -> None:
        """Spawn workers up to ``count`` (default: pool size) without waiting for them to load mermaid."""
        with self._cond:
            self._cond.wait_for(lambda: not self._driving)
            self._start(count)

    def _start(self, count: int | None = None) -> None:
        for worker in list(self._workers):
            if worker.ready and not worker.queued and worker.proc.poll() is not None:
                self._stop(worker, kill=True)  # died while idle (killed from outside): just replace it
        while len(self._workers) < min(self._size if count is None else count, self._size):
            proc = subprocess.Popen(
                [self._node, *WORKER_NODE_FLAGS, str(self._dir / "worker.mjs")],
                cwd=self._dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=worker_env(os.environ),
            )
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                os.set_blocking(stream.fileno(), False)  # type: ignore[union-attr]
            worker = _Worker(proc, stat=_open_stat(proc.pid))
            self._workers.append(worker)
            self._selector.register(proc.stdout, selectors.EVENT_READ, (worker, "out"))  # type: ignore[arg-type]
            self._selector.register(proc.stderr, selectors.EVENT_READ, (worker, "err"))  # type: ignore[arg-type]

    def parse(self, code: str) -> SyntaxVerdict:
        return self.parse_many([code])[0]

    def parse_many(
        self,
        codes: Sequence[str],
        on_progress: Callable[[int, int], None] | None = None,
        on_verdict: Callable[[int, SyntaxVerdict], None] | None = None,
        on_drained: Callable[[], None] | None = None,
    ) -> list[SyntaxVerdict]:
        """Verdicts in the order of ``codes``; identical codes are parsed once, cached ones not at all.

        ``on_verdict(index, verdict)`` is called once per index of ``codes`` as soon as its verdict is known
        (cached ones first), so the caller can work on it while the rest is parsed. ``on_drained()`` is called
        once, when every diagram left to parse has been handed to a worker: work the caller gives the pool then
        (``prefetch``) keeps the workers busy while the last verdicts come in and are reported. The callbacks
        are called from this thread, never with the pool's lock held; an exception in one abandons the call."""
        shas = [code_hash(code) for code in codes]
        indexes: dict[str, list[int]] = {}
        unique: dict[str, str] = {}
        for index, (sha, code) in enumerate(zip(shas, codes)):
            indexes.setdefault(sha, []).append(index)
            unique.setdefault(sha, code)
        known = self.cache.get_many(self.version, unique) if self.cache else {}
        done = sum(len(indexes[sha]) for sha in known)
        if on_progress:
            on_progress(done, len(codes))
        todo = [sha for sha in unique if sha not in known]
        if on_verdict and known:
            if todo:
                self.start(len(todo))  # the workers load mermaid while the cached verdicts are handed out
            for index, sha in enumerate(shas):
                if sha in known:
                    on_verdict(index, known[sha])

        def report(index: int) -> None:
            nonlocal done
            done += len(indexes[todo[index]])
            if on_progress:
                on_progress(done, len(codes))
            if on_verdict:
                for code_index in indexes[todo[index]]:
                    on_verdict(code_index, call.results[index])  # type: ignore[arg-type]  # set when reported

        call = _Call([unique[sha] for sha in todo])
        self._complete(call, report, on_drained)
        parsed = dict(zip(todo, call.results))
        if self.cache and call.cacheable:
            self.cache.put_many(self.version, {todo[i]: call.results[i] for i in call.cacheable})
        verdicts = known | parsed
        return [verdicts[sha] for sha in shas]  # type: ignore[misc]  # every result is set once remaining is 0

    def prefetch(self, codes: Sequence[str]) -> Prefetch:
        """Start parsing ``codes`` without waiting for them: the workers take them up as soon as the calls being
        waited for have nothing left to hand out, and ``settle`` keeps their verdicts in the cache, where a
        later parse_many finds them. Codes whose verdict is cached are not parsed again; without a cache there
        is nowhere to keep verdicts, and nothing is parsed. Every prefetch is settled or discarded."""
        unique = {code_hash(code): code for code in codes} if self.cache else {}
        known = self.cache.get_many(self.version, unique) if self.cache and unique else {}
        todo = [sha for sha in unique if sha not in known]
        prefetch = Prefetch(todo, _Call([unique[sha] for sha in todo]))
        if todo:
            with self._cond:
                self._calls.append(prefetch.call)
                self._cond.notify_all()  # a thread waiting for verdicts may be the one to feed it
        return prefetch

    def settle(self, prefetch: Prefetch) -> None:
        """Wait until every code of ``prefetch`` has its verdict, and keep the verdicts in the cache (as
        parse_many does). A prefetch the pool could not finish (it was closed, or stopped by an error) is
        dropped: the next parse of those codes meets what stopped it."""
        call = prefetch.call
        if not call.codes:
            return
        try:
            self._complete(call, lambda index: None)
        except MermaidUnavailable:
            return
        if self.cache and call.cacheable:
            self.cache.put_many(self.version, {prefetch.shas[i]: call.results[i] for i in call.cacheable})

    def discard(self, prefetch: Prefetch) -> None:
        """Give a prefetch up: what no worker has taken of it is not parsed, and nothing of it is kept."""
        with self._cond:
            if prefetch.call in self._calls:
                self._calls.remove(prefetch.call)
            for lane in prefetch.call.lanes:
                lane.clear()  # answers to what workers already hold still land in it, harmlessly

    def close(self) -> None:
        """Stop every worker: idle ones by closing their stdin, busy ones (after an error) by killing them.
        Calls still waiting for verdicts fail with MermaidUnavailable."""
        with self._cond:
            self._closing = True
            try:
                self._cond.wait_for(lambda: not self._driving)
                if self._workers:
                    log.info("mermaid pool closing: %d parses so far", self.parses)
                self._stop_all(MermaidUnavailable(POOL_CLOSED))
            finally:
                self._closing = False

    def _stop_all(self, failure: BaseException) -> None:
        for call in self._calls:
            if call.remaining and call.failure is None:
                call.failure = failure
        # Every worker is told to stop before any is waited for, so they exit side by side. One still loading
        # mermaid has nothing to finish and is killed, as is a busy one (after an error).
        stopping = list(self._workers)
        for worker in stopping:
            self._signal_stop(worker, kill=bool(worker.queued) or not worker.ready)
        for worker in stopping:
            self._reap(worker)
        self._cond.notify_all()

    # The scheduler: non-blocking pipes, one selector over every worker's stdout and stderr, driven in turns by
    # the threads waiting for verdicts.

    def _complete(self, call: _Call, report: Callable[[int], None],
                  on_drained: Callable[[], None] | None = None) -> None:
        """Wait until every diagram of ``call`` has a verdict, running scheduler turns whenever no other thread
        does, and report each verdict from this thread (and ``on_drained()`` once nothing of it is left to
        hand to a worker). A prefetched call is already among the calls being fed."""
        with self._cond:
            if call not in self._calls:
                self._calls.append(call)
            try:
                while True:
                    if on_drained is not None and not call.pending:
                        drained, on_drained = on_drained, None
                        if call.codes:
                            with self._unlocked():
                                drained()
                    # A few verdicts at a time, with the workers topped up in between: reporting one can take
                    # this thread a millisecond (the gates), and all that arrived at once would keep it from
                    # feeding the workers for longer than their queues last.
                    answered = call.answered[:REPORT_SLICE]
                    del call.answered[:REPORT_SLICE]
                    if answered:
                        with self._unlocked():
                            for index in answered:
                                report(index)
                    if call.failure is not None:
                        if isinstance(call.failure, MermaidUnavailable):
                            raise MermaidUnavailable(str(call.failure)) from call.failure
                        raise MermaidUnavailable(POOL_STOPPED.format(error=call.failure)) from call.failure
                    if not call.remaining and not call.answered:
                        return
                    if self._driving or self._closing:
                        if not call.answered:
                            self._cond.wait()
                        continue
                    self._driving = True
                    try:
                        self._turn(wait=not call.answered)
                    finally:
                        self._driving = False
                        self._cond.notify_all()
            finally:
                self._calls.remove(call)
                for lane in call.lanes:
                    lane.clear()  # an abandoned call's answers still land in it, harmlessly

    @contextmanager
    def _unlocked(self) -> Iterator[None]:
        self._cond.release()
        try:
            yield
        finally:
            self._cond.acquire()

    def _turn(self, *, wait: bool = True) -> None:
        """Feed every worker, take in what they answered (without waiting for it unless ``wait``), expire the
        stuck ones."""
        try:
            self._start(min(self._size, sum(c.pending for c in self._calls)
                            + sum(len(w.queued) for w in self._workers)))
            for worker in self._workers:
                self._feed(worker)
            for worker, message in self._poll(wait=wait):
                if message is None:
                    self._worker_died(worker)
                    continue
                if not worker.queued or message.get("id") != worker.queued[0][0]:
                    raise MermaidUnavailable(f"the mermaid worker answered out of turn: {message}")
                _, call, index = worker.queued.popleft()
                _begin_diagram(worker)
                error = message.get("error")
                if message.get("stage") == "render":
                    error = RENDER_ERROR.format(error=error)
                call.cacheable.add(index)
                call.finish(index, SyntaxVerdict(
                    ok=message["ok"], error=error, error_line=message.get("line"), type=message.get("type"),
                ))
            self._expire()
        except BaseException as exc:
            # Workers may hold half-answered work; never let it leak into a later call.
            self._stop_all(exc)
            raise

    def _feed(self, worker: _Worker) -> None:
        """Top the worker up to MAX_AHEAD diagrams, BATCH from each call with work in turn, from the lane the
        worker prefers (the first worker: diagrams that are not flowcharts) while it has any."""
        if not worker.ready or len(worker.queued) > MAX_AHEAD // 2:
            return
        lane = OTHER_LANE if worker is self._workers[0] else FLOWCHART_LANE
        lines = []
        while len(worker.queued) < MAX_AHEAD:
            call = next((c for c in self._calls if c.pending), None)
            if call is None:
                break
            self._calls.remove(call)
            self._calls.append(call)  # fed: the others go first next time
            for _ in range(min(BATCH, MAX_AHEAD - len(worker.queued), call.pending)):
                if not worker.queued:
                    _begin_diagram(worker)
                index = call.take(lane)
                job = next(self._job_ids)
                worker.queued.append((job, call, index))
                self.parses += 1
                lines.append(json.dumps({"id": job, "code": call.codes[index]}) + "\n")
        if lines:
            worker.outbox += "".join(lines).encode("utf-8", "surrogatepass")
            self._flush(worker)

    def _flush(self, worker: _Worker) -> None:
        try:
            while worker.outbox:
                written = os.write(worker.proc.stdin.fileno(), worker.outbox)  # type: ignore[union-attr]
                worker.outbox = worker.outbox[written:]
        except (BlockingIOError, BrokenPipeError):
            pass  # retried on the next turn; a broken pipe shows up as end of stdout

    def _poll(self, *, wait: bool = True) -> list[tuple[_Worker, dict | None]]:
        """Output from any worker, waited for unless not ``wait`` (at most until the nearest deadline); None
        marks a dead worker."""
        now = time.monotonic()
        deadlines = [max(w.since + self._timeout, w.recheck) if w.ready else w.since + START_TIMEOUT
                     for w in self._workers if w.queued or not w.ready]
        # Short waits while other calls' diagrams may be arriving, so they are fed soon.
        timeout = min(max(0.0, min(deadlines, default=now + 1.0) - now), MAX_WAIT) if wait else 0.0
        watched = self._selector.get_map()
        for worker in self._workers:
            if worker.outbox and worker.proc.stdin not in watched:
                self._selector.register(worker.proc.stdin, selectors.EVENT_WRITE, (worker, "in"))  # type: ignore
            elif not worker.outbox and worker.proc.stdin in watched:
                self._selector.unregister(worker.proc.stdin)  # type: ignore[arg-type]
        with self._unlocked():
            if self._workers and all(len(w.queued) > MAX_AHEAD // 2 for w in self._workers):
                time.sleep(min(LINGER, timeout))
            events = self._selector.select(timeout)
        messages: list[tuple[_Worker, dict | None]] = []
        for key, _ in events:
            worker, stream = key.data
            if stream == "in":
                self._flush(worker)
                continue
            chunk = os.read(key.fd, 1 << 16)
            if stream == "err":
                self._keep_stderr(worker, chunk)
                continue
            if not chunk:
                messages.append((worker, None))
                continue
            *lines, worker.inbox = (worker.inbox + chunk).split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    log.warning("mermaid worker %d wrote a line that is not JSON: %.200r", worker.proc.pid, line)
                    continue
                if message.get("ready"):
                    self._ready(worker, message)
                else:
                    messages.append((worker, message))
        return messages

    def _ready(self, worker: _Worker, message: dict) -> None:
        worker.ready = True
        if message["version"] != self.version:
            raise MermaidUnavailable(START_FAILED.format(reason=f"it loaded mermaid {message['version']}, "
                                                         f"expected {self.version}"))
        missing = [name for name, applied in message["patches"].items() if not applied]
        if missing:
            log.warning("mermaid worker runs without its %s patch(es): verdicts are unaffected, but parsing is "
                        "slower or error lines are less exact", ", ".join(missing))

    def _worker_died(self, worker: _Worker) -> None:
        """Requeue a dead worker's diagrams, the in-flight one at most once more."""
        self._stop(worker, kill=True)
        reason = f"exit code {worker.proc.returncode}"
        if not worker.ready:
            raise MermaidUnavailable(START_FAILED.format(reason=f"{reason}: {' '.join(worker.stderr)}"))
        log.warning("mermaid worker %d died (%s); replacing it", worker.proc.pid, reason)
        if worker.queued:
            _, call, index = worker.queued[0]
            call.attempts[index] += 1
            if call.attempts[index] >= MAX_ATTEMPTS:
                worker.queued.popleft()
                call.finish(index, SyntaxVerdict(ok=False, error=CRASH_ERROR.format(reason=reason)))
        self._requeue(worker)

    def _expire(self) -> None:
        """Kill workers stuck past the timeout; their in-flight diagram gets a timeout verdict."""
        now = time.monotonic()
        for worker in list(self._workers):
            if not worker.ready and now - worker.since > START_TIMEOUT:
                self._stop(worker, kill=True)
                raise MermaidUnavailable(START_FAILED.format(reason=f"not ready after {START_TIMEOUT:g} s"))
            if worker.ready and worker.queued and now - worker.since > self._timeout and self._stuck(worker, now):
                self._stop(worker, kill=True)
                _, call, index = worker.queued.popleft()
                log.warning("mermaid worker %d timed out on a diagram; replacing it", worker.proc.pid)
                call.finish(index, SyntaxVerdict(ok=False, error=TIMEOUT_ERROR.format(timeout=self._timeout)))
                self._requeue(worker)

    def _stuck(self, worker: _Worker, now: float) -> bool:
        """Whether a worker past the timeout in wall time has spent it on the diagram in CPU (or cannot say, or
        has had WALL_TIMEOUT_FACTOR times as long); if not, it is looked at again when it could have."""
        used = _cpu_seconds(worker)
        backstop = worker.since + self._timeout * WALL_TIMEOUT_FACTOR
        if used is None or worker.cpu_since is None or now > backstop:
            return True
        spent = used - worker.cpu_since
        if spent >= self._timeout:
            return True
        worker.recheck = min(now + self._timeout - spent, backstop)
        return False

    @staticmethod
    def _requeue(worker: _Worker) -> None:
        """Put a stopped worker's unanswered diagrams back at the front of their calls' queues."""
        for _, call, index in reversed(worker.queued):
            call.put_back(index)
        worker.queued.clear()

    def _stop(self, worker: _Worker, *, kill: bool) -> None:
        self._signal_stop(worker, kill=kill)
        self._reap(worker)

    def _signal_stop(self, worker: _Worker, *, kill: bool) -> None:
        """Take the worker out of the pool and kill it, or close its stdin so that it ends by itself."""
        if worker in self._workers:
            self._workers.remove(worker)
            for stream in (worker.proc.stdin, worker.proc.stdout, worker.proc.stderr):
                if stream in self._selector.get_map():
                    self._selector.unregister(stream)  # type: ignore[arg-type]
        if kill:
            worker.proc.kill()
        else:
            try:
                worker.proc.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass

    def _reap(self, worker: _Worker) -> None:
        """Wait for a stopped worker to exit (killing it after 5 s), keep its last stderr, close its pipes."""
        try:
            worker.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
        try:
            while chunk := os.read(worker.proc.stderr.fileno(), 1 << 16):  # type: ignore[union-attr]
                self._keep_stderr(worker, chunk)
        except OSError:
            pass
        for stream in (worker.proc.stdin, worker.proc.stdout, worker.proc.stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass
        if worker.stat is not None:
            os.close(worker.stat)
            worker.stat = None

    @staticmethod
    def _keep_stderr(worker: _Worker, chunk: bytes) -> None:
        for line in chunk.decode("utf-8", "replace").splitlines():
            log.debug("mermaid worker %d: %s", worker.proc.pid, line)
            worker.stderr.append(line)


def _open_stat(pid: int) -> int | None:
    try:
        return os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None  # no /proc (macOS, Windows): timeouts count wall time


def _cpu_seconds(worker: _Worker) -> float | None:
    """The worker's user and system CPU seconds so far, from /proc/<pid>/stat (None: unknown)."""
    if worker.stat is None:
        return None
    try:
        # Fields after the parenthesised command name (which may hold spaces): utime and stime are 14th and 15th.
        fields = os.pread(worker.stat, 1024, 0).rpartition(b")")[2].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return None


def _begin_diagram(worker: _Worker) -> None:
    """Start the clocks of the diagram the worker works on next."""
    worker.since = time.monotonic()
    worker.cpu_since = _cpu_seconds(worker)
    worker.recheck = 0.0


def worker_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment a worker starts with: ``environ`` cut down to WORKER_ENV, and WORKER_MEMORY_ENV."""
    return {**{name: environ[name] for name in WORKER_ENV if name in environ}, **WORKER_MEMORY_ENV}


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
