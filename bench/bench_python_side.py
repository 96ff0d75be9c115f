"""Python side of a cold check, without Node: fix candidates, gate evaluation and stored results over a corpus.

Verdicts come from a file of worker answers (``node bot/mermaid/worker.mjs < codes.jsonl > verdicts.jsonl``), so
the figures are the Python CPU alone. ``--dump DIR`` writes every output (candidates per failing diagram, each
file's stored results) for byte-for-byte comparison between two versions of the code; ``--rounds N`` prints the
CPU seconds (``time.process_time``) of each phase, the median of N rounds. ``--evidence-scans`` times, over every
diagram's section, the evidence patterns that have a boundary-led scan, searched as written and as the scan
(interleaved rounds, medians).

    .venv/bin/python bench/bench_python_side.py --docs /work/corpus/docs --codes /work/corpus/codes.jsonl \
        --verdicts /work/wt/py-baseline/worker-verdicts.jsonl --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bot.config import load_config
from bot.content import extract_diagrams
from bot.gates.engine import evaluate_diagram, section_around
from bot.gates.fixes import candidate_fixes
from bot.model import DiagramStatus, SyntaxVerdict
from bot.stored import results_from_json, results_to_json


def _verdicts_by_code(codes_path: Path, verdicts_path: Path) -> dict[str, SyntaxVerdict]:
    codes = {}
    for line in codes_path.read_text().splitlines():
        item = json.loads(line)
        codes[item["id"]] = item["code"]
    verdicts = {}
    for line in verdicts_path.read_text().splitlines():
        item = json.loads(line)
        if "id" in item:
            verdicts[codes[item["id"]]] = SyntaxVerdict(ok=item["ok"], error=item.get("error"),
                                                        error_line=item.get("line"), type=item.get("type"))
    return verdicts


def _run(config, files, verdicts) -> tuple[dict[str, float], list[str], list[str]]:
    cpu: dict[str, float] = {}
    started = time.process_time()
    candidates = {}
    for _, _, diagrams in files:
        for diagram in diagrams:
            verdict = verdicts[diagram.code]
            if not verdict.ok and diagram.code not in candidates:
                candidates[diagram.code] = candidate_fixes(diagram.code, verdict)
    cpu["candidate_fixes"] = time.process_time() - started

    started = time.process_time()
    per_file = []
    for path, text, diagrams in files:
        category = config.category_of(path)
        per_file.append([
            evaluate_diagram(config, diagram, status=DiagramStatus.CHECKED, category=category, file_text=text,
                             verdict=verdicts[diagram.code], syntax_fix=next(iter(candidates.get(diagram.code, ())), None),
                             clock=lambda: 0.0)
            for diagram in diagrams
        ])
    cpu["evaluate_diagram"] = time.process_time() - started

    started = time.process_time()
    stored = [results_to_json(results) for results in per_file]
    cpu["results_to_json"] = time.process_time() - started

    started = time.process_time()
    back = [results_from_json(text) for text in stored]
    cpu["results_from_json"] = time.process_time() - started
    assert back == per_file, "results_from_json(results_to_json(r)) != r"

    fixes_out = [json.dumps({"code": code, "fixes": [repr(fix) for fix in fixes]})
                 for code, fixes in candidates.items()]
    stored_out = [json.dumps({"path": path, "results": text}) for (path, _, _), text in zip(files, stored, strict=True)]
    return cpu, fixes_out, stored_out


def _search_all(patterns, attribute: str, sections: list[str]) -> float:
    """CPU seconds of searching every section as ``evidence_matches`` does: the needle test, then the regex."""
    started = time.process_time()
    for pattern in patterns:
        regex = getattr(pattern, attribute)
        for lower in sections:
            start = pattern.search_start(lower)
            if start is not None:
                regex.search(lower, start)
    return time.process_time() - started


def _evidence_scans(config, files, rounds: int) -> dict[str, float]:
    patterns = [p for state in config.compiled.values() for p in getattr(state, "patterns", ()) if p.scan is not None]
    sections = [section_around(text, d.line).lower() for _, text, diagrams in files for d in diagrams]
    times: dict[str, list[float]] = {"folded": [], "scan": []}
    for _ in range(rounds):
        for attribute, spent in times.items():
            spent.append(_search_all(patterns, attribute, sections))
    return {"patterns": len(patterns), **{k: round(statistics.median(v), 3) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, required=True)
    parser.add_argument("--codes", type=Path, required=True)
    parser.add_argument("--verdicts", type=Path, required=True)
    parser.add_argument("--dump", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--evidence-scans", action="store_true")
    args = parser.parse_args()

    config = load_config()
    verdicts = _verdicts_by_code(args.codes, args.verdicts)
    root = args.docs.parent
    files = []
    for path in sorted(args.docs.rglob("*.md")):
        text = path.read_text()
        relative = path.relative_to(root).as_posix()
        files.append((relative, text, extract_diagrams(relative, text)))

    if args.evidence_scans:
        print(json.dumps({"rounds": args.rounds, "cpu_s": _evidence_scans(config, files, args.rounds)}))
        return
    rounds = []
    for _ in range(args.rounds):
        cpu, fixes_out, stored_out = _run(config, files, verdicts)
        rounds.append(cpu)
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
        (args.dump / "candidate-fixes.jsonl").write_text("".join(line + "\n" for line in fixes_out))
        (args.dump / "stored-results.jsonl").write_text("".join(line + "\n" for line in stored_out))
    medians = {phase: round(statistics.median(r[phase] for r in rounds), 3) for phase in rounds[0]}
    print(json.dumps({"rounds": args.rounds, "diagrams": sum(len(d) for _, _, d in files), "cpu_s": medians}))


if __name__ == "__main__":
    main()
