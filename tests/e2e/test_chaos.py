"""Two webhook servers and three worker processes on one PostgreSQL, workers SIGKILLed at random moments: no
review, summary or check run is lost or duplicated, and the installation's writes keep the shared pacing.
The small version of bench/bench_chaos.py (which runs 50 pull requests many times)."""

from __future__ import annotations

from e2e.chaos import ChaosPlan, run


def test_servers_and_workers_on_one_engine_survive_sigkill(tmp_path, github_emulator, sample, app_keys,
                                                           postgres_url) -> None:
    plan = ChaosPlan(pull_requests=6, synchronize_per_pr=2, kill_every=(2.0, 4.0), seed=9)
    result = run(tmp_path / "deployment", sample=sample, emulator=github_emulator, queue_url=postgres_url,
                 private_key=app_keys[0], plan=plan, idle_timeout=240)
    assert result.kills >= 1
    assert result.redeliveries >= 1
    assert result.lost == [] and result.duplicated == [], result
    assert result.unclean_exits == []  # SIGTERM: every server and worker stopped cleanly
    assert result.max_writes_per_window <= result.allowed_writes_per_window, result
