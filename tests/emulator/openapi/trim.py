"""Produce the emulator's trimmed copy of GitHub's REST OpenAPI description.

GitHub publishes its REST API as OpenAPI; the `@octokit/openapi` npm package ships it
(`generated/api.github.com.json`, OpenAPI 3.0.3, about 13 MB). The emulator validates every request and
response against the operations the bot uses, so this script keeps only those operations and every component
they reference (transitively), drops the `examples` blocks (sample payloads, never used for validation), and
records the package version in `info.x-source`.

Usage (from the repository root; needs Node's npm, which installs the pinned package into a temporary directory):

    .venv/bin/python tests/emulator/openapi/trim.py            # npm install into a tmp dir, then trim
    .venv/bin/python tests/emulator/openapi/trim.py --from DIR # DIR = an existing node_modules/@octokit/openapi

Adding an endpoint to the emulator means adding its operation to OPERATIONS and running the script again.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PACKAGE = "@octokit/openapi"
PACKAGE_VERSION = "23.0.2"
SOURCE_FILE = "generated/api.github.com.json"
HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "github-rest-trimmed.json"
VERSION_FILE = HERE / "VERSION"

# (method, path) of every REST operation the bot calls and the emulator serves.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("get", "/app"),
    ("post", "/app/installations/{installation_id}/access_tokens"),
    ("get", "/repos/{owner}/{repo}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/files"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("post", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews"),
    ("put", "/repos/{owner}/{repo}/pulls/{pull_number}/reviews/{review_id}/dismissals"),
    ("get", "/repos/{owner}/{repo}/pulls/{pull_number}/comments"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
    ("patch", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
    ("get", "/repos/{owner}/{repo}/labels"),
    ("post", "/repos/{owner}/{repo}/labels"),
    ("get", "/repos/{owner}/{repo}/labels/{name}"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("post", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("put", "/repos/{owner}/{repo}/issues/{issue_number}/labels"),
    ("delete", "/repos/{owner}/{repo}/issues/{issue_number}/labels/{name}"),
    ("post", "/repos/{owner}/{repo}/check-runs"),
    ("patch", "/repos/{owner}/{repo}/check-runs/{check_run_id}"),
    ("get", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
    ("get", "/repos/{owner}/{repo}/contents/{path}"),
    ("get", "/repos/{owner}/{repo}/collaborators/{username}/permission"),
    ("get", "/repos/{owner}/{repo}/issues"),
    ("post", "/repos/{owner}/{repo}/issues"),
    ("get", "/repos/{owner}/{repo}/issues/{issue_number}"),
    ("patch", "/repos/{owner}/{repo}/issues/{issue_number}"),
)

log = logging.getLogger("trim")


def install_package(target: Path) -> Path:
    """npm-install the pinned package into ``target`` and return the package directory."""
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(target), f"{PACKAGE}@{PACKAGE_VERSION}"],
        check=True,
    )
    return target / "node_modules" / PACKAGE


def _refs(node: Any) -> set[str]:
    """Every ``$ref`` string inside ``node``."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _drop_examples(node: Any) -> Any:
    """A copy of ``node`` without media-type ``examples`` maps (sample payloads only)."""
    if isinstance(node, dict):
        return {key: _drop_examples(value) for key, value in node.items() if key != "examples"}
    if isinstance(node, list):
        return [_drop_examples(item) for item in node]
    return node


def trim(spec: dict[str, Any], operations: tuple[tuple[str, str], ...], version: str) -> dict[str, Any]:
    """The subset of ``spec`` with ``operations`` and the components they reach."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in operations:
        item = spec["paths"][path]
        kept = paths.setdefault(path, {key: value for key, value in item.items() if key == "parameters"})
        kept[method] = _drop_examples(item[method])

    components: dict[str, dict[str, Any]] = {}
    pending = _refs(paths)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, section, kind, name = ref.split("/", 3)
        if section != "components":
            raise ValueError(f"unexpected reference {ref}")
        value = _drop_examples(spec["components"][kind][name])
        components.setdefault(kind, {})[name] = value
        pending |= _refs(value) - seen

    info = dict(spec["info"])
    info["x-source"] = f"{PACKAGE}@{version} {SOURCE_FILE}"
    return {
        "openapi": spec["openapi"],
        "info": info,
        "servers": spec.get("servers", []),
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="an installed node_modules/@octokit/openapi")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with tempfile.TemporaryDirectory() as tmp:
        package_dir = args.source or install_package(Path(tmp))
        version = json.loads((package_dir / "package.json").read_text())["version"]
        spec = json.loads((package_dir / SOURCE_FILE).read_text())
        trimmed = trim(spec, OPERATIONS, version)

    OUTPUT.write_text(json.dumps(trimmed, indent=1, sort_keys=False) + "\n")
    VERSION_FILE.write_text(f"{PACKAGE}@{version}\n")
    log.info("wrote %s (%d operations, %d bytes) from %s@%s",
             OUTPUT.name, len(OPERATIONS), OUTPUT.stat().st_size, PACKAGE, version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
