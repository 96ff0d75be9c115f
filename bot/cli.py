"""`atlas-bot`: the command line (check, config validate, progress, serve, worker, jobs, register).

Exit codes: 0 when nothing blocks, 1 when a blocking gate fails, 2 on usage, configuration or environment
errors (always with a one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
FORMATS = ("text", "json", "github", "sarif")
WORKING_TREE = "working tree"
REPO_CONFIG_PATH = ".github/atlas-bot.yml"
# Below this many diagrams a progress bar is only noise.
PROGRESS_BAR_MIN = 200

log = logging.getLogger("atlas_bot.cli")


class UsageError(Exception):
    """A problem with what the user asked for; reported as one line and exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"atlas-bot: {message} (see --help)\n")


class _VersionAction(argparse.Action):
    """``--version``: the text is worked out only when asked for (package metadata is slow to read)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="atlas-bot", description="Quality gates and progress for Atlas diagram repositories.")
    parser.add_argument("--version", action=_VersionAction, help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = sub.add_parser("check", help="check diagrams: files and folders, a change, the staged files, or all")
    check.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                       help="Markdown files or folders to check as they are on disk (no git needed)")
    check.add_argument("--repo", type=Path, default=Path("."), help="repository root (default: .)")
    check.add_argument("--base", help="base revision of the change (e.g. origin/main)")
    check.add_argument("--head", help="head revision of the change (default: the work tree, uncommitted edits "
                                      "included)")
    check.add_argument("--staged", action="store_true", help="check what is staged for commit against --base "
                                                             "(default: HEAD)")
    check.add_argument("--all", action="store_true", help="check every diagram at --rev instead of a change")
    check.add_argument("--rev", default="HEAD", help="revision for --all (default: HEAD)")
    check.add_argument("--config", type=Path, help=f"configuration file applied over {REPO_CONFIG_PATH}")
    check.add_argument("--format", choices=FORMATS, default="text")
    check.add_argument("--fix", action="store_true", help="apply every verified suggestion to the files in place")
    check.add_argument("--dry-run", action="store_true", help="with --fix: print the diff instead of writing")
    check.add_argument("--review", type=int, metavar="PR",
                       help="GitHub Actions: also publish the App's review on pull request PR with GITHUB_TOKEN")
    check.add_argument("--workers", type=int, help="mermaid worker processes (default: one per core)")
    check.add_argument("--install-mermaid", action="store_true",
                       help="first install the pinned mermaid with npm when it is missing (pre-commit, CI)")

    config_cmd = sub.add_parser("config", help="configuration tools")
    config_sub = config_cmd.add_subparsers(dest="config_command", required=True, parser_class=_Parser)
    validate = config_sub.add_parser("validate", help="report every error of a configuration file with file:line")
    validate.add_argument("file", nargs="?", type=Path, default=Path(REPO_CONFIG_PATH),
                          help=f"the file to validate (default: {REPO_CONFIG_PATH})")

    progress = sub.add_parser("progress", help="diagram totals per category, as the progress issue shows them")
    progress.add_argument("--repo", type=Path, default=Path("."))
    progress.add_argument("--rev", default="HEAD")
    progress.add_argument("--config", type=Path)
    progress.add_argument("--format", choices=("markdown", "json"), default="markdown")
    progress.add_argument("--publish", action="store_true",
                          help="update the repository's progress issue (GitHub Actions: GITHUB_TOKEN, "
                               "GITHUB_REPOSITORY)")

    serve = sub.add_parser("serve", help="run the GitHub App: webhook server and workers")
    serve.add_argument("--host", help="address to bind (default: ATLAS_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: ATLAS_PORT or 8000)")
    serve.add_argument("--no-workers", action="store_true",
                       help="webhooks only: `atlas-bot worker` processes run the jobs (needs ATLAS_QUEUE_URL "
                            "or a data directory they share)")

    sub.add_parser("worker", help="run workers only (no HTTP) on the queue serve fills; SIGTERM stops it")

    jobs = sub.add_parser("jobs", help="list queued, running and dead-lettered jobs")
    jobs.add_argument("--state", help="only jobs in this state")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--retry", type=int, metavar="ID", help="queue dead letter ID again")

    _add_gates_parser(sub)

    register = sub.add_parser("register", help="create the GitHub App from its manifest (manifest flow)")
    register.add_argument("--webhook-url", help="where GitHub sends webhooks: https://YOUR-SERVER/webhook")
    register.add_argument("--name", help="the App's name (default: atlas-bot; names are unique on GitHub)")
    register.add_argument("--github-url", default="https://github.com")
    register.add_argument("--org", help="create the App under this organisation instead of your account")
    register.add_argument("--port", type=int, default=8765)
    return parser


def run() -> NoReturn:
    """The ``atlas-bot`` command. After ``check`` it leaves without tearing the interpreter down: by then its
    output is written, its databases, workers and files are closed, and all that is left is freeing a whole
    repository's results object by object (~0.08 s of a cold check of the corpus, ~0.02 s of one answered from
    its remembered output). Other commands (servers and their threads) exit as usual."""
    argv = sys.argv[1:]
    code = main(argv)
    if argv[:1] == ["check"]:
        logging.shutdown()
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:  # stdout closed early (`| head`): the usual exit reports it
            sys.exit(code)
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("ATLAS_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    handlers = {"check": _check, "config": _config, "progress": _progress, "serve": _serve, "worker": _worker,
                "jobs": _jobs, "register": _register, "gates": _gates}
    try:
        return handlers[args.command](args)
    except _reported_errors() as exc:
        print(f"atlas-bot: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


# Errors reported as one line with exit code 2, by module and class. Each command imports only what it needs
# (``check`` never loads PyGithub or pydantic), so these are looked up when an error is being handled.
_REPORTED_ERRORS = (("bot.config", "ConfigError"), ("bot.gitrepo", "GitError"),
                    ("bot.gates.mermaid", "MermaidUnavailable"), ("bot.progress_job", "PublishSetupError"),
                    ("bot.register", "RegisterError"), ("bot.settings", "SettingsError"))


def _reported_errors() -> tuple[type[BaseException], ...]:
    """UsageError and the error classes of the modules loaded so far: one never imported raised nothing."""
    loaded = (getattr(sys.modules[module], name) for module, name in _REPORTED_ERRORS if module in sys.modules)
    return (UsageError, *loaded)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _open_repo(path: Path):
    from bot.gitrepo import GitRepo

    if not path.exists():
        raise UsageError(f"--repo {path}: no such directory")
    return GitRepo(path)


def _load_config(repo, rev: str, override: Path | None):
    """Rules defaults ← the repository's own config at ``rev`` (the base, never the PR head) ← ``--config``."""
    from bot.config import load_config

    if override is not None and not override.is_file():
        raise UsageError(f"--config {override}: no such file")
    raw = repo.read_blob(rev, REPO_CONFIG_PATH)
    text = None if raw is None else raw.decode("utf-8", errors="replace")
    return load_config(repo_config_text=text, repo_config_source=REPO_CONFIG_PATH, override_path=override)


