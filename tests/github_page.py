"""What GitHub shows for a Markdown body, reproduced on this machine: cmark-gfm with GitHub's extensions, GitHub's
Markdown stylesheet (the pinned github-markdown-css package), mermaid's browser bundle for ```mermaid blocks, all in
Debian's headless Chromium, started fresh for every page.

``measure`` loads a page and reads back what the page script found: the height of the comment, every element
that reaches past the 880 px column or hides part of itself behind a scroll bar, and each mermaid block's
outcome. ``screenshot`` writes a PNG of the same page. Used by tests/test_screenshots.py and
bench/bench_shots.py; nothing here reaches the network (every file is loaded from this tree).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cmarkgfm
from cmarkgfm.cmark import Options

ROOT = Path(__file__).resolve().parent.parent
MERMAID_JS = ROOT / "bot" / "mermaid" / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
CSS_DIR = ROOT / "tests" / "github_css" / "node_modules" / "github-markdown-css"
# The width of a comment's body on a pull request page (GitHub's conversation column).
COLUMN_PX = 880
CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--allow-file-access-from-files")
# Virtual time the page gets to run mermaid before Chromium dumps or shoots it.
VIRTUAL_TIME_MS = 20_000
RESULT_RE = re.compile(r"<pre id=\"atlas-measure\"[^>]*>(.*?)</pre>", re.DOTALL)

# GitHub renders a ```mermaid block as a diagram with the theme of the page; the page script does the same with
# mermaid's own bundle, then measures. Written into <pre id="atlas-measure"> so --dump-dom carries it out.
PAGE_SCRIPT = """
const column = document.querySelector('.markdown-body');
const blocks = [...document.querySelectorAll('pre[lang="mermaid"]')];
const outcomes = [];
mermaid.initialize({startOnLoad: false, theme: THEME, securityLevel: 'strict'});
(async () => {
  for (const [i, pre] of blocks.entries()) {
    const text = pre.textContent;
    const holder = document.createElement('div');
    holder.className = 'atlas-mermaid';
    pre.replaceWith(holder);
    try {
      const {svg} = await mermaid.render('atlas-m' + i, text);
      holder.innerHTML = svg;
      const box = holder.querySelector('svg').getBoundingClientRect();
      outcomes.push({ok: box.width > 0 && box.height > 0, width: box.width, height: box.height});
    } catch (error) {
      holder.textContent = String(error);
      outcomes.push({ok: false, error: String(error && error.message || error)});
    }
  }
  const edge = column.getBoundingClientRect().right;
  const overflow = [];
  for (const el of column.querySelectorAll('*')) {
    const box = el.getBoundingClientRect();
    const hidden = el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible';
    // Only the outermost offender: what sits inside it is cut off with it.
    if (overflow.some(o => o.el.contains(el))) continue;
    if ((box.width > 0 && box.right > edge + 0.5 && !el.closest('svg')) || hidden) {
      overflow.push({el, tag: el.tagName.toLowerCase(), right: Math.round(box.right),
                     scroll: el.scrollWidth, client: el.clientWidth,
                     text: (el.textContent || '').trim().slice(0, 80)});
    }
  }
  const out = document.createElement('pre');
  out.id = 'atlas-measure';
  out.textContent = JSON.stringify({height: Math.ceil(column.getBoundingClientRect().height),
                                    mermaid: outcomes,
                                    overflow: overflow.slice(0, 20).map(({el, ...rest}) => rest)});
  document.body.appendChild(out);
  out.style.display = 'none';
})();
"""


@dataclass(frozen=True)
class Measure:
    """What the page script found: comment height (px), mermaid outcomes, elements past the column."""

    height: int
    mermaid: list[dict]
    overflow: list[dict]


def chromium() -> str | None:
    """The chromium binary on PATH, if any."""
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def missing() -> str | None:
    """Why pages cannot be rendered here (with what to install), or None."""
    if chromium() is None:
        return "chromium is not installed (bash .ci/setup installs Debian's package, or: apt-get install chromium)"
    if not MERMAID_JS.exists():
        return f"mermaid's browser bundle is missing ({MERMAID_JS}): run bash .ci/setup"
    if not CSS_DIR.exists():
        return f"github-markdown-css is missing ({CSS_DIR}): run bash .ci/setup"
    return None


def to_html(markdown: str) -> str:
    """GitHub-flavoured Markdown → HTML as github.com renders comments (raw HTML kept, like <details>)."""
    return cmarkgfm.github_flavored_markdown_to_html(markdown, options=Options.CMARK_OPT_UNSAFE)


def page(markdown: str, *, dark: bool = False) -> str:
    """A whole HTML page: the body rendered into an 880 px ``markdown-body`` column with GitHub's stylesheet."""
    css = CSS_DIR / ("github-markdown-dark.css" if dark else "github-markdown-light.css")
    background = "#0d1117" if dark else "#ffffff"
    script = PAGE_SCRIPT.replace("THEME", json.dumps("dark" if dark else "default"))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>atlas-bot</title>
<link rel="stylesheet" href="{css.as_uri()}">
<style>
  body {{ margin: 0; background: {background}; }}
  .markdown-body {{ box-sizing: border-box; width: {COLUMN_PX}px; padding: 16px; }}
  .atlas-mermaid svg {{ max-width: 100%; height: auto; }}
</style>
<script src="{MERMAID_JS.as_uri()}"></script>
</head><body><article class="markdown-body">
{to_html(markdown)}
</article>
<script>{script}</script>
</body></html>"""


def _run(html_text: str, *extra: str, window: tuple[int, int] = (COLUMN_PX, 800)) -> str:
    binary = chromium()
    if binary is None:
        raise RuntimeError(missing())
    with tempfile.TemporaryDirectory(prefix="atlas-page-") as tmp:
        path = Path(tmp) / "page.html"
        path.write_text(html_text, encoding="utf-8")
        command = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile", f"--window-size={window[0]},{window[1]}",
                   f"--virtual-time-budget={VIRTUAL_TIME_MS}", *extra, path.as_uri()]
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=tmp,
                              env={**os.environ, "HOME": tmp})
        if done.returncode != 0:
            raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout


def measure(markdown: str, *, dark: bool = False) -> Measure:
    """Render ``markdown`` as GitHub would and measure it."""
    dom = _run(page(markdown, dark=dark), "--dump-dom")
    found = RESULT_RE.search(dom)
    if found is None:
        raise RuntimeError("the page script did not finish (no measurement in the DOM)")
    data = json.loads(html.unescape(found.group(1)))
    return Measure(height=data["height"], mermaid=data["mermaid"], overflow=data["overflow"])


def screenshot(markdown: str, target: Path, *, dark: bool = False, height: int | None = None) -> Measure:
    """Write a PNG of the rendered body (the full height unless ``height`` cuts it); returns the measurement."""
    measured = measure(markdown, dark=dark)
    tall = min(measured.height, height) if height else measured.height
    _run(page(markdown, dark=dark), f"--screenshot={target.resolve()}", window=(COLUMN_PX, tall))
    return measured
