"""Metrics: a registry per instance, and the Prometheus text the /metrics endpoint serves."""

from __future__ import annotations

from bot.metrics import Metrics


def test_each_instance_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.delivery("pull_request", "queued")
    assert first.registry.get_sample_value("atlas_webhook_deliveries_total",
                                           {"event": "pull_request", "outcome": "queued"}) == 1
    assert second.registry.get_sample_value("atlas_webhook_deliveries_total",
                                            {"event": "pull_request", "outcome": "queued"}) is None


def test_render_samples_the_queue_and_lists_every_family() -> None:
    metrics = Metrics()
    metrics.job_finished("push", "done", latency=0.4, duration=0.1)
    metrics.github_call("GET /repos/{owner}/{repo}", 200)
    metrics.rate_limit(4999)
    text = metrics.render(lambda: (3, 12.5, 1)).decode()
    for line in ("atlas_queue_depth 3.0", "atlas_queue_oldest_job_age_seconds 12.5", "atlas_queue_dead_letters 1.0",
                 "atlas_github_rate_limit_remaining 4999.0",
                 'atlas_jobs_total{event="push",outcome="done"} 1.0',
                 'atlas_github_calls_total{endpoint="GET /repos/{owner}/{repo}",status="200"} 1.0',
                 'atlas_job_latency_seconds_bucket{event="push",le="0.5"} 1.0'):
        assert line in text
    assert "atlas_queue_oldest_job_age_seconds 0.0" in metrics.render(lambda: (0, None, 0)).decode()


def test_store_sizes_are_measured_at_every_scrape() -> None:
    metrics = Metrics()
    sizes = {"mirrors": 2, "redaction_secrets": 5}
    metrics.watch_store_sizes(lambda: dict(sizes))
    assert 'atlas_store_size{store="mirrors"} 2.0' in metrics.render().decode()
    sizes["mirrors"] = 1
    text = metrics.render().decode()
    assert 'atlas_store_size{store="mirrors"} 1.0' in text and 'atlas_store_size{store="redaction_secrets"} 5.0' in text
