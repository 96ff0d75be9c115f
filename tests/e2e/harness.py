"""End-to-end harness: the real bot (uvicorn on 127.0.0.1, SQLite queue, worker threads, mermaid pool) wired
to the GitHub emulator as a registered App, a sample Atlas repository in git, and signed webhook deliveries
shaped like GitHub's. Shared by tests/e2e and bench/bench_pipeline.py.
"""

from __future__ import annotations

import itertools
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.app import Runtime, build_runtime
from bot.queue import JobState
from bot.settings import Settings
from bot.webhooks import signature_for

REPO = "atlas/docs"
WEBHOOK_SECRET = "e2e-webhook-secret"
APP_ID = 31337
INSTALLATION_ID = 1
START_TIMEOUT_SECONDS = 15.0
GIT_ENV = {"GIT_AUTHOR_NAME": "Atlas Tester", "GIT_AUTHOR_EMAIL": "tester@example.invalid",
           "GIT_COMMITTER_NAME": "Atlas Tester", "GIT_COMMITTER_EMAIL": "tester@example.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin"}

GOOD_DIAGRAM = """```mermaid
flowchart LR
    client[Client] -->|HTTPS| lb[Load balancer]
    lb --> api[API server]
    api --> db[(Primary DB)]
```
"""
BROKEN_DIAGRAM = """```mermaid
flowchart LR
    client[Client] -->|HTTPS| lb[Load balancer
    lb --> api[API server]
    api --> db[(Primary DB)]
```
"""


def app_key_pair() -> tuple[str, str]:
    """A fresh RSA key: (private PEM for the bot, public PEM for the emulator to check the App's JWTs)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


class SampleRepo:
    """A local git repository laid out like an Atlas docs tree, with helpers to commit on branches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        self.write("README.md", "# Atlas sample\n")
        self.write("docs/systems/payments.md", "# Payments\n\n## Request path\n\n" + GOOD_DIAGRAM)
        self.commit("initial docs")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env=GIT_ENV, check=True, capture_output=True,
                              text=True).stdout.strip()

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def branch(self, name: str, start: str = "main") -> None:
        self.git("checkout", "-q", "-B", name, start)

    def pr_branch(self, name: str, diagrams: int, *, broken: int = 0, folder: str = "systems") -> str:
        """A branch off main adding one page with ``diagrams`` diagrams (``broken`` of them with a syntax error).

        Every diagram's text is unique to the branch, so nothing is found in a verdict cache filled by others.
        """
        self.branch(name)
        sections = []
        for i in range(diagrams):
            template = BROKEN_DIAGRAM if i < broken else GOOD_DIAGRAM
            body = template.replace("Primary DB", f"Primary DB {name} {i}")
            sections.append(f"## Section {i}\n\nHow requests flow in part {i}.\n\n{body}")
        self.write(f"docs/{folder}/{name}.md", f"# {name}\n\n" + "\n".join(sections))
        head = self.commit(f"add {name}")
        self.git("checkout", "-q", "main")
        return head


class BotServer:
    """The bot's runtime under uvicorn in a thread; ``deliver`` signs and posts a webhook."""

    _ids = itertools.count(1)

    def __init__(self, data_dir: Path, api_url: str, private_key: str, *, start_workers: bool = True,
                 **overrides: Any) -> None:
        values: dict[str, Any] = {"data_dir": data_dir, "webhook_secret": WEBHOOK_SECRET, "app_id": APP_ID,
                                  "private_key": private_key, "github_api_url": api_url, "workers": 2,
                                  "poll_seconds": 0.05, "retry_base_seconds": 0.2, "lease_seconds": 120,
                                  "write_interval_seconds": 0, **overrides}
        self.settings = Settings.load(**values)
        self.runtime: Runtime = build_runtime(self.settings)
        self._server = uvicorn.Server(uvicorn.Config(self.runtime.app, host="127.0.0.1", port=0,
                                                     log_level="warning", access_log=False, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, name="atlas-bot-e2e", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the bot's server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        if start_workers:
            self.start_workers()

    def start_workers(self) -> None:
        self.runtime.start()

    def deliver(self, event: str, payload: dict[str, Any], delivery_id: str | None = None) -> httpx.Response:
        body = httpx.Request("POST", "/", json=payload).content
        delivery_id = delivery_id or f"e2e-{next(self._ids)}-{time.monotonic_ns()}"
        return self.http.post("/webhook", content=body, headers={
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id, "Content-Type": "application/json",
            "X-Hub-Signature-256": signature_for(body, WEBHOOK_SECRET)})

    def wait_until(self, condition: Callable[[], bool], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.02)
        return condition()

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """True once nothing is queued or running (retries waiting for their backoff count as queued)."""
        return self.wait_until(lambda: self.runtime.queue.depth() == 0, timeout)

    def jobs(self, state: JobState | None = None) -> list[Any]:
        return self.runtime.queue.list_jobs(state=state, limit=1000)

    def stop(self) -> None:
        self.http.close()
        self._server.should_exit = True
        self._thread.join(START_TIMEOUT_SECONDS)
        # Runtime.close also fits a runtime whose workers never started: stopping an idle pool is a no-op.
        self.runtime.close()


def pull_request_payload(emulator: Any, full_name: str, number: int, action: str) -> dict[str, Any]:
    """A pull_request webhook body built from the emulator's own pull request JSON."""
    from emulator.handlers import pull_json

    state = emulator.state
    with state.lock:
        repo = state.repos[full_name]
        pull = pull_json(state, repo, repo.pulls[number])
        repository = dict(repo.data)
    return {"action": action, "number": number, "pull_request": pull, "repository": repository,
            "installation": {"id": INSTALLATION_ID}, "sender": pull["user"]}


def comment_payload(emulator: Any, full_name: str, number: int, body: str, login: str) -> dict[str, Any]:
    state = emulator.state
    with state.lock:
        repo = state.repos[full_name]
        issue = dict(repo.issues[number])
        repository = dict(repo.data)
        user = state.user(login)
    return {"action": "created", "issue": issue, "repository": repository, "installation": {"id": INSTALLATION_ID},
            "comment": {"id": 1, "body": body, "user": user}, "sender": user}
