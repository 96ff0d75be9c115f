"""The mermaid pool with real Node.js and the pinned mermaid package: verdicts, error lines, timeouts, dead
workers, the verdict cache and the errors that say mermaid cannot run here.

Nothing is skipped: without Node.js or without ``npm ci --prefix bot/mermaid`` these tests fail with the
MermaidUnavailable message that says how to fix it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.gates import mermaid
from bot.gates.mermaid import (
    CACHE_TABLE,
    FILE_RESULTS,
    RENDER_ERROR,
    SUGGESTIONS,
    WORKER_ENV,
    WORKER_MEMORY_ENV,
    WORKER_NODE_FLAGS,
    MermaidPool,
    MermaidUnavailable,
    VerdictCache,
    code_hash,
    parses,
)
from bot.model import SyntaxVerdict
from bot.paths import mermaid_dir

VALID = "flowchart TD\n  A[Start] --> B{Ready?}\n  B -->|yes| C[Ship]\n"
HANG = "flowchart TD\n  %% atlas-test: hang\n  A --> B\n"
CRASH = "flowchart TD\n  %% atlas-test: crash\n  A --> B\n"


def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def many_valid(count: int) -> list[str]:
    return [f"flowchart LR\n  N{i}[Node {i}] --> M{i}[Next {i}]\n  M{i} --> O{i}\n" for i in range(count)]


@pytest.fixture(scope="module")
def pool() -> MermaidPool:
    with MermaidPool(workers=2) as shared:
        yield shared


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started from here on obey the test-only markers (hang, crash) in diagram comments."""
    monkeypatch.setenv("ATLAS_MERMAID_TEST_HOOKS", "1")


def test_valid_diagrams_get_mermaids_type(pool: MermaidPool) -> None:
    verdicts = pool.parse_many([VALID, "sequenceDiagram\n  A->>B: hi\n", 'pie\n  "a": 1\n', "gantt\n  title T\n"])
    assert [v.type for v in verdicts] == ["flowchart-v2", "sequence", "pie", "gantt"]
    assert all(v.ok and v.error is None and v.error_line is None for v in verdicts)
    assert pool.version == "11.17.2"


@pytest.mark.parametrize("box", ["box Aqua Edge plane", "box rgb(33, 66, 99) Edge", "box Edge plane"])
def test_a_sequence_diagram_with_a_box_parses_as_a_browser_parses_it(pool: MermaidPool, box: str) -> None:
    """mermaid checks a box's colour with the browser's CSS (linkedom has none: "Option is not defined")."""
    verdict = pool.parse(f"sequenceDiagram\n  {box}\n    participant A\n    participant B\n  end\n  A->>B: hi\n")
    assert (verdict.ok, verdict.type, verdict.error) == (True, "sequence", None)


def test_invalid_flowchart_reports_parser_message_and_code_line(pool: MermaidPool) -> None:
    verdict = pool.parse("flowchart TD\n  A[Start] --> B\n  B --> C[Cost (USD)]\n  C --> D\n")
    assert not verdict.ok and verdict.type is None
    assert verdict.error is not None and verdict.error.startswith("Parse error on line 3:")
    assert verdict.error_line == 3


def test_error_line_counts_lines_mermaid_drops_before_parsing(pool: MermaidPool) -> None:
    # Front matter, comment lines, a directive and blank lines after "}" never reach the grammar, so the
    # parser's own line number (4 here) is not the line of the diagram code (12).
    code = dedent(
        """
        ---
        title: Checkout
        ---
        %%{init: {"theme": "base"}}%%
        %% the happy path
        flowchart TD
          A{Paid?}


          %% retry
          A --> B
          B --> C[Refund (full)]
        """
    )
    verdict = pool.parse(code)
    assert not verdict.ok
    assert verdict.error is not None and verdict.error.startswith("Parse error on line ")
    assert code.splitlines()[verdict.error_line - 1].strip() == "B --> C[Refund (full)]"


def test_langium_diagram_error_line(pool: MermaidPool) -> None:
    verdict = pool.parse('pie title Share\n  "a": 1\n  b: 2\n')
    assert not verdict.ok
    assert verdict.error is not None and "error on line 3" in verdict.error
    assert verdict.error_line == 3


