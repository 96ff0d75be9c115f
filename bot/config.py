"""One validated configuration from three layers: rules/ defaults ← the repository's .github/atlas-bot.yml ←
a CLI override file.

Every layer has the same shape (documented at the top of rules/gates.yml and in examples/atlas-bot.yml). Each
is read from YAML nodes, not from plain data, so that every problem (an unknown key, a wrong type, an unknown
check or severity, a parameter a check does not take, a message field a check does not fill) is reported as
``file:line: reason`` for the file and line that caused it. Mappings merge key by key, a list replaces the list
below it, except glossary lists, which extend it. A rule's check parameters are compiled once, when the
``Config`` is built.

Pure apart from reading the rules directory and the override file in ``load_config``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.gates import checks
from bot.model import Severity
from bot.paths import default_rules_dir

REPO_CONFIG_SOURCE = ".github/atlas-bot.yml"
# Layered in this order; each file may hold any top-level key, by convention the one its name says.
RULES_FILES = ("categories.yml", "palette.yml", "glossary.yml", "technologies.yml", "gates.yml")
ALL_CATEGORIES = "*"
WHEN_CLOSED = ("reopen", "leave", "new")
SEVERITIES = tuple(s.value for s in Severity)

TOP_KEYS = (
    "docs_root", "max_file_bytes", "categories", "limits", "review", "progress", "gates", "palette", "glossary",
    "technologies", "exclude", "gate_budget",
)
CATEGORY_KEYS = ("title", "target")
GATE_KEYS = ("title", "enabled", "evidence", "categories", "blocking", "severity", "pass", "rules")
RULE_KEYS = ("id", "check", "enabled", "severity", "categories", "params", "title", "message", "example")
# A pass condition is {all: [...]} or {any: [...]} over rule ids and nested conditions.
CONDITION_KINDS = ("all", "any")
BUDGET_KEYS = ("diagram_seconds", "change_seconds")
LIMIT_KEYS = ("max_nodes", "max_edges", "max_lines")
REVIEW_KEYS = ("request_changes_on_failure", "max_inline_comments", "review_drafts")
PROGRESS_KEYS = ("label", "when_closed", "recent_merges")
PALETTE_KEYS = ("planes",)
PLANE_KEYS = ("colour", "legacy")
GLOSSARY_KEYS = ("acronyms", "not_acronyms")
TECHNOLOGY_KEYS = ("example", "aliases")
# Lists under these paths extend the list of the layer below instead of replacing it.
EXTENDING_LISTS = (("glossary", "acronyms"), ("glossary", "not_acronyms"), ("exclude",))

# libyaml's parser when PyYAML was built with it (several times faster); the node marks are the same.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9][\w-]*$")
_TYPE_NAMES = {list: "a list", dict: "a mapping", str: "a string", bool: "true or false", int: "a whole number"}

Path_ = tuple[Any, ...]


class ConfigError(Exception):
    """An unusable configuration; ``str()`` is ``file:line: reason`` (``file: reason`` without a line)."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        super().__init__(f"{source}:{line}: {reason}" if line is not None else f"{source}: {reason}")


class ConfigErrors(ConfigError):
    """Several problems found in one pass; ``errors`` lists each (``atlas-bot config validate`` prints them all),
    and the exception reads as the first one with a count of the others."""

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more: `atlas-bot config validate` lists them)" if len(errors) > 1 else ""
        super().__init__(first.source, first.line, first.reason + more)
        self.errors = tuple(errors)


def _raise_all(errors: list[ConfigError]) -> None:
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ConfigErrors(errors)


# ------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Category:
    folder: str
    title: str
    target: int | None = None


@dataclass(frozen=True)
class Rule:
    """One rule of a gate: a check with its parameters, and the explanation a finding carries."""

    id: str
    check: str
    severity: Severity
    message: str
    example: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    categories: frozenset[str] | None = None
    enabled: bool = True
    # How a failing gate names this rule among alternatives ("none of: exact error, command or runbook").
    title: str = ""

    def applies_to(self, category: str | None) -> bool:
        """Enabled, and ``categories`` None (every diagram) or holding ``category``, as for a gate."""
        return self.enabled and (self.categories is None or category in self.categories)


@dataclass(frozen=True)
class Condition:
    """A gate's pass condition: ``all`` or ``any`` of its items, each a rule id or a nested condition."""

    kind: Literal["all", "any"]
    items: tuple[str | Condition, ...]

    def rule_ids(self) -> Iterator[str]:
        for item in self.items:
            if isinstance(item, Condition):
                yield from item.rule_ids()
            else:
                yield item


