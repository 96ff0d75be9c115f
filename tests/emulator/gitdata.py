"""What the emulator reads from the local git repositories standing in for GitHub's: shas, blobs, PR diffs.

Pull request files are computed the way GitHub does: ``git diff`` from the merge base of base and head to the
head, one entry per file with GitHub's status words and the patch without its file headers.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

STATUS_WORDS = {"A": "added", "D": "removed", "M": "modified", "R": "renamed", "C": "copied", "T": "changed"}
ZERO_SHA = "0" * 40


class GitDataError(Exception):
    """git could not answer (unknown revision, missing path)."""


@dataclass(frozen=True)
class DiffFile:
    filename: str
    status: str
    previous_filename: str | None
    patch: str | None
    additions: int
    deletions: int
    sha: str


def git(path: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise GitDataError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout


def resolve(path: Path, rev: str) -> str:
    return git(path, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()


def read_blob(path: Path, rev: str, file_path: str) -> bytes | None:
    done = subprocess.run(["git", "-C", str(path), "cat-file", "blob", f"{rev}:{file_path}"],
                          capture_output=True, check=False)
    return done.stdout if done.returncode == 0 else None


def list_tree(path: Path, rev: str, directory: str) -> list[tuple[str, str, str]] | None:
    """(kind "blob"/"tree", sha, path) of a directory's entries; None when it is not a directory."""
    spec = f"{rev}:{directory}" if directory else f"{rev}^{{tree}}"
    try:
        kind = git(path, "cat-file", "-t", spec).strip()
    except GitDataError:
        return None
    if kind != "tree":
        return None
    entries = []
    for line in git(path, "ls-tree", rev, "--", f"{directory}/" if directory else ".").splitlines():
        meta, name = line.split("\t", 1)
        _, entry_kind, sha = meta.split()
        entries.append((entry_kind, sha, name))
    return entries


@lru_cache(maxsize=256)
def diff_files(path: Path, base: str, head: str) -> tuple[DiffFile, ...]:
    """The files of a pull request from ``base`` to ``head`` (both shas, so the answer can be cached)."""
    merge_base = git(path, "merge-base", base, head).strip()
    tokens = git(path, "-c", "core.quotePath=false", "diff", "--name-status", "-z", "-M", merge_base, head)
    tokens_list = tokens.split("\0")
    files: list[DiffFile] = []
    index = 0
    while index < len(tokens_list) and tokens_list[index]:
        letter = tokens_list[index][0]
        if letter in "RC":
            old, new = tokens_list[index + 1], tokens_list[index + 2]
            index += 3
        else:
            old, new = None, tokens_list[index + 1]
            index += 2
        paths = [p for p in (old, new) if p]
        raw = git(path, "-c", "core.quotePath=false", "diff", "--no-color", "--no-ext-diff", "-M",
                  merge_base, head, "--", *paths)
        patch = _hunks_only(raw)
        added = sum(1 for line in (patch or "").split("\n") if line.startswith("+"))
        removed = sum(1 for line in (patch or "").split("\n") if line.startswith("-"))
        sha = ZERO_SHA if letter == "D" else git(path, "rev-parse", f"{head}:{new}").strip()
        files.append(DiffFile(new, STATUS_WORDS.get(letter, "modified"), old, patch, added, removed, sha))
    return tuple(files)


def _hunks_only(raw: str) -> str | None:
    """GitHub's ``patch``: the hunks without the ``diff --git``/``---``/``+++`` headers; None for binaries."""
    lines = raw.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("@@"):
            return "\n".join(lines[index:]).rstrip("\n")
    return None


def diff_sides(patch: str | None) -> tuple[set[int], list[set[int]]]:
    """LEFT lines (removed and context) and, per hunk, RIGHT lines (added and context) of a patch."""
    left: set[int] = set()
    hunks: list[set[int]] = []
    old = new = 0
    for line in (patch or "").split("\n"):
        if line.startswith("@@"):
            ranges = line.split("@@")[1].split()
            old = int(ranges[0][1:].split(",")[0])
            new = int(ranges[1][1:].split(",")[0])
            hunks.append(set())
        elif not hunks or line.startswith("\\"):
            continue
        elif line.startswith("-"):
            left.add(old)
            old += 1
        elif line.startswith("+"):
            hunks[-1].add(new)
            new += 1
        else:
            left.add(old)
            hunks[-1].add(new)
            old += 1
            new += 1
    return left, hunks
