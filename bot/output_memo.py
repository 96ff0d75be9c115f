"""Whole ``check --all`` outputs, remembered by everything that decides them: checking a revision already
checked prints the answer without loading the gates, the revision's files or mermaid (start-up, one git call
and one SQLite read).

What decides the output: the commit (its tree holds the files and the repository's configuration), the bytes
of a ``--config`` file, the output format and colour, and this installation: every source file of the bot
package (code, the mermaid worker, the mermaid pin), the default rules and the installed mermaid's package.
The caller stores only settled results (no mermaid timeout or crash, no gate cut short by its time budget).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from bot.gitrepo import commit_id
from bot.paths import data_dir, default_rules_dir, mermaid_dir

MEMO_FILE = "check-outputs.sqlite3"
MAX_OUTPUTS = 8  # a few revisions and formats; the least recently used go first
_SOURCE_SUFFIXES = (".py", ".mjs", ".json", ".yml", ".yaml")
_SKIPPED_DIRS = {"node_modules", "__pycache__"}


@dataclass(frozen=True)
class MemoOutput:
    exit_code: int
    output: str


def memo_key(repo: Path, rev: str, *, output_format: str, color: bool, config_file: Path | None) -> str | None:
    """The key of ``check --all --rev REV`` of ``repo`` in this format, or None when it cannot be worked out
    cheaply (not a repository, an unknown revision, an unreadable --config): the run then goes the long way."""
    commit = commit_id(repo, rev)
    if commit is None:
        return None
    digest = hashlib.sha256(f"{commit}\0{output_format}\0{color}\0".encode())
    if config_file is not None:
        try:
            digest.update(config_file.read_bytes())
        except OSError:
            return None
    digest.update(b"\0" + installation_digest().encode())
    return digest.hexdigest()


def installation_digest() -> str:
    """SHA-256 over this installation's source files, default rules and installed mermaid package (names and
    bytes): any change to what computes a check gives another digest."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parent
    mermaid = mermaid_dir().resolve()
    files = [*_source_files(package), *_source_files(default_rules_dir()),
             *([] if mermaid.is_relative_to(package) else _source_files(mermaid)),  # read with the package
             mermaid / "node_modules" / "mermaid" / "package.json"]
    for path in files:
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"\0missing\0")
    return digest.hexdigest()


def lookup(key: str) -> MemoOutput | None:
    path = data_dir() / MEMO_FILE
    if not path.is_file():
        return None
    with _Transaction(path) as db:
        row = db.execute("SELECT exit_code, output FROM outputs WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        db.execute("UPDATE outputs SET used = ? WHERE key = ?", (time.time(), key))
    return MemoOutput(row[0], zlib.decompress(row[1]).decode("utf-8"))


def store(key: str, exit_code: int, output: str) -> None:
    path = data_dir() / MEMO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with _Transaction(path) as db:
        db.execute("INSERT OR REPLACE INTO outputs (key, exit_code, output, used) VALUES (?, ?, ?, ?)",
                   (key, exit_code, zlib.compress(output.encode("utf-8"), 1), time.time()))
        db.execute("DELETE FROM outputs WHERE key NOT IN (SELECT key FROM outputs ORDER BY used DESC LIMIT ?)",
                   (MAX_OUTPUTS,))


class _Transaction:
    """One short transaction on the memo database (WAL: concurrent runs read while one writes)."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS outputs (key TEXT PRIMARY KEY, exit_code INTEGER NOT NULL,"
                        " output BLOB NOT NULL, used REAL NOT NULL)")
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            self.db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self.db.close()


def _source_files(root: Path) -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        found.extend(Path(folder) / name for name in sorted(names) if name.endswith(_SOURCE_SUFFIXES))
    return found