def _check(args: argparse.Namespace) -> int:
    # A check's objects (diagrams, results, findings) live until its output is written and form next to no
    # reference cycles (a few hundred objects after a whole repository): the cyclic collector's passes over
    # them would free nothing worth their cost (~3% of a cold check of a whole repository).
    gc.disable()
    try:
        return _checked(args)
    finally:
        gc.enable()


def _checked(args: argparse.Namespace) -> int:
    _check_usage(args)
    if args.install_mermaid:
        install_mermaid()
    memo_key = _output_memo_key(args)
    if memo_key is not None:
        from bot import output_memo

        remembered = output_memo.lookup(memo_key)
        if remembered is not None:
            sys.stdout.write(remembered.output)
            return remembered.exit_code
    from contextlib import closing

    from bot.gates.mermaid import MermaidPool, VerdictCache

    with closing(VerdictCache()) as cache, MermaidPool(workers=args.workers, cache=cache) as pool:
        if not cache.has_verdicts(pool.version):
            # A first run parses every diagram: the workers load mermaid while the configuration and the tree
            # are read (a usage error found meanwhile kills them, as they have nothing to finish).
            pool.start()
        target = _Target(args)
        result = target.run(pool)
        if args.fix:
            applied = _apply_fixes(target, result, dry_run=args.dry_run)
            if applied and not args.dry_run:
                result = target.run(pool)
    if args.review is not None:
        _publish_review(target, result, args.review)
    output = _ensure_newline(_render(args.format, target, result))
    sys.stdout.write(output)
    if args.format == "github":
        _write_job_summary(target, result)
    exit_code = EXIT_OK if result.passed else EXIT_BLOCKED
    if memo_key is not None and result.settled:
        output_memo.store(memo_key, exit_code, output)
    return exit_code