def test_unknown_diagram_has_no_line(pool: MermaidPool) -> None:
    verdict = pool.parse("flowchat TD\n  A --> B\n")
    assert verdict == SyntaxVerdict(ok=False, error=verdict.error, error_line=None, type=None)
    assert "No diagram type detected" in (verdict.error or "")


def test_parse_many_keeps_order_dedupes_and_reports_progress(pool: MermaidPool) -> None:
    codes = [VALID, "flowchart TD\n  A --> B(\n", VALID, "sequenceDiagram\n  A->>B: x\n"]
    progress: list[tuple[int, int]] = []
    verdicts = pool.parse_many(codes, on_progress=lambda done, total: progress.append((done, total)))
    assert [v.ok for v in verdicts] == [True, False, True, True]
    assert verdicts[0] == verdicts[2]
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)
    assert [done for done, _ in progress] == sorted(done for done, _ in progress)


def test_the_pool_counts_its_parses(tmp_path: Path) -> None:
    codes = [VALID, "flowchart TD\n  A --> B(\n", VALID]
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "v.sqlite3")) as counting:
        counting.parse_many(codes)
        counting.parse_many(codes)
        assert counting.parses == 2  # identical codes once, cached ones not at all


def test_each_verdict_is_handed_out_once_per_index_cached_ones_first(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "v.sqlite3")
    broken = "flowchart TD\n  A --> B(\n"
    with MermaidPool(workers=1, cache=cache) as pool:
        pool.parse_many([broken])
        codes = [VALID, broken, VALID, "sequenceDiagram\n  A->>B: x\n"]
        handed: list[tuple[int, SyntaxVerdict]] = []
        verdicts = pool.parse_many(codes, on_verdict=lambda index, verdict: handed.append((index, verdict)))
    assert handed[0] == (1, verdicts[1])  # cached: before anything is parsed
    assert sorted(handed) == sorted(enumerate(verdicts))  # the duplicate VALID is handed out at both indexes


def test_a_verdict_callback_that_fails_abandons_the_call_not_the_pool(pool: MermaidPool) -> None:
    def fail(index: int, verdict: SyntaxVerdict) -> None:
        raise ValueError(f"consumer broke on {index}")

    with pytest.raises(ValueError, match="consumer broke on"):
        pool.parse_many(many_valid(40), on_verdict=fail)
    assert all(v.ok for v in pool.parse_many(many_valid(5)))


def test_answers_pile_up_while_every_worker_has_plenty_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mermaid, "LINGER", 0.05)  # far longer than a small diagram's parse, even on a busy machine
    wake_ups = 0
    poll = MermaidPool._poll

    def counted(self: MermaidPool, **options: bool) -> list:
        nonlocal wake_ups
        wake_ups += 1
        return poll(self, **options)

    monkeypatch.setattr(MermaidPool, "_poll", counted)
    codes = many_valid(200)
    with MermaidPool(workers=1) as pool:
        pool.start()
        assert all(v.ok for v in pool.parse_many(codes))
    # one wake-up per answer without the linger; with it, one per several until the last MAX_AHEAD // 2
    assert wake_ups < len(codes) // 2


def test_workers_are_topped_up_while_the_caller_works_through_a_pile_of_verdicts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    turns = 0
    turn = MermaidPool._turn

    def counted(self: MermaidPool, **options: bool) -> None:
        nonlocal turns
        turns += 1
        turn(self, **options)

    monkeypatch.setattr(MermaidPool, "_turn", counted)
    reported_at: list[int] = []  # the scheduler turns run before each verdict was handed out

    def slow_at_first(index: int, verdict: SyntaxVerdict) -> None:
        if not reported_at:
            time.sleep(0.5)  # meanwhile the worker answers all it has queued
        reported_at.append(turns)

    with MermaidPool(workers=1) as pool:
        pool.start()
        assert all(v.ok for v in pool.parse_many(many_valid(120), on_verdict=slow_at_first))
    handed_per_turn = Counter(reported_at).values()
    assert max(handed_per_turn) <= mermaid.REPORT_SLICE  # not the whole pile before the worker is fed again
    assert sum(count == mermaid.REPORT_SLICE for count in handed_per_turn) >= 2  # there was a pile


