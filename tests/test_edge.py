"""The webhook edge against a real uvicorn on 127.0.0.1: load is shed before anyone is authenticated.

Raw sockets play the slow, silent and disconnecting clients that a test client cannot; a probe of hostile
requests, signed and unsigned, checks that none is answered 500.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from bot import edge
from bot.app import create_app
from bot.metrics import Metrics
from bot.queue import SQLiteJobQueue
from bot.settings import Settings
from bot.webhooks import signature_for

SECRET = "edge-secret"
HEAD = hashlib.sha1(b"head").hexdigest()


class LiveServer:
    """uvicorn serving the webhook app in a thread, with the same connection limits as ``atlas-bot serve``."""

    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.settings = Settings.load(data_dir=tmp_path, webhook_secret=SECRET, port=0, **settings)
        self.queue = SQLiteJobQueue(self.settings.queue_path)
        self.metrics = Metrics()
        app = create_app(self.settings, self.queue, metrics=self.metrics)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                **edge.uvicorn_options(self.settings))
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.queue.close()

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def outcome(self, outcome: str) -> float:
        total = 0.0
        for metric in self.metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == "atlas_webhook_deliveries_total" and sample.labels.get("outcome") == outcome:
                    total += sample.value
        return total


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(tmp_path, body_timeout_seconds=1.0, header_timeout_seconds=1.0,
                    max_unverified_bodies=2) as server:
        yield server


def request_bytes(body: bytes, headers: dict[str, str], *, length: int | None = None) -> bytes:
    lines = ["POST /webhook HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body) if length is None else length}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def status_of(sock: socket.socket) -> int:
    answer = b""
    while b"\r\n" not in answer:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        answer += chunk
    return int(answer.split(b" ", 2)[1])


def pr_body(number: int = 7) -> bytes:
    return json.dumps({
        "action": "synchronize", "number": number, "installation": {"id": 1},
        "repository": {"full_name": "octo/atlas", "default_branch": "main"},
        "pull_request": {"number": number, "head": {"sha": HEAD}, "base": {"ref": "main"}},
    }).encode()


def signed(body: bytes, event: str = "pull_request", delivery: str = "d-1") -> dict[str, str]:
    return {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "X-Hub-Signature-256": signature_for(body, SECRET),
            "Content-Type": "application/json"}


def test_a_signed_delivery_is_queued_through_the_live_server(live: LiveServer) -> None:
    with live.connect() as sock:
        sock.sendall(request_bytes(pr_body(), signed(pr_body())))
        assert status_of(sock) == 202
    assert live.queue.depth() == 1


def test_headers_that_never_complete_are_cut_off(live: LiveServer) -> None:
    with live.connect() as sock:
        sock.sendall(b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        sock.settimeout(10)
        assert sock.recv(100) == b""  # closed by the server, well before the 10 s socket timeout
        assert time.monotonic() - started < 8


def test_a_trickled_header_does_not_reset_the_deadline(live: LiveServer) -> None:
    with live.connect() as sock:
        sock.sendall(b"POST /webhook HTTP/1.1\r\n")
        closed = False
        for _ in range(30):
            time.sleep(0.2)
            try:
                sock.sendall(b"X")
            except OSError:
                closed = True
                break
        assert closed or sock.recv(100) == b""


def test_a_body_that_stalls_gets_408(live: LiveServer) -> None:
    body = pr_body()
    with live.connect() as sock:
        sock.sendall(request_bytes(body[:10], signed(body), length=len(body)))
        assert status_of(sock) == 408
    assert live.outcome("timeout") == 1
    assert live.queue.depth() == 0


def test_bodies_beyond_the_unverified_cap_are_shed_at_once(live: LiveServer) -> None:
    body = pr_body()
    stalled = [live.connect() for _ in range(2)]
    try:
        for sock in stalled:
            sock.sendall(request_bytes(body[:10], signed(body), length=len(body)))
        time.sleep(0.2)
        with live.connect() as third:
            third.sendall(request_bytes(body, signed(body)))
            assert status_of(third) == 503
        assert live.outcome("shed") == 1
    finally:
        for sock in stalled:
            sock.close()


def test_a_client_that_disconnects_mid_body_logs_one_line(live: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    body = pr_body()
    caplog.set_level(logging.INFO)
    with live.connect() as sock:
        sock.sendall(request_bytes(body[:10], signed(body), length=len(body)))
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while live.outcome("disconnected") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.outcome("disconnected") == 1
    records = [r for r in caplog.records if r.levelno >= logging.INFO and "disconnect" in r.getMessage()]
    assert len(records) == 1 and records[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info]


def test_an_unsigned_body_is_refused_before_it_is_read(live: LiveServer) -> None:
    with live.connect() as sock:
        # Declares 20 MB but sends none of it: the answer comes from the headers alone.
        sock.sendall(request_bytes(b"", {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d"},
                                   length=20 * 1024 * 1024))
        assert status_of(sock) == 401


# -- the probe: nothing a client sends gets a 500 ----------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _pr(**pull: object) -> bytes:
    base = {"number": 7, "head": {"sha": HEAD}, "base": {"ref": "main"}}
    return _json({"action": "opened", "installation": {"id": 1},
                  "repository": {"full_name": "octo/atlas", "default_branch": "main"},
                  "pull_request": {**base, **pull}})


def _comment(comment: object, issue: object = None) -> bytes:
    return _json({"action": "created", "installation": {"id": 1},
                  "repository": {"full_name": "octo/atlas", "default_branch": "main"},
                  "issue": issue if issue is not None else {"number": 7, "pull_request": {"url": "u"}},
                  "comment": comment})


SIGNED_BODIES: list[tuple[str, str, bytes]] = [
    ("deep-array", "pull_request", DEEP),
    ("deep-object", "pull_request", b'{"a":' * 50_000 + b"1" + b"}" * 50_000),
    ("deep-inside-payload", "pull_request", b'{"action":"opened","x":' + DEEP + b"}"),
    ("not-json", "pull_request", b"{nope"),
    ("empty", "pull_request", b""),
    ("array", "pull_request", b"[]"),
    ("string", "pull_request", b'"hello"'),
    ("null", "pull_request", b"null"),
    ("latin-1", "pull_request", '{"action": "opened", "x": "é"}'.encode("latin-1")),
    ("lone-surrogate", "issue_comment", _comment({"body": "\ud800 /atlas help", "user": {"login": "u"}})),
    ("nan", "pull_request", b'{"action": "opened", "number": NaN}'),
    ("huge-number", "pull_request", _pr(number=2**70)),
    ("huge-exponent", "pull_request", b'{"action":"opened","pull_request":{"number":1e999}}'),
    ("negative-number", "pull_request", _pr(number=-7)),
    ("zero-number", "pull_request", _pr(number=0)),
    ("float-number", "pull_request", _pr(number=7.5)),
    ("bool-number", "pull_request", _pr(number=True)),
    ("string-number", "pull_request", _pr(number="7")),
    ("short-sha", "pull_request", _pr(head={"sha": "abc"})),
    ("null-head", "pull_request", _pr(head=None)),
    ("list-base", "pull_request", _pr(base=["main"])),
    ("pull-string", "pull_request", _json({"action": "opened", "pull_request": "odd"})),
    ("no-pull", "pull_request", _json({"action": "opened", "repository": {"full_name": "octo/atlas"}})),
    ("repo-string", "pull_request", _json({"action": "opened", "repository": "octo/atlas"})),
    ("repo-traversal", "pull_request", _json({"action": "opened", "repository": {"full_name": "../../x"},
                                              "pull_request": {"number": 1, "head": {"sha": HEAD},
                                                               "base": {"ref": "m"}}})),
    ("installation-huge", "pull_request", _json({"action": "opened", "installation": {"id": 2**80}})),
    ("installation-list", "pull_request", _json({"action": "opened", "installation": [1]})),
    ("action-object", "pull_request", _json({"action": {"x": 1}})),
    ("comment-string", "issue_comment", _comment("/atlas recheck")),
    ("comment-body-number", "issue_comment", _comment({"body": 5})),
    ("comment-user-string", "issue_comment", _comment({"body": "/atlas help", "user": "me"})),
    ("comment-huge-issue", "issue_comment", _comment({"body": "/atlas recheck"}, {"number": 2**70})),
    ("comment-issue-string", "issue_comment", _comment({"body": "/atlas recheck"}, "7")),
    ("comment-long-body", "issue_comment", _comment({"body": "/atlas " + "x" * 1_000_000, "user": {"login": "u"}})),
    ("push-ref-number", "push", _json({"ref": 5, "repository": {"full_name": "o/r", "default_branch": "main"}})),
    ("push-deleted-string", "push", _json({"ref": "refs/heads/main", "deleted": "yes"})),
    ("push-branch-object", "push", _json({"ref": "refs/heads/main", "repository": {"full_name": "o/r",
                                                                                  "default_branch": {}}})),
    ("installation-repos-string", "installation_repositories",
     _json({"action": "removed", "installation": {"id": 1}, "repositories_removed": "all"})),
    ("check-run-bad-sha", "check_run", _json({"action": "rerequested", "check_run": {"head_sha": 5}})),
    ("unknown-event", "made_up_event", _json({"action": "x"})),
    ("valid", "pull_request", _pr()),
]
# Signed and well-formed: a comment whose text holds an escaped lone surrogate or a long tail is still a comment.
ACCEPTED = {"valid", "unknown-event", "lone-surrogate", "comment-long-body"}
UNSIGNED: list[tuple[str, dict[str, str], bytes]] = [
    ("no-signature", {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d"}, _pr()),
    ("sha1-signature", {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d", "X-Hub-Signature": "sha1=0"},
     _pr()),
    ("wrong-signature", {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d",
                         "X-Hub-Signature-256": "sha256=" + "0" * 64}, _pr()),
    ("garbage-signature", {"X-GitHub-Event": "pull_request", "X-Hub-Signature-256": "\u00e9" * 10}, _pr()),
    ("no-event", {"X-GitHub-Delivery": "d"}, _pr()),
    ("long-delivery-id", {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": "d" * 5000}, _pr()),
    ("negative-length", {"X-GitHub-Event": "pull_request", "Content-Length": "-5"}, b""),
    ("deep-unsigned", {"X-GitHub-Event": "pull_request"}, DEEP),
]


def _probe_requests() -> list[tuple[str, bytes]]:
    requests: list[tuple[str, bytes]] = []
    for index, (name, event, body) in enumerate(SIGNED_BODIES):
        requests.append((f"signed:{name}", request_bytes(body, signed(body, event=event, delivery=f"p-{index}"))))
    for name, headers, body in UNSIGNED:
        length = headers.pop("Content-Length", None)
        requests.append((f"unsigned:{name}", request_bytes(body, headers, length=None if length is None
                                                           else int(length))))
    requests += [
        ("get-webhook", b"GET /webhook HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("bad-method-line", b"BREW /webhook HTCPCP/1.0\r\n\r\n"),
        ("not-http", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n"),
        ("bad-length", b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n"),
        ("huge-header", b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"),
        ("chunked-garbage", b"POST /webhook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                            b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n\r\nzz\r\n"),
    ]
    return requests


PROBE = _probe_requests()


def test_the_probe_has_at_least_46_cases() -> None:
    assert len(PROBE) >= 46


@pytest.mark.parametrize(("name", "raw"), PROBE, ids=[name for name, _ in PROBE])
def test_no_hostile_request_gets_a_500(live: LiveServer, name: str, raw: bytes) -> None:
    with live.connect() as sock:
        try:
            sock.sendall(raw)
        except OSError:
            return  # the server closed the connection before taking everything: refused, not failed
        status = status_of(sock)
    assert status != 500, name
    if name.startswith("signed:"):
        # Well-formed deliveries are queued (or ignored); everything else signed is refused as malformed.
        assert status == (202 if name.removeprefix("signed:") in ACCEPTED else 400), (name, status)