def _output_memo_key(args: argparse.Namespace) -> str | None:
    """The remembered-output key of a ``check --all`` in a format that is only stdout (json, text), else None."""
    if not args.all or args.format not in ("json", "text"):
        return None
    from bot.output_memo import memo_key

    return memo_key(args.repo, args.rev, output_format=args.format,
                    color=args.format == "text" and _color(sys.stdout), config_file=args.config)


def _check_usage(args: argparse.Namespace) -> None:
    if args.paths and (args.base or args.all or args.staged or args.head):
        raise UsageError("PATH arguments are checked as they are on disk; they take no --base, --head, --staged "
                         "or --all")
    if args.all and (args.base or args.staged):
        raise UsageError("--all checks one revision (--rev); it does not take --base")
    if args.staged and args.head:
        raise UsageError("--staged checks the index; it does not take --head")
    if not (args.paths or args.all or args.base or args.staged):
        raise UsageError("say what to check: PATH... (files or folders), --base REV [--head REV] for a change, "
                         "--staged, or --all [--rev REV]")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.dry_run and not args.fix:
        raise UsageError("--dry-run goes with --fix")
    if args.review is not None and not args.base:
        raise UsageError("--review publishes a pull request's review: use it with --base and --head")
    if args.fix and (args.all or args.head or args.staged):
        raise UsageError("--fix changes files on disk: use it with PATH... or --base REV (the work tree)")


class _Target:
    """What one ``check`` looks at, and how to read the texts its findings point into."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.repo = None
        self.root = args.repo.resolve()
        if args.paths:
            self.config = _load_disk_config(self.root, args.config)
            return
        self.repo = _open_repo(args.repo)
        self.root = self.repo.work_tree or self.root
        if args.all:
            self.head = self.repo.resolve(args.rev)
            config_rev = self.head
        else:
            self.base = args.base or "HEAD"
            self.head = self._change_head()
            config_rev = self.repo.resolve(self.base)
        self.config = _load_config(self.repo, config_rev, args.config)

    def _change_head(self) -> str:
        """The named head, or a commit of the index or the work tree as they are now (uncommitted edits count)."""
        if self.args.head:
            return self.repo.resolve(self.args.head)
        if self.repo.work_tree is not None:
            return self.repo.uncommitted(staged_only=self.args.staged)
        return self.repo.resolve("HEAD")

    @property
    def on_disk(self) -> bool:
        """True when the checked texts are the files on disk (paths, or the work tree)."""
        return self.repo is None or (not self.args.all and not self.args.head and not self.args.staged)

    def run(self, pool):
        from bot.changes import collect_paths
        from bot.check import run_all, run_check, run_files

        with _ProgressBar(sys.stderr) as bar:
            if self.repo is None:
                try:
                    changes = collect_paths(self.root, self.args.paths, max_bytes=self.config.max_file_bytes)
                except FileNotFoundError as exc:
                    raise UsageError(f"{exc}: no such file or folder") from None
                return run_files(self.config, pool, changes, head=WORKING_TREE, on_progress=bar.update)
            if self.args.all:
                return run_all(self.repo, self.config, pool, rev=self.head, on_progress=bar.update)
            self.head = self._change_head()  # again: --fix may have changed the work tree since
            return run_check(self.repo, self.config, pool, base=self.base, head=self.head, on_progress=bar.update)

    def texts(self, paths) -> dict[str, str]:
        """Texts of the files the findings point into, as checked."""
        from bot.changes import texts_at

        if self.repo is None:
            return {path: _read_text_file(self.root / path) for path in set(paths) if (self.root / path).is_file()}
        return texts_at(self.repo, self.head, paths)


def _read_text_file(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def _load_disk_config(root: Path, override: Path | None):
    """Configuration for files on disk: ``.github/atlas-bot.yml`` under the root as it is now, then --config."""
    from bot.config import load_config

    if override is not None and not override.is_file():
        raise UsageError(f"--config {override}: no such file")
    repo_file = root / REPO_CONFIG_PATH
    text = _read_text_file(repo_file) if repo_file.is_file() else None
    return load_config(repo_config_text=text, repo_config_source=REPO_CONFIG_PATH, override_path=override)


def _apply_fixes(target: _Target, result, *, dry_run: bool) -> int:
    """Write (or with ``dry_run`` print as a diff) every suggestion into the files; the count applied."""
    from bot.local_fix import apply_suggestions, unified_diff

    by_path: dict[str, list] = {}
    for finding in result.findings:
        if finding.suggestion is not None:
            by_path.setdefault(finding.path, []).append(finding)
    applied = overlapping = 0
    for path in sorted(by_path):
        file = target.root / path
        before = _read_text_file(file)
        outcome = apply_suggestions(before, by_path[path])
        applied += outcome.applied
        overlapping += outcome.overlapping
        if dry_run:
            sys.stdout.write(unified_diff(path, before, outcome.text))
        elif outcome.text != before:
            file.write_text(outcome.text, encoding="utf-8", newline="")
    verb = "would apply" if dry_run else "applied"
    note = f" ({overlapping:,} overlapping another one: run --fix again)" if overlapping else ""
    print(f"atlas-bot: {verb} {applied:,} suggestion{'s' if applied != 1 else ''} in "
          f"{len(by_path):,} file{'s' if len(by_path) != 1 else ''}{note}", file=sys.stderr)
    return applied


def _render(output_format: str, target: _Target, result) -> str:
    from bot.render import render_github, render_json, render_text

    if output_format == "json":
        return render_json(result)
    if output_format == "github":
        return render_github(result)
    if output_format == "sarif":
        from bot.sarif import render_sarif

        return render_sarif(result, tool_version=package_version())
    from bot.review import preexisting_findings

    sources = target.texts(f.path for f in result.findings if f.suggestion is not None)
    return render_text(result, color=_color(sys.stdout), sources=sources, preexisting=preexisting_findings(result))


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def _summary_markdown(target: _Target, result) -> str:
    """The App's summary table for this result (bot.review builds it; nothing here re-implements it)."""
    from bot.review import build_publication

    sources = target.texts(f.path for f in result.findings)
    return build_publication(result, target.config, pr_patches={}, head_sha=result.head, sources=sources,
                             repository_url=_actions_repository_url()).summary