@dataclass(frozen=True)
class GateBudget:
    """How long gate evaluation may take per diagram and per change (a check run or a pull request) before
    the remaining gates are reported as not evaluated."""

    diagram_seconds: float = 2.0
    change_seconds: float = 120.0


@dataclass(frozen=True)
class Gate:
    """A quality gate: where its evidence comes from, which categories it judges, whether it blocks."""

    id: str
    title: str
    evidence: str = checks.EVIDENCE_DIAGRAM
    categories: frozenset[str] | None = None
    blocking: bool = False
    rules: tuple[Rule, ...] = ()
    enabled: bool = True
    # What must hold for the gate to pass; rules it does not name are advice. None: every rule is required,
    # and each finding stands on its own (the technical gate).
    condition: Condition | None = None

    def applies_to(self, category: str | None) -> bool:
        """``categories`` None means every diagram, including those outside the docs root."""
        return self.enabled and (self.categories is None or category in self.categories)


@dataclass(frozen=True)
class Plane:
    name: str
    colour: str
    legacy: tuple[str, ...] = ()


@dataclass(frozen=True)
class Palette:
    planes: tuple[Plane, ...] = ()


@dataclass(frozen=True)
class Glossary:
    """Acronyms that need no expansion, and capitalised words that are not acronyms at all."""

    acronyms: frozenset[str] = frozenset()
    not_acronyms: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Technology:
    name: str
    example: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Limits:
    max_nodes: int = 40
    max_edges: int = 50
    max_lines: int = 120


@dataclass(frozen=True)
class ReviewSettings:
    request_changes_on_failure: bool = False
    max_inline_comments: int = 25
    review_drafts: bool = False


@dataclass(frozen=True)
class ProgressSettings:
    label: str = "atlas-progress"
    when_closed: Literal["reopen", "leave", "new"] = "reopen"
    recent_merges: int = 10


@dataclass(frozen=True)
class Config:
    """The merged, validated configuration. ``compiled`` holds each enabled rule's prepared check state,
    keyed by (gate id, rule id), built once here so that evaluating a diagram compiles nothing."""

    docs_root: str = "docs"
    categories: tuple[Category, ...] = ()
    gates: tuple[Gate, ...] = ()
    palette: Palette = Palette()
    glossary: Glossary = Glossary()
    technologies: tuple[Technology, ...] = ()
    limits: Limits = Limits()
    max_file_bytes: int = 1_000_000
    review: ReviewSettings = ReviewSettings()
    progress: ProgressSettings = ProgressSettings()
    # Globs of repository paths never checked (``docs/templates/**``); see ``is_excluded``.
    exclude: tuple[str, ...] = ()
    gate_budget: GateBudget = GateBudget()
    compiled: Mapping[tuple[str, str], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "docs_root", _normalise_root(self.docs_root))
        compiled: dict[tuple[str, str], Any] = {}
        for gate in self.gates:
            for rule in gate.rules:
                if not rule.enabled:
                    continue
                try:
                    compiled[(gate.id, rule.id)] = checks.prepare(rule.check, rule.params, self)
                except checks.CheckParamError as exc:
                    raise RuleParamError(gate.id, rule.id, exc.param, exc.reason, exc.index) from None
        object.__setattr__(self, "compiled", compiled)

    def category_of(self, path: str) -> str | None:
        """The first folder under the docs root, or None outside it and for files directly in it."""
        path = path.removeprefix("./")
        if self.docs_root:
            prefix = self.docs_root + "/"
            if not path.startswith(prefix):
                return None
            path = path[len(prefix) :]
        folder, slash, _ = path.partition("/")
        return folder if slash and folder else None

    def is_excluded(self, path: str) -> bool:
        """True when ``path`` matches one of the ``exclude`` globs (``*`` within a folder, ``**`` across them)."""
        return any(_glob_regex(pattern).match(path.removeprefix("./")) for pattern in self.exclude)

    def category(self, folder: str) -> Category:
        """The configured category, or one titled by its folder name without a target."""
        for category in self.categories:
            if category.folder == folder:
                return category
        return Category(folder, folder, None)

    def gate(self, gate_id: str) -> Gate:
        for gate in self.gates:
            if gate.id == gate_id:
                return gate
        raise KeyError(gate_id)


