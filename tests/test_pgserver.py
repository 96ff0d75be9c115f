"""The PostgreSQL fixture's rule: without the server, skip locally with how to install it; fail under CI."""

from __future__ import annotations

import pytest

import pgserver


@pytest.mark.parametrize(("ci", "outcome"), [(None, pytest.skip.Exception), ("true", pytest.fail.Exception)])
def test_a_missing_server_skips_locally_and_fails_in_ci(monkeypatch, ci, outcome) -> None:
    monkeypatch.setattr(pgserver, "server_bin_dir", lambda: None)
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="apt-get install postgresql"):
        pgserver.require_postgres()
