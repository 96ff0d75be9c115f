"""Coverage of the mechanical syntax fixes (bot.gates.fixes) on a Markdown tree with known mermaid verdicts.

Finds every mermaid fence under --docs (bot.content), keeps those the verdicts file marks as failing, has the
mermaid worker pool parse them (for the error and its line), lets choose_fixes pick a fix per diagram with the
same pool, then parses every fixed diagram once more to confirm it. Prints "N of M fixed (x%)", the label
check (how many candidate fixes keep every label's visible text and are offered, how many are refused, by kind;
every chosen fix checked once more), the breakdown by fix kind, the size of the fixes, the extra parses spent,
and each diagram left without a fix.

Reproduce:  .venv/bin/python bench/fix_coverage.py --docs /tmp/corpus/docs \
                --verdicts /work/shared/corpus/verdicts-mermaid-11.17.2.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.content import extract_diagrams  # noqa: E402
from bot.gates.checks import diagram_family  # noqa: E402
from bot.gates.fixes import apply_fix, choose_fixes, keeps_visible_text, unchecked_fixes  # noqa: E402
from bot.gates.mermaid import MermaidPool  # noqa: E402
from bot.model import Diagram, SyntaxVerdict  # noqa: E402

GOT = re.compile(r"got '([^']+)'")
COMMAND = ".venv/bin/python bench/fix_coverage.py --docs {docs} --verdicts {verdicts}"


def failing_diagrams(docs: Path, verdicts_path: Path) -> list[Diagram]:
    """Diagrams the verdicts file marks as not parsing; paths as in that file (`docs/...`)."""
    verdicts = {}
    with verdicts_path.open(encoding="utf-8") as handle:
        for raw in handle:
            record = json.loads(raw)
            verdicts[(record["path"], record["line"])] = record["ok"]
    failing = []
    for path in sorted(docs.rglob("*.md")):
        relative = f"{docs.name}/{path.relative_to(docs).as_posix()}"
        for diagram in extract_diagrams(relative, path.read_text(encoding="utf-8")):
            if verdicts.get((diagram.path, diagram.line)) is False:
                failing.append(diagram)
    expected = sum(1 for ok in verdicts.values() if not ok)
    if len(failing) != expected:
        print(f"warning: found {len(failing)} failing fences, the verdicts file lists {expected}", file=sys.stderr)
    return failing


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, required=True, help="the docs folder of the corpus")
    parser.add_argument("--verdicts", type=Path, required=True, help="per-fence verdicts, JSON lines")
    parser.add_argument("--workers", type=int, default=None, help="mermaid workers (default: the pool's)")
    args = parser.parse_args(argv)

    diagrams = failing_diagrams(args.docs, args.verdicts)
    codes = [d.code for d in diagrams]
    with MermaidPool(workers=args.workers, cache=None) as pool:
        verdicts = pool.parse_many(codes)
        still_ok = [d for d, v in zip(diagrams, verdicts, strict=True) if v.ok]
        spent = collections.Counter()

        def parse_many(batch: Sequence[str]) -> list[SyntaxVerdict]:
            spent["calls"] += 1
            spent["parses"] += len(batch)
            return pool.parse_many(batch)

        started = time.perf_counter()
        chosen = choose_fixes(list(zip(codes, verdicts, strict=True)), parse_many)
        seconds = time.perf_counter() - started
        fixed = [(i, fix) for i, fix in enumerate(chosen) if fix is not None]
        confirmed = pool.parse_many([apply_fix(codes[i], fix) for i, fix in fixed])

    total = len(diagrams)
    kept, refused = label_check(codes, verdicts)
    rechecked = sum(keeps_visible_text(codes[i].split("\n"), fix, diagram_family(codes[i].split("\n"))[0])
                    for i, fix in fixed)
    bad = [diagrams[i] for (i, _), v in zip(fixed, confirmed, strict=True) if not v.ok]
    print(f"{len(fixed)} of {total} fixed ({100 * len(fixed) / max(total, 1):.1f}%)")
    if still_ok:
        print(f"warning: {len(still_ok)} diagrams the verdicts file calls failing parse now")
    if bad:
        print(f"error: {len(bad)} chosen fixes do not parse on the second look: "
              + ", ".join(f"{d.path}:{d.line}" for d in bad))
    print(f"label check: {kept} of {kept + sum(refused.values())} candidate fixes keep every label's visible "
          f"text, {sum(refused.values())} refused"
          + "".join(f"; {count} {kind}" for kind, count in refused.most_common()))
    print(f"chosen fixes passing the label check: {rechecked} of {len(fixed)}")
    print(f"extra parses: {spent['parses']} in {spent['calls']} batches "
          f"({spent['parses'] / max(total, 1):.2f} per failing diagram), {seconds:.1f} s")
    print("by kind:")
    for kind, count in collections.Counter(fix.kind for _, fix in fixed).most_common():
        print(f"  {count:4d}  {kind}")
    sizes = [fix.end - fix.start + 1 for _, fix in fixed]
    one_line = sum(1 for size in sizes if size == 1)
    print(f"fix size: {one_line} one-line, {len(sizes) - one_line} ranges"
          + (f" (median {sorted(sizes)[len(sizes) // 2]} lines, max {max(sizes)})" if sizes else ""))
    print("without a fix:")
    for diagram, verdict, fix in zip(diagrams, verdicts, chosen, strict=True):
        if fix is None:
            print(f"  {diagram.path}:{diagram.line}  {_first_line(verdict)}")
    print("reproduce: " + COMMAND.format(docs=args.docs, verdicts=args.verdicts))
    return 1 if bad or rechecked != len(fixed) else 0


def label_check(codes: Sequence[str], verdicts: Sequence[SyntaxVerdict]) -> tuple[int, collections.Counter]:
    """(candidate fixes that pass the label check, refused ones counted by fix kind) over all diagrams."""
    kept, refused = 0, collections.Counter()
    for code, verdict in zip(codes, verdicts, strict=True):
        lines = code.split("\n")
        family = diagram_family(lines)[0]
        for fix in unchecked_fixes(code, verdict):
            if keeps_visible_text(lines, fix, family):
                kept += 1
            else:
                refused[fix.kind] += 1
    return kept, refused


def _first_line(verdict: SyntaxVerdict) -> str:
    """The parser's complaint in one line: `Parse error on line N: got 'X'`, or its first line."""
    error = (verdict.error or "").strip()
    got = GOT.search(error)
    head = error.splitlines()[0] if error else ""
    return (f"{head} got '{got.group(1)}'" if got and head.startswith("Parse error") else head)[:120]


if __name__ == "__main__":
    raise SystemExit(main())