class RuleParamError(ValueError):
    """A rule's parameters could not be prepared (``load_config`` turns it into a located ConfigError)."""

    def __init__(self, gate: str, rule: str, param: str | None, reason: str, index: int | None = None) -> None:
        super().__init__(f"gates.{gate}.rules.{rule}: {reason}")
        self.gate, self.rule, self.param, self.reason, self.index = gate, rule, param, reason, index


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A repository-path glob as a regex: ``**/`` any folders (none too), ``**`` anything, ``*`` and ``?``
    within one path segment, ``[...]`` a character class; a pattern ending in ``/`` means everything below."""
    pattern = pattern.strip().removeprefix("./")
    if pattern.endswith("/"):
        pattern += "**"
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 2:]:
            end = pattern.index("]", i + 2)
            body = pattern[i + 1:end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _normalise_root(root: str) -> str:
    root = root.strip().replace("\\", "/").strip("/")
    return "" if root in ("", ".") else root.removeprefix("./")


# --------------------------------------------------------------------------------------------- loading


def load_config(
    *,
    repo_config_text: str | None = None,
    repo_config_source: str = REPO_CONFIG_SOURCE,
    override_path: Path | None = None,
    rules_dir: Path | None = None,
) -> Config:
    """rules/ defaults ← the repository's YAML text ← the override file, validated; ConfigError otherwise."""
    rules_dir = rules_dir if rules_dir is not None else default_rules_dir()
    sources = [(str(rules_dir / name), lambda path=rules_dir / name: _read_text(path)) for name in RULES_FILES]
    if repo_config_text is not None:
        sources.append((repo_config_source, lambda: repo_config_text))
    if override_path is not None:
        sources.append((str(override_path), lambda: _read_text(override_path)))
    layers: list[_Layer] = []
    errors: list[ConfigError] = []
    for source, read in sources:
        # Every layer is read even when an earlier one is broken, so that one run reports every problem.
        try:
            layer = _read_layer(source, read())
        except ConfigError as exc:
            errors.append(exc)
            continue
        layers.append(layer)
        errors.extend(layer.errors)
    _raise_all(errors)
    merged = _Merged()
    for index, layer in enumerate(layers):
        merged.apply(layer, index)
    return _build(merged, default_layers=len(RULES_FILES))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(str(path), None, f"cannot read the configuration: {reason}") from None


# ------------------------------------------------------------------------------- one layer, from YAML nodes


@dataclass
class _Layer:
    source: str
    data: dict[str, Any]
    lines: dict[Path_, int]
    errors: list[ConfigError] = field(default_factory=list)


