"""The composite Action (action.yml + action.sh) and the workflow examples that use it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
# The first major of each action that runs on node24 (node20 is deprecated on GitHub's runners).
NODE24_MAJORS = {"actions/checkout": 5, "actions/setup-python": 6, "actions/setup-node": 5, "actions/cache": 5,
                 "github/codeql-action/upload-sarif": 4}
FAKE_BOT = """#!/usr/bin/env bash
printf '%s\\n' "$*" >> "$CALLS"
exit "${FAKE_STATUS:-0}"
"""


def _action() -> dict:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def _uses(document: dict) -> list[str]:
    steps = document.get("runs", {}).get("steps", [])
    steps += [step for job in document.get("jobs", {}).values() for step in job.get("steps", [])]
    return [step["uses"] for step in steps if "uses" in step]


def test_action_is_composite_with_the_documented_inputs() -> None:
    action = _action()
    assert action["runs"]["using"] == "composite"
    assert {"config", "fail-on", "format", "command", "review"} <= set(action["inputs"])
    assert action["inputs"]["fail-on"]["default"] == "blocking"
    assert action["inputs"]["format"]["default"] == "github"
    # Inputs reach the script through the environment only: an input is never spliced into shell code.
    for step in action["runs"]["steps"]:
        assert "${{" not in step.get("run", "")


@pytest.mark.parametrize("source", ["action.yml", *sorted(p.name for p in (ROOT / "workflows").glob("*.yml"))])
def test_every_action_used_runs_on_node24(source: str) -> None:
    path = ROOT / source if source == "action.yml" else ROOT / "workflows" / source
    for uses in _uses(yaml.safe_load(path.read_text())):
        name, _, ref = uses.partition("@")
        if name in NODE24_MAJORS:
            assert int(ref.removeprefix("v").split(".")[0]) >= NODE24_MAJORS[name], uses
        else:
            assert name == "OWNER/atlas-bot", f"{source} uses an action this test does not know: {uses}"


def test_the_check_and_progress_examples_use_the_action() -> None:
    for name in ("atlas-check.yml", "atlas-progress.yml", "atlas-code-scanning.yml"):
        assert "OWNER/atlas-bot@v1" in _uses(yaml.safe_load((ROOT / "workflows" / name).read_text())), name
    check = yaml.safe_load((ROOT / "workflows" / "atlas-check.yml").read_text())
    assert check["permissions"] == {"contents": "read", "pull-requests": "write", "issues": "write",
                                    "checks": "write"}


def _run_script(tmp_path: Path, status: int = 0, **inputs: str) -> tuple[int, list[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "atlas-bot"
    fake.write_text(FAKE_BOT)
    fake.chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CALLS": str(calls), "FAKE_STATUS": str(status),
           "GITHUB_OUTPUT": str(tmp_path / "output"), **inputs}
    done = subprocess.run(["bash", str(ROOT / "action.sh")], cwd=tmp_path, env=env, capture_output=True, text=True)
    return done.returncode, calls.read_text().splitlines() if calls.exists() else [], done.stdout


PULL = {"PR_NUMBER": "7", "BASE_SHA": "b" * 40, "HEAD_SHA": "a" * 40}


@pytest.mark.parametrize("inputs, expected", [
    ({**PULL, "SAME_REPOSITORY": "true"},
     f"check --repo . --install-mermaid --format github --base {'b' * 40} --head {'a' * 40} --review 7"),
    # a fork's pull request: no review (its token cannot write)
    ({**PULL, "SAME_REPOSITORY": "false"},
     f"check --repo . --install-mermaid --format github --base {'b' * 40} --head {'a' * 40}"),
    ({**PULL, "SAME_REPOSITORY": "true", "INPUT_REVIEW": "false", "INPUT_CONFIG": "ci/atlas.yml"},
     f"check --repo . --install-mermaid --format github --config ci/atlas.yml --base {'b' * 40} --head {'a' * 40}"),
    ({}, "check --repo . --install-mermaid --format github --all"),  # not a pull request: every diagram
    ({"INPUT_COMMAND": "progress"}, "progress --repo . --publish"),
])
def test_action_script_builds_the_command_from_the_inputs(tmp_path: Path, inputs: dict, expected: str) -> None:
    code, calls, _ = _run_script(tmp_path, **inputs)
    assert code == 0 and calls == [expected]


@pytest.mark.parametrize("status, fail_on, expected", [(0, "blocking", 0), (1, "blocking", 1), (1, "never", 0),
                                                        (2, "never", 2)])
def test_fail_on_decides_the_steps_exit_status(tmp_path: Path, status: int, fail_on: str, expected: int) -> None:
    code, _, _ = _run_script(tmp_path, status, INPUT_FAIL_ON=fail_on, **PULL)
    assert code == expected


def test_sarif_format_writes_the_log_and_names_it_as_an_output(tmp_path: Path) -> None:
    code, calls, _ = _run_script(tmp_path, INPUT_FORMAT="sarif", **PULL)
    assert code == 0 and "--format sarif" in calls[0]
    assert (tmp_path / "atlas-bot.sarif").exists()
    assert (tmp_path / "output").read_text() == "sarif-file=atlas-bot.sarif\n"


@pytest.mark.parametrize("inputs", [{"INPUT_FAIL_ON": "sometimes"}, {"INPUT_FORMAT": "xml"},
                                    {"INPUT_COMMAND": "deploy"}])
def test_invalid_inputs_fail_with_an_error_annotation(tmp_path: Path, inputs: dict) -> None:
    code, calls, out = _run_script(tmp_path, **inputs)
    assert code == 2 and calls == [] and re.match(r"::error title=atlas-bot::", out)
