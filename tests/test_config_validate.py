"""`atlas-bot config validate [FILE]`: every problem of a configuration, each with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import EXIT_OK, EXIT_USAGE, main
from bot.config import ConfigError, ConfigErrors, load_config

BROKEN = """docs_root: docs
no_such_key: 1
review:
  max_inline_comments: many
  colour: red
categories:
  costs:
    target: lots
exclude:
  - ../outside/**
gates:
  technical:
    blocking: maybe
"""
EXPECTED_LINES = [2, 4, 5, 8, 10, 13]


def test_every_error_is_reported_with_its_line() -> None:
    with pytest.raises(ConfigErrors) as raised:
        load_config(repo_config_text=BROKEN, repo_config_source=".github/atlas-bot.yml")
    errors = raised.value.errors
    assert [e.line for e in errors] == EXPECTED_LINES
    assert all(e.source == ".github/atlas-bot.yml" for e in errors)
    # Read as one error it is the first one, with a count: what the App's neutral check run shows.
    assert (raised.value.line, raised.value.source) == (2, ".github/atlas-bot.yml")
    assert "and 5 more" in raised.value.reason


GATE_ERRORS = """gates:
  technical:
    severity: fatal
    enabled: maybe
    bogus_key: 1
  three_am:
    rules:
      metric:
        severity: loud
        enabled: perhaps
      "bad id!":
        check: metric_present
  "no good":
    title: x
"""


def test_every_error_inside_one_gate_and_one_rule_is_reported() -> None:
    with pytest.raises(ConfigErrors) as raised:
        load_config(repo_config_text=GATE_ERRORS)
    assert [e.line for e in raised.value.errors] == [3, 4, 5, 9, 10, 12, 14]


def test_a_single_error_stays_a_plain_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(repo_config_text="docs_root: docs\nno_such_key: 1\n")
    assert type(raised.value) is ConfigError and raised.value.line == 2


def test_errors_of_every_layer_are_reported(tmp_path: Path) -> None:
    override = tmp_path / "override.yml"
    override.write_text("gates: [\n")
    with pytest.raises(ConfigErrors) as raised:
        load_config(repo_config_text="no_such_key: 1\n", override_path=override)
    assert [(e.source, e.line) for e in raised.value.errors] == [(".github/atlas-bot.yml", 1), (str(override), 2)]


def test_config_validate_lists_every_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "atlas-bot.yml"
    path.write_text(BROKEN)
    assert main(["config", "validate", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[2] for line in err[:-1]] == [str(n) for n in EXPECTED_LINES]
    assert err[-1] == f"{path}: 6 errors"


def test_config_validate_accepts_a_valid_file(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github/atlas-bot.yml").write_text("exclude: [docs/templates/**]\n")
    monkeypatch.chdir(tmp_path)
    assert main(["config", "validate"]) == EXIT_OK  # default: .github/atlas-bot.yml
    assert capsys.readouterr().out == ".github/atlas-bot.yml: valid\n"


def test_config_validate_of_a_missing_file_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["config", "validate", str(tmp_path / "none.yml")]) == EXIT_USAGE
    assert "no such file" in capsys.readouterr().err