class _Reader:
    """Walks one YAML document's nodes by the schema, keeping the line of every value it keeps."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.lines: dict[Path_, int] = {}
        self.errors: list[ConfigError] = []
        self._constructor = yaml.constructor.SafeConstructor()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Record a problem found inside the block and go on with the next value, instead of stopping."""
        try:
            yield
        except ConfigError as exc:
            self.errors.append(exc)

    def fail(self, node: yaml.Node, reason: str) -> ConfigError:
        return ConfigError(self.source, node.start_mark.line + 1, reason)

    def keep(self, node: yaml.Node, path: Path_, value: Any) -> Any:
        self.lines[path] = node.start_mark.line + 1
        return value

    def mapping(self, node: yaml.Node, path: Path_, allowed: tuple[str, ...] | None) -> Iterator[tuple[str, yaml.Node]]:
        """(key, value node) pairs of a mapping; unknown keys (when ``allowed`` is given) and duplicates fail."""
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{_dotted(path)} must be a mapping")
        self.lines.setdefault(path, node.start_mark.line + 1)
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = self._constructor.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise self.fail(key_node, f"{_dotted(path)}: keys must be names")
            key = str(key)
            if key in seen:
                self.errors.append(self.fail(key_node, f"{_dotted(path + (key,))} is given twice"))
                continue
            seen.add(key)
            if allowed is not None and key not in allowed:
                self.errors.append(self.fail(key_node, f"unknown key {_dotted(path + (key,))!r}; expected one "
                                                       "of: " + ", ".join(allowed)))
                continue
            yield key, value_node

    def plain(self, node: yaml.Node, path: Path_) -> Any:
        """Any value (check parameters), lines kept for every element."""
        if isinstance(node, yaml.MappingNode):
            return self.keep(node, path, {k: self.plain(v, path + (k,)) for k, v in self.mapping(node, path, None)})
        if isinstance(node, yaml.SequenceNode):
            return self.keep(node, path, [self.plain(v, path + (i,)) for i, v in enumerate(node.value)])
        return self.keep(node, path, self._constructor.construct_object(node, deep=True))

    def scalar(self, node: yaml.Node, path: Path_, types: tuple[type, ...], what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{_dotted(path)} must be {what}")
        value = self._constructor.construct_object(node, deep=True)
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise self.fail(node, f"{_dotted(path)} must be {what}, not {_describe(value)}")
        return self.keep(node, path, value)

    def text(self, node: yaml.Node, path: Path_, *, empty: bool = False) -> str:
        # YAML reads unquoted yes/no/on/off/null and numbers as other types; the usual fix is quotes.
        value = self.scalar(node, path, (str,), "a string (put it in quotes)")
        if not empty and not value.strip():
            raise self.fail(node, f"{_dotted(path)} must not be empty")
        return value

    def flag(self, node: yaml.Node, path: Path_) -> bool:
        return self.scalar(node, path, (bool,), "true or false")

    def count(self, node: yaml.Node, path: Path_, *, minimum: int = 0, nullable: bool = False) -> int | None:
        if nullable and isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return self.keep(node, path, None)
        value = self.scalar(node, path, (int,), "a whole number" + (" or null" if nullable else ""))
        if value < minimum:
            raise self.fail(node, f"{_dotted(path)} must be at least {minimum}")
        return value

    def choice(self, node: yaml.Node, path: Path_, choices: tuple[str, ...]) -> str:
        value = self.scalar(node, path, (str,), "one of " + ", ".join(choices))
        if value not in choices:
            raise self.fail(node, f"{_dotted(path)} must be one of {', '.join(choices)}, not {value!r}")
        return value

    def strings(self, node: yaml.Node, path: Path_) -> list[str]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{_dotted(path)} must be a list of strings")
        self.keep(node, path, None)
        return [self.text(item, path + (i,)) for i, item in enumerate(node.value)]

    def categories_value(self, node: yaml.Node, path: Path_) -> str | list[str]:
        if isinstance(node, yaml.ScalarNode):
            value = self.text(node, path)
            if value != ALL_CATEGORIES:
                raise self.fail(node, f'{_dotted(path)} must be "{ALL_CATEGORIES}" or a list of category folders')
            return value
        return self.strings(node, path)


def _read_layer(source: str, text: str) -> _Layer:
    try:
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, line, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, f"not valid YAML: {exc}") from None
    reader = _Reader(source)
    data: dict[str, Any] = {}
    if root is not None:
        with reader.guard():
            for key, node in reader.mapping(root, (), TOP_KEYS):
                with reader.guard():
                    data[key] = _TOP_READERS[key](reader, node, (key,))
    return _Layer(source, data, reader.lines, reader.errors)


def _read_docs_root(r: _Reader, node: yaml.Node, path: Path_) -> str:
    value = r.text(node, path, empty=True)
    normalised = _normalise_root(value)
    if value.strip().startswith("/") or ".." in normalised.split("/"):
        raise r.fail(node, f"docs_root must be a folder inside the repository, not {value!r}")
    return value


def _read_categories(r: _Reader, node: yaml.Node, path: Path_) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for folder, value in r.mapping(node, path, None):
        if "/" in folder or not folder.strip():
            raise r.fail(value, f"category {folder!r} must be one folder name (the first folder under docs_root)")
        entry: dict[str, Any] = {}
        for key, item in r.mapping(value, path + (folder,), CATEGORY_KEYS):
            here = path + (folder, key)
            entry[key] = r.text(item, here) if key == "title" else r.count(item, here, nullable=True)
        out[folder] = entry
    return out


def _read_section(keys: tuple[str, ...], readers: Mapping[str, Any]) -> Any:
    def read(r: _Reader, node: yaml.Node, path: Path_) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in r.mapping(node, path, keys):
            with r.guard():
                out[key] = readers[key](r, item, path + (key,))
        return out

    return read


def _positive(r: _Reader, node: yaml.Node, path: Path_) -> int | None:
    return r.count(node, path, minimum=1)


def _non_negative(r: _Reader, node: yaml.Node, path: Path_) -> int | None:
    return r.count(node, path, minimum=0)


def _flag(r: _Reader, node: yaml.Node, path: Path_) -> bool:
    return r.flag(node, path)


def _text(r: _Reader, node: yaml.Node, path: Path_) -> str:
    return r.text(node, path)


def _seconds(r: _Reader, node: yaml.Node, path: Path_) -> float:
    value = r.scalar(node, path, (int, float), "a number of seconds")
    if value <= 0:
        raise r.fail(node, f"{_dotted(path)} must be more than 0 seconds")
    return float(value)


