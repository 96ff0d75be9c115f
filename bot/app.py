"""The GitHub App's HTTP side: POST /webhook, GET /healthz, GET /metrics, and ``atlas-bot serve``.

A delivery is verified, routed, written to the durable queue and answered 202 at once; the slow work (git,
mermaid, GitHub writes) happens in the worker threads. A redelivery of a known delivery id is answered 200
and never queued again; events the bot does not act on are answered 202 and dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from bot import handlers
from bot.coordination import Coordinator, InProcessCoordinator, PostgresCoordinator
from bot.handlers import ProgressJob, Services
from bot import edge
from bot.logs import FOREVER, configure_logging, log_context, register_secret, secret_count
from bot.metrics import CONTENT_TYPE, Metrics
from bot.queue import JobQueue, JobState, open_queue
from bot.settings import AppCredentials, Settings
from bot.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Delivery,
    PayloadTooLarge,
    SignedBody,
    WebhookError,
    check_signature_header,
    check_size,
    parse_delivery,
)
from bot.worker import Router, WorkerPool

log = logging.getLogger(__name__)

STATUS_QUEUED, STATUS_DUPLICATE, STATUS_IGNORED = "queued", "duplicate", "ignored"
OUTCOME_SHED, OUTCOME_TIMEOUT, OUTCOME_DISCONNECTED, OUTCOME_FAILED = "shed", "timeout", "disconnected", "failed"
# A body is hashed as it streams in; past this size the unverified part waits on disk, not in memory.
SPOOL_BYTES = 1024 * 1024
# How much lower than the servers a worker process (and every mermaid Node worker) runs: see worker.mjs.
WORKER_NICENESS = 10
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
        """Route and enqueue one delivery whose signature was checked as it streamed in."""
        event = headers.get(EVENT_HEADER, "")
        with log_context(delivery_id=headers.get(DELIVERY_HEADER), event=event or None):
            try:
                delivery = parse_delivery(headers, body, secret, max_bytes=max_bytes, verified=True)
            except WebhookError as exc:
                return refused(event, exc)
            try:
                return enqueue(delivery)
            except Exception:  # the queue's store failed: GitHub shows the delivery as failed; redeliver it
                metrics.delivery(event, OUTCOME_FAILED)
                log.exception("could not queue the delivery")
                return 503, {"error": "could not queue the delivery; redeliver it later"}

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

    # Bodies being read before their signature is known: each may hold up to SPOOL_BYTES of memory.
    unverified = asyncio.Semaphore(settings.max_unverified_bodies)

    @app.post("/webhook")
    async def webhook(request: Request) -> Response:
        headers = dict(request.headers)
        event = headers.get(EVENT_HEADER, "")
        try:
            # Refused before a byte of the body is read: a declared length over the cap, or no signature that
            # any body could match.
            check_size(headers.get("content-length"), max_bytes)
            check_signature_header(headers.get(SIGNATURE_HEADER))
        except WebhookError as exc:
            return _answer(*refused(event, exc))
        if unverified.locked():
            metrics.delivery(event, OUTCOME_SHED)
            log.warning("shed a delivery: %d bodies are already being read", settings.max_unverified_bodies)
            return JSONResponse({"error": "busy; redeliver later"}, status_code=503, headers={"Retry-After": "1"})
        async with unverified:
            try:
                body = await asyncio.wait_for(_read_signed(request, secret, max_bytes, headers.get(SIGNATURE_HEADER)),
                                              timeout=settings.body_timeout_seconds)
            except WebhookError as exc:
                return _answer(*refused(event, exc))
            except TimeoutError:
                metrics.delivery(event, OUTCOME_TIMEOUT)
                log.warning("refused delivery (408): body not received within %.0f s", settings.body_timeout_seconds)
                return JSONResponse({"error": "body too slow"}, status_code=408)
            except ClientDisconnect:
                metrics.delivery(event, OUTCOME_DISCONNECTED)
                log.info("client disconnected before sending the whole body")
                return Response(status_code=400)
        if len(body) <= INLINE_BODY_BYTES:
            status, answer = accept(headers, body)
        else:
            status, answer = await run_in_threadpool(accept, headers, body)
        return _answer(status, answer)

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


def _answer(status: int, answer: dict[str, Any]) -> JSONResponse:
    return JSONResponse(answer, status_code=status)


async def _read_signed(request: Request, secret: str, max_bytes: int, signature: str | None) -> bytes:
    """The body, hashed as it arrives and returned only when its signature matches.

    Refused as soon as it grows past the cap (a chunked body has no Content-Length); the unverified bytes past
    ``SPOOL_BYTES`` wait in a temporary file, so a flood of forged 25 MB bodies costs disk, not memory.
    """
    signed = SignedBody(secret)
    size = 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise PayloadTooLarge(f"body over the {max_bytes}-byte cap")
            signed.update(chunk)
            spool.write(chunk)
        signed.verify(signature)
        spool.seek(0)
        return spool.read()


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
    from bot.gitrepo import PULL_REFS, GitRepo, mirror_path
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
        cached = auth.coordinator.cached_token(installation_id)
        register_secret(value, expires_at=cached[1] if cached and cached[0] == value else FOREVER)
        return value

    def repo_client(installation_id: int | None, full_name: str, on_call: Callable[[str, int], None]) -> Any:
        if installation_id is None:
            raise ValueError(f"delivery for {full_name} names no installation; an App only acts for one")
        token(installation_id)  # registers the token with the log redaction before any request uses it
        return auth.client(installation_id, on_call=on_call).repo(full_name)

    def mirror(full_name: str, clone_url: str, git_token: str | None) -> Any:
        repo = GitRepo.mirror(settings.mirrors_dir, full_name, clone_url, git_token)
        repo.prune_refs(PULL_REFS, keep=settings.mirror_pull_refs_keep)
        return repo

    def store_sizes() -> dict[str, int]:
        mirrors = GitRepo.mirrors(settings.mirrors_dir)
        pull_refs = 0
        for full_name in mirrors:
            with GitRepo(mirror_path(settings.mirrors_dir, full_name)) as repo:
                pull_refs += repo.count_refs(PULL_REFS)
        cache_rows = pool.cache.sizes() if pool is not None and pool.cache is not None else {}
        return {**{f"progress_{table}": rows for table, rows in store.sizes().items()}, "mirrors": len(mirrors),
                "mirror_pull_refs": pull_refs, "redaction_secrets": secret_count(),
                **{f"verdict_cache_{table}": rows for table, rows in cache_rows.items()}}

    store = ProgressStore.in_data_dir(settings.data_dir, max_blob_counts=settings.progress_blob_counts_keep)
    metrics.watch_store_sizes(store_sizes)
    if update_progress is None:
        update_progress = ProgressPublisher(store, pool, lock=coordinator.lock)
    return Services(repo_client=repo_client, git_token=token, mirror=mirror, pool=pool, load_config=load_config,
                    run_check=functools.partial(run_check, store=store), build_publication=build_publication,
                    update_progress=update_progress, mirrors=lambda: GitRepo.mirrors(settings.mirrors_dir),
                    remove_mirror=lambda full_name: GitRepo.remove_mirror(settings.mirrors_dir, full_name))


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
        if services.enqueue is None:
            workers_to_wake = pool_of_workers

            def enqueue_follow_up(delivery: Delivery, key: str | None) -> None:
                queue.enqueue(delivery, key=key)
                workers_to_wake.wake()

            services.enqueue = enqueue_follow_up
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
        uvicorn.run(runtime.app, host=settings.host, port=settings.port, log_config=None, access_log=False,
                    **edge.uvicorn_options(settings))
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
    # A worker process is batch work: below the webhook servers that may share its machine.
    os.nice(WORKER_NICENESS)
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
