"""Mermaid diagrams in Markdown, found exactly as GitHub finds them, and how they changed between two versions.

GitHub renders Markdown with cmark-gfm, so fences are found by cmark-gfm itself (the ``cmarkgfm`` bindings):
its HTML output with source positions names every fenced code block's opening line, its first info word and
its content with container prefixes already removed. A hand-written scanner would have to re-implement block
quotes, list items, HTML blocks and lazy lines to get the same answer, and would be slower.

Pure: no I/O, no git, no GitHub.
"""

from __future__ import annotations

import ctypes
import difflib
import re
from bisect import bisect_left
from collections.abc import Sequence

from cmarkgfm import _cmark

from bot.model import Diagram, DiagramChange, DiagramStatus

MERMAID_INFO = "mermaid"
MARKDOWN_SUFFIXES: tuple[str, ...] = (".md", ".markdown")

# cmark-gfm's CMARK_OPT_FULL_INFO_STRING: puts the info string after its first word into data-meta. The
# bindings do not export the constant, the library honours it.
_OPT_FULL_INFO_STRING = 1 << 16
_OPT_EXTRACT = _cmark.lib.CMARK_OPT_SOURCEPOS | _OPT_FULL_INFO_STRING
_OPT_COUNT = _cmark.lib.CMARK_OPT_DEFAULT

# Every fenced block needs three backticks or tildes somewhere; a document without either has no fence and
# is not worth parsing.
_FENCE_MARKS = (b"```", b"~~~")

# cmark escapes code text and attributes itself and drops raw HTML (no UNSAFE option), so every tag in its
# output is its own and these patterns cannot be fooled by document content.
_MERMAID_CODE_TAG = b'<code class="language-' + MERMAID_INFO.encode() + b'">'
# Extraction looks for the code tag with plain bytes searches (much faster than one regex over the whole
# output), then reads the source position of the <pre> it sits in and the optional data-meta attribute.
_MERMAID_CODE_OPEN = b'"><code class="language-' + MERMAID_INFO.encode() + b'"'
_PRE_OPEN = b'<pre data-sourcepos="'
_SOURCEPOS = re.compile(rb'(\d+):\d+-(\d+):\d+')
_META = re.compile(rb' data-meta="([^"]*)"')
_CODE_CLOSE = b"</code></pre>"
_CONTAINER = re.compile(rb'<(?:blockquote|li) data-sourcepos="(\d+):\d+-(\d+):\d+"')
# The only escapes cmark's HTML writer produces (houdini_escape_html0, non-secure mode); "&amp;" goes last.
_HTML_ESCAPES = ((b"&lt;", b"<"), (b"&gt;", b">"), (b"&quot;", b'"'), (b"&amp;", b"&"))


# Two versions of a diagram whose lines are at least this similar are one diagram, modified.
MODIFIED_SIMILARITY = 0.5

# cmark_markdown_to_html returns a buffer from its default allocator (the C library's calloc) that the
# caller must free; the bindings never do, which leaks the whole HTML on every call.
_libc_free = ctypes.CDLL(None).free
_libc_free.argtypes = [ctypes.c_void_p]
_libc_free.restype = None


def is_markdown_path(path: str) -> bool:
    """True for the file names GitHub renders as Markdown here (``.md``, ``.markdown``, any case)."""
    return path.lower().endswith(MARKDOWN_SUFFIXES)