def _read_gates(r: _Reader, node: yaml.Node, path: Path_) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for gate_id, value in r.mapping(node, path, None):
        with r.guard():  # each gate and each of its keys is read on its own: one run reports every problem
            if not _IDENTIFIER.match(gate_id):
                raise r.fail(value, f"gate id {gate_id!r} must be a simple name (letters, digits, _ and -)")
            out[gate_id] = _read_gate(r, value, path + (gate_id,))
    return out


def _read_gate(r: _Reader, node: yaml.Node, here: Path_) -> dict[str, Any]:
    gate: dict[str, Any] = {}
    for key, item in r.mapping(node, here, GATE_KEYS):
        at = here + (key,)
        with r.guard():
            if key == "title":
                gate[key] = r.text(item, at)
            elif key in ("enabled", "blocking"):
                gate[key] = r.flag(item, at)
            elif key == "evidence":
                gate[key] = r.choice(item, at, checks.EVIDENCE_KINDS)
            elif key == "severity":
                gate[key] = r.choice(item, at, SEVERITIES)
            elif key == "categories":
                gate[key] = r.categories_value(item, at)
            elif key == "pass":
                gate[key] = _read_condition(r, item, at)
            else:
                gate[key] = _read_rules(r, item, at)
    return gate


@dataclass(frozen=True)
class _RawCondition:
    """A pass condition as read, with the file and line of each rule id (checked once the rules are merged).
    Not a mapping, so a later layer's condition replaces an earlier one whole instead of merging into it."""

    kind: str
    items: tuple[tuple[str, int] | _RawCondition, ...]
    source: str
    line: int


def _read_condition(r: _Reader, node: yaml.Node, path: Path_) -> _RawCondition:
    pairs = list(r.mapping(node, path, CONDITION_KINDS))
    if len(pairs) != 1:
        raise r.fail(node, f"{_dotted(path)} must have exactly one key, all or any (e.g. {{all: [metric, "
                           "{any: [error_signal, runbook]}]}})")
    kind, items_node = pairs[0]
    at = path + (kind,)
    if not isinstance(items_node, yaml.SequenceNode):
        raise r.fail(items_node, f"{_dotted(at)} must be a list of rule ids and conditions")
    if not items_node.value:
        raise r.fail(items_node, f"{_dotted(at)} is empty: name at least one rule")
    items: list[tuple[str, int] | _RawCondition] = []
    for index, item in enumerate(items_node.value):
        if isinstance(item, yaml.MappingNode):
            items.append(_read_condition(r, item, at + (index,)))
        else:
            items.append((r.text(item, at + (index,)), item.start_mark.line + 1))
    r.keep(node, path, None)
    return _RawCondition(kind, tuple(items), r.source, node.start_mark.line + 1)


def _read_rules(r: _Reader, node: yaml.Node, path: Path_) -> dict[str, Any]:
    """Rules as a list of mappings with ``id`` (as in rules/gates.yml) or as a mapping id → rule."""
    entries: list[tuple[str, yaml.Node]] = []
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            rule_id = None
            for key, value in r.mapping(item, path, RULE_KEYS):
                if key == "id":
                    rule_id = r.scalar(value, path + ("id",), (str,), "a string")
            if rule_id is None:
                raise r.fail(item, f"a rule in {_dotted(path)} has no id")
            entries.append((rule_id, item))
    else:
        entries = list(r.mapping(node, path, None))
    out: dict[str, Any] = {}
    for rule_id, item in entries:
        with r.guard():
            if not _IDENTIFIER.match(rule_id):
                raise r.fail(item, f"rule id {rule_id!r} must be a simple name (letters, digits, _ and -)")
            if rule_id in out:
                raise r.fail(item, f"rule {rule_id!r} is given twice in {_dotted(path)}")
            out[rule_id] = _read_rule(r, item, path + (rule_id,))
    return out


def _read_rule(r: _Reader, node: yaml.Node, here: Path_) -> dict[str, Any]:
    rule: dict[str, Any] = {}
    for key, value in r.mapping(node, here, RULE_KEYS):
        at = here + (key,)
        if key == "id":
            continue
        with r.guard():
            if key == "check":
                name = r.text(value, at)
                if name not in checks.CHECKS:
                    raise r.fail(value, f"unknown check {name!r}; known checks: " + ", ".join(sorted(checks.CHECKS)))
                rule[key] = name
            elif key == "enabled":
                rule[key] = r.flag(value, at)
            elif key == "severity":
                rule[key] = r.choice(value, at, SEVERITIES)
            elif key == "categories":
                rule[key] = r.categories_value(value, at)
            elif key == "params":
                params = r.plain(value, at)
                if params is None:
                    params = {}
                if not isinstance(params, dict):
                    raise r.fail(value, f"{_dotted(at)} must be a mapping")
                rule[key] = params
            else:
                rule[key] = r.text(value, at, empty=key == "example")
    return rule


