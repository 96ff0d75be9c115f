"""bot.gitrepo on real git repositories the tests build: revisions, diffs, trees, blobs, mirrors and fetches."""

from __future__ import annotations

import base64
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bot.gitrepo import ChangedPath, GitError, GitRepo, _auth_env, commit_id
import scratch as scratch_module
from scratch import ScratchRepo


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not a git repository"):
        GitRepo(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(GitError, match="not a git repository"):
        GitRepo(tmp_path / "plain")


def test_resolve(scratch: ScratchRepo) -> None:
    scratch.write("a.md", "a\n")
    sha = scratch.commit("one")
    repo = GitRepo(scratch.path)
    assert repo.resolve("HEAD") == sha
    assert repo.resolve("main") == sha
    assert repo.resolve(sha[:8]) == sha
    with pytest.raises(GitError, match="unknown revision 'nope'"):
        repo.resolve("nope")
    with pytest.raises(GitError, match="invalid revision"):
        repo.resolve("--output=x")


def test_commit_id_without_a_gitrepo(scratch: ScratchRepo, tmp_path: Path) -> None:
    scratch.write("a.md", "a\n")
    sha = scratch.commit("one")
    assert commit_id(scratch.path, "main") == commit_id(scratch.path, sha[:8]) == sha
    tree = scratch.git("rev-parse", "HEAD^{tree}").strip()
    assert commit_id(scratch.path, tree) is None  # a tree names no commit
    assert commit_id(scratch.path, "nope") is None
    assert commit_id(scratch.path, "--output=x") is None
    assert commit_id(tmp_path / "missing", "HEAD") is None


def test_merge_base_and_ancestry(scratch: ScratchRepo) -> None:
    first = scratch.commit("first")
    scratch.git("checkout", "-q", "-b", "feature")
    feature = scratch.commit("feature work")
    scratch.git("checkout", "-q", "main")
    main = scratch.commit("main moves on")
    repo = GitRepo(scratch.path)
    assert repo.merge_base("main", "feature") == first
    assert repo.is_ancestor(first, feature)
    assert not repo.is_ancestor(main, feature)
    scratch.git("checkout", "-q", "--orphan", "island")
    scratch.commit("unrelated")
    with pytest.raises(GitError, match="no common ancestor"):
        repo.merge_base("main", "island")


def test_changed_paths(scratch: ScratchRepo) -> None:
    body = "".join(f"line {i}\n" for i in range(40))
    scratch.write("docs/keep.md", "keep\n")
    scratch.write("docs/edit.md", "before\n")
    scratch.write("docs/gone.md", "gone\n")
    scratch.write("docs/old.md", body)
    base = scratch.commit("base")
    scratch.write("docs/edit.md", "after\n")
    (scratch.path / "docs/gone.md").unlink()
    scratch.git("mv", "docs/old.md", "docs/new.md")
    scratch.write("docs/new.md", body + "one more\n")
    scratch.write("docs/added.md", "new\n")
    head = scratch.commit("head")
    repo = GitRepo(scratch.path)

    changes = {c.path: c for c in repo.changed_paths(base, head)}
    assert {p: (c.change, c.old_path) for p, c in changes.items()} == {
        "docs/added.md": ("A", None),
        "docs/edit.md": ("M", None),
        "docs/gone.md": ("D", None),
        "docs/new.md": ("R", "docs/old.md"),
    }
    assert changes["docs/added.md"].old_blob is None and changes["docs/gone.md"].new_blob is None
    assert repo.read_blobs([changes["docs/edit.md"].new_blob])[changes["docs/edit.md"].new_blob] == b"after\n"
    assert isinstance(changes["docs/new.md"], ChangedPath)

    assert repo.changed_paths(head, head) == []


def test_list_files(scratch: ScratchRepo) -> None:
    for path in ("docs/a.md", "docs/sub/B.MD", "docs/c.markdown", "docs/d.txt", "docs2/e.md", "README.md"):
        scratch.write(path, path)
    scratch.commit("files")
    repo = GitRepo(scratch.path)
    assert [p for p, _ in repo.list_files("HEAD", "docs")] == ["docs/a.md", "docs/c.markdown", "docs/sub/B.MD"]
    assert [p for p, _ in repo.list_files("HEAD", "docs/", ".txt")] == ["docs/d.txt"]
    everything = repo.list_files("HEAD", "")
    assert [p for p, _ in everything] == ["README.md", "docs/a.md", "docs/c.markdown", "docs/sub/B.MD", "docs2/e.md"]
    blobs = repo.read_blobs(sha for _, sha in everything)
    assert {blobs[sha].decode() for _, sha in everything} == {p for p, _ in everything}


def test_read_blob(scratch: ScratchRepo) -> None:
    scratch.write("docs/crlf.md", b"\xef\xbb\xbfa\r\nb\r\n")
    scratch.write("docs/bin.md", b"\x00\x01\x02")
    scratch.write("docs/name with spaces.md", "spaced\n")
    scratch.write("docs/new\nline.md", "odd name\n")
    scratch.commit("one")
    repo = GitRepo(scratch.path)
    assert repo.read_blob("HEAD", "docs/crlf.md") == b"\xef\xbb\xbfa\r\nb\r\n"
    assert repo.read_blob("HEAD", "docs/bin.md") == b"\x00\x01\x02"
    assert repo.read_blob("HEAD", "docs/name with spaces.md") == b"spaced\n"
    assert repo.read_blob("HEAD", "docs/new\nline.md") == b"odd name\n"
    assert repo.read_blob("HEAD", "docs/missing\n.md") is None
    assert repo.read_blob("HEAD", "docs/missing.md") is None
    assert repo.read_blob("HEAD", "docs") is None
    with pytest.raises(GitError, match="unknown revision"):
        repo.read_blob("nope", "docs/crlf.md")


def test_read_blobs_and_sizes(scratch: ScratchRepo) -> None:
    scratch.write("a.md", "x" * 1234)
    scratch.commit("one")
    repo = GitRepo(scratch.path)
    ((_, sha),) = repo.list_files("HEAD", "")
    missing = "0" * 40
    assert repo.blob_sizes([sha, missing]) == {sha: 1234}
    assert repo.read_blobs([sha, missing, sha]) == {sha: b"x" * 1234}
    assert repo.read_blobs([]) == {}
    with pytest.raises(GitError, match="not an object id"):
        repo.read_blobs(["HEAD:a.md"])


# Mirrors and fetches ----------------------------------------------------------------------------------------


def _source_with_pull_ref(scratch: ScratchRepo) -> tuple[str, str]:
    scratch.write("docs/a.md", "base\n")
    main = scratch.commit("base")
    scratch.git("checkout", "-q", "-b", "contributor")
    scratch.write("docs/a.md", "pr\n")
    pull = scratch.commit("pr")
    scratch.git("update-ref", "refs/pull/7/head", pull)
    scratch.git("checkout", "-q", "main")
    scratch.git("branch", "-D", "contributor")
    return main, pull


def test_mirror_and_fetch_pull_ref(scratch: ScratchRepo, tmp_path: Path) -> None:
    main, pull = _source_with_pull_ref(scratch)
    cache = tmp_path / "mirrors"
    repo = GitRepo.mirror(cache, "octo/atlas", str(scratch.path), "s3cret-token")
    assert repo.path == cache / "octo" / "atlas.git"
    assert (repo.path / "HEAD").exists() and not (repo.path / "index").exists()
    assert repo.resolve("refs/heads/main") == main
    with pytest.raises(GitError):
        repo.resolve("refs/pull/7/head")

    repo.fetch(["+refs/pull/7/head:refs/pull/7/head"], "s3cret-token")
    assert repo.resolve("refs/pull/7/head") == pull
    assert repo.read_blob("refs/pull/7/head", "docs/a.md") == b"pr\n"

    config = (repo.path / "config").read_text()
    assert "s3cret" not in config and "extraheader" not in config
    assert f"hooksPath = {os.devnull}" in config

    # Even a hook planted in the mirror never runs: the mirror's hooksPath points nowhere.
    marker = tmp_path / "hook-ran"
    hook = repo.path / "hooks" / "reference-transaction"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)

    # An existing mirror opens without touching the network; new commits arrive through fetch.
    scratch.write("docs/a.md", "later\n")
    later = scratch.commit("later")
    again = GitRepo.mirror(cache, "octo/atlas", str(scratch.path), None)
    assert again.resolve("refs/heads/main") == main
    again.fetch(["+refs/heads/main:refs/heads/main"], None)
    assert again.resolve("refs/heads/main") == later
    assert not marker.exists()


