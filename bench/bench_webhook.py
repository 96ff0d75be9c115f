"""Webhook acknowledgement latency under a fixed arrival rate, and exactly-once processing.

The server (``bot.app`` under uvicorn, SQLite queue, worker threads whose handler only counts deliveries) runs
in a child process on 127.0.0.1; this process is an open-loop load generator: request i is due at
``start + i / rate`` whatever happened to earlier ones, and its latency is measured from that due time (so a
stalled server cannot hide its stall by slowing the sender down). Each delivery is a real, signed
pull_request payload from the fixtures with its own delivery id and PR number (no coalescing), so every one
must be processed exactly once.

    .venv/bin/python bench/bench_webhook.py [--rate 200] [--duration 30] [--workers 2] [--postgres]

``--postgres`` puts the queue (and the coordinator) on a PostgreSQL server started for the run in a temporary
directory (tests/pgserver.py), the shared engine of a scaled-out deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import uvicorn  # noqa: E402

from bot.app import build_runtime  # noqa: E402
from bot.handlers import Context, Route, Services  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.webhooks import signature_for  # noqa: E402

SECRET = "bench-webhook-secret"
EXAMPLE = ROOT / "tests" / "fixtures" / "webhooks" / "octokit" / "pull_request.22.synchronize.json"
TARGET_P99_MS = 25.0
DRAIN_TIMEOUT_SECONDS = 120.0
NO_SERVICES = Services(repo_client=lambda *a: None, git_token=lambda i: None, mirror=lambda *a: None, pool=None,
                       load_config=lambda **k: None, run_check=lambda *a, **k: None,
                       build_publication=lambda *a, **k: None)


def serve(data_dir: str, workers: int, port_pipe, stop, result_pipe, queue_url: str | None = None) -> None:
    """Child process: app + queue + workers; reports its port, then per-delivery handler counts at the end."""
    settings = Settings.load(data_dir=data_dir, webhook_secret=SECRET, workers=workers, poll_seconds=0.05,
                             queue_url=queue_url)
    counts: Counter[str] = Counter()
    lock = threading.Lock()

    def count(ctx: Context) -> str:
        with lock:
            counts[ctx.delivery.id] += 1
        return "counted"

    runtime = build_runtime(settings, services=NO_SERVICES, router=lambda delivery: Route(count, None))
    server = uvicorn.Server(uvicorn.Config(runtime.app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    runtime.start()
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port_pipe.send(server.servers[0].sockets[0].getsockname()[1])
    stop.wait()
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    while runtime.queue.depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.should_exit = True
    thread.join(10)
    runtime.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result_pipe.send((dict(counts), usage.ru_utime + usage.ru_stime))


def deliveries(total: int) -> list[tuple[bytes, dict[str, str], str]]:
    """Signed bodies, each a distinct delivery for a distinct pull request."""
    template = json.loads(EXAMPLE.read_text())
    prepared = []
    for i in range(total):
        template["number"] = template["pull_request"]["number"] = 100_000 + i
        body = json.dumps(template, separators=(",", ":")).encode()
        delivery_id = f"bench-{i:06d}"
        prepared.append((body, {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery_id,
                                "X-Hub-Signature-256": signature_for(body, SECRET),
                                "Content-Type": "application/json"}, delivery_id))
    return prepared


class Connections:
    """Keep-alive HTTP/1.1 connections to the server; a tiny client so the generator's own CPU use stays low
    (this machine's two cores are shared by the server, its workers and the generator)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
        while self.idle:
            # The server closes keep-alive connections idle for 5 s; such a one answers nothing: use another.
            reader, writer = self.idle.pop()
            try:
                writer.write(request + body)
                status_line = await reader.readline()
            except ConnectionError:
                status_line = b""
            if status_line:
                return await self._finish(reader, writer, status_line)
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(request + body)
        return await self._finish(reader, writer, await reader.readline())

    async def _finish(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, status_line: bytes) -> int:
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        self.idle.append((reader, writer))
        return int(status_line.split()[1])

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def load(port: int, rate: float, work: list[tuple[bytes, dict[str, str], str]]) -> list[tuple[float, int]]:
    """Open loop: send request i at its due time; returns (latency from due time, status) per request."""
    results: list[tuple[float, int]] = [(0.0, 0)] * len(work)
    connections = Connections(port)
    start = time.perf_counter() + 0.2

    async def one(index: int, body: bytes, headers: dict[str, str]) -> None:
        due = start + index / rate
        await asyncio.sleep(max(due - time.perf_counter(), 0))
        try:
            status = await connections.post("/webhook", body, headers)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0
        results[index] = (time.perf_counter() - due, status)

    await asyncio.gather(*(one(i, body, headers) for i, (body, headers, _) in enumerate(work)))
    connections.close()
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries per second (default 200)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default 30)")
    parser.add_argument("--workers", type=int, default=2, help="worker threads in the server (default 2)")
    parser.add_argument("--postgres", action="store_true", help="queue on a PostgreSQL server started for the run")
    args = parser.parse_args(argv)
    total = int(args.rate * args.duration)
    work = deliveries(total)
    engine = None
    if args.postgres:
        sys.path.insert(0, str(ROOT / "tests"))
        from pgserver import PostgresServer, server_bin_dir

        engine = PostgresServer(server_bin_dir())
        engine.start()
    try:
        return measure(args, total, work, None if engine is None else engine.url)
    finally:
        if engine is not None:
            engine.stop()