def _utf8(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        return text
    # "replace" keeps a lone surrogate (from a lossy decode upstream) from aborting the whole file.
    return text.encode("utf-8", "replace")


def _may_hold_fence(data: bytes) -> bool:
    return _FENCE_MARKS[0] in data or _FENCE_MARKS[1] in data


def _render(data: bytes, options: int) -> bytes:
    raw = _cmark.lib.cmark_markdown_to_html(data, len(data), options)
    try:
        return _cmark.ffi.string(raw)
    finally:
        _libc_free(int(_cmark.ffi.cast("uintptr_t", raw)))


def _unescape(escaped: bytes) -> str:
    if b"&" in escaped:
        for entity, char in _HTML_ESCAPES:
            escaped = escaped.replace(entity, char)
    return escaped.decode("utf-8", "replace")


def count_diagrams(text: str | bytes) -> int:
    """Number of mermaid fences in a Markdown document (UTF-8 bytes are accepted to skip a decode)."""
    data = _utf8(text)
    if not _may_hold_fence(data):
        return 0
    return _render(data, _OPT_COUNT).count(_MERMAID_CODE_TAG)


def extract_diagrams(path: str, text: str | bytes) -> tuple[Diagram, ...]:
    """Every fenced code block whose info string's first word is exactly ``mermaid``, in document order.

    ``code`` is the block's content as CommonMark defines it (container prefixes and the fence's indentation
    removed, every line ending in a newline, CR LF and CR read as line endings, NUL as U+FFFD); content lines
    sit on the consecutive file lines after the opening fence. A leading byte order mark is ignored, as
    GitHub ignores it.
    """
    data = _utf8(text)
    if not _may_hold_fence(data):
        return ()
    html = _render(data, _OPT_EXTRACT)
    diagrams: list[Diagram] = []
    containers: tuple[list[int], list[int]] | None = None
    found = html.find(_MERMAID_CODE_OPEN)
    while found != -1:
        position = _SOURCEPOS.match(html, html.rfind(_PRE_OPEN, 0, found) + len(_PRE_OPEN))
        assert position is not None, "cmark wrote a <pre> without its source position"
        start, end = int(position[1]), int(position[2])
        after_class = found + len(_MERMAID_CODE_OPEN)
        meta = _META.match(html, after_class)
        code_start = (meta.end() if meta else after_class) + 1
        code_end = html.find(_CODE_CLOSE, code_start)
        code = _unescape(html[code_start:code_end])
        n_lines = code.count("\n")
        closing_line = start + n_lines + 1
        # cmark reports the line after the content as the block's end both when that line is the closing
        # fence and when it is the line that ended an enclosing block quote or list item; in the second case
        # that container ends before it.
        closed = end == closing_line
        if closed:
            if containers is None:
                containers = _containers_by_end(html)
            closed = not _container_ends_within(containers, start, closing_line)
        diagrams.append(
            Diagram(
                path=path,
                line=start,
                code=code,
                line_map=tuple(range(start + 1, start + 1 + n_lines)),
                info=MERMAID_INFO + " " + _unescape(meta[1]) if meta else MERMAID_INFO,
                index=len(diagrams),
                closed=closed,
            )
        )
        found = html.find(_MERMAID_CODE_OPEN, code_end)
    return tuple(diagrams)


def _containers_by_end(html: bytes) -> tuple[list[int], list[int]]:
    """The (end lines, start lines) of every block quote and list item, in order of their end line."""
    spans = sorted((int(e), int(s)) for s, e in _CONTAINER.findall(html))
    return [e for e, _ in spans], [s for _, s in spans]


def _container_ends_within(containers: tuple[list[int], list[int]], start: int, closing_line: int) -> bool:
    """Whether a container holding line ``start`` ends before ``closing_line`` (a document has thousands of
    list items: only those ending between the two lines are looked at)."""
    ends, starts = containers
    first, last = bisect_left(ends, start), bisect_left(ends, closing_line)
    return any(starts[k] <= start for k in range(first, last))


def _similarity(old: Diagram, new: Diagram) -> float:
    return difflib.SequenceMatcher(None, old.code.splitlines(), new.code.splitlines(), autojunk=False).ratio()


def diff_diagrams(old: Sequence[Diagram], new: Sequence[Diagram]) -> tuple[DiagramChange, ...]:
    """Pair the diagrams of two versions of a file (or of a renamed file's old and new path).

    Identical code at the same index is unchanged, identical code elsewhere moved; of the rest, the most
    similar old/new pairs (at least ``MODIFIED_SIMILARITY`` of their lines alike) and then pairs left at the
    same index are modified; whatever remains is added or removed. Ordered by position in the new file,
    removed diagrams last in their old order.
    """
    changes: dict[int, DiagramChange] = {}
    old_left = dict(enumerate(old))
    new_left = dict(enumerate(new))

    for i, diagram in list(new_left.items()):
        previous = old_left.get(i)
        if previous is not None and previous.code == diagram.code:
            changes[i] = DiagramChange(DiagramStatus.UNCHANGED, diagram, previous)
            del old_left[i], new_left[i]

    for i, diagram in list(new_left.items()):
        # Nearest identical old diagram, so a reorder pairs each diagram with its own earlier copy.
        same = [j for j, candidate in old_left.items() if candidate.code == diagram.code]
        if same:
            j = min(same, key=lambda k: (abs(k - i), k))
            changes[i] = DiagramChange(DiagramStatus.MOVED, diagram, old_left.pop(j))
            del new_left[i]

    scored = sorted(
        (
            (-score, abs(i - j), i, j)
            for i, diagram in new_left.items()
            for j, candidate in old_left.items()
            if (score := _similarity(candidate, diagram)) >= MODIFIED_SIMILARITY
        )
    )
    for _, _, i, j in scored:
        if i in new_left and j in old_left:
            changes[i] = DiagramChange(DiagramStatus.MODIFIED, new_left.pop(i), old_left.pop(j))
    for i in sorted(new_left):
        if i in old_left:
            changes[i] = DiagramChange(DiagramStatus.MODIFIED, new_left.pop(i), old_left.pop(i))

    for i, diagram in new_left.items():
        changes[i] = DiagramChange(DiagramStatus.ADDED, diagram)
    ordered = [changes[i] for i in sorted(changes)]
    ordered.extend(DiagramChange(DiagramStatus.REMOVED, None, old_left[j]) for j in sorted(old_left))
    return tuple(ordered)
