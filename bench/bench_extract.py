"""Benchmark and cross-check of mermaid fence extraction (bot.content) on a Markdown tree.

Times, in this process, with every file already read into memory: count_diagrams on str and on UTF-8 bytes
(what the progress counter does with blobs from git) and extract_diagrams; prints the first (cold) run and
the median of the following runs. With --verify it also checks the result against markdown-it-py's
CommonMark fence tokens (same (path, line) set, same code) and against cmark-gfm with GitHub's extensions on.

Reproduce:  .venv/bin/python bench/bench_extract.py /tmp/corpus/docs --runs 7 --verify
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import_started = time.perf_counter()
from bot.content import count_diagrams, extract_diagrams, is_markdown_path  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - import_started
COMMAND = ".venv/bin/python bench/bench_extract.py {root} --runs {runs}{verify}"
GFM_EXTENSIONS = ["table", "autolink", "tagfilter", "strikethrough", "tasklist"]


def _time(label: str, runs: int, job: Callable[[], int]) -> None:
    """Wall and CPU seconds: the CPU figure stays honest when other work shares the two cores."""
    wall: list[float] = []
    cpu: list[float] = []
    result = 0
    for _ in range(runs):
        wall_started, cpu_started = time.perf_counter(), time.process_time()
        result = job()
        wall.append(time.perf_counter() - wall_started)
        cpu.append(time.process_time() - cpu_started)
    rest = slice(1, None) if runs > 1 else slice(None)
    print(
        f"{label:<24} {result:>5} fences  cold {wall[0]:.3f} s (cpu {cpu[0]:.3f})  "
        f"median of {len(wall[rest])} more {statistics.median(wall[rest]):.3f} s (cpu {statistics.median(cpu[rest]):.3f})"
    )


def _verify(files: list[tuple[str, str]]) -> bool:
    import re

    import cmarkgfm
    from cmarkgfm.cmark import Options
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark")
    gfm_pre = re.compile(r'<pre data-sourcepos="(\d+):[^"]*" lang="mermaid">')
    ours: dict[tuple[str, int], str] = {}
    reference: dict[tuple[str, int], str] = {}
    github: set[tuple[str, int]] = set()
    for path, text in files:
        ours.update(((d.path, d.line), d.code) for d in extract_diagrams(path, text))
        for token in parser.parse(text):
            if token.type == "fence" and token.info.split(maxsplit=1)[:1] == ["mermaid"]:
                assert token.map is not None
                reference[(path, token.map[0] + 1)] = token.content
        html = cmarkgfm.markdown_to_html_with_extensions(
            text, Options.CMARK_OPT_SOURCEPOS | Options.CMARK_OPT_GITHUB_PRE_LANG, GFM_EXTENSIONS
        )
        github.update((path, int(line)) for line in gfm_pre.findall(html))
    # markdown-it leaves the newline off the last line of a fence left open at the end of a file that has
    # no final newline; CommonMark's content ends every line with one.
    mismatched = [
        key for key, code in reference.items()
        if key in ours and ours[key] != (code if code.endswith("\n") or not code else code + "\n")
    ]
    same_set = set(ours) == set(reference)
    print(f"markdown-it-py CommonMark fences: {len(reference)}   ours: {len(ours)}   same (path, line) set: {same_set}")
    print(f"code text differing from markdown-it's: {len(mismatched)}")
    print(f"cmark-gfm with GitHub's extensions: {len(github)}   same set: {github == set(ours)}")
    return same_set and not mismatched and github == set(ours)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder of Markdown files, e.g. /tmp/corpus/docs")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--verify", action="store_true", help="cross-check against markdown-it-py and cmark-gfm")
    args = parser.parse_args()

    base = args.root.parent
    paths = sorted(p for p in args.root.rglob("*") if p.is_file() and is_markdown_path(p.name))
    raw = [(str(p.relative_to(base)), p.read_bytes()) for p in paths]
    files = [(path, data.decode("utf-8")) for path, data in raw]
    megabytes = sum(len(data) for _, data in raw) / 1e6
    print(f"{len(files)} Markdown files, {megabytes:.1f} MB; import of bot.content {IMPORT_SECONDS:.3f} s")

    _time("count_diagrams(str)", args.runs, lambda: sum(count_diagrams(text) for _, text in files))
    _time("count_diagrams(bytes)", args.runs, lambda: sum(count_diagrams(data) for _, data in raw))
    _time("extract_diagrams(str)", args.runs, lambda: sum(len(extract_diagrams(p, t)) for p, t in files))

    ok = _verify(files) if args.verify else True
    print("reproduce: " + COMMAND.format(root=args.root, runs=args.runs, verify=" --verify" if args.verify else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
