"""GitHub App authentication: the App's JWT, installation tokens cached until shortly before they expire.

PyGithub's ``Auth.AppAuth`` signs the JWT (RS256, issued 60 s in the past against clock drift, 5 minutes of
validity); the token exchange itself goes through :class:`~bot.github.transport.Transport` like every other
request, so it is counted and retried the same way. The token cache and each installation's write slot live in
the deployment's :class:`~bot.coordination.Coordinator`, because several jobs of one installation run at once
(in one process or many) and GitHub asks for their content-creating requests not to be concurrent.

https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app-installation
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from github import Auth

from bot.coordination import Coordinator, InProcessCoordinator
from bot.github.client import GitHubClient
from bot.github.transport import DEFAULT_API_URL, OnCall, Transport

# Installation tokens live one hour; renew five minutes early so a token never expires mid-job.
TOKEN_REFRESH_MARGIN_SECONDS = 300
ACCESS_TOKEN_ENDPOINT = "/app/installations/{installation_id}/access_tokens"
APP_ENDPOINT = "/app"

log = logging.getLogger(__name__)


class AppAuth:
    """Authenticates as one GitHub App; hands out installation tokens and clients."""

    def __init__(
        self,
        app_id: int,
        private_key: str,
        api_url: str = DEFAULT_API_URL,
        *,
        on_call: OnCall | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.app_id = app_id
        self.api_url = api_url
        self._jwt = Auth.AppAuth(app_id, private_key)
        self._clock = clock
        self._sleep = sleep
        self._on_call = on_call
        # One lock per installation, held through that installation's token request and its retries: a slow or
        # failing exchange for one installation never holds up the jobs of another.
        self._guard = threading.Lock()
        self._locks: dict[int, threading.Lock] = {}
        self._login: str | None = None
        self.coordinator: Coordinator = coordinator or InProcessCoordinator()

    def app_jwt(self) -> str:
        """A fresh JWT for the App's own endpoints (``/app``, ``/app/installations``)."""
        return self._jwt.create_jwt()

    def _app_transport(self) -> Transport:
        # A transport per exchange: PyGithub's connection is not shared between threads, and exchanges for
        # different installations run at once. They are rare (hourly per installation), so the set-up is noise.
        return Transport(self._jwt, self.api_url, on_call=self._on_call, sleep=self._sleep, clock=self._clock)

    def bot_login(self) -> str:
        """The login the App acts as (``<slug>[bot]``), asked of GitHub once."""
        if self._login is None:
            slug = str(self._app_transport().request("GET", APP_ENDPOINT).data["slug"])
            self._login = f"{slug}[bot]"
        return self._login

    def installation_token(self, installation_id: int) -> str:
        """The installation's access token, reused until five minutes before it expires."""
        with self._installation_lock(installation_id):
            cached = self.coordinator.cached_token(installation_id)
            if cached is not None and cached[1] - TOKEN_REFRESH_MARGIN_SECONDS > self._clock():
                return cached[0]
            answer = self._app_transport().request("POST", ACCESS_TOKEN_ENDPOINT, {"installation_id": installation_id},
                                       idempotent=True)
            token = str(answer.data["token"])
            expires_at = datetime.fromisoformat(str(answer.data["expires_at"]).replace("Z", "+00:00")).timestamp()
            self.coordinator.store_token(installation_id, token, expires_at)
            log.info("new access token for installation %s, expires %s", installation_id,
                     answer.data["expires_at"])
            return token

    def drop_token(self, installation_id: int, token: str) -> None:
        """GitHub refused ``token`` (revoked, or the installation's permissions changed): fetch a new one next."""
        log.info("access token of installation %s refused; dropping it", installation_id)
        self.coordinator.drop_token(installation_id, token)

    def _installation_lock(self, installation_id: int) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(installation_id, threading.Lock())

    def write_lock(self, installation_id: int) -> AbstractContextManager[None]:
        return self.coordinator.write_slot(installation_id)

    def client(self, installation_id: int, *, on_call: OnCall | None = None) -> GitHubClient:
        """A client for one job acting as the installation; ``on_call`` counts that job's calls."""
        return GitHubClient(
            lambda: self.installation_token(installation_id),
            self.api_url,
            drop_token=lambda token: self.drop_token(installation_id, token),
            bot_logins=frozenset({self.bot_login()}),
            on_call=on_call,
            write_lock=self.write_lock(installation_id),
            sleep=self._sleep,
            clock=self._clock,
        )