def test_stuck_diagram_times_out_and_the_rest_still_parses(hooks: None) -> None:
    with MermaidPool(workers=1, timeout=4.0) as pool:
        verdicts = pool.parse_many([VALID, HANG, *many_valid(3)])
        assert verdicts[1].ok is False and verdicts[1].type is None
        assert "did not finish parsing" in (verdicts[1].error or "")
        assert [v.ok for v in verdicts] == [True, False, True, True, True]
        assert pool.parse(VALID).ok  # a replacement worker took over


ONLY_WITH_PROC = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                    reason="a worker's CPU time is read from /proc")


@ONLY_WITH_PROC
def test_a_worker_starved_of_cpu_past_the_timeout_is_not_stopped() -> None:
    # A stopped worker stands for one a busy machine gives no CPU (workers run below normal priority): past the
    # timeout in wall time, it has spent none of it on the diagram, which gets mermaid's verdict once it runs.
    with MermaidPool(workers=1, timeout=1.0) as pool:
        assert pool.parse(VALID).ok  # the worker is up
        pid = pool.worker_pids()[0]
        os.kill(pid, signal.SIGSTOP)
        resume = threading.Timer(3.0, os.kill, (pid, signal.SIGCONT))
        resume.start()
        try:
            verdict = pool.parse(many_valid(1)[0])
        finally:
            resume.cancel()
            os.kill(pid, signal.SIGCONT)
        assert verdict.ok and verdict.type == "flowchart-v2"
        assert pool.worker_pids() == [pid]


@ONLY_WITH_PROC
def test_a_worker_that_gets_no_cpu_for_long_is_stopped_all_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mermaid, "WALL_TIMEOUT_FACTOR", 3)
    with MermaidPool(workers=1, timeout=0.5) as pool:
        assert pool.parse(VALID).ok  # the worker is up
        pid = pool.worker_pids()[0]
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        verdict = pool.parse(many_valid(1)[0])
        assert time.monotonic() - started >= 1.5  # three times the timeout, not the timeout
        assert not verdict.ok and "did not finish parsing" in (verdict.error or "")
        assert pool.parse(VALID).ok  # a replacement worker took over


def test_the_first_worker_takes_the_diagrams_that_are_not_flowcharts_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent: dict[int, list[str]] = {}  # worker pid -> the first keyword of each diagram it was sent, in order
    feed = MermaidPool._feed

    def recorded(self: MermaidPool, worker) -> None:
        before = len(worker.queued)
        feed(self, worker)
        for _, call, index in list(worker.queued)[before:]:
            sent.setdefault(worker.proc.pid, []).append(call.codes[index].split(None, 1)[0])

    monkeypatch.setattr(MermaidPool, "_feed", recorded)
    others = [f"sequenceDiagram\n  A{i}->>B: hi\n" for i in range(20)]
    codes = [code for i, flowchart in enumerate(many_valid(60)) for code in (flowchart, *others[i : i + 1])]
    with MermaidPool(workers=2) as pool:
        pool.start()
        deadline = time.monotonic() + 60
        with pool._cond:  # both loaded mermaid: otherwise the one ready first would take everything, rightly
            while not all(worker.ready for worker in pool._workers):
                assert time.monotonic() < deadline, "the workers did not load mermaid"
                pool._poll()
        pids = pool.worker_pids()
        verdicts = pool.parse_many(codes)
    assert [v.type for v in verdicts[1:40:2]] == ["sequence"] * 20
    first, second = sent[pids[0]], sent.get(pids[1], [])
    assert first[:20] == ["sequenceDiagram"] * 20  # every other kind before its first flowchart
    assert "sequenceDiagram" not in second  # flowcharts only: the other kind never ran out
    assert sorted(first + second) == sorted(code.split(None, 1)[0] for code in codes)