def _actions_repository_url() -> str | None:
    """The repository's web address inside GitHub Actions (summary paths link to the file at the head)."""
    server, repository = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_REPOSITORY")
    return f"{server.rstrip('/')}/{repository}" if server and repository else None


def _write_job_summary(target: _Target, result) -> None:
    """GitHub Actions: the summary table and the blocking errors past the annotation limit, to
    $GITHUB_STEP_SUMMARY (nothing when it is not set, as outside Actions)."""
    from bot.render import job_summary

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(job_summary(_summary_markdown(target, result), result))


def _publish_review(target: _Target, result, number: int) -> None:
    """The App's review, summary comment, labels and check run on pull request ``number``, with the workflow's
    token. A token that may not write (a fork's pull request) leaves the summary and annotations to do it."""
    from bot.github.transport import GitHubError
    from bot.progress_job import actions_client
    from bot.render import workflow_command
    from bot.review import build_publication

    client = actions_client(os.environ)
    try:
        publication = build_publication(
            result, target.config, pr_patches=client.pr_patches(number), head_sha=result.head,
            sources=target.texts(f.path for f in result.findings),
            already_posted=client.posted_fingerprints(number), repository_url=_actions_repository_url())
        client.publish(number, publication)
    except GitHubError as exc:
        reason = _one_line(exc)
        print(workflow_command("warning", {"title": "atlas-bot review not published"},
                               f"The token could not write the review on #{number} ({reason}); the job summary "
                               "and annotations show the findings. Same-repository pull requests need "
                               "permissions pull-requests: write, issues: write and checks: write."))


def _config(args: argparse.Namespace) -> int:
    """``config validate [FILE]``: every error of the file (layered over the defaults), one ``file:line`` each."""
    from bot.config import ConfigError, load_config

    if not args.file.is_file():
        raise UsageError(f"{args.file}: no such file")
    try:
        load_config(repo_config_text=_read_text_file(args.file), repo_config_source=str(args.file))
    except ConfigError as exc:
        problems = getattr(exc, "errors", (exc,))
        for problem in problems:
            print(f"atlas-bot: {problem}", file=sys.stderr)
        print(f"{args.file}: {len(problems)} error{'s' if len(problems) != 1 else ''}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.file}: valid")
    return EXIT_OK


