"""Configuration: the rules/ defaults, the three layers merged, categories by folder, and every error reported
with the file and line that caused it."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from bot.config import (
    REPO_CONFIG_SOURCE,
    Category,
    Condition,
    Config,
    ConfigError,
    GateBudget,
    default_rules_dir,
    load_config,
)
from bot.model import Severity

ATLAS_CATEGORIES = {
    "systems": ("Architecture Deep-Dives", 240), "incidents": ("Incident Anatomies", 100),
    "debugging": ("Debugging Guides", 100), "guarantees": ("Guarantees", 108), "mechanisms": ("Mechanisms", 120),
    "patterns": ("Patterns", 80), "performance": ("Performance Profiles", 80), "scaling": ("Scale Journeys", 80),
    "costs": ("Cost Breakdowns", 60), "migrations": ("Migration Playbooks", 60),
    "capacity": ("Capacity Planning", 60), "comparisons": ("Technology Comparisons", 40),
}


def repo(text: str) -> Config:
    return load_config(repo_config_text=textwrap.dedent(text))


def repo_error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        repo(text)
    return caught.value


# ------------------------------------------------------------------------------------------- defaults


def test_defaults_hold_the_atlas_categories_in_order() -> None:
    config = load_config()
    assert config.docs_root == "docs"
    assert {c.folder: (c.title, c.target) for c in config.categories} == ATLAS_CATEGORIES
    assert [c.folder for c in config.categories][:3] == ["systems", "incidents", "debugging"]


def test_defaults_hold_five_gates() -> None:
    config = load_config()
    assert [g.id for g in config.gates] == ["technical", "three_am", "new_hire", "cfo", "incident"]
    technical = config.gate("technical")
    assert technical.blocking and technical.categories is None and technical.evidence == "diagram"
    assert {r.id for r in technical.rules} >= {"syntax", "placeholders", "legacy_colours", "size"}
    assert not any(g.blocking for g in config.gates if g.id != "technical")
    assert config.gate("cfo").categories == frozenset({"costs", "capacity"})
    assert all(rule.message and rule.example for gate in config.gates for rule in gate.rules)
    assert set(config.compiled) == {(g.id, r.id) for g in config.gates for r in g.rules}


def test_defaults_hold_palette_glossary_and_technologies() -> None:
    config = load_config()
    planes = {p.name: (p.colour, p.legacy) for p in config.palette.planes}
    assert planes == {"Edge": ("#3B82F6", ("#0066CC",)), "Service": ("#10B981", ("#00AA00",)),
                      "State": ("#F59E0B", ("#FF8800",)), "Control": ("#8B5CF6", ("#CC0000",))}
    assert {"API", "HTTP", "CPU", "DNS", "SQL"} <= config.glossary.acronyms
    assert len(config.glossary.acronyms) >= 100
    names = {t.name: t.example for t in config.technologies}
    assert names["PostgreSQL"] == "PostgreSQL 16" and {"Kafka", "Redis", "Kubernetes", "Envoy", "Nginx"} <= set(names)
    assert config.review.max_inline_comments == 25 and config.progress.when_closed == "reopen"


def test_default_rules_dir_is_next_to_the_package_unless_the_environment_says(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("ATLAS_RULES_DIR", raising=False)
    assert (default_rules_dir() / "gates.yml").is_file()
    monkeypatch.setenv("ATLAS_RULES_DIR", str(tmp_path))
    assert default_rules_dir() == tmp_path


# ----------------------------------------------------------------------------------------- categories


@pytest.mark.parametrize(("docs_root", "path", "category"), [
    ("docs", "docs/systems/netflix/architecture.md", "systems"),
    ("docs", "docs/costs/aws.md", "costs"),
    ("docs", "docs/index.md", None),
    ("docs", "README.md", None),
    ("docs", "docsx/systems/a.md", None),
    ("docs", "./docs/incidents/a.md", "incidents"),
    ("site/docs", "site/docs/systems/a/b.md", "systems"),
    ("site/docs", "docs/systems/a.md", None),
    ("site/docs/", "site/docs/runbooks/a.md", "runbooks"),
    (".", "systems/a.md", "systems"),
    (".", "README.md", None),
])
def test_category_of(docs_root: str, path: str, category: str | None) -> None:
    assert repo(f"docs_root: {docs_root!r}\n").category_of(path) == category


def test_category_of_an_unknown_folder_is_titled_by_its_name() -> None:
    config = load_config()
    assert config.category("runbooks") == Category("runbooks", "runbooks", None)
    assert config.category("systems") == Category("systems", "Architecture Deep-Dives", 240)


# ---------------------------------------------------------------------------------------------- merging


def test_repository_retitles_retargets_and_adds_categories() -> None:
    config = repo("""
        categories:
          systems: {target: 300}
          runbooks: {title: Runbooks, target: 50}
    """)
    assert config.category("systems") == Category("systems", "Architecture Deep-Dives", 300)
    assert config.categories[-1] == Category("runbooks", "Runbooks", 50)


def test_override_file_wins_over_the_repository(tmp_path: Path) -> None:
    override = tmp_path / "ci.yml"
    override.write_text("docs_root: site/docs\nreview: {max_inline_comments: 3}\n")
    config = load_config(repo_config_text="docs_root: handbook\nreview: {review_drafts: true}\n",
                         override_path=override)
    assert config.docs_root == "site/docs"
    assert config.review.max_inline_comments == 3 and config.review.review_drafts is True


def test_gate_retuned_by_the_repository() -> None:
    config = repo("""
        gates:
          three_am:
            blocking: true
            severity: error
            categories: [debugging]
            rules:
              metric: {severity: notice}
              runbook:
                params:
                  patterns: ['\\bwiki/ops\\b']
          incident: {enabled: false}
    """)
    gate = config.gate("three_am")
    assert gate.blocking and gate.categories == frozenset({"debugging"})
    severities = {r.id: r.severity for r in gate.rules}
    assert severities == {"error_signal": Severity.ERROR, "metric": Severity.NOTICE, "runbook": Severity.ERROR,
                          "recovery": Severity.ERROR}
    assert next(r for r in gate.rules if r.id == "runbook").params["patterns"] == [r"\bwiki/ops\b"]
    assert not config.gate("incident").applies_to("incidents")


def test_gate_severity_does_not_override_a_rule_severity_set_in_a_later_layer(tmp_path: Path) -> None:
    override = tmp_path / "ci.yml"
    override.write_text("gates:\n  cfo:\n    rules:\n      cost: {severity: notice}\n")
    config = load_config(repo_config_text="gates:\n  cfo:\n    severity: error\n", override_path=override)
    assert {r.id: r.severity.value for r in config.gate("cfo").rules} == {
        "cost": "notice", "commitment_or_growth": "error"}


def test_glossary_extends_and_technologies_add() -> None:
    config = repo("""
        glossary:
          acronyms: [WAL]
        technologies:
          Temporal: {example: Temporal 1.23, aliases: [temporal.io]}
          Redis: {example: Redis 7.4}
    """)
    assert {"WAL", "API"} <= config.glossary.acronyms
    examples = {t.name: t.example for t in config.technologies}
    assert examples["Temporal"] == "Temporal 1.23" and examples["Redis"] == "Redis 7.4"


def test_a_new_rule_is_added_to_its_gate() -> None:
    config = repo("""
        gates:
          new_hire:
            rules:
              - id: owner
                check: evidence_matches
                params: {patterns: ['owner:']}
                message: No owner
    """)
    owner = config.gate("new_hire").rules[-1]
    assert (owner.id, owner.severity, owner.example) == ("owner", Severity.WARNING, "")


def test_the_sample_configuration_loads() -> None:
    sample = Path(__file__).resolve().parent.parent / "examples" / "atlas-bot.yml"
    config = load_config(repo_config_text=sample.read_text(), repo_config_source="examples/atlas-bot.yml")
    assert config.docs_root == "site/docs"
    assert config.category_of("site/docs/runbooks/a.md") == "runbooks"


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        load_config().docs_root = "x"  # type: ignore[misc]


def test_empty_repository_configuration_changes_nothing() -> None:
    assert repo("") == load_config() == repo("# only a comment\n")


# ----------------------------------------------------------------------------------------------- errors

# (repository YAML, line of the error, words the reason must contain)
ERROR_CASES = [
    pytest.param("docs_root: docs\ncolour: blue\n", 2, ["unknown key 'colour'"], id="unknown-top-key"),
    pytest.param("review:\n  max_inline_comments: 5\n  colour: blue\n", 3, ["review.colour"], id="unknown-nested-key"),
    pytest.param("review:\n  review_drafts: 'yes'\n", 2, ["review.review_drafts", "true or false"],
                 id="wrong-type-bool"),
    pytest.param("review:\n  max_inline_comments: five\n", 2, ["whole number"], id="wrong-type-int"),
    pytest.param("limits:\n  max_nodes: 0\n", 2, ["at least 1"], id="limit-too-small"),
    pytest.param("progress:\n  when_closed: delete\n", 2, ["reopen, leave, new"], id="bad-choice"),
    pytest.param("docs_root: ../elsewhere\n", 1, ["inside the repository"], id="docs-root-outside"),
    pytest.param("categories:\n  systems:\n    target: lots\n", 3, ["categories.systems.target"], id="bad-target"),
    pytest.param("categories:\n  a/b: {title: X}\n", 2, ["one folder name"], id="nested-category"),
    pytest.param("gates:\n  cfo:\n    blocking: 1\n", 3, ["gates.cfo.blocking", "true or false"], id="int-for-bool"),
    pytest.param("gates:\n  cfo:\n    severity: fatal\n", 3, ["error, warning, notice"], id="bad-gate-severity"),
    pytest.param("gates:\n  cfo:\n    rules:\n      cost: {severity: critical}\n", 4, ["error, warning, notice"],
                 id="bad-rule-severity"),
    pytest.param("gates:\n  cfo:\n    evidence: page\n", 3, ["diagram, section, file"], id="bad-evidence"),
    pytest.param("gates:\n  cfo:\n    categories: [costs,\n      cost]\n", 4, ["unknown category 'cost'"],
                 id="unknown-category"),
    pytest.param("gates:\n  cfo:\n    categories: all\n", 3, ['"*" or a list'], id="bad-categories"),
    pytest.param("gates:\n  cfo:\n    rules:\n      x:\n        check: magic\n", 5, ["unknown check 'magic'"],
                 id="unknown-check"),
    pytest.param("gates:\n  cfo:\n    rules:\n      costt: {severity: error}\n", 4,
                 ["no rule 'costt'", "its rules: cost, commitment_or_growth"], id="rule-typo-is-a-new-rule-without-check"),
    pytest.param("gates:\n  cfo:\n    rules:\n      cost:\n        params: {pattern: ['x']}\n", 5,
                 ["takes no parameter 'pattern'", "patterns"], id="unknown-param"),
    pytest.param("gates:\n  cfo:\n    rules:\n      cost:\n        params: {patterns: 'x'}\n", 5,
                 ["must be a list"], id="param-wrong-type"),
    pytest.param("gates:\n  cfo:\n    rules:\n      cost:\n        params:\n          patterns:\n"
                 "            - ok\n            - '(broken'\n", 8, ["invalid regular expression"], id="bad-regex"),
    pytest.param("gates:\n  cfo:\n    rules:\n      cost:\n        message: 'No {amount}'\n", 5,
                 ["fills no field {amount}"], id="unknown-message-field"),
    pytest.param("gates:\n  cfo:\n    rules:\n      cost:\n        example: 'a {'\n", 5, ["literal braces"],
                 id="broken-template"),
    pytest.param("gates:\n  new_hire:\n    rules:\n      - check: acronyms\n", 4, ["has no id"], id="list-rule-no-id"),
    pytest.param("gates:\n  technical:\n    rules:\n      size: {params: {max: 3}}\n", 4, ["takes no parameter"],
                 id="param-for-a-check-without-params"),
    pytest.param("glossary:\n  acronyms: [WAL, NO]\n", 2, ["put it in quotes"], id="yaml-boolean-in-glossary"),
    pytest.param("technologies:\n  Temporal: {aliases: [T]}\n", 2, ["no example version"], id="technology-no-example"),
    pytest.param("palette:\n  planes:\n    Edge: {colour: blue}\n", 3, ["#RRGGBB"], id="bad-colour"),
    pytest.param("review:\n  max_inline_comments: 5\n  max_inline_comments: 6\n", 3, ["given twice"],
                 id="duplicate-key"),
    pytest.param("review: [1, 2]\n", 1, ["review must be a mapping"], id="list-for-mapping"),
    pytest.param("review:\n  max_inline_comments: [5\n", 3, ["not valid YAML"], id="yaml-syntax"),
    pytest.param("- just\n- a list\n", 1, ["the document must be a mapping"], id="top-level-list"),
    # pass conditions
    pytest.param("gates:\n  cfo:\n    pass: {all: [cost, costs]}\n", 3, ["names no rule of this gate: 'costs'",
                 "its rules: cost, commitment_or_growth"], id="pass-unknown-rule"),
    pytest.param("gates:\n  cfo:\n    pass:\n      all:\n        - cost\n        - {any: []}\n", 6, ["is empty"],
                 id="pass-empty-list"),
    pytest.param("gates:\n  cfo:\n    pass:\n      all:\n        - cost\n        - {any: [cost]}\n", 6,
                 ["names 'cost' twice", "never matter"], id="pass-rule-twice"),
    pytest.param("gates:\n  cfo:\n    pass: {all: [cost], any: [cost]}\n", 3, ["exactly one key"], id="pass-two-keys"),
    pytest.param("gates:\n  cfo:\n    pass: {each: [cost]}\n", 3, ["unknown key", "all, any"], id="pass-bad-kind"),
    pytest.param("gates:\n  cfo:\n    pass: {all: cost}\n", 3, ["must be a list"], id="pass-not-a-list"),
    pytest.param("gates:\n  cfo:\n    pass: {all: [cost]}\n    rules:\n      cost: {categories: [systems]}\n", 3,
                 ["'cost', which can never matter", "categories"], id="pass-rule-outside-the-gate-categories"),
    pytest.param("gate_budget:\n  diagram_seconds: 0\n", 2, ["more than 0 seconds"], id="budget-zero"),
    pytest.param("gate_budget:\n  per_pr: 3\n", 2, ["unknown key"], id="budget-unknown-key"),
]


@pytest.mark.parametrize(("text", "line", "words"), ERROR_CASES)
def test_errors_name_the_repository_file_and_line(text: str, line: int, words: list[str]) -> None:
    error = repo_error(text)
    assert (error.source, error.line) == (REPO_CONFIG_SOURCE, line), str(error)
    assert str(error).startswith(f"{REPO_CONFIG_SOURCE}:{line}: ")
    for word in words:
        assert word in error.reason, error.reason


def test_errors_name_the_override_file(tmp_path: Path) -> None:
    override = tmp_path / "ci.yml"
    override.write_text("gates:\n  three_am:\n    categories: [debuging]\n")
    with pytest.raises(ConfigError) as caught:
        load_config(repo_config_text="docs_root: docs\n", override_path=override)
    assert (caught.value.source, caught.value.line) == (str(override), 3)


def test_missing_override_file_is_an_error_without_a_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(override_path=missing)
    assert caught.value.source == str(missing) and caught.value.line is None
    assert str(caught.value).startswith(f"{missing}: cannot read the configuration")


def test_a_category_declared_in_the_same_file_may_be_used_by_a_gate() -> None:
    config = repo("categories:\n  runbooks: {title: Runbooks}\ngates:\n  three_am:\n    categories: [runbooks]\n")
    assert config.gate("three_am").applies_to("runbooks")


def test_errors_in_a_rules_directory_name_that_file(tmp_path: Path) -> None:
    rules = default_rules_dir()
    for name in ("categories.yml", "palette.yml", "glossary.yml", "technologies.yml"):
        (tmp_path / name).write_text((rules / name).read_text())
    (tmp_path / "gates.yml").write_text("gates:\n  only:\n    rules:\n      - id: r\n        check: acronyms\n"
                                        "        severity: loud\n")
    with pytest.raises(ConfigError) as caught:
        load_config(rules_dir=tmp_path)
    assert (caught.value.source, caught.value.line) == (str(tmp_path / "gates.yml"), 6)


def test_a_minimal_rules_directory_gives_a_minimal_config(tmp_path: Path) -> None:
    for name in ("categories.yml", "palette.yml", "glossary.yml", "technologies.yml", "gates.yml"):
        (tmp_path / name).write_text("")
    config = load_config(rules_dir=tmp_path)
    assert (config.docs_root, config.categories, config.gates, config.technologies) == ("docs", (), (), ())
    assert config.category_of("docs/x/y.md") == "x"


def test_a_repository_replaces_a_gate_pass_condition_whole() -> None:
    config = repo("""
        gates:
          three_am:
            pass: {any: [metric, runbook]}
    """)
    assert config.gate("three_am").condition == Condition("any", ("metric", "runbook"))
    assert config.gate("incident").condition == Condition(
        "all", ("failure_modes", Condition("any", ("blast_radius", "recovery_time", "rollback"))))
    assert config.gate("technical").condition is None


def test_gate_budget_is_read_and_defaults_apply() -> None:
    assert repo("gate_budget: {change_seconds: 30}").gate_budget == GateBudget(diagram_seconds=2.0, change_seconds=30.0)