def _read_palette(r: _Reader, node: yaml.Node, path: Path_) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in r.mapping(node, path, PALETTE_KEYS):
        planes: dict[str, Any] = {}
        for name, plane_node in r.mapping(value, path + (key,), None):
            here = path + (key, name)
            plane: dict[str, Any] = {}
            for field_name, item in r.mapping(plane_node, here, PLANE_KEYS):
                colours = [r.text(item, here + (field_name,))] if field_name == "colour" else r.strings(
                    item, here + (field_name,))
                for index, colour in enumerate(colours):
                    if not _HEX_COLOUR.match(colour):
                        at = item if field_name == "colour" else item.value[index]
                        raise r.fail(at, f"{_dotted(here + (field_name,))}: {colour!r} is not a #RRGGBB colour")
                plane[field_name] = colours[0] if field_name == "colour" else colours
            planes[name] = plane
        out[key] = planes
    return out


def _read_glossary(r: _Reader, node: yaml.Node, path: Path_) -> dict[str, Any]:
    return {key: r.strings(item, path + (key,)) for key, item in r.mapping(node, path, GLOSSARY_KEYS)}


def _read_technologies(r: _Reader, node: yaml.Node, path: Path_) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in r.mapping(node, path, None):
        here = path + (name,)
        out[name] = {
            key: (r.text(item, here + (key,)) if key == "example" else r.strings(item, here + (key,)))
            for key, item in r.mapping(value, here, TECHNOLOGY_KEYS)
        }
    return out


def _read_exclude(r: _Reader, node: yaml.Node, path: Path_) -> list[str]:
    globs = r.strings(node, path)
    for i, glob in enumerate(globs):
        if glob.strip().startswith("/") or ".." in glob.split("/"):
            raise r.fail(node.value[i], f"exclude: {glob!r} must be a path glob inside the repository "
                                        "(e.g. docs/templates/**)")
    return globs


_TOP_READERS: dict[str, Any] = {
    "docs_root": _read_docs_root,
    "exclude": _read_exclude,
    "max_file_bytes": _positive,
    "categories": _read_categories,
    "limits": _read_section(LIMIT_KEYS, {key: _positive for key in LIMIT_KEYS}),
    "review": _read_section(
        REVIEW_KEYS,
        {"request_changes_on_failure": _flag, "max_inline_comments": _non_negative, "review_drafts": _flag},
    ),
    "progress": _read_section(
        PROGRESS_KEYS,
        {"label": _text, "recent_merges": _non_negative,
         "when_closed": lambda r, node, path: r.choice(node, path, WHEN_CLOSED)},
    ),
    "gates": _read_gates,
    "palette": _read_palette,
    "glossary": _read_glossary,
    "technologies": _read_technologies,
    "gate_budget": _read_section(BUDGET_KEYS, {key: _seconds for key in BUDGET_KEYS}),
}


# --------------------------------------------------------------------------------------------- merging


@dataclass
class _Merged:
    """The layers merged, with (source, line, layer index) of every value kept."""

    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[Path_, tuple[str, int, int]] = field(default_factory=dict)

    def apply(self, layer: _Layer, index: int) -> None:
        self._merge(self.data, layer.data, (), layer, index)

    def _merge(self, base: dict[str, Any], over: Mapping[str, Any], path: Path_, layer: _Layer, index: int) -> None:
        for key, value in over.items():
            here = path + (key,)
            if here not in self.origin or not isinstance(value, dict) or not isinstance(base.get(key), dict):
                self._note(here, layer, index)
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                self._merge(base[key], value, here, layer, index)
            elif isinstance(value, list) and here in EXTENDING_LISTS and isinstance(base.get(key), list):
                base[key] = base[key] + [v for v in value if v not in base[key]]
            else:
                base[key] = _copy(value)
                self._note_all(value, here, layer, index)

    def _note(self, path: Path_, layer: _Layer, index: int) -> None:
        line = layer.lines.get(path)
        if line is not None:
            self.origin[path] = (layer.source, line, index)

    def _note_all(self, value: Any, path: Path_, layer: _Layer, index: int) -> None:
        self._note(path, layer, index)
        if isinstance(value, dict):
            for key, item in value.items():
                self._note_all(item, path + (key,), layer, index)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._note_all(item, path + (i,), layer, index)

    def where(self, path: Path_) -> tuple[str, int | None]:
        """The file and line that set ``path`` (or its nearest ancestor that some layer set)."""
        while path:
            if path in self.origin:
                source, line, _ = self.origin[path]
                return source, line
            path = path[:-1]
        return REPO_CONFIG_SOURCE, None

    def layer_of(self, path: Path_) -> int:
        return self.origin[path][2] if path in self.origin else -1

    def error(self, path: Path_, reason: str) -> ConfigError:
        source, line = self.where(path)
        return ConfigError(source, line, reason)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# -------------------------------------------------------------------------------------------- building


