"""check_run / check_suite ``rerequested`` (the Checks tab's "Re-run"): the review runs again on the current head."""

from __future__ import annotations

import pytest

from bot.handlers import PR_KEY, route
from test_handlers import HEAD, World, delivery, run

REPOSITORY = {"full_name": "octo/atlas", "clone_url": "https://example.test/octo/atlas.git", "default_branch": "main"}


def rerun_payload(event: str, pulls: list[dict], action: str = "rerequested") -> dict:
    return {"action": action, "installation": {"id": 9}, "repository": REPOSITORY,
            event: {"head_sha": HEAD, "pull_requests": pulls}}


@pytest.mark.parametrize("event", ["check_run", "check_suite"])
def test_rerun_reviews_the_pull_requests_current_head(event: str) -> None:
    world = World()
    d = delivery(event, rerun_payload(event, [{"number": 7, "head": {"sha": HEAD}}]))
    assert route(d).key == PR_KEY.format(repo="octo/atlas", number=7)  # serialised with the PR's other reviews
    assert run(world, d) == "published"
    assert world.client.named("pull_request") == [("pull_request", 7)]
    assert world.checks == [{"base": "refs/heads/main", "head": HEAD}]


@pytest.mark.parametrize("event, payload", [
    ("check_suite", rerun_payload("check_suite", [])),  # a fork's head: GitHub lists no pull request
    ("check_run", rerun_payload("check_run", [{"number": "7"}])),
    ("check_run", rerun_payload("check_run", [{"number": 7}], action="completed")),  # our own run finishing
    ("check_suite", rerun_payload("check_suite", [{"number": 7}], action="requested")),
])
def test_other_check_events_are_dropped_before_queueing(event: str, payload: dict) -> None:
    assert route(delivery(event, payload)) is None