def measure(args: argparse.Namespace, total: int, work: list[tuple[bytes, dict[str, str], str]],
            queue_url: str | None) -> int:
    with tempfile.TemporaryDirectory(prefix="atlas-bench-webhook-") as data_dir:
        port_recv, port_send = multiprocessing.Pipe(duplex=False)
        result_recv, result_send = multiprocessing.Pipe(duplex=False)
        stop = multiprocessing.Event()
        child = multiprocessing.Process(target=serve, args=(data_dir, args.workers, port_send, stop, result_send,
                                                            queue_url))
        child.start()
        port = port_recv.recv()
        began = time.perf_counter()
        results = asyncio.run(load(port, args.rate, work))
        elapsed = time.perf_counter() - began
        stop.set()
        counts, server_cpu = result_recv.recv()
        child.join(30)
    latencies = [latency * 1000 for latency, _ in results]
    statuses = Counter(status for _, status in results)
    expected = {delivery_id for _, _, delivery_id in work}
    once = sum(1 for d in expected if counts.get(d) == 1)
    missing = sum(1 for d in expected if d not in counts)
    repeated = sum(1 for c in counts.values() if c > 1)
    p99 = percentile(latencies, 0.99)
    print(f"webhook ack latency: {total} deliveries at {args.rate:.0f}/s over {elapsed:.1f} s "
          f"({len(work[0][0]) / 1024:.0f} KiB payloads, {args.workers} workers, queue on "
          f"{'PostgreSQL' if queue_url else 'SQLite'}; machine load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"  p50 {percentile(latencies, 0.50):.1f} ms  p90 {percentile(latencies, 0.90):.1f} ms  "
          f"p99 {p99:.1f} ms  max {max(latencies):.1f} ms  mean {statistics.fmean(latencies):.1f} ms")
    print(f"  statuses {dict(statuses)}; server CPU {server_cpu / total * 1000:.2f} ms per delivery "
          f"(acknowledge + queue + worker), {server_cpu / elapsed * 100:.0f}% of one core")
    print(f"  processed exactly once: {once}/{total} (missing {missing}, repeated {repeated})")
    verdict = p99 <= TARGET_P99_MS and once == total and statuses.get(202) == total
    print(f"  target p99 <= {TARGET_P99_MS:.0f} ms and every delivery once: {'met' if verdict else 'NOT met'}")
    print(f"reproduce: .venv/bin/python bench/bench_webhook.py --rate {args.rate:.0f} --duration {args.duration:.0f}"
          f" --workers {args.workers}{' --postgres' if queue_url else ''}")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
