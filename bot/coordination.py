"""State that every process of one deployment must share: write pacing, installation tokens, named locks.

One process (the embedded default) keeps it in memory (:class:`InProcessCoordinator`). A deployment with several
servers and workers keeps it in the engine its job queue runs on, so that GitHub's limits for content-creating
requests hold for the whole deployment, not per process, and two processes never race on one pull request's
sticky comment or one repository's progress issue. Everything that needs such state is handed a
:class:`Coordinator`; nothing else holds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Protocol


class Coordinator(Protocol):
    """What the GitHub seam and the jobs share across processes."""

    def write_slot(self, installation_id: int) -> AbstractContextManager[None]:
        """A reusable context manager held around one content-creating request of the installation.

        Across every process, at most one holder per installation at a time, and successive entries are spaced
        by the pacing interval. Hold it for one request, never across a sleep.
        """

    def cached_token(self, installation_id: int) -> tuple[str, float] | None:
        """The installation token and its expiry (epoch seconds) last stored, if any."""

    def store_token(self, installation_id: int, token: str, expires_at: float) -> None: ...

    def drop_token(self, installation_id: int, token: str) -> None:
        """Forget the token (GitHub refused it), unless another process already replaced it."""

    def lock(self, name: str) -> AbstractContextManager[None]:
        """A reusable mutual-exclusion lock shared by every process (``progress:owner/repo``, ...)."""


class PacedSlot:
    """A lock whose successive acquisitions are at least ``interval`` seconds apart (start to start)."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_start: float | None = None

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._last_start is not None:
            wait = self._last_start + self._interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_start = self._clock()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class InProcessCoordinator:
    """The embedded default: one process, state in memory."""

    def __init__(self, *, write_interval: float = 0.0) -> None:
        self._write_interval = write_interval
        self._guard = threading.Lock()
        self._slots: dict[int, PacedSlot] = {}
        self._tokens: dict[int, tuple[str, float]] = {}
        self._locks: dict[str, threading.Lock] = {}

    def write_slot(self, installation_id: int) -> PacedSlot:
        with self._guard:
            return self._slots.setdefault(installation_id, PacedSlot(self._write_interval))

    def cached_token(self, installation_id: int) -> tuple[str, float] | None:
        with self._guard:
            return self._tokens.get(installation_id)

    def store_token(self, installation_id: int, token: str, expires_at: float) -> None:
        with self._guard:
            self._tokens[installation_id] = (token, expires_at)

    def drop_token(self, installation_id: int, token: str) -> None:
        with self._guard:
            if self._tokens.get(installation_id, ("",))[0] == token:
                del self._tokens[installation_id]

    def lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())