def test_lanes_tell_flowcharts_from_the_rest_by_their_first_keyword() -> None:
    flowcharts = ["graph TD\n  A --> B", "%%{init: {}}%%\nflowchart LR\n  A", "\n  %% note\n  flowchart-elk TD"]
    others = ["sequenceDiagram\n  A->>B: hi", "---\ntitle: T\n---\nflowchart TD", "graphviz", "pie\n  \"a\": 1"]
    assert {mermaid.lane_of(code) for code in flowcharts} == {mermaid.FLOWCHART_LANE}
    assert {mermaid.lane_of(code) for code in others} == {mermaid.OTHER_LANE}


def test_a_diagram_put_back_goes_first_in_its_own_lane() -> None:
    call = mermaid._Call(["graph TD\n  A", "pie\n  \"a\": 1", "graph TD\n  B", "gantt\n  title T"])
    assert [call.take(mermaid.OTHER_LANE) for _ in range(2)] == [1, 3]
    assert call.take(mermaid.OTHER_LANE) == 0  # the other lane has run out: flowcharts then
    call.put_back(3)
    call.put_back(0)
    assert call.pending == 3
    assert [call.take(mermaid.FLOWCHART_LANE) for _ in range(3)] == [0, 2, 3]


def test_closing_kills_workers_still_loading_mermaid() -> None:
    pool = MermaidPool(workers=2)
    pool.start()
    procs = [worker.proc for worker in pool._workers]
    pool.close()  # before either can have loaded mermaid: nothing to finish, no reason to wait for it
    assert [proc.returncode for proc in procs] == [-signal.SIGKILL] * 2


def test_killed_worker_is_replaced_and_its_diagram_retried() -> None:
    codes = many_valid(60)
    with MermaidPool(workers=1) as pool:
        killed: list[int] = []

        def kill_once(done: int, total: int) -> None:
            if done >= 1 and not killed:
                killed.append(pool.worker_pids()[0])
                os.kill(killed[0], signal.SIGKILL)

        verdicts = pool.parse_many(codes, on_progress=kill_once)
        assert killed, "the worker was never killed"
        assert all(v.ok and v.type == "flowchart-v2" for v in verdicts)
        assert pool.worker_pids() and pool.worker_pids()[0] != killed[0]


def test_concurrent_calls_share_the_workers_so_a_small_call_is_not_stuck_behind_a_big_one() -> None:
    big, small = many_valid(1500), ["flowchart TD\n  A --> B(\n", *many_valid(2)[1:], VALID]
    finished: list[str] = []
    big_done_when_small_finished: list[int] = []
    results: dict[str, list[SyntaxVerdict]] = {}
    big_done = 0
    small_started = threading.Event()

    def run_small() -> None:
        results["small"] = pool.parse_many(small)
        big_done_when_small_finished.append(big_done)
        finished.append("small")

    def on_big_progress(done: int, total: int) -> None:
        nonlocal big_done
        big_done = done
        if done and not small_started.is_set():  # the big call is under way: now the small one arrives
            small_started.set()
            threading.Thread(target=run_small).start()

    with MermaidPool(workers=1) as pool:
        results["big"] = pool.parse_many(big, on_progress=on_big_progress)
        finished.append("big")
        assert small_started.wait(timeout=60)
        for _ in range(600):
            if "small" in finished:
                break
            threading.Event().wait(0.1)
    assert finished == ["small", "big"]
    assert big_done_when_small_finished[0] < len(big)
    assert all(v.ok and v.type == "flowchart-v2" for v in results["big"])
    assert [v.ok for v in results["small"]] == [False, True, True]


def test_call_waiting_when_the_pool_closes_fails_instead_of_hanging(hooks: None) -> None:
    errors: list[BaseException] = []
    pool = MermaidPool(workers=1, timeout=60.0)
    in_flight = threading.Event()

    def run() -> None:
        try:
            pool.parse_many([VALID, HANG], on_progress=lambda done, total: done and in_flight.set())
        except MermaidUnavailable as error:
            errors.append(error)

    caller = threading.Thread(target=run)
    caller.start()
    assert in_flight.wait(timeout=60)  # VALID answered, so the worker is stuck on HANG
    pool.close()
    caller.join(timeout=30)
    assert not caller.is_alive()
    assert errors and "closed while this call waited" in str(errors[0])
    assert pool.parse(VALID).ok  # a closed pool starts new workers on demand