def _build(merged: _Merged, *, default_layers: int) -> Config:
    data = merged.data
    categories = tuple(
        Category(folder, entry.get("title", folder), entry.get("target"))
        for folder, entry in data.get("categories", {}).items()
    )
    known_folders = {c.folder for c in categories}
    built: list[Gate] = []
    errors: list[ConfigError] = []
    for gate_id, entry in data.get("gates", {}).items():
        try:
            built.append(_build_gate(merged, gate_id, entry, known_folders, default_layers))
        except ConfigError as exc:
            errors.append(exc)
    _raise_all(errors)
    gates = tuple(built)
    palette = Palette(tuple(
        _build_plane(merged, name, entry) for name, entry in data.get("palette", {}).get("planes", {}).items()
    ))
    glossary_data = data.get("glossary", {})
    glossary = Glossary(frozenset(glossary_data.get("acronyms", ())), frozenset(glossary_data.get("not_acronyms", ())))
    technologies = tuple(
        _build_technology(merged, name, entry) for name, entry in data.get("technologies", {}).items()
    )
    try:
        return Config(
            docs_root=data.get("docs_root", "docs"),
            categories=categories,
            gates=gates,
            palette=palette,
            glossary=glossary,
            technologies=technologies,
            limits=Limits(**data.get("limits", {})),
            max_file_bytes=data.get("max_file_bytes", Config.max_file_bytes),
            review=ReviewSettings(**data.get("review", {})),
            progress=ProgressSettings(**data.get("progress", {})),
            exclude=tuple(data.get("exclude", ())),
            gate_budget=GateBudget(**data.get("gate_budget", {})),
        )
    except RuleParamError as exc:
        path = ("gates", exc.gate, "rules", exc.rule, "params")
        at = path + tuple(p for p in (exc.param, exc.index) if p is not None)
        raise merged.error(at, f"{_dotted(path)}: {exc.reason}") from None


def _build_gate(merged: _Merged, gate_id: str, entry: Mapping[str, Any], folders: set[str], defaults: int) -> Gate:
    path = ("gates", gate_id)
    gate_categories = _categories(merged, path + ("categories",), entry.get("categories", ALL_CATEGORIES), folders)
    gate_severity = entry.get("severity")
    gate_severity_layer = merged.layer_of(path + ("severity",))
    rules = []
    for rule_id, rule in entry.get("rules", {}).items():
        here = path + ("rules", rule_id)
        for required in ("check", "message"):
            if required not in rule:
                known = ", ".join(r for r, spec in entry.get("rules", {}).items() if "check" in spec)
                raise merged.error(here, f"gate {gate_id!r} has no rule {rule_id!r} to change (its rules: {known}); "
                                         f"a new rule needs at least check and message, this one has no {required}")
        severity = rule.get("severity", Severity.WARNING.value)
        if gate_severity is not None and merged.layer_of(here + ("severity",)) < gate_severity_layer:
            severity = gate_severity
        spec = checks.CHECKS[rule["check"]]
        params = _params(merged, here + ("params",), spec, rule.get("params", {}))
        for key in ("message", "example"):
            _check_template(merged, here + (key,), rule.get(key, ""), spec)
        rules.append(Rule(
            id=rule_id,
            check=rule["check"],
            severity=Severity(severity),
            message=rule["message"],
            example=rule.get("example", ""),
            params=params,
            categories=_categories(merged, here + ("categories",), rule.get("categories", ALL_CATEGORIES), folders),
            enabled=rule.get("enabled", True),
            title=rule.get("title", rule_id.replace("_", " ")),
        ))
    raw = entry.get("pass")
    condition = _condition(raw, {rule.id: rule for rule in rules}, gate_categories, set()) if raw else None
    return Gate(
        id=gate_id,
        title=entry.get("title", gate_id),
        evidence=entry.get("evidence", checks.EVIDENCE_DIAGRAM),
        categories=gate_categories,
        blocking=entry.get("blocking", False),
        rules=tuple(rules),
        enabled=entry.get("enabled", True),
        condition=condition,
    )


