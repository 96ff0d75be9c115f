"""Running the emulator for tests: uvicorn on 127.0.0.1 (a free port) in a thread, and the pytest fixtures.

``github_emulator_server`` starts one server per test session; ``github_emulator`` gives each test a fresh,
empty state on it and fails the test when any request or answer did not match GitHub's OpenAPI description.
Import both into a conftest to use them::

    from emulator.fixtures import github_emulator, github_emulator_server  # noqa: F401
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from .app import StateHolder, create_app
from .spec import Spec
from .state import BOT_LOGIN, RecordedRequest, Repo, State

START_TIMEOUT_SECONDS = 10.0
DEFAULT_INSTALLATION_ID = 1

log = logging.getLogger(__name__)


class EmulatorServer:
    """The emulator app under uvicorn in a daemon thread; ``stop()`` shuts it down."""

    def __init__(self, spec: Spec | None = None) -> None:
        self.spec = spec or Spec()
        # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
        # answer after a connection's first waits ~40 ms (Nagle against the client's delayed ACK).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.holder = StateHolder(State(self.spec, self.base_url))
        config = uvicorn.Config(create_app(self.holder), log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name="github-emulator", daemon=True)

    def start(self) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the GitHub emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(START_TIMEOUT_SECONDS)
        self._socket.close()

    def fresh(self) -> EmulatorHandle:
        """Swap in an empty state and return a handle on it."""
        state = State(self.spec, self.base_url)
        self.holder.current = state
        return EmulatorHandle(state)


class EmulatorHandle:
    """What a test holds: the URL, the state, the recorded requests and the set-up helpers.

    ``token`` is a valid installation token acting as the bot (``atlas-bot[bot]``, type Bot).
    """

    def __init__(self, state: State) -> None:
        self.state = state
        self.base_url = state.base_url
        self.token, _ = state.issue_token(DEFAULT_INSTALLATION_ID, user=BOT_LOGIN)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.state.lock:
            return list(self.state.requests)

    def add_repo(self, full_name: str, path: Path | str, *, default_branch: str | None = None) -> Repo:
        return self.state.add_repo(full_name, path, default_branch=default_branch)

    def add_pull(self, full_name: str, head: str, **kwargs: Any) -> int:
        return self.state.add_pull(full_name, head, **kwargs)

    def push(self, full_name: str, number: int, head: str) -> str:
        return self.state.push(full_name, number, head)

    def inject_fault(self, endpoint: str, kind: str, *, times: int = 1, retry_after: int = 1,
                     delay: float = 0.0) -> None:
        self.state.inject_fault(endpoint, kind, times=times, retry_after=retry_after, delay=delay)

    def register_app(self, app_id: int, public_key_pem: str,
                     installation_id: int = DEFAULT_INSTALLATION_ID) -> None:
        self.state.register_app(app_id, public_key_pem, installation_id)

    def writes(self, since: int = 0) -> list[RecordedRequest]:
        return self.state.writes(since)

    def mark(self) -> int:
        """The number of requests so far, to count only what follows (``writes(since=mark)``)."""
        return len(self.requests)

    def check_valid(self) -> None:
        """Fail when any exchange did not match GitHub's OpenAPI description."""
        errors = list(self.state.validation_errors)
        if errors:
            pytest.fail("GitHub emulator saw exchanges outside GitHub's OpenAPI description:\n\n"
                        + "\n\n".join(errors), pytrace=False)


@pytest.fixture(scope="session")
def github_emulator_server() -> Iterator[EmulatorServer]:
    server = EmulatorServer().start()
    yield server
    server.stop()


@pytest.fixture
def github_emulator(github_emulator_server: EmulatorServer) -> Iterator[EmulatorHandle]:
    """A fresh emulated GitHub for one test; the test fails if any exchange broke the OpenAPI contract."""
    handle = github_emulator_server.fresh()
    yield handle
    handle.check_valid()
