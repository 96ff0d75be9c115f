"""Prometheus metrics of one App instance, in their own registry (tests and several apps never share counters).

Deliveries by event and outcome, jobs by outcome, job latency (delivery received → job finished) and run time,
GitHub calls by endpoint and status, the rate limit left, and queue depth / oldest job age sampled at scrape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Webhook answers are milliseconds; reviews are up to tens of seconds (cold mirror clone).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """All counters of one app; ``render()`` gives the Prometheus text exposition."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deliveries = Counter("atlas_webhook_deliveries", "Webhook deliveries by event and outcome",
                                  ["event", "outcome"], registry=r)
        self.jobs = Counter("atlas_jobs", "Jobs finished by event and outcome", ["event", "outcome"], registry=r)
        self.job_latency = Histogram("atlas_job_latency_seconds", "Delivery received to job finished",
                                     ["event"], buckets=LATENCY_BUCKETS, registry=r)
        self.job_duration = Histogram("atlas_job_duration_seconds", "Time a worker spent on one job attempt",
                                      ["event"], buckets=LATENCY_BUCKETS, registry=r)
        self.github_calls = Counter("atlas_github_calls", "GitHub API calls by endpoint and status",
                                    ["endpoint", "status"], registry=r)
        self.rate_limit_remaining = Gauge("atlas_github_rate_limit_remaining",
                                          "X-RateLimit-Remaining from the latest GitHub answer", registry=r)
        self.queue_depth = Gauge("atlas_queue_depth", "Jobs queued or running", registry=r)
        self.oldest_job_age = Gauge("atlas_queue_oldest_job_age_seconds", "Age of the oldest waiting job",
                                    registry=r)
        self.dead_letters = Gauge("atlas_queue_dead_letters", "Jobs dead-lettered and kept for inspection",
                                  registry=r)
        # Sizes of the App's own stores (progress counts, mirrors, pull refs, redaction set), measured at scrape.
        self.store_size = Gauge("atlas_store_size", "Entries kept by one of the App's stores", ["store"],
                                registry=r)
        self._store_sizes: list[Callable[[], Mapping[str, int]]] = []
        # The queue store's size: its rows by state (done and superseded rows are the delivery ids kept to
        # recognise redeliveries), flat once retention prunes as fast as deliveries arrive.
        self.queue_jobs = Gauge("atlas_queue_jobs", "Rows in the job queue's store by state", ["state"],
                                registry=r)

    def delivery(self, event: str, outcome: str) -> None:
        self.deliveries.labels(event=event or "unknown", outcome=outcome).inc()

    def job_finished(self, event: str, outcome: str, *, latency: float | None, duration: float | None) -> None:
        self.jobs.labels(event=event, outcome=outcome).inc()
        if latency is not None:
            self.job_latency.labels(event=event).observe(max(latency, 0.0))
        if duration is not None:
            self.job_duration.labels(event=event).observe(max(duration, 0.0))

    def github_call(self, endpoint: str, status: int) -> None:
        """Matches ``GitHubClient(on_call=...)``: one call to ``endpoint`` answered with ``status``."""
        self.github_calls.labels(endpoint=endpoint, status=str(status)).inc()

    def rate_limit(self, remaining: int) -> None:
        self.rate_limit_remaining.set(remaining)

    def watch_store_sizes(self, measure: Callable[[], Mapping[str, int]]) -> None:
        """``measure()`` → {store name: entries}, read at every scrape into ``atlas_store_size``."""
        self._store_sizes.append(measure)

    def render(self, sample: Callable[[], tuple[int, float | None, int]] | None = None,
               queue_sizes: Callable[[], Mapping[str, int]] | None = None) -> bytes:
        """The exposition text; ``sample`` returns (queue depth, oldest age or None, dead letters) right now,
        ``queue_sizes`` the queue's rows per state."""
        for measure in self._store_sizes:
            for store, size in measure().items():
                self.store_size.labels(store=store).set(size)
        if sample is not None:
            depth, oldest, dead = sample()
            self.queue_depth.set(depth)
            self.oldest_job_age.set(oldest or 0.0)
            self.dead_letters.set(dead)
        if queue_sizes is not None:
            for state, rows in queue_sizes().items():
                self.queue_jobs.labels(state=state).set(rows)
        return generate_latest(self.registry)