def test_diagram_that_kills_its_worker_twice_is_reported(hooks: None) -> None:
    with MermaidPool(workers=2) as pool:
        verdicts = pool.parse_many([VALID, CRASH, *many_valid(4)])
    assert verdicts[1].ok is False and "exited" in (verdicts[1].error or "")
    assert all(v.ok for i, v in enumerate(verdicts) if i != 1)


def test_on_drained_is_called_once_every_diagram_is_handed_to_a_worker(tmp_path: Path) -> None:
    codes = many_valid(80)
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "v.sqlite3")) as pool:
        seen: list[tuple[int, int]] = []
        reported: list[int] = []
        pool.parse_many(codes, on_verdict=lambda index, verdict: reported.append(index),
                        on_drained=lambda: seen.append((pool.parses, len(reported))))
        assert len(seen) == 1
        handed_out, reported_then = seen[0]
        assert handed_out == len(codes)
        assert reported_then < len(codes)  # called while verdicts were still to come
        seen.clear()
        pool.parse_many(codes, on_drained=lambda: seen.append((pool.parses, 0)))
        assert seen == []  # every verdict cached: nothing was handed out


def test_work_prefetched_while_a_call_waits_is_parsed_once_and_found_in_the_cache(tmp_path: Path) -> None:
    extra = [VALID, "flowchart TD\n  A --> B(\n", "sequenceDiagram\n  A->>B: x\n"]
    with MermaidPool(workers=2, cache=VerdictCache(tmp_path / "v.sqlite3")) as pool:
        prefetched = []
        codes = many_valid(80)
        pool.parse_many(codes, on_drained=lambda: prefetched.append(pool.prefetch(extra)))
        pool.settle(prefetched[0])
        assert pool.parses == len(codes) + len(extra)
        verdicts = pool.parse_many(extra)
        assert pool.parses == len(codes) + len(extra)  # nothing parsed twice
    with MermaidPool(workers=1) as plain:
        assert verdicts == plain.parse_many(extra)


def test_a_prefetch_parses_nothing_without_a_cache_to_keep_it_or_already_cached(tmp_path: Path) -> None:
    with MermaidPool(workers=1) as uncached:
        uncached.settle(uncached.prefetch([VALID]))
        assert uncached.parses == 0 and uncached.worker_pids() == []
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "v.sqlite3")) as pool:
        pool.parse(VALID)
        pool.settle(pool.prefetch([VALID, VALID]))
        assert pool.parses == 1


def test_a_discarded_prefetch_is_not_parsed(tmp_path: Path) -> None:
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "v.sqlite3")) as pool:
        pool.discard(pool.prefetch(many_valid(5)))
        assert pool.parse_many([VALID])[0].ok
        assert pool.parses == 1


def test_settling_a_prefetch_the_pool_could_not_finish_keeps_nothing(tmp_path: Path, hooks: None) -> None:
    cache = VerdictCache(tmp_path / "v.sqlite3")
    pool = MermaidPool(workers=1, cache=cache, timeout=60.0)
    prefetch = pool.prefetch([HANG, VALID])
    stuck = threading.Thread(target=pool.settle, args=(prefetch,))
    stuck.start()
    deadline = time.monotonic() + 60
    while pool.parses == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    pool.close()  # the worker is stuck on HANG
    stuck.join(timeout=30)
    assert not stuck.is_alive()  # settle returned without an error
    assert cache.get_many(pool.version, [code_hash(HANG), code_hash(VALID)]) == {}


def test_cache_hit_starts_no_worker(tmp_path: Path) -> None:
    codes = [VALID, "flowchart TD\n  A --> B(\n"]
    with MermaidPool(workers=1, cache=VerdictCache(tmp_path / "v.sqlite3")) as first:
        expected = first.parse_many(codes)
        assert first.worker_pids()
    reopened = VerdictCache(tmp_path / "v.sqlite3")
    with MermaidPool(workers=1, cache=reopened) as second:
        progress: list[tuple[int, int]] = []
        assert second.parse_many(codes, on_progress=lambda *p: progress.append(p)) == expected
        assert second.worker_pids() == []
        assert progress == [(2, 2)]
    assert reopened.get_many("11.17.2", [code_hash(VALID)]) == {code_hash(VALID): expected[0]}


