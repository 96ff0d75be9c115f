"""How busy a cold `atlas-bot check --all` keeps the machine's cores: the CPU the run itself uses (the Python
process and every process it started: mermaid workers, git), sampled at a fixed interval, so stretches where
cores wait (on extraction, on a single-threaded step, on a worker with nothing queued) show up. Linux only: it
reads /proc.

    .venv/bin/python bench/bench_cores.py --docs DOCS [--interval 0.25] [--timeline]

Per interval: the run's cores in use (CPU seconds of its processes over the interval's length). Summary: wall
time, the run's CPU, its average cores, and the core-seconds left idle (for each interval, the machine's cores
minus the run's, times the interval). Other work on a shared machine takes cores too: compare runs made
alternately in one sitting. A process that ends between two samples loses the CPU it used since the last one.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_check import ROOT, build_repo

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process so far (None once it has ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as listing:
                children = [int(child) for child in listing.read().split()]
        except OSError:
            continue
        found.extend(children)
        todo.extend(children)
    return found


def sample_run(repo: Path, interval: float) -> tuple[float, float, list[tuple[float, float, float]]]:
    """(wall s, CPU s of the run, [(seconds since start, the interval's length, cores in use during it)])."""
    with tempfile.TemporaryDirectory(prefix="atlas-cores-") as data_dir:
        env = {**os.environ, "ATLAS_DATA_DIR": data_dir}
        command = [sys.executable, "-m", "bot.cli", "check", "--repo", str(repo), "--all", "--format", "json"]
        before = os.times()
        started = last = time.monotonic()
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen: dict[int, float] = {}  # CPU of each process at the previous sample
        timeline = []
        while proc.poll() is None:
            time.sleep(interval)
            now = time.monotonic()
            used = 0.0
            for pid in (proc.pid, *descendants(proc.pid)):
                total = cpu_seconds(pid)
                if total is not None:
                    used += total - seen.get(pid, 0.0)
                    seen[pid] = total
            timeline.append((now - started, now - last, used / (now - last)))
            last = now
        wall = time.monotonic() - started
        if proc.returncode not in (0, 1):
            raise SystemExit(f"atlas-bot check failed ({proc.returncode})")
    after = os.times()  # the run's process has waited for its workers, so their CPU is in its children's
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return wall, cpu, timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, required=True, help="a docs tree (the corpus' docs/)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between samples")
    parser.add_argument("--timeline", action="store_true", help="print every sample")
    args = parser.parse_args()
    pid = os.getpid()
    if not Path(f"/proc/{pid}/task/{pid}/children").exists():  # without it the workers' CPU would go unseen
        raise SystemExit("bench_cores reads /proc/PID/task/PID/children: run it on Linux (CONFIG_PROC_CHILDREN)")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="atlas-cores-repo-") as scratch:
        repo = build_repo(args.docs, Path(scratch))
        wall, cpu, timeline = sample_run(repo, args.interval)
    if args.timeline:
        for at, _, busy in timeline:
            print(f"{at:6.2f} s  {busy:4.2f} cores  {'#' * round(busy * 20)}")
    idle = sum(max(0.0, cores - busy) * length for _, length, busy in timeline)
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s, {cpu / wall:.2f} of {cores} cores on average, "
          f"{idle:.2f} core-seconds idle")


if __name__ == "__main__":
    main()
