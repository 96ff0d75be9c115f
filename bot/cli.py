"""`atlas-bot`: the command line (check, progress, serve, jobs, register).

Exit codes: 0 when nothing blocks, 1 when a blocking gate fails, 2 on usage, configuration or environment
errors (always with a one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
REPO_CONFIG_PATH = ".github/atlas-bot.yml"
# Below this many diagrams a progress bar is only noise.
PROGRESS_BAR_MIN = 200

log = logging.getLogger("atlas_bot.cli")


class UsageError(Exception):
    """A problem with what the user asked for; reported as one line and exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"atlas-bot: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="atlas-bot", description="Quality gates and progress for Atlas diagram repositories.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check = sub.add_parser("check", help="check the diagrams a change adds or modifies (or all of them)")
    check.add_argument("--repo", type=Path, default=Path("."), help="git repository (default: .)")
    check.add_argument("--base", help="base revision of the change (e.g. origin/main)")
    check.add_argument("--head", help="head revision of the change (default: HEAD)")
    check.add_argument("--all", action="store_true", help="check every diagram at --rev instead of a change")
    check.add_argument("--rev", default="HEAD", help="revision for --all (default: HEAD)")
    check.add_argument("--config", type=Path, help=f"configuration file applied over {REPO_CONFIG_PATH}")
    check.add_argument("--format", choices=("text", "json", "github"), default="text")
    check.add_argument("--workers", type=int, help="mermaid worker processes (default: one per core)")

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

    jobs = sub.add_parser("jobs", help="list queued, running and dead-lettered jobs")
    jobs.add_argument("--state", help="only jobs in this state")
    jobs.add_argument("--limit", type=int, default=50)

    _add_gates_parser(sub)

    register = sub.add_parser("register", help="create the GitHub App from app.yml (manifest flow)")
    register.add_argument("--github-url", default="https://github.com")
    register.add_argument("--org", help="create the App under this organisation instead of your account")
    register.add_argument("--port", type=int, default=8765)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("ATLAS_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    from bot.config import ConfigError
    from bot.gates.mermaid import MermaidUnavailable
    from bot.gitrepo import GitError
    from bot.progress_job import PublishSetupError
    from bot.register import RegisterError
    from bot.settings import SettingsError

    handlers = {"check": _check, "progress": _progress, "serve": _serve, "jobs": _jobs, "register": _register,
                "gates": _gates}
    try:
        return handlers[args.command](args)
    except (UsageError, ConfigError, GitError, MermaidUnavailable, PublishSetupError, RegisterError,
            SettingsError) as exc:
        print(f"atlas-bot: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


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
    from bot.changes import texts_at
    from bot.check import run_all, run_check
    from bot.gates.mermaid import MermaidPool, VerdictCache
    from bot.render import render_github, render_json, render_text

    if args.all and args.base:
        raise UsageError("--all checks one revision (--rev); it does not take --base")
    if not args.all and not args.base:
        raise UsageError("say what to check: --base REV [--head REV] for a change, or --all [--rev REV]")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    repo = _open_repo(args.repo)
    config_rev = args.rev if args.all else args.base
    config = _load_config(repo, repo.resolve(config_rev), args.config)
    with MermaidPool(workers=args.workers, cache=VerdictCache()) as pool:
        with _ProgressBar(sys.stderr) as bar:
            if args.all:
                result = run_all(repo, config, pool, rev=args.rev, on_progress=bar.update)
            else:
                result = run_check(repo, config, pool, base=args.base, head=args.head or "HEAD",
                                   on_progress=bar.update)
    if args.format == "json":
        output = render_json(result)
    elif args.format == "github":
        output = render_github(result)
    else:
        with_suggestions = {f.path for f in result.findings if f.suggestion is not None}
        sources = texts_at(repo, result.head, with_suggestions)
        output = render_text(result, color=_color(sys.stdout), sources=sources)
    sys.stdout.write(output if output.endswith("\n") else output + "\n")
    return EXIT_OK if result.passed else EXIT_BLOCKED


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

    return serve_command(host=args.host, port=args.port)


def _jobs(args: argparse.Namespace) -> int:
    from bot.queue import jobs_command

    sys.stdout.write(jobs_command(state=args.state, limit=args.limit))
    return EXIT_OK


def _register(args: argparse.Namespace) -> int:
    from bot.register import register_command

    return register_command(github_url=args.github_url, org=args.org, port=args.port)


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
    sys.exit(main())
