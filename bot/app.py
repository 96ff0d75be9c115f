"""The GitHub App's HTTP side: POST /webhook, GET /healthz, GET /metrics, and ``atlas-bot serve``.

A delivery is verified, routed, written to the durable queue and answered 202 at once; the slow work (git,
mermaid, GitHub writes) happens in the worker threads. A redelivery of a known delivery id is answered 200
and never queued again; events the bot does not act on are answered 202 and dropped.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from bot import handlers
from bot.coordination import Coordinator, InProcessCoordinator, PostgresCoordinator
from bot.handlers import ProgressJob, Services
from bot.logs import configure_logging, log_context, register_secret
from bot.metrics import CONTENT_TYPE, Metrics
from bot.queue import JobQueue, JobState, open_queue
from bot.settings import AppCredentials, Settings
from bot.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    Delivery,
    PayloadTooLarge,
    WebhookError,
    check_size,
    parse_delivery,
)
from bot.worker import Router, WorkerPool

log = logging.getLogger(__name__)

STATUS_QUEUED, STATUS_DUPLICATE, STATUS_IGNORED = "queued", "duplicate", "ignored"
# Logged (at INFO) once a worker process leases: what a supervisor or a test waits for.
WORKER_READY = "worker ready"
# Bodies up to this size are verified and queued on the event loop (well under a millisecond); a thread hop
# per request costs more than that once the workers compete for the GIL (measured: p99 71 ms vs 24 ms at
# 200 deliveries/s). Larger bodies go to a thread so one huge delivery cannot stall the others.
INLINE_BODY_BYTES = 1024 * 1024


def create_app(
    settings: Settings,
    queue: JobQueue,
    *,
    metrics: Metrics | None = None,
    router: Router = handlers.route,
    on_enqueued: Callable[[], None] | None = None,
    webhook_secret: str | None = None,
) -> FastAPI:
    """The FastAPI app; ``on_enqueued`` is called after each new job (the worker pool's ``wake``)."""
    metrics = metrics or Metrics()
    secret = webhook_secret if webhook_secret is not None else settings.webhook_secret_value()
    max_bytes = settings.max_body_bytes
    app = FastAPI(title="atlas-bot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.metrics = metrics
    app.state.queue = queue

    def accept(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Verify, route and enqueue one delivery."""
        event = headers.get(EVENT_HEADER, "")
        with log_context(delivery_id=headers.get(DELIVERY_HEADER), event=event or None):
            try:
                delivery = parse_delivery(headers, body, secret, max_bytes=max_bytes)
            except WebhookError as exc:
                return refused(event, exc)
            return enqueue(delivery)

    def enqueue(delivery: Delivery) -> tuple[int, dict[str, Any]]:
        with log_context(repo=delivery.repository, pr=delivery.pr_number):
            route = router(delivery)
            if route is None:
                metrics.delivery(delivery.event, STATUS_IGNORED)
                log.debug("ignored %s", delivery.kind)
                return 202, {"status": STATUS_IGNORED}
            result = queue.enqueue(delivery, key=route.key)
            if not result.created:
                metrics.delivery(delivery.event, STATUS_DUPLICATE)
                log.info("redelivery of a known delivery; not queued again")
                return 200, {"status": STATUS_DUPLICATE}
            metrics.delivery(delivery.event, STATUS_QUEUED)
            for replaced in result.superseded:
                metrics.job_finished(delivery.kind, JobState.SUPERSEDED.value, latency=None, duration=None)
                log.info("queued job of delivery %s superseded by this one", replaced)
            log.info("queued %s", delivery.kind)
            if on_enqueued is not None:
                on_enqueued()
            return 202, {"status": STATUS_QUEUED}

    def refused(event: str, exc: WebhookError) -> tuple[int, dict[str, Any]]:
        metrics.delivery(event, exc.outcome)
        log.warning("refused delivery (%d): %s", exc.status, exc)
        return exc.status, {"error": str(exc)}

    @app.post("/webhook")
    async def webhook(request: Request) -> JSONResponse:
        headers = dict(request.headers)
        try:
            # A declared length over the cap is refused before a byte of the body is read.
            check_size(headers.get("content-length"), max_bytes)
            body = await _read_capped(request, max_bytes)
        except WebhookError as exc:
            status, answer = refused(headers.get(EVENT_HEADER, ""), exc)
            return JSONResponse(answer, status_code=status)
        if len(body) <= INLINE_BODY_BYTES:
            status, answer = accept(headers, body)
        else:
            status, answer = await run_in_threadpool(accept, headers, body)
        return JSONResponse(answer, status_code=status)

    def sample() -> tuple[int, float | None, int]:
        """Queue depth, oldest waiting job's age and dead letters, read now (health and metrics alike)."""
        return queue.depth(), queue.oldest_age(), queue.counts().get(JobState.DEAD, 0)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        try:
            depth, oldest, dead = sample()
        except Exception as exc:  # the queue file is unusable: say so, the orchestrator restarts us
            log.exception("health check: queue unavailable")
            return JSONResponse({"status": "error", "error": type(exc).__name__}, status_code=503)
        return JSONResponse({
            "status": "ok",
            "queue_depth": depth,
            "oldest_job_age_seconds": None if oldest is None else round(oldest, 3),
            "dead_letters": dead,
        })

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(sample, lambda: {s.value: n for s, n in queue.counts().items()}),
                        media_type=CONTENT_TYPE)

    return app


async def _read_capped(request: Request, max_bytes: int) -> bytes:
    """The body, refused as soon as it grows past the cap (a chunked body has no Content-Length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"body over the {max_bytes}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


# -- atlas-bot serve -----------------------------------------------------------------------------------------


@dataclass
class Runtime:
    """Everything one process runs: the app, its queue, the workers, the mermaid pool and the coordinator.

    ``workers`` is None for a webhooks-only server (``serve --no-workers``); ``app`` is None for a worker
    process (``atlas-bot worker``).
    """

    app: FastAPI | None
    queue: JobQueue
    workers: WorkerPool | None
    metrics: Metrics
    pool: Any
    coordinator: Coordinator | None = None

    def start(self) -> None:
        if self.pool is not None:
            # Spawn the Node workers now, so the first delivery does not wait for mermaid to load.
            self.pool.start()
        if self.workers is not None:
            self.workers.start()

    def close(self) -> None:
        if self.workers is not None:
            self.workers.stop()
        if self.pool is not None:
            self.pool.close()
        self.queue.close()
        close = getattr(self.coordinator, "close", None)
        if close is not None:
            close()


def open_coordinator(settings: Settings) -> Coordinator:
    """The state every process shares: in the queue's PostgreSQL when ``ATLAS_QUEUE_URL`` is set, else here."""
    if settings.queue_url is not None:
        return PostgresCoordinator(settings.queue_url_value(), write_interval=settings.write_interval_seconds)
    return InProcessCoordinator(write_interval=settings.write_interval_seconds)


def build_services(
    settings: Settings,
    credentials: AppCredentials,
    metrics: Metrics,
    pool: Any,
    *,
    update_progress: Callable[[ProgressJob], Any] | None = None,
    coordinator: Coordinator | None = None,
) -> Services:
    """The real outside world: App-authenticated GitHub clients, git mirrors, the engine and the publisher."""
    from bot.check import run_check
    from bot.config import load_config
    from bot.github import AppAuth
    from bot.gitrepo import GitRepo
    from bot.progress_job import ProgressJob as ProgressPublisher
    from bot.progress_store import ProgressStore
    from bot.review import build_publication

    coordinator = coordinator or InProcessCoordinator(write_interval=settings.write_interval_seconds)
    auth = AppAuth(credentials.app_id, credentials.private_key, api_url=settings.github_api_url,
                   on_call=metrics.github_call, coordinator=coordinator)

    def token(installation_id: int | None) -> str | None:
        if installation_id is None:
            return None
        value = auth.installation_token(installation_id)
        register_secret(value)
        return value

    def repo_client(installation_id: int | None, full_name: str, on_call: Callable[[str, int], None]) -> Any:
        if installation_id is None:
            raise ValueError(f"delivery for {full_name} names no installation; an App only acts for one")
        token(installation_id)  # registers the token with the log redaction before any request uses it
        return auth.client(installation_id, on_call=on_call).repo(full_name)

    def mirror(full_name: str, clone_url: str, git_token: str | None) -> Any:
        return GitRepo.mirror(settings.mirrors_dir, full_name, clone_url, git_token)

    store = ProgressStore.in_data_dir(settings.data_dir)
    if update_progress is None:
        update_progress = serialised_progress(ProgressPublisher(store, pool), coordinator)
    return Services(repo_client=repo_client, git_token=token, mirror=mirror, pool=pool, load_config=load_config,
                    run_check=functools.partial(run_check, store=store), build_publication=build_publication,
                    update_progress=update_progress)


def serialised_progress(publish: Callable[[ProgressJob], Any],
                        coordinator: Coordinator) -> Callable[[ProgressJob], Any]:
    """``publish`` under the repository's named lock: one progress update per repository at a time across
    every process, also when two jobs of different keys (a push and ``/atlas progress``) reach it together."""

    def update(job: ProgressJob) -> Any:
        with coordinator.lock(handlers.PROGRESS_KEY.format(repo=job.repository)):
            return publish(job)

    return update


def build_runtime(
    settings: Settings,
    *,
    services: Services | None = None,
    update_progress: Callable[[ProgressJob], Any] | None = None,
    router: Router = handlers.route,
    http: bool = True,
    workers: bool = True,
) -> Runtime:
    """Queue, coordinator, metrics, mermaid pool, workers and app from ``settings`` (``services`` replaces the
    real ones); ``http=False`` builds a worker process, ``workers=False`` a webhooks-only server."""
    metrics = Metrics()
    pool = None
    coordinator = None
    queue = open_queue(settings)
    pool_of_workers = None
    if workers:
        coordinator = open_coordinator(settings)
        if services is None:
            credentials = settings.credentials()
            for secret in (credentials.private_key, credentials.webhook_secret):
                register_secret(secret)
            from bot.gates.mermaid import CACHE_FILE, MermaidPool, VerdictCache

            pool = MermaidPool(cache=VerdictCache(settings.data_dir / CACHE_FILE))
            services = build_services(settings, credentials, metrics, pool, update_progress=update_progress,
                                      coordinator=coordinator)
        pool_of_workers = WorkerPool(queue, services, metrics=metrics, workers=settings.workers,
                                     lease_seconds=settings.lease_seconds, poll_seconds=settings.poll_seconds,
                                     router=router, prune_interval=settings.prune_interval_seconds)
    app = None
    if http:
        app = create_app(settings, queue, metrics=metrics, router=router,
                         on_enqueued=None if pool_of_workers is None else pool_of_workers.wake)
    return Runtime(app=app, queue=queue, workers=pool_of_workers, metrics=metrics, pool=pool,
                   coordinator=coordinator)


def serve_command(
    host: str | None = None,
    port: int | None = None,
    *,
    workers: bool = True,
    update_progress: Callable[[ProgressJob], Any] | None = None,
) -> int:
    """``atlas-bot serve [--no-workers]``: settings and credentials checked first, then uvicorn (which stops on
    SIGTERM) with the workers alongside unless ``workers`` is False."""
    settings = Settings.load(host=host, port=port)
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values())
    if not workers:
        settings.webhook_secret_value()  # a webhooks-only server needs no App key, only the secret
    runtime = build_runtime(settings, update_progress=update_progress, workers=workers)
    pruned = runtime.queue.prune()
    log.info("serving on http://%s:%d/webhook with %s (queue: %s; %d old jobs pruned)", settings.host,
             settings.port, f"{settings.workers} workers" if workers else "no workers", _queue_name(settings),
             pruned)
    runtime.start()
    started = time.monotonic()
    # uvicorn shuts down on SIGTERM, then raises the signal again under the handler it found; with the default
    # one the process would die before the workers stop, so a handler of our own lets ``finally`` run.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        uvicorn.run(runtime.app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    finally:
        runtime.close()
        log.info("stopped after %.0f s", time.monotonic() - started)
    return 0


def worker_command(*, update_progress: Callable[[ProgressJob], Any] | None = None,
                   stop: threading.Event | None = None) -> int:
    """``atlas-bot worker``: workers only, no HTTP. SIGTERM (or SIGINT) stops leasing, lets the running jobs
    finish for the stop timeout and releases the unfinished ones; ``stop`` replaces the signals in tests."""
    stopping = stop or threading.Event()
    if stop is None:
        # Installed before anything starts, so a SIGTERM during start-up also ends in a clean stop.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
    settings = Settings.load()
    configure_logging(level=settings.log_level, fmt=settings.log_format, secrets=settings.secret_values())
    runtime = build_runtime(settings, update_progress=update_progress, http=False)
    started = time.monotonic()
    try:
        if not stopping.is_set():
            runtime.start()
            log.info("%s: working with %d workers (queue: %s)", WORKER_READY, settings.workers,
                     _queue_name(settings))
            stopping.wait()
    finally:
        runtime.close()
        log.info("stopped after %.0f s", time.monotonic() - started)
    return 0


def _queue_name(settings: Settings) -> str:
    return "PostgreSQL (ATLAS_QUEUE_URL)" if settings.queue_url is not None else str(settings.queue_path)