def test_cache_keeps_neither_timeouts_nor_other_versions(tmp_path: Path, hooks: None) -> None:
    cache = VerdictCache(tmp_path / "v.sqlite3")
    with MermaidPool(workers=1, cache=cache, timeout=4.0) as pool:
        assert not pool.parse(HANG).ok
    assert cache.get_many(pool.version, [code_hash(HANG)]) == {}
    cache.put_many("0.0.1", {code_hash(VALID): SyntaxVerdict(ok=False, error="old")})
    assert cache.get_many(pool.version, [code_hash(VALID)]) == {}


def test_fast_config_copy_matches_mermaids_own(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every fast copy is compared with mermaid's original assignWithDepth; a difference fails the diagram.
    monkeypatch.setenv("ATLAS_MERMAID_VERIFY_COPY", "1")
    directive = '%%{init: {"theme": "forest", "flowchart": {"curve": "basis"}, "themeVariables": {"x": "1"}}}%%\n'
    front_matter = "---\nconfig:\n  look: handDrawn\n  sequence:\n    mirrorActors: false\n---\n"
    # Directives merged into the configuration's copy: some keep its shape (its copier is reused), some add keys
    # or change a value's kind (its shape is matched again).
    merges = ['{"fontSize": 20}', '{"flowchart": {"curve": "linear"}}', '{"newKey": 1}', '{"flowchart": {"newKey": 1}}',
              '{"fontSize": {"a": 1}}', '{"flowchart": 5}', '{"flowchart": [1]}', '{"flowchart": null}',
              '{"flowchart": {"padding": {"a": 1}}}', '{"gantt": {"sectionFills": ["#fff"]}}',
              # shape-changing merges whose merged shape is learnt once and then reused
              '{"flowchart": {"arrowMarkerAbsolute": null}}', '{"arrowMarkerAbsolute": true}',
              '{"flowchart": {"inheritDir": true, "newKey": null}}', '{"sequence": {"wrap": true, "newKey": "x"}}']
    merged = [f"%%{{init: {merge}}}%%\n{code}" for merge in merges for code in (VALID, *many_valid(2), VALID)]
    codes = [*many_valid(40), directive + VALID, front_matter + "sequenceDiagram\n  A->>B: hi\n", "pie\n  \"a\": 1\n",
             *merged, *many_valid(2)]
    with MermaidPool(workers=1) as pool:
        verdicts = pool.parse_many(codes)
    assert all(v.ok for v in verdicts), [v.error for v in verdicts if not v.ok]


@pytest.mark.parametrize(
    ("code", "error"),
    [
        # A colon in a task's title shifts its fields: the task has no start, and the gantt database throws.
        ("gantt\n  dateFormat HH:mm\n  section Asia\n  India (UTC+5:30) :crit, india, 17:30, 2h\n",
         "Cannot read properties of undefined (reading 'type')"),
        ("gantt\n  dateFormat YYYY-MM-DD\n  section Rollout\n  Canary :a1, 10:30s, 1d\n", "Invalid date:10:30s"),
        # A node inside the subgraph of the same id: the layout graph would be its own parent.
        ("flowchart TB\n  subgraph Ratio[Revenue ratio]\n    Cost --> Ratio\n  end\n",
         "Setting Ratio as parent of Ratio would create a cycle"),
        # Each subgraph lists the other.
        ("flowchart TB\n  subgraph A\n    B\n  end\n  subgraph B\n    A\n  end\n",
         "Setting B as parent of A would create a cycle"),
        # A self-loop on an edge's id, which names no node: the layout graph has no node to read a parent from.
        ("flowchart TB\n  subgraph Outer\n    subgraph Inner\n      A e1@--> B\n    end\n  end\n  e1 --> e1\n",
         "Cannot read properties of undefined (reading 'parentId')"),
        # Edge metadata whose YAML anchor makes a cycle: the layout graph JSON.stringify-s every edge.
        ("flowchart TB\n  subgraph Outer\n    subgraph Inner\n      A e1@--> B\n    end\n  end\n"
         "  e1@{ animate: &loop [*loop] }\n",
         "Converting circular structure to JSON\n    --> starting at object with constructor 'Array'\n"
         "    --- index 0 closes the circle"),
        # graphlib keeps nodes in plain objects, where __proto__ is no ordinary key.
        ("flowchart TB\n  subgraph Outer\n    subgraph Inner\n      __proto__ --> B\n    end\n  end\n",
         "Cannot convert undefined or null to object"),
    ],
    ids=["gantt-task-without-start", "gantt-invalid-date", "flowchart-subgraph-cycle", "flowchart-two-subgraph-cycle",
         "flowchart-self-loop-on-no-node", "flowchart-circular-edge-metadata", "flowchart-proto-node"],
)
def test_diagram_that_parses_but_cannot_be_drawn_fails_with_the_renderers_message(
    pool: MermaidPool, code: str, error: str
) -> None:
    verdict = pool.parse(code)
    assert not verdict.ok and verdict.error == RENDER_ERROR.format(error=error)
    assert parses(verdict) and verdict.type in ("gantt", "flowchart-v2") and verdict.error_line is None


def test_drawable_gantt_and_subgraphs_stay_valid(pool: MermaidPool) -> None:
    codes = ["gantt\n  dateFormat YYYY-MM-DD\n  section S\n  Task :a1, 2024-01-01, 1d\n  Next :after a1, 2d\n",
             "flowchart TB\n  subgraph Edge\n    A --> B\n  end\n  B --> C\n  subgraph Core\n    C\n  end\n"]
    assert [(v.ok, v.error) for v in pool.parse_many(codes)] == [(True, None), (True, None)]


def test_nested_subgraphs_with_self_loops_and_edge_metadata_stay_valid(pool: MermaidPool) -> None:
    # The layout graph is not built for these (it provably cannot throw), or built and does not throw.
    codes = [
        "flowchart LR\n  subgraph Outer\n    direction TB\n    subgraph Inner\n      A --> B\n      B --> B\n    end\n"
        "    Inner --> Inner\n    C\n  end\n  Outer --> D\n  D --> Inner\n  A e1@--> D\n"
        "  e1@{ animate: true, curve: linear }\n  linkStyle default interpolate step\n",
        "flowchart TB\n  subgraph Outer\n    subgraph Inner\n      A --> B\n    end\n  end\n  Inner@{ view: collapsed }\n"
        "  B --> B\n",
        "---\nconfig:\n  look: handDrawn\n  flowchart:\n    curve: [1, 2]\n---\nflowchart TB\n  subgraph Outer\n"
        "    subgraph Inner\n      A --> A\n    end\n  end\n",
    ]
    assert [(v.ok, v.error) for v in pool.parse_many(codes)] == [(True, None)] * 3


def test_worker_applies_every_bundle_patch() -> None:
    # A patch whose anchor moved is skipped with a warning: verdicts stay right but the speed-ups are lost.
    worker = subprocess.run([shutil.which("node") or "node", str(mermaid_dir() / "worker.mjs")], input="",
                            capture_output=True, text=True, cwd=mermaid_dir(), timeout=60, check=True)
    patches = json.loads(worker.stdout.splitlines()[0])["patches"]
    assert {"fastCopy", "configCopy", "siteConfigChanged", "siteConfigCopy", "directivesMerge", "flowConfig",
            "subGraphConfig", "sequenceWrapConfig", "sequenceDbWrapConfig", "subGraphItems", "flowInitConfig",
            "flowInitMarkerConfig", "fromTextInit", "fromTextDetection", "flowInitView", "parserInput", "popInPlace",
            "actionCall", "lexerFilter", "parsedDiagram", "dagreLayout"} <= set(patches)
    assert all(patches.values()), patches


def test_workers_start_with_a_minimal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"ATLAS_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----", "ATLAS_WEBHOOK_SECRET": "hook",
               "GITHUB_TOKEN": "ghs_x", "ATLAS_APP_ID": "1", "AWS_SECRET_ACCESS_KEY": "k"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    with MermaidPool(workers=1) as pool:
        assert pool.parse(VALID).ok  # the worker runs with what it is given
        environ = Path(f"/proc/{pool.worker_pids()[0]}/environ").read_bytes().split(b"\0")
    names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
    assert names <= set(WORKER_ENV) | set(WORKER_MEMORY_ENV) and "PATH" in names
    assert not names & set(secrets)


def test_workers_start_with_the_node_flags_and_memory_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")  # the caller's own setting is not inherited
    with MermaidPool(workers=1) as pool:
        assert pool.parse(VALID).ok
        pid = pool.worker_pids()[0]
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    assert arguments[1:-2] == list(WORKER_NODE_FLAGS) and arguments[-2].endswith("worker.mjs")
    assert {f"{name}={value}" for name, value in WORKER_MEMORY_ENV.items()} <= set(environ)


def test_workers_parse_below_the_servers_priority() -> None:
    """A pull request with thousands of diagrams must not slow the webhook answers sharing the machine."""
    with MermaidPool(workers=1) as pool:
        assert pool.parse(VALID).ok
        stat = Path(f"/proc/{pool.worker_pids()[0]}/stat").read_text()
    niceness = int(stat.rsplit(")", 1)[1].split()[16])  # field 19 of proc(5), after the command name
    assert niceness >= os.nice(0) + 10 or niceness == 19


def test_missing_node_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MermaidUnavailable, match="Node.js"):
        MermaidPool()


