"""The one module that talks to git: revisions, diffs, trees and blobs of a repository, and the App's mirrors.

Everything is read from the object database (``cat-file``, ``ls-tree``, ``diff-tree``): nothing is checked
out, no hook, filter, diff driver or textconv from the repository runs, so a pull request's content is only
ever read, never executed. Credentials for a fetch travel in the environment of that one git process as an
``http.extraheader`` config entry: never in a URL, the repository's config, a command line or a log.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bot.content import MARKDOWN_SUFFIXES

if TYPE_CHECKING:
    # GitPython is imported where a repository is opened: it takes ~80 ms, a third of a `check --all` answered
    # from its remembered output, which needs only commit_id (one git process).
    import git

log = logging.getLogger(__name__)

BRANCHES_REFSPEC = "+refs/heads/*:refs/heads/*"
PULL_REFS = "refs/pull/"
MIRROR_SUFFIX = ".git"
GITLINK_MODE = "160000"
_FULL_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_ORIGIN = "origin"

UNCOMMITTED_SUBJECT = "atlas-bot: uncommitted changes"
MARKDOWN_PATHSPECS = tuple(f":(glob,icase)**/*{suffix}" for suffix in MARKDOWN_SUFFIXES)
# commit-tree needs an identity; the throw-away commit of uncommitted changes must not depend on the user's.
_IDENTITY_ENV = {"GIT_AUTHOR_NAME": "atlas-bot", "GIT_AUTHOR_EMAIL": "atlas-bot@localhost",
                 "GIT_COMMITTER_NAME": "atlas-bot", "GIT_COMMITTER_EMAIL": "atlas-bot@localhost"}

MSG_NOT_A_REPO = "not a git repository: {path}"
MSG_UNKNOWN_REV = "unknown revision {rev!r} in {path}"
MSG_BAD_REV = "invalid revision {rev!r}: a revision cannot start with '-' or contain a newline"
MSG_NO_MERGE_BASE = "{a} and {b} have no common ancestor in {path}"
MSG_BAD_FULL_NAME = "repository name {name!r} is not of the form owner/name"
MSG_URL_CREDENTIALS = "clone URL for {name} carries credentials; pass the token separately"
MSG_BAD_REFSPEC = "invalid refspec {refspec!r}"
MSG_GIT_FAILED = "git {what} failed in {path}: {reason}"
MSG_NOT_AN_OBJECT_ID = "not an object id: {sha!r}"


@dataclass(frozen=True)
class CommitInfo:
    """One commit as a history reader needs it: id, first parent, committer time (Unix seconds), subject."""

    sha: str
    parent: str | None
    committed_at: int
    subject: str


class GitError(Exception):
    """A git operation failed; the message says which and why (never with credentials in it)."""


@dataclass(frozen=True)
class ChangedPath:
    """One path in a diff between two commits: ``change`` is A, M, D or R (type changes count as M).

    ``old_blob``/``new_blob`` are the blob ids on each side (None where the side does not exist).
    """

    path: str
    change: str
    old_path: str | None = None
    old_blob: str | None = None
    new_blob: str | None = None


def _is_valid_rev(rev: str) -> bool:
    """Not empty, and nothing git would read as an option or as more than one argument."""
    return bool(rev) and not rev.startswith("-") and "\n" not in rev and "\0" not in rev


def _check_rev(rev: str) -> str:
    if not _is_valid_rev(rev):
        raise GitError(MSG_BAD_REV.format(rev=rev))
    return rev


def _reason(error: git.GitCommandError) -> str:
    stderr = (error.stderr or "").strip().replace("stderr: ", "", 1).strip("'\" \n")
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else f"exit status {error.status}"


def _auth_env(token: str | None) -> dict[str, str]:
    """Environment for one git process: no prompts, no credential helpers, and the token as a header."""
    env = {"GIT_TERMINAL_PROMPT": "0"}
    entries = [("credential.helper", "")]
    if token:
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode("ascii")
        entries.append(("http.extraheader", f"AUTHORIZATION: basic {basic}"))
    # Keep config entries the caller's environment already passes this way (GitHub Actions does).
    first = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    for offset, (key, value) in enumerate(entries):
        env[f"GIT_CONFIG_KEY_{first + offset}"] = key
        env[f"GIT_CONFIG_VALUE_{first + offset}"] = value
    env["GIT_CONFIG_COUNT"] = str(first + len(entries))
    return env


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialise fetches into one mirror across threads and processes (git's own ref locks would fail)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def commit_id(path: str | os.PathLike[str], rev: str) -> str | None:
    """The full commit id ``rev`` names in the repository at ``path``, or None (not a repository, no such
    commit, git missing), from one git process: for a caller that needs only that, without a GitRepo."""
    if not _is_valid_rev(rev):
        return None
    command = ["git", "-C", os.fspath(path), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False,
                              env={**os.environ, **_auth_env(None)})
    except OSError:
        return None
    sha = done.stdout.strip()
    return sha if done.returncode == 0 and sha else None


class GitRepo:
    """A git repository (work tree or bare) read through its object database."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import git

        self.path = Path(path)
        try:
            self._repo = git.Repo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
            raise GitError(MSG_NOT_A_REPO.format(path=self.path)) from error
        self._git = self._repo.git
        # GitPython's persistent cat-file processes are not thread-safe.
        self._cat_lock = threading.Lock()
        self._commits: dict[str, str] = {}

    def __enter__(self) -> GitRepo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the persistent ``cat-file`` processes."""
        self._repo.close()

    def __repr__(self) -> str:
        return f"GitRepo({str(self.path)!r})"

    def _run(self, what: str, *args: str, **kwargs: object) -> str:
        import git

        try:
            return getattr(self._git, what.replace("-", "_"))(*args, **kwargs)
        except git.GitCommandError as error:
            raise GitError(MSG_GIT_FAILED.format(what=what, path=self.path, reason=_reason(error))) from error

    def _run_bytes(self, what: str, *args: str) -> bytes:
        return self._run(what, *args, stdout_as_string=False, strip_newline_in_stdout=False)  # type: ignore[return-value]

    # Revisions -------------------------------------------------------------------------------------------

    def resolve(self, rev: str) -> str:
        """The full commit id ``rev`` names; GitError when it names no commit here."""
        cached = self._commits.get(rev)
        if cached is not None:
            return cached
        status, out, _ = self._git.rev_parse(
            "--verify", "--quiet", f"{_check_rev(rev)}^{{commit}}", with_extended_output=True, with_exceptions=False
        )
        if status != 0 or not out:
            raise GitError(MSG_UNKNOWN_REV.format(rev=rev, path=self.path))
        sha = out.strip()
        if rev == sha:
            self._commits[sha] = sha  # only full ids are cached: branch names move
        return sha

    def merge_base(self, a: str, b: str) -> str:
        """The best common ancestor of two commits (what a pull request's diff starts from)."""
        sha_a, sha_b = self.resolve(a), self.resolve(b)
        status, out, err = self._git.merge_base(sha_a, sha_b, with_extended_output=True, with_exceptions=False)
        if status == 1 and not out:
            raise GitError(MSG_NO_MERGE_BASE.format(a=a, b=b, path=self.path))
        if status != 0:
            raise GitError(MSG_GIT_FAILED.format(what="merge-base", path=self.path, reason=err.strip()))
        return out.split()[0]

    def is_ancestor(self, a: str, b: str) -> bool:
        """True when commit ``a`` is ``b`` or one of its ancestors."""
        sha_a, sha_b = self.resolve(a), self.resolve(b)
        status, _, err = self._git.merge_base(
            "--is-ancestor", sha_a, sha_b, with_extended_output=True, with_exceptions=False
        )
        if status not in (0, 1):
            raise GitError(MSG_GIT_FAILED.format(what="merge-base --is-ancestor", path=self.path, reason=err.strip()))
        return status == 0

    def first_parent_log(self, since: str | None, head: str, *, limit: int = 50) -> list[CommitInfo]:
        """Commits on ``head``'s first-parent line after ``since`` (newest first): the merges into a branch."""
        revs = f"{self.resolve(since)}..{self.resolve(head)}" if since else self.resolve(head)
        out = self._run("log", "--first-parent", f"--max-count={limit}", "--format=%H%x00%P%x00%ct%x00%s", revs)
        commits = []
        for line in out.splitlines():
            sha, parents, stamp, subject = line.split("\x00", 3)
            commits.append(CommitInfo(sha, parents.split()[0] if parents else None, int(stamp), subject))
        return commits

    # Diffs and trees -------------------------------------------------------------------------------------

    def changed_paths(self, base: str, head: str) -> list[ChangedPath]:
        """Files that differ between two commits, renames detected (git's default 50% similarity)."""
        out = self._run_bytes(
            "diff-tree", "-r", "-z", "--raw", "--no-abbrev", "-M", self.resolve(base), self.resolve(head)
        )
        fields = out.split(b"\0")
        changes: list[ChangedPath] = []
        i = 0
        while i < len(fields) - 1:
            meta = fields[i].decode("ascii").lstrip(":").split()
            old_mode, new_mode, old_sha, new_sha, status = meta
            letter = status[0]
            if letter in ("R", "C"):
                old_path, path = _decode_path(fields[i + 1]), _decode_path(fields[i + 2])
                i += 3
            else:
                old_path, path = None, _decode_path(fields[i + 1])
                i += 2
            if GITLINK_MODE in (old_mode, new_mode):
                continue  # a submodule pointer is not a file of this repository
            change = {"T": "M", "C": "A"}.get(letter, letter)
            changes.append(
                ChangedPath(
                    path=path,
                    change=change,
                    old_path=old_path if change == "R" else None,
                    old_blob=None if change == "A" else old_sha,
                    new_blob=None if change == "D" else new_sha,
                )
            )
        return changes

    def list_files(
        self, rev: str, under: str = "", suffix: str | tuple[str, ...] = MARKDOWN_SUFFIXES
    ) -> list[tuple[str, str]]:
        """(path, blob id) of every file at ``rev`` below folder ``under`` ("" = whole tree) whose name ends
        with ``suffix`` (case-insensitive), sorted by path."""
        suffixes = tuple(s.lower() for s in ((suffix,) if isinstance(suffix, str) else suffix))
        args = ["-r", "-z", "--full-tree", self.resolve(rev)]
        if under.strip("/"):
            args += ["--", under.strip("/") + "/"]
        out = self._run_bytes("ls-tree", *args)
        files = []
        for entry in out.split(b"\0"):
            if not entry:
                continue
            meta, _, raw_path = entry.partition(b"\t")
            _, kind, sha = meta.decode("ascii").split()
            path = _decode_path(raw_path)
            if kind == "blob" and path.lower().endswith(suffixes):
                files.append((path, sha))
        return sorted(files)

    # Blobs -----------------------------------------------------------------------------------------------

    def read_blob(self, rev: str, path: str) -> bytes | None:
        """The bytes of ``path`` at commit ``rev``; None when no file is there."""
        commit = self.resolve(rev)
        if "\n" in path:
            # cat-file's batch protocol is line-based: look the blob id up with ls-tree instead.
            entry = self._run_bytes("ls-tree", "-z", "--full-tree", commit, "--", path).rstrip(b"\0")
            meta = entry.partition(b"\t")[0].split()
            if len(meta) != 3 or meta[1] != b"blob":
                return None
            sha = meta[2].decode("ascii")
            return self.read_blobs([sha]).get(sha)
        with self._cat_lock:
            try:
                _, kind, _, data = self._git.get_object_data(f"{commit}:{path}")
            except ValueError:
                return None  # cat-file answered "missing"
        # GitPython hands the type back as bytes although it is annotated as str.
        return data if kind in (b"blob", "blob") else None

    def _cat_file(self, mode: str, shas: Iterable[str]) -> bytes:
        """One ``git cat-file --batch[-check]`` process for all distinct ids (far faster than one round trip
        each); no process at all for none."""
        wanted = sorted(set(shas))
        if not wanted:
            return b""
        for sha in wanted:
            if not _SHA.match(sha):
                raise GitError(MSG_NOT_AN_OBJECT_ID.format(sha=sha))
        process = self._git.cat_file(mode, "--buffer", as_process=True, istream=subprocess.PIPE)
        out, err = process.proc.communicate("".join(f"{sha}\n" for sha in wanted).encode("ascii"))
        if process.proc.returncode != 0:
            raise GitError(MSG_GIT_FAILED.format(what=f"cat-file {mode}", path=self.path, reason=err.decode().strip()))
        return out

    def blob_sizes(self, shas: Iterable[str]) -> dict[str, int]:
        """Size in bytes of each blob that exists (objects that are missing or not blobs are left out)."""
        sizes = {}
        for line in self._cat_file("--batch-check", shas).decode("ascii").splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] == "blob":
                sizes[parts[0]] = int(parts[2])
        return sizes

    def read_blobs(self, shas: Iterable[str]) -> dict[str, bytes]:
        """The bytes of each blob that exists (missing ids and non-blobs are left out)."""
        out = self._cat_file("--batch", shas)
        blobs: dict[str, bytes] = {}
        position = 0
        while position < len(out):
            header_end = out.index(b"\n", position)
            parts = out[position:header_end].split()
            position = header_end + 1
            if len(parts) != 3:
                continue  # "<id> missing"
            size = int(parts[2])
            if parts[1] == b"blob":
                blobs[parts[0].decode("ascii")] = out[position : position + size]
            position += size + 1
        return blobs

    # Uncommitted changes ---------------------------------------------------------------------------------

    @property
    def work_tree(self) -> Path | None:
        """The work tree's top folder; None for a bare repository (the App's mirrors)."""
        return None if self._repo.bare else Path(self._repo.working_tree_dir or self.path)

    def uncommitted(self, *, staged_only: bool) -> str:
        """A commit holding what ``git commit`` would record now: the index (``staged_only``) or the whole work
        tree, untracked files that are not ignored included. HEAD itself when that equals HEAD's tree.

        The commit is a loose object that no ref points to (git gc removes it); the repository's index, refs
        and files are left as they are.
        """
        head = self.resolve("HEAD")
        if staged_only:
            tree = self._run("write-tree")
        else:
            # A private copy of the index, so the user's staging area stays as it is.
            git_dir = Path(self._run("rev-parse", "--absolute-git-dir"))
            with tempfile.TemporaryDirectory(prefix="atlas-index-") as scratch:
                index = Path(scratch) / "index"
                if (git_dir / "index").exists():
                    shutil.copyfile(git_dir / "index", index)
                env = {"GIT_INDEX_FILE": str(index)}
                # Only Markdown edits matter to a check: other untracked files (builds, binaries) are not
                # hashed into the object database.
                edited = self._run("ls-files", "-z", "--others", "--modified", "--deleted", "--exclude-standard",
                                   "--", *MARKDOWN_PATHSPECS, env=env)
                if edited:
                    listing = Path(scratch) / "paths"
                    listing.write_text(edited, encoding="utf-8", errors="surrogateescape")
                    self._run("add", "--all", f"--pathspec-from-file={listing}", "--pathspec-file-nul", env=env)
                tree = self._run("write-tree", env=env)
        if tree == self._run("rev-parse", f"{head}^{{tree}}"):
            return head
        return self._run("commit-tree", tree, "-p", head, "-m", UNCOMMITTED_SUBJECT, env=_IDENTITY_ENV)

    # Mirrors for the App ---------------------------------------------------------------------------------

    @classmethod
    def mirror(cls, cache_dir: Path, full_name: str, clone_url: str, token: str | None) -> GitRepo:
        """Open the bare mirror of ``full_name`` under ``cache_dir``, creating it (and fetching its branches
        with ``token``) when it does not exist yet. Later updates are explicit :meth:`fetch` calls, so a job
        fetches only the refs it needs."""
        import git

        parts = urlsplit(clone_url)
        if parts.scheme in ("http", "https") and (parts.username or parts.password):
            raise GitError(MSG_URL_CREDENTIALS.format(name=full_name))
        path = mirror_path(cache_dir, full_name)
        with _file_lock(path.with_suffix(".lock")):
            created = not (path / "HEAD").exists()
            if created:
                log.info("creating mirror of %s in %s", full_name, path)
                git.Repo.init(path, mkdir=True, bare=True)
            with git.Repo(path) as bare:
                # Fetching runs the local reference-transaction hook: make sure there is none to run.
                bare.git.config("core.hooksPath", os.devnull)
                bare.git.config(f"remote.{_ORIGIN}.url", clone_url)
        repo = cls(path)
        if created:
            repo.fetch([BRANCHES_REFSPEC], token)
        return repo

    def fetch(self, refspecs: Sequence[str], token: str | None) -> None:
        """Fetch ``refspecs`` (e.g. ``+refs/pull/7/head:refs/pull/7/head``) from the mirror's origin; the
        token goes only into this one process's environment."""
        for refspec in refspecs:
            if not refspec or refspec.startswith("-") or any(c in refspec for c in "\n\0 "):
                raise GitError(MSG_BAD_REFSPEC.format(refspec=refspec))
        import git

        log.info("fetching %s into %s", ", ".join(refspecs), self.path)
        with _file_lock(self.path.with_suffix(".lock")):
            try:
                self._git.fetch("--no-tags", "--quiet", _ORIGIN, *refspecs, env=_auth_env(token))
            except git.GitCommandError as error:
                raise GitError(MSG_GIT_FAILED.format(what="fetch", path=self.path, reason=_reason(error))) from error


    # Retention of the App's mirrors -------------------------------------------------------------------

    def prune_refs(self, prefix: str = PULL_REFS, *, keep: int) -> int:
        """Delete all but the ``keep`` refs under ``prefix`` whose commits are newest; returns how many went.

        Every review fetches ``refs/pull/N/head`` into the mirror, so without this a busy repository's mirror
        keeps one ref (and its objects, until git's own gc) per pull request ever reviewed.
        """
        with _file_lock(self.path.with_suffix(".lock")):
            listed = self._run("for-each-ref", "--sort=-committerdate", "--format=%(refname)", prefix).split()
            stale = listed[keep:]
            if stale:
                self._delete_refs(stale)
        if stale:
            log.info("pruned %d of %d %s refs in %s", len(stale), len(listed), prefix, self.path)
        return len(stale)

    def count_refs(self, prefix: str = PULL_REFS) -> int:
        return len(self._run("for-each-ref", "--format=%(refname)", prefix).split())

    def _delete_refs(self, refs: Sequence[str]) -> None:
        # One transaction for all of them (a ref per command line would cost a process each).
        commands = "".join(f"delete {ref}\n" for ref in refs).encode()
        done = subprocess.run(["git", "update-ref", "--stdin"], cwd=self.path, input=commands, capture_output=True,
                              check=False)
        if done.returncode != 0:
            raise GitError(MSG_GIT_FAILED.format(what="update-ref", path=self.path,
                                                 reason=done.stderr.decode(errors="replace").strip()))

    @staticmethod
    def mirrors(cache_dir: Path) -> list[str]:
        """``owner/name`` of every mirror under ``cache_dir``."""
        root = Path(cache_dir)
        if not root.is_dir():
            return []
        return sorted(f"{path.parent.name}/{path.name.removesuffix(MIRROR_SUFFIX)}"
                      for path in root.glob(f"*/*{MIRROR_SUFFIX}") if (path / "HEAD").exists())

    @staticmethod
    def remove_mirror(cache_dir: Path, full_name: str) -> bool:
        """Delete the mirror of ``full_name`` (the App was uninstalled from it); False when there was none."""
        path = mirror_path(cache_dir, full_name)
        with _file_lock(path.with_suffix(".lock")):
            if not path.exists():
                return False
            shutil.rmtree(path)
        path.with_suffix(".lock").unlink(missing_ok=True)
        log.info("removed the mirror of %s", full_name)
        return True


def mirror_path(cache_dir: Path, full_name: str) -> Path:
    """Where the mirror of ``full_name`` lives under ``cache_dir``."""
    if not _FULL_NAME.match(full_name) or ".." in full_name:
        raise GitError(MSG_BAD_FULL_NAME.format(name=full_name))
    owner, name = full_name.split("/")
    return Path(cache_dir) / owner / f"{name}{MIRROR_SUFFIX}"


def _decode_path(raw: bytes) -> str:
    # Paths are bytes to git; a non-UTF-8 name stays round-trippable instead of failing the whole listing.
    return raw.decode("utf-8", "surrogateescape")


__all__ = ["BRANCHES_REFSPEC", "PULL_REFS", "ChangedPath", "GitError", "GitRepo", "mirror_path"]