@pytest.mark.parametrize(
    ("full_name", "url", "message"),
    [
        ("../etc", "https://example.invalid/x.git", "owner/name"),
        ("a/b/c", "https://example.invalid/x.git", "owner/name"),
        ("octo/atlas", "https://x-access-token:abc@example.invalid/x.git", "carries credentials"),
    ],
)
def test_mirror_rejects_bad_names_and_urls(tmp_path: Path, full_name: str, url: str, message: str) -> None:
    with pytest.raises(GitError, match=message):
        GitRepo.mirror(tmp_path, full_name, url, None)


def test_fetch_rejects_option_like_refspecs(scratch: ScratchRepo) -> None:
    scratch.commit("one")
    with pytest.raises(GitError, match="invalid refspec"):
        GitRepo(scratch.path).fetch(["--upload-pack=touch /tmp/x"], None)


class _RecordingHandler(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_token_travels_only_as_an_extra_header(tmp_path: Path) -> None:
    _RecordingHandler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    token = "ghs_TOPSECRET123"
    encoded = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/octo/atlas.git"
        with pytest.raises(GitError) as failure:
            GitRepo.mirror(tmp_path, "octo/atlas", url, token)
    finally:
        server.shutdown()
        thread.join()
    assert _RecordingHandler.seen, "git never reached the loopback server"
    assert all(h.get("authorization") == f"basic {encoded}" for h in _RecordingHandler.seen)
    assert token not in str(failure.value) and encoded not in str(failure.value)
    config = (tmp_path / "octo" / "atlas.git" / "config").read_text()
    assert token not in config and encoded not in config and url in config


def test_auth_env_keeps_callers_config_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    env = _auth_env("tok")
    assert env["GIT_CONFIG_COUNT"] == "3"
    assert env["GIT_CONFIG_KEY_1"] == "credential.helper" and env["GIT_CONFIG_VALUE_1"] == ""
    assert env["GIT_CONFIG_KEY_2"] == "http.extraheader"
    assert env["GIT_CONFIG_VALUE_2"] == "AUTHORIZATION: basic " + base64.b64encode(b"x-access-token:tok").decode()
    assert env["GIT_TERMINAL_PROMPT"] == "0"
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    assert "http.extraheader" not in _auth_env(None).values()


# -- retention of the App's mirrors ------------------------------------------------------------------------


def test_prune_refs_keeps_the_newest_pull_heads(scratch: ScratchRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch.write("a.md", "0\n")
    scratch.commit("base")
    repo = GitRepo(scratch.path)
    for number in (3, 1, 5, 2, 4):  # refs made in another order than their heads' commit dates
        scratch.write("a.md", f"{number}\n")
        monkeypatch.setitem(scratch_module.GIT_ENV, "GIT_COMMITTER_DATE", f"2026-01-0{number}T00:00:00Z")
        scratch.git("update-ref", f"refs/pull/{number}/head", scratch.commit(f"head of #{number}"))
    assert repo.count_refs() == 5
    assert repo.prune_refs(keep=2) == 3
    refs = scratch.git("for-each-ref", "--format=%(refname)", "refs/pull/").split()
    assert sorted(refs) == ["refs/pull/4/head", "refs/pull/5/head"]
    assert repo.prune_refs(keep=2) == 0
    assert scratch.git("rev-parse", "main")  # branches are never touched


def test_mirrors_are_listed_and_removed(scratch: ScratchRepo, tmp_path: Path) -> None:
    scratch.write("a.md", "x\n")
    scratch.commit("base")
    cache = tmp_path / "mirrors"
    for name in ("octo/atlas", "octo/other", "acme/atlas"):
        GitRepo.mirror(cache, name, str(scratch.path), None).close()
    assert GitRepo.mirrors(cache) == ["acme/atlas", "octo/atlas", "octo/other"]
    assert GitRepo.remove_mirror(cache, "octo/atlas") is True
    assert GitRepo.remove_mirror(cache, "octo/atlas") is False
    assert GitRepo.mirrors(cache) == ["acme/atlas", "octo/other"]
    with pytest.raises(GitError):
        GitRepo.remove_mirror(cache, "../etc")