def _condition(raw: _RawCondition, rules: Mapping[str, Rule], gate_categories: frozenset[str] | None,
               seen: set[str]) -> Condition:
    """The condition read, checked against the gate's merged rules: every id names a rule, none twice, and
    each can apply to some diagram the gate judges."""
    items: list[str | Condition] = []
    for item in raw.items:
        if isinstance(item, _RawCondition):
            items.append(_condition(item, rules, gate_categories, seen))
            continue
        rule_id, line = item
        if rule_id not in rules:
            raise ConfigError(raw.source, line, f"pass names no rule of this gate: {rule_id!r} (its rules: "
                                                + ", ".join(rules) + ")")
        if rule_id in seen:
            raise ConfigError(raw.source, line, f"pass names {rule_id!r} twice; the second can never matter")
        rule = rules[rule_id]
        if rule.categories is not None and gate_categories is not None and not rule.categories & gate_categories:
            raise ConfigError(raw.source, line, f"pass names {rule_id!r}, which can never matter: its categories "
                                                "share none with the gate's")
        seen.add(rule_id)
        items.append(rule_id)
    return Condition(raw.kind, tuple(items))  # type: ignore[arg-type]


def _categories(merged: _Merged, path: Path_, value: str | list[str], folders: set[str]) -> frozenset[str] | None:
    if value == ALL_CATEGORIES:
        return None
    for index, folder in enumerate(value):
        if folder not in folders:
            raise merged.error(path + (index,), f"{_dotted(path)}: unknown category {folder!r} (declare it under "
                                                "categories:, or use one of: " + ", ".join(sorted(folders)) + ")")
    return frozenset(value)


def _params(merged: _Merged, path: Path_, spec: checks.CheckSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in given.items():
        if name not in spec.params:
            accepted = ", ".join(spec.params) or "none"
            raise merged.error(path + (name,), f"check {spec.name!r} takes no parameter {name!r} (accepted: "
                                               f"{accepted})")
        param = spec.params[name]
        if not isinstance(value, param.types) or (isinstance(value, bool) and bool not in param.types):
            wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in param.types)
            raise merged.error(path + (name,), f"{_dotted(path + (name,))} must be {wanted}, not {_describe(value)}")
        if param.item_type is not None:
            for index, item in enumerate(value):
                if not isinstance(item, param.item_type):
                    wanted = _TYPE_NAMES.get(param.item_type, param.item_type.__name__)
                    raise merged.error(path + (name, index), f"{_dotted(path + (name,))} must hold only "
                                       f"{wanted} values, not {_describe(item)}")
    for name, param in spec.params.items():
        if param.required and name not in given:
            raise merged.error(path, f"check {spec.name!r} needs the parameter {name!r}")
    return dict(given)


def _check_template(merged: _Merged, path: Path_, template: str, spec: checks.CheckSpec) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise merged.error(path, f"{_dotted(path)}: {exc} (write {{{{ and }}}} for literal braces)") from None
    unknown = sorted(n for n in names if n not in spec.fields)
    if unknown:
        offered = ", ".join("{" + f + "}" for f in sorted(spec.fields)) or "none"
        raise merged.error(path, f"{_dotted(path)}: check {spec.name!r} fills no field {{{unknown[0]}}} "
                                 f"(it fills: {offered})")


def _build_plane(merged: _Merged, name: str, entry: Mapping[str, Any]) -> Plane:
    if "colour" not in entry:
        raise merged.error(("palette", "planes", name), f"palette plane {name!r} has no colour")
    return Plane(name, entry["colour"].upper(), tuple(c.upper() for c in entry.get("legacy", ())))


def _build_technology(merged: _Merged, name: str, entry: Mapping[str, Any]) -> Technology:
    example = entry.get("example")
    if example is None:
        raise merged.error(("technologies", name), f"technology {name!r} has no example version "
                                                   f"(e.g. example: \"{name} 2.1\")")
    return Technology(name, example, tuple(entry.get("aliases", ())))


def _dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path) or "the document"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{type(value).__name__} {value!r}"
