"""Side by side: a cold and a warm `atlas-bot check --all` against `@probelabs/maid` on the same docs tree, in
paired, interleaved runs (the machine is shared: ratios within a pair matter, medians over pairs).

maid is not a dependency of this project; install it into a scratch folder and pass its binary:

    npm install --prefix /tmp/maid @probelabs/maid@0.0.29
    .venv/bin/python bench/bench_maid.py --docs DOCS --verdicts VERDICTS --maid /tmp/maid/node_modules/.bin/maid

Per run it reports wall time, CPU seconds (user + system of the process and its children) and peak resident
memory of the largest process (atlas-bot's Python process or one of its Node workers), and the mermaid parses
of each atlas-bot run (the diagrams plus the fix candidates; a warm run needs none). On Linux each pair also
shows the share of the machine's CPU time its hypervisor gave to other machines during each run ("stolen"): on
a shared virtual machine that, not the load average, is what slows one run of a pair and not the other.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_check import ROOT, build_repo, compare


def measured(command: list[str], env: dict[str, str]) -> tuple[float, float, float, str, str, float | None]:
    """(wall s, CPU s, peak RSS MiB, stdout, stderr, stolen share) of one command and everything it starts."""
    with tempfile.TemporaryFile("w+") as errors:
        ticks = machine_ticks()
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True)
        out = proc.stdout.read()  # type: ignore[union-attr]
        _, _, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        errors.seek(0)
        return (wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out, errors.read(),
                stolen_share(ticks, machine_ticks()))


def machine_ticks() -> tuple[int, int] | None:
    """(stolen, all) CPU ticks of the whole machine so far, from /proc/stat (None: no such file)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(field) for field in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice: guest time is counted in user already
    return (fields[7], sum(fields[:8])) if len(fields) >= 8 else None


def stolen_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def percent(share: float | None) -> str:
    return "?" if share is None else f"{share:.0%}"


def parses(stderr: str) -> int:
    """mermaid parses of one atlas-bot run, from the pool's closing log line (0: no worker was started)."""
    found = re.search(r"mermaid pool closing: (\d+) parses", stderr)
    return int(found.group(1)) if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=Path, required=True, help="the corpus's docs/ folder")
    parser.add_argument("--verdicts", type=Path, required=True, help="mermaid verdicts JSONL for that corpus")
    parser.add_argument("--maid", type=Path, required=True, help="maid's binary (see above for installing it)")
    parser.add_argument("--runs", type=int, default=3, help="paired runs (default 3)")
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float]]] = {"atlas cold": [], "atlas warm": [], "maid": []}
    with tempfile.TemporaryDirectory(prefix="atlas-bench-") as scratch:
        repo = build_repo(args.docs, Path(scratch))
        check = [sys.executable, "-m", "bot.cli", "check", "--repo", str(repo), "--all", "--format", "json"]
        for run in range(args.runs):
            env = {**os.environ, "ATLAS_DATA_DIR": str(Path(scratch) / f"data-{run}"), "ATLAS_LOG_LEVEL": "INFO"}
            *cold, out, cold_log, cold_stolen = measured(check, env)
            if run == 0:
                print("verdicts:", json.dumps(compare(json.loads(out), args.verdicts)))
            *maid, _, _, maid_stolen = measured([str(args.maid), str(repo / "docs")], dict(os.environ))
            *warm, _, warm_log, _ = measured(check, env)
            for name, row in (("atlas cold", cold), ("maid", maid), ("atlas warm", warm)):
                rows[name].append(tuple(row))  # type: ignore[arg-type]
            print(f"pair {run + 1}: cold {cold[0]:.2f} s, maid {maid[0]:.2f} s, ratio {cold[0] / maid[0]:.2f}; "
                  f"warm {warm[0]:.2f} s; mermaid parses cold {parses(cold_log)}, warm {parses(warm_log)}; "
                  f"load {os.getloadavg()[0]:.1f}; stolen cold {percent(cold_stolen)}, maid {percent(maid_stolen)}",
                  flush=True)
    ratios = [c[0] / m[0] for c, m in zip(rows["atlas cold"], rows["maid"])]
    for name, values in rows.items():
        wall, cpu, rss = (statistics.median(v[i] for v in values) for i in range(3))
        print(f"{name:10}: median wall {wall:.2f} s, CPU {cpu:.2f} s, peak RSS {rss:.0f} MiB")
    print(f"cold / maid wall ratio: median {statistics.median(ratios):.2f} over {args.runs} pairs "
          f"{[round(r, 2) for r in ratios]}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