def test_missing_packages_are_unavailable_with_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "worker.mjs").write_text((mermaid_dir() / "worker.mjs").read_text())
    monkeypatch.setenv("ATLAS_MERMAID_DIR", str(tmp_path))
    with pytest.raises(MermaidUnavailable, match=f"npm ci --prefix {tmp_path}"):
        MermaidPool()


def test_worker_that_cannot_start_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for package in ("mermaid", "linkedom"):
        (tmp_path / "node_modules" / package).mkdir(parents=True)
        (tmp_path / "node_modules" / package / "package.json").write_text('{"version": "11.17.2"}')
    (tmp_path / "worker.mjs").write_text('process.stderr.write("cannot load mermaid\\n"); process.exit(3);\n')
    monkeypatch.setenv("ATLAS_MERMAID_DIR", str(tmp_path))
    with MermaidPool(workers=1) as pool, pytest.raises(MermaidUnavailable, match="cannot load mermaid"):
        pool.parse(VALID)


class StepClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1
        return self.now


def test_the_verdict_cache_keeps_the_most_recently_used_rows(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "cache.sqlite3", max_rows=3, clock=StepClock())
    verdict = SyntaxVerdict(ok=True, type="flowchart-v2")
    cache.put_many("v", {"a": verdict, "b": verdict, "c": verdict})
    assert set(cache.get_many("v", ["a"])) == {"a"}  # read back: used again, newer than b and c
    cache.put_many("v", {"d": verdict})
    assert cache.prune() == 1
    assert set(cache.get_many("v", ["a", "b", "c", "d"])) == {"a", "c", "d"}
    cache.put_stored(FILE_RESULTS, "r", {f"k{i}": "[]" for i in range(5)})
    cache.prune()
    assert cache.sizes() == {CACHE_TABLE: 3, SUGGESTIONS: 0, FILE_RESULTS: 3}
    cache.close()


def test_a_cache_written_before_rows_carried_their_use_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(f"CREATE TABLE {CACHE_TABLE} (version TEXT, sha TEXT, ok INTEGER, error TEXT, error_line INTEGER,"
                   " type TEXT, PRIMARY KEY (version, sha)) WITHOUT ROWID")
        db.execute(f"INSERT INTO {CACHE_TABLE} VALUES ('v', 'old', 1, NULL, NULL, 'pie')")
    cache = VerdictCache(path)
    assert cache.get_many("v", ["old"])["old"].type == "pie"
    cache.put_many("v", {"new": SyntaxVerdict(ok=False, error="x")})
    assert cache.sizes()[CACHE_TABLE] == 2
    cache.close()