def install_mermaid() -> None:
    """``npm ci`` of the pinned mermaid next to the installed bot, unless it is there already."""
    import shutil
    import subprocess

    from bot.paths import mermaid_dir

    folder = mermaid_dir()
    if (folder / "node_modules" / "mermaid" / "package.json").is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise UsageError("npm is needed to install mermaid's parser (npm not found; install Node.js 18+)")
    done = subprocess.run([npm, "ci", "--prefix", str(folder), "--no-audit", "--no-fund", "--loglevel=error"],
                          stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise UsageError(f"npm ci in {folder} failed (exit status {done.returncode})")


def package_version() -> str:
    """The installed atlas-bot's version (the checkout's pyproject version for an editable install)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("atlas-bot")
    except PackageNotFoundError:
        return "unknown"


def version_text() -> str:
    """``atlas-bot 0.1.0 (mermaid 11.17.2)``: the bot and the mermaid its verdicts come from (as pinned)."""
    import json

    from bot.paths import mermaid_dir

    try:
        pinned = json.loads((mermaid_dir() / "package.json").read_text("utf-8"))["dependencies"]["mermaid"]
    except (OSError, ValueError, KeyError):
        pinned = "not installed"
    return f"atlas-bot {package_version()} (mermaid {pinned})"


def _color(stream: TextIO) -> bool:
    """Colour on a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _progress(args: argparse.Namespace) -> int:
    from bot.progress_job import progress_command

    repo = _open_repo(args.repo)
    config = _load_config(repo, repo.resolve(args.rev), args.config)
    sys.stdout.write(progress_command(repo, config, rev=args.rev, output_format=args.format,
                                      publish=args.publish, environ=os.environ))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from bot.app import serve_command

    return serve_command(host=args.host, port=args.port, workers=not args.no_workers)


def _worker(args: argparse.Namespace) -> int:
    from bot.app import worker_command

    return worker_command()


def _jobs(args: argparse.Namespace) -> int:
    from bot.queue import jobs_command

    sys.stdout.write(jobs_command(state=args.state, limit=args.limit, retry=args.retry))
    return EXIT_OK


def _register(args: argparse.Namespace) -> int:
    from bot.register import register_command

    return register_command(github_url=args.github_url, org=args.org, port=args.port,
                            webhook_url=args.webhook_url, name=args.name)


# --- atlas-bot gates score: the gates against hand labels ------------------------------------------------

def _add_gates_parser(sub: argparse._SubParsersAction) -> None:
    gates = sub.add_parser("gates", help="calibrate the content gates")
    actions = gates.add_subparsers(dest="gates_command", required=True, parser_class=_Parser)
    score = actions.add_parser("score", help="compare the gates with hand labels (JSON Lines)")
    score.add_argument("--repo", type=Path, default=Path("."), help="git repository (default: .)")
    score.add_argument("--labels", type=Path, required=True, help="labelled diagrams, one JSON object a line")
    score.add_argument("--config", type=Path, help=f"configuration file applied over {REPO_CONFIG_PATH}")
    score.add_argument("--rev", default="HEAD", help="revision for rows without a commit, and of the "
                                                      "repository's configuration (default: HEAD)")
    score.add_argument("--every-category", action="store_true",
                       help='judge every gate on every diagram (categories: "*"), whatever its scope')
    score.add_argument("--quiet", action="store_true", help="the table only, no disagreements")


def _gates(args: argparse.Namespace) -> int:
    from bot.changes import decode_markdown
    from bot.gates.score import LabelsError, every_category, read_labels, render_report, score

    repo = _open_repo(args.repo)
    config = _load_config(repo, repo.resolve(args.rev), args.config)
    if args.every_category:
        config = every_category(config)
    try:
        with args.labels.open(encoding="utf-8") as lines:
            labels = read_labels(lines, str(args.labels))
    except OSError as exc:
        raise UsageError(f"--labels {args.labels}: {exc.strerror or exc}") from None
    except LabelsError as exc:
        raise UsageError(str(exc)) from None

    def read_file(commit: str | None, path: str) -> str | None:
        data = repo.read_blob(commit or args.rev, path)
        return None if data is None else decode_markdown(data, config.max_file_bytes)[0]

    sys.stdout.write(render_report(score(config, labels, read_file), config, disagreements=not args.quiet))
    return EXIT_OK


class _ProgressBar:
    """A one-line progress bar on a terminal for long runs; silent when stderr is not a TTY."""

    WIDTH = 30

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if not self.enabled or total < PROGRESS_BAR_MIN:
            return
        filled = self.WIDTH * done // max(total, 1)
        self.stream.write(f"\r  parsing diagrams [{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}")
        self.stream.flush()
        self.drawn = True

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * (self.WIDTH + 40) + "\r")
            self.stream.flush()


if __name__ == "__main__":
    run()
