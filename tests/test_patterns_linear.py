"""No regular expression of the gates backtracks super-linearly: Python holds the GIL for one regex call, so a
single quadratic pattern on a 100k-character label would freeze every request of the App.

Every compiled pattern of bot.gates.checks and bot.gates.engine, and every pattern the default rules compile,
runs against 100k-character adversarial inputs (runs of spaces, word characters, digits, punctuation, and
repeats of the pattern's own literal fragments) the way the code runs it: patterns used only with ``match``
or ``fullmatch`` at a few positions, the others with ``finditer`` over the whole text. The bound is generous
(a linear scan of 100k characters takes milliseconds; a quadratic one takes minutes): it proves "bounded",
not a speed.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator

import pytest

from bot.config import load_config
from bot.gates import checks, engine

LENGTH = 100_000
BOUND_SECONDS = 5.0
# Module patterns the code only ever applies with match / fullmatch at a position.
ANCHORED = {
    "_FLOW_TOKEN", "_FLOW_SIMPLE", "_FLOW_SKIP", "_SUBGRAPH", "_SUBGRAPH_ID_TITLE", "_SEQ_PARTICIPANT",
    "_SEQ_BLOCK", "_SEQ_SILENT", "_GENERIC_SKIP", "_EXPANSION_FOLLOWS", "_VERSION_AFTER", "_COUNT_NOUNS",
    "_POINTER_LINE", "_PARSE_ERROR_HEAD", "_SETEXT_UNDERLINE", "_NOT_PARAGRAPH",
}
RUNS = [" ", "\t", "a", "A", "1", "1.", "1,", "a ", "1 ", "a-", "[", "(", '"', "`", "<", "\n", "a:", "$1", "1%", "-->"]
# Anchored patterns start where the code points them: after a name ("Kafka" + spaces), inside a statement.
PREFIXES = ["", "Kafka", "graph TD\n    A"]


def _module_patterns() -> Iterator[tuple[str, re.Pattern[str], bool]]:
    for module in (checks, engine):
        for name, value in vars(module).items():
            if isinstance(value, re.Pattern):
                yield f"{module.__name__}.{name}", value, name in ANCHORED


def _rule_patterns() -> Iterator[tuple[str, re.Pattern[str], bool]]:
    config = load_config()
    for (gate, rule), state in config.compiled.items():
        found: list[re.Pattern[str]] = []
        if isinstance(state, checks._Evidence):
            # The needle tests are alternations of literals; what runs is the pattern or its folded twin.
            for pattern in state.patterns:
                found.append(pattern.folded if pattern.folded is not None else pattern.regex)
            found += [p for p in (state.unless_before, state.unless_after) if p is not None]
        elif dataclasses.is_dataclass(state):
            found += [value for value in (getattr(state, f.name) for f in dataclasses.fields(state))
                      if isinstance(value, re.Pattern)]
        for index, pattern in enumerate(found):
            yield f"{gate}.{rule}[{index}]", pattern, False


PATTERNS = list(_module_patterns()) + list(_rule_patterns())


def _inputs(pattern: re.Pattern[str], anchored: bool) -> Iterator[str]:
    fragments = list(dict.fromkeys(re.findall(r"[A-Za-z]{3,}", pattern.pattern)))[:2]
    for run in RUNS + [f + " " for f in fragments] + fragments:
        body = (run * (LENGTH // len(run) + 1))[:LENGTH]
        for prefix in PREFIXES if anchored else PREFIXES[:1]:
            yield prefix + body


@pytest.mark.parametrize(("name", "pattern", "anchored"), PATTERNS, ids=[p[0] for p in PATTERNS])
def test_pattern_is_linear_on_adversarial_input(name: str, pattern: re.Pattern[str], anchored: bool) -> None:
    for text in _inputs(pattern, anchored):
        started = time.perf_counter()
        if anchored:
            for pos in (0, 1, 5, len(text) // 2):
                pattern.match(text, pos)
        else:
            for _ in pattern.finditer(text):
                pass
        elapsed = time.perf_counter() - started
        assert elapsed < BOUND_SECONDS, f"{name} took {elapsed:.1f} s on {text[:12]!r}… ({len(text)} chars)"


def test_every_module_pattern_is_covered() -> None:
    names = {name.rsplit(".", 1)[-1] for name, _, _ in _module_patterns()}
    assert ANCHORED <= names
