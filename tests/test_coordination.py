"""The coordinators: paced write slots, the token cache, named locks; in memory and on PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from bot.coordination import InProcessCoordinator, LeaseLost, PacedSlot, PostgresCoordinator, lease_guard


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_paced_slot_spaces_entries_start_to_start() -> None:
    clock = FakeClock()
    slot = PacedSlot(1.0, clock=clock, sleep=clock.sleep)
    with slot:
        clock.now += 0.25
    with slot:
        pass
    assert clock.sleeps == [0.75]
    clock.now += 5
    with slot:
        pass
    assert clock.sleeps == [0.75]


def test_write_slots_are_per_installation_and_reused() -> None:
    coordinator = InProcessCoordinator()
    assert coordinator.write_slot(7) is coordinator.write_slot(7)
    assert coordinator.write_slot(7) is not coordinator.write_slot(8)


def test_a_refused_token_is_dropped_unless_already_replaced() -> None:
    coordinator = InProcessCoordinator()
    coordinator.store_token(7, "old", 500.0)
    coordinator.store_token(7, "new", 900.0)
    coordinator.drop_token(7, "old")
    assert coordinator.cached_token(7) == ("new", 900.0)
    coordinator.drop_token(7, "new")
    assert coordinator.cached_token(7) is None


def test_named_locks_are_shared_by_name() -> None:
    coordinator = InProcessCoordinator()
    assert coordinator.lock("progress:o/r") is coordinator.lock("progress:o/r")
    assert coordinator.lock("progress:o/r") is not coordinator.lock("progress:o/s")


# -- the shared engine: two coordinators on one PostgreSQL stand for two processes ---------------------------


@pytest.fixture
def shared(postgres_url: str):
    opened = []

    def make(**options) -> PostgresCoordinator:
        coordinator = PostgresCoordinator(postgres_url, **options)
        opened.append(coordinator)
        return coordinator

    yield make
    for coordinator in opened:
        coordinator.close()


def test_write_slots_across_processes_have_one_holder_and_keep_the_interval(shared) -> None:
    interval = 0.1
    processes = [shared(write_interval=interval) for _ in range(2)]
    holders, overlaps, starts = [0], [], []
    guard = threading.Lock()

    def write(coordinator: PostgresCoordinator) -> None:
        slot = coordinator.write_slot(7)  # one reusable slot per client, as GitHubClient keeps it
        for _ in range(4):
            with slot:
                with guard:
                    holders[0] += 1
                    overlaps.append(holders[0])
                    starts.append(time.monotonic())
                time.sleep(0.01)
                with guard:
                    holders[0] -= 1

    threads = [threading.Thread(target=write, args=(c,)) for c in processes for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:])]
    # The starts are taken in Python after the slot is entered, so a thread the GIL delays shortens the next
    # gap; unpaced, the gaps would be the 10 ms a holder sleeps.
    assert len(starts) == 16 and min(gaps) >= interval * 0.5


def test_tokens_and_named_locks_are_shared_across_processes(shared) -> None:
    first, second = shared(), shared()
    first.store_token(7, "old", 500.0)
    second.store_token(7, "new", 900.0)
    first.drop_token(7, "old")  # another process already replaced it
    assert first.cached_token(7) == ("new", 900.0)
    second.drop_token(7, "new")
    assert first.cached_token(7) is None
    entered = threading.Event()

    def wait_for_the_lock() -> None:
        with second.lock("progress:o/r"):
            entered.set()

    with first.lock("progress:o/r"):
        waiter = threading.Thread(target=wait_for_the_lock)
        waiter.start()
        assert not entered.wait(0.3)  # the other process waits for the lock
        with second.lock("progress:o/s"):
            pass  # another repository's lock is free
    assert entered.wait(10)
    waiter.join()


HOLDS_A_LOCK = """
import sys, time
from bot.coordination import PostgresCoordinator
with PostgresCoordinator(sys.argv[1]).lock("progress:o/r"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_process_releases_its_lock(shared, postgres_url: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", HOLDS_A_LOCK, postgres_url], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with shared().lock("progress:o/r"):
        pass  # the server dropped the dead connection and its advisory lock


@pytest.mark.parametrize("backend", ["memory", "postgres"])
def test_a_write_slot_refuses_a_job_that_lost_its_lease(backend: str, request) -> None:
    coordinator = InProcessCoordinator() if backend == "memory" else request.getfixturevalue("shared")()
    slot = coordinator.write_slot(7)
    with lease_guard(lambda: True):
        with slot:
            pass
    with lease_guard(lambda: False), pytest.raises(LeaseLost):
        with slot:
            pytest.fail("a write ran after the lease was lost")
    with slot:
        pass  # outside a job (and after a refusal) the slot is free
