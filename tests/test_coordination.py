"""The embedded coordinator: paced write slots, the token cache, named locks."""

from __future__ import annotations

from bot.coordination import InProcessCoordinator, PacedSlot


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
