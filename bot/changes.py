"""What a pull request did to the diagrams of a repository's Markdown files: git (bot.gitrepo) meets content.

A pull request is judged the way GitHub shows it: from the merge base of base and head to head, so diagrams
that changed only on the base branch after the branch point are not the pull request's. A file that cannot
be read as Markdown (binary, not UTF-8, too large) gets a skip reason in words instead of diagrams.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

from bot.content import diff_diagrams, extract_diagrams, is_markdown_path
from bot.gitrepo import ChangedPath, GitError, GitRepo
from bot.model import Diagram, DiagramChange, DiagramStatus, FileChange

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 1_000_000
# git's own test: a NUL byte among the first 8000 bytes makes a file binary.
BINARY_SNIFF_BYTES = 8000
UTF8_BOM = "\ufeff"

SKIP_BINARY = "binary file"
SKIP_NOT_UTF8 = "not valid UTF-8 (byte 0x{byte:02x} at offset {offset})"
SKIP_TOO_LARGE = "{size} is over the {limit} limit"
MSG_MISSING_BLOBS = "{count} blob(s) missing from {path}, e.g. {sha}"

# (text, skip reason): exactly one of the two is set.
_Read = tuple[str | None, str | None]


def _human_size(size: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("kB", 1_000)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size} bytes"


def too_large_reason(size: int, limit: int) -> str:
    """"1.4 MB is over the 1 MB limit" (exact byte counts when rounding would make the two look equal)."""
    shown, limit_shown = _human_size(size), _human_size(limit)
    if shown == limit_shown:
        shown, limit_shown = f"{size:,} bytes", f"{limit:,}-byte"
    return SKIP_TOO_LARGE.format(size=shown, limit=limit_shown)


def decode_markdown(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> _Read:
    """A blob's text (UTF-8, byte order mark dropped), or why it is not read as Markdown."""
    if len(data) > max_bytes:
        return None, too_large_reason(len(data), max_bytes)
    if b"\0" in data[:BINARY_SNIFF_BYTES]:
        return None, SKIP_BINARY
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, SKIP_NOT_UTF8.format(byte=data[error.start], offset=error.start)
    return text.removeprefix(UTF8_BOM), None


def _require(repo: GitRepo, wanted: set[str], found: Iterable[str]) -> None:
    missing = wanted.difference(found)
    if missing:
        raise GitError(MSG_MISSING_BLOBS.format(count=len(missing), path=repo.path, sha=min(missing)))


def _read_checked(repo: GitRepo, blobs: set[str], max_bytes: int) -> dict[str, _Read]:
    """Decode the blobs that will be checked; oversized ones are never loaded."""
    sizes = repo.blob_sizes(blobs)
    _require(repo, blobs, sizes)
    reads: dict[str, _Read] = {
        sha: (None, too_large_reason(size, max_bytes)) for sha, size in sizes.items() if size > max_bytes
    }
    for sha, data in repo.read_blobs(sha for sha in sizes if sha not in reads).items():
        reads[sha] = decode_markdown(data, max_bytes)
    return reads


def _old_diagrams(path: str, data: bytes | None) -> tuple[Diagram, ...]:
    """Diagrams of a base version, read leniently: they are only compared against, never checked, so an
    old version that is large or not clean UTF-8 still pairs its diagrams (as the progress count sees them)."""
    if data is None:
        return ()
    return extract_diagrams(path, data.decode("utf-8", "replace").removeprefix(UTF8_BOM))


def _as_markdown(change: ChangedPath) -> ChangedPath | None:
    """The change as seen from Markdown: a rename across the Markdown boundary is an add or a delete."""
    new_md = change.change != "D" and is_markdown_path(change.path)
    old_path = change.old_path or change.path
    old_md = change.change != "A" and is_markdown_path(old_path)
    if new_md and (old_md or change.change == "A"):
        return change
    if new_md:
        return ChangedPath(change.path, "A", new_blob=change.new_blob)
    if old_md:
        return ChangedPath(old_path, "D", old_blob=change.old_blob)
    return None


