"""The HTTP side: /webhook answers (401/400/413/202/200), redeliveries, /healthz and /metrics."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from bot.metrics import Metrics
from bot.queue import JobState, SQLiteJobQueue
from bot.settings import Settings
from bot.webhooks import signature_for

SECRET = "test-webhook-secret"
OCTOKIT = Path(__file__).parent / "fixtures" / "webhooks" / "octokit"


def sha(seed: object) -> str:
    """A commit SHA as GitHub sends it (40 hex digits), distinct per seed."""
    return hashlib.sha1(str(seed).encode()).hexdigest()


def pr_body(head: str = sha("abc"), number: int = 7) -> bytes:
    return json.dumps({
        "action": "synchronize", "number": number, "installation": {"id": 1},
        "repository": {"full_name": "octo/atlas", "default_branch": "main"},
        "pull_request": {"number": number, "head": {"sha": head}, "base": {"ref": "main"}},
    }).encode()


def signed(body: bytes, *, event: str = "pull_request", delivery: str = "d-1") -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature_for(body, SECRET),
            "Content-Type": "application/json"}


class Harness:
    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.settings = Settings.load(data_dir=tmp_path, webhook_secret=SECRET, **settings)
        self.queue = SQLiteJobQueue(self.settings.queue_path)
        self.metrics = Metrics()
        self.wakes = 0
        app = create_app(self.settings, self.queue, metrics=self.metrics, on_enqueued=self.wake)
        self.client = TestClient(app)

    def wake(self) -> None:
        self.wakes += 1

    def post(self, body: bytes, headers: dict[str, str]):
        return self.client.post("/webhook", content=body, headers=headers)

    def deliveries(self, event: str, outcome: str) -> float:
        return self.metrics.registry.get_sample_value("atlas_webhook_deliveries_total",
                                                      {"event": event, "outcome": outcome}) or 0.0


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    yield h
    h.queue.close()


def test_valid_delivery_is_queued_and_answered_202(harness: Harness) -> None:
    response = harness.post(pr_body(), signed(pr_body()))
    assert response.status_code == 202
    assert response.json() == {"status": "queued"}
    assert harness.queue.depth() == 1
    assert harness.wakes == 1
    assert harness.deliveries("pull_request", "queued") == 1


def test_redelivery_is_answered_200_and_not_queued_again(harness: Harness) -> None:
    harness.post(pr_body(), signed(pr_body()))
    job = harness.queue.lease("w", 60)
    harness.queue.complete(job)
    again = harness.post(pr_body(), signed(pr_body()))
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    assert harness.queue.lease("w", 60) is None
    assert harness.deliveries("pull_request", "duplicate") == 1


@pytest.mark.parametrize("headers", [
    {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d"},
    {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d", "X-Hub-Signature-256": "sha256=" + "0" * 64},
])
def test_missing_or_wrong_signature_is_401(harness: Harness, headers: dict[str, str]) -> None:
    response = harness.post(pr_body(), headers)
    assert response.status_code == 401
    assert harness.queue.depth() == 0
    assert harness.deliveries("pull_request", "unauthorized") == 1


@pytest.mark.parametrize("drop", ["X-GitHub-Event", "X-GitHub-Delivery"])
def test_missing_event_or_delivery_is_400(harness: Harness, drop: str) -> None:
    headers = signed(pr_body())
    del headers[drop]
    assert harness.post(pr_body(), headers).status_code == 400


def test_invalid_json_is_400(harness: Harness) -> None:
    body = b"{nope"
    assert harness.post(body, signed(body)).status_code == 400


def test_unhandled_event_is_202_and_ignored(harness: Harness) -> None:
    body = b'{"action": "created", "repository": {"full_name": "o/r"}}'
    response = harness.post(body, signed(body, event="star"))
    assert response.status_code == 202 and response.json() == {"status": "ignored"}
    assert harness.queue.depth() == 0
    assert harness.wakes == 0


def test_declared_oversize_body_is_413(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_body_bytes=1000)
    body = b"x" * 2000
    assert h.post(body, signed(body)).status_code == 413
    assert h.deliveries("pull_request", "too_large") == 1
    h.queue.close()


def test_streamed_oversize_body_without_length_is_413(tmp_path: Path) -> None:
    h = Harness(tmp_path, max_body_bytes=1000)
    chunks = iter([b"x" * 600, b"x" * 600])
    response = h.client.post("/webhook", content=chunks, headers=signed(b""))
    assert response.status_code == 413
    h.queue.close()


def test_rapid_synchronize_deliveries_supersede_queued_ones(harness: Harness) -> None:
    for i in range(10):
        body = pr_body(head=sha(i))
        assert harness.post(body, signed(body, delivery=f"d{i}")).status_code == 202
    assert harness.queue.depth() == 1
    assert harness.queue.lease("w", 60).delivery.payload["pull_request"]["head"]["sha"] == sha(9)
    superseded = harness.metrics.registry.get_sample_value(
        "atlas_jobs_total", {"event": "pull_request.synchronize", "outcome": "superseded"})
    assert superseded == 9


def test_healthz_reports_queue_depth_and_age(harness: Harness) -> None:
    assert harness.client.get("/healthz").json() == {"status": "ok", "queue_depth": 0, "oldest_job_age_seconds": None,
                                                    "dead_letters": 0}
    harness.post(pr_body(), signed(pr_body()))
    health = harness.client.get("/healthz").json()
    assert health["queue_depth"] == 1 and health["oldest_job_age_seconds"] >= 0


def test_healthz_is_503_when_the_queue_fails(harness: Harness) -> None:
    def broken() -> int:
        raise OSError("disk I/O error")

    harness.queue.depth = broken
    assert harness.client.get("/healthz").status_code == 503


def test_metrics_endpoint_serves_prometheus_text(harness: Harness) -> None:
    harness.post(pr_body(), signed(pr_body()))
    harness.queue.fail(harness.queue.lease("w", 60), "boom", permanent=True)
    response = harness.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'atlas_webhook_deliveries_total{event="pull_request",outcome="queued"} 1.0' in text
    assert "atlas_queue_dead_letters 1.0" in text
    assert 'atlas_queue_jobs{state="dead"} 1.0' in text
    assert 'atlas_queue_jobs{state="queued"} 0.0' in text
    assert harness.queue.counts()[JobState.DEAD] == 1


def test_no_secret_no_app() -> None:
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="webhook secret"):
        create_app(Settings.load(data_dir=Path("/nonexistent-atlas")), queue=None)  # type: ignore[arg-type]


EXAMPLES = sorted(OCTOKIT.glob("*.json"))


def test_every_octokit_example_is_accepted(harness: Harness) -> None:
    answers = {}
    for path in EXAMPLES:
        body = path.read_bytes()
        response = harness.post(body, signed(body, event=path.name.split(".")[0], delivery=path.stem))
        answers[path.stem] = (response.status_code, response.json()["status"])
    assert all(status == 202 for status, _ in answers.values()), answers
    assert answers["pull_request.00.opened"][1] == "queued"
    assert answers["pull_request.01.assigned"][1] == "ignored"
    assert answers["ping.00.none"][1] == "ignored"


def test_serve_refuses_to_start_without_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.app import serve_command
    from bot.settings import SettingsError

    for name in ("ATLAS_APP_ID", "ATLAS_PRIVATE_KEY", "ATLAS_PRIVATE_KEY_PATH", "ATLAS_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ATLAS_DATA_DIR", str(tmp_path))
    with pytest.raises(SettingsError, match="atlas-bot register"):
        serve_command(host="127.0.0.1", port=0)


def test_runtime_wires_app_queue_and_workers(tmp_path: Path) -> None:
    from bot.app import build_runtime
    from bot.handlers import Route
    from test_worker import NO_SERVICES

    seen: list[str] = []
    settings = Settings.load(data_dir=tmp_path, webhook_secret=SECRET)
    runtime = build_runtime(settings, services=NO_SERVICES,
                            router=lambda d: Route(lambda ctx: seen.append(ctx.delivery.id) or "ok", None))
    try:
        response = TestClient(runtime.app).post("/webhook", content=pr_body(), headers=signed(pr_body()))
        assert response.status_code == 202
        assert runtime.workers.run_once("w0")
        assert seen == ["d-1"]
    finally:
        runtime.close()


def test_roles_a_webhooks_only_server_and_a_worker_process(tmp_path: Path) -> None:
    from bot.app import build_runtime
    from bot.handlers import Route
    from test_worker import NO_SERVICES

    seen: list[str] = []
    settings = Settings.load(data_dir=tmp_path, webhook_secret=SECRET)
    router = lambda d: Route(lambda ctx: seen.append(ctx.delivery.id) or "ok", None)  # noqa: E731
    server = build_runtime(settings, services=NO_SERVICES, router=router, workers=False)
    worker = build_runtime(settings, services=NO_SERVICES, router=router, http=False)
    try:
        assert server.workers is None and worker.app is None
        response = TestClient(server.app).post("/webhook", content=pr_body(), headers=signed(pr_body()))
        assert response.status_code == 202
        assert seen == []
        assert worker.workers.run_once("w0")
        assert seen == ["d-1"]
    finally:
        server.close()
        worker.close()


def test_two_servers_on_postgres_share_the_queue_and_its_delivery_ids(tmp_path: Path, postgres_url: str) -> None:
    from bot.app import build_runtime
    from bot.coordination import PostgresCoordinator
    from bot.handlers import Route
    from bot.queue_pg import PostgresJobQueue
    from test_worker import NO_SERVICES

    seen: list[str] = []
    router = lambda d: Route(lambda ctx: seen.append(ctx.delivery.id) or "ok", None)  # noqa: E731
    runtimes = [build_runtime(Settings.load(data_dir=tmp_path / f"s{i}", webhook_secret=SECRET,
                                            queue_url=postgres_url), services=NO_SERVICES, router=router)
                for i in range(2)]
    try:
        assert all(isinstance(r.queue, PostgresJobQueue) for r in runtimes)
        assert all(isinstance(r.coordinator, PostgresCoordinator) for r in runtimes)
        first = TestClient(runtimes[0].app).post("/webhook", content=pr_body(), headers=signed(pr_body()))
        again = TestClient(runtimes[1].app).post("/webhook", content=pr_body(), headers=signed(pr_body()))
        assert (first.status_code, again.status_code) == (202, 200)
        assert runtimes[1].workers.run_once("w0")
        assert not runtimes[0].workers.run_once("w0")
        assert seen == ["d-1"]
    finally:
        for runtime in runtimes:
            runtime.close()