def collect_changes(
    repo: GitRepo, base: str, head: str, *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[FileChange, ...]:
    """Changed Markdown files (``.md``, ``.markdown``) from merge-base(base, head) to head, by path, each with
    its diagrams classified by :func:`bot.content.diff_diagrams`.

    Renames are followed (a moved file's unchanged diagrams stay unchanged); a deleted file lists all its
    diagrams as removed; a head version that is binary, not UTF-8 or over ``max_bytes`` gets ``skip_reason``
    and no diagrams (an old version is read whatever it is, since it is only compared against).
    """
    head_sha = repo.resolve(head)
    start = repo.merge_base(base, head_sha)
    changed = [c for c in map(_as_markdown, repo.changed_paths(start, head_sha)) if c is not None]
    old_blobs = {c.old_blob for c in changed if c.old_blob}
    old_data = repo.read_blobs(old_blobs)
    _require(repo, old_blobs, old_data.keys())
    new_reads = _read_checked(repo, {c.new_blob for c in changed if c.new_blob}, max_bytes)
    files = []
    for change in changed:
        old = _old_diagrams(change.old_path or change.path, old_data.get(change.old_blob or ""))
        if change.change == "D":
            files.append(FileChange(change.path, "D", diagrams=diff_diagrams(old, ())))
            continue
        text, reason = new_reads[change.new_blob or ""]
        if text is None:
            log.info("skipping %s at %s: %s", change.path, head_sha[:12], reason)
            files.append(FileChange(change.path, change.change, change.old_path, skip_reason=reason))
            continue
        new = extract_diagrams(change.path, text)
        files.append(FileChange(change.path, change.change, change.old_path, diff_diagrams(old, new), text=text))
    return tuple(sorted(files, key=lambda f: f.path))


def collect_all(
    repo: GitRepo, rev: str, *, max_bytes: int = DEFAULT_MAX_BYTES, under: str = ""
) -> tuple[FileChange, ...]:
    """Every Markdown file at ``rev`` (below folder ``under``; "" = whole tree), by path: ``whole_files``."""
    return whole_files(repo, repo.list_files(rev, under), max_bytes=max_bytes)


def whole_files(
    repo: GitRepo, files_at: Sequence[tuple[str, str]], *, max_bytes: int = DEFAULT_MAX_BYTES,
    known: Mapping[tuple[str, str], Sequence[Diagram]] = MappingProxyType({}),
) -> tuple[FileChange, ...]:
    """The files of a tree listing ((path, blob id), as ``GitRepo.list_files`` gives it), each checked whole:
    all its diagrams with status CHECKED and its blob id, or its skip reason. ``change`` is "A": with no base,
    every file is new to the check. ``known`` gives the diagrams of files whose results are stored, by (path,
    blob id): those are neither read nor extracted (their ``text`` is empty)."""
    reads = _read_checked(repo, {sha for path, sha in files_at if (path, sha) not in known}, max_bytes)
    return tuple(_seen_file(path, sha, known[(path, sha)]) if (path, sha) in known
                 else _whole_file(path, reads[sha], blob=sha) for path, sha in files_at)


def _seen_file(path: str, blob: str, diagrams: Sequence[Diagram]) -> FileChange:
    return FileChange(path, "A", diagrams=tuple(DiagramChange(DiagramStatus.CHECKED, d) for d in diagrams), blob=blob)


def _whole_file(path: str, read: _Read, *, blob: str | None = None) -> FileChange:
    """A file checked as a whole (no base): all its diagrams CHECKED, or its skip reason."""
    text, reason = read
    if text is None:
        return FileChange(path, "A", skip_reason=reason)
    diagrams = tuple(DiagramChange(DiagramStatus.CHECKED, d) for d in extract_diagrams(path, text))
    return FileChange(path, "A", diagrams=diagrams, text=text, blob=blob)


def texts_at(repo: GitRepo, rev: str, paths: Iterable[str]) -> dict[str, str]:
    """Texts of the files that exist at ``rev`` (undecodable bytes replaced): the sources findings point into."""
    texts = {}
    for path in sorted(set(paths)):
        raw = repo.read_blob(rev, path)
        if raw is not None:
            texts[path] = raw.decode("utf-8", errors="replace")
    return texts


def collect_paths(
    root: Path, paths: Iterable[Path], *, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[FileChange, ...]:
    """Markdown files read from disk, no git involved: each path a file or a folder (every Markdown file
    below it), named relative to ``root`` when inside it. Every diagram has status CHECKED, as for ``--all``."""
    root = root.resolve()
    found: dict[str, Path] = {}
    for given in paths:
        if not given.exists():
            raise FileNotFoundError(str(given))
        # A folder's git directory holds no Markdown of the project (and may hold much else).
        files = [given] if given.is_file() else [
            p for p in given.rglob("*") if p.is_file() and ".git" not in p.relative_to(given).parts]
        for file in files:
            absolute = file.resolve()
            if not is_markdown_path(file.name):
                continue
            name = absolute.relative_to(root).as_posix() if absolute.is_relative_to(root) else absolute.as_posix()
            found[name] = absolute
    return tuple(_whole_file(name, decode_markdown(found[name].read_bytes(), max_bytes)) for name in sorted(found))
