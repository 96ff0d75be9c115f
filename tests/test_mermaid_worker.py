"""The mermaid worker's bundle patches that change how mermaid works inside, not what it answers: the lexer
filter (bot/mermaid/lexer-filter.mjs) must admit every rule that can match, at every position of any input; the
jison stacks truncated in place, the reused configurations and the flowchart databases' shared config copy keep
mermaid's verdicts, and encodeEntities drops the semicolons its own regexes drop. So does the cache of the patched
bundle and V8's code for it that the workers start from.

These run without the corpus: the rules are read from the pinned bundle, the inputs are written here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.gates.mermaid import MermaidPool
from bot.paths import mermaid_dir

@pytest.fixture(scope="module")
def pool() -> MermaidPool:
    with MermaidPool(workers=1) as shared:
        yield shared


def run_node_check(script: str, *, stdin: str | None = None, timeout: float = 60) -> Any:
    """What an ES-module ``script`` run by Node beside the worker's modules writes to stdout, read as JSON."""
    result = subprocess.run([shutil.which("node") or "node", "--input-type=module", "-e", script], input=stdin,
                            capture_output=True, text=True, cwd=mermaid_dir(), timeout=timeout, check=True)
    return json.loads(result.stdout)


# Every rule regex of the bundle's 18 jison lexers, checked at every suffix of every input: when a rule matches
# there, the filter must list it (a missed rule would change which token the lexer takes).
SOUNDNESS_CHECK = r"""
import fs from "node:fs";
import { createRequire } from "node:module";
import { makeLexerFilter } from "./lexer-filter.mjs";
const require = createRequire(import.meta.url);
const bundle = fs.readFileSync(require.resolve("mermaid/dist/mermaid.js"), "utf8");
const lexers = [...bundle.matchAll(/^ *rules: (\[\/.*\]),$/gm)].map((m) => (0, eval)(m[1]));
const inputs = JSON.parse(fs.readFileSync(0, "utf8"));
const candidateRules = makeLexerFilter();
const missed = [];
let checked = 0;
for (const rules of lexers) {
  const lists = rules.map((_, number) => [number]);
  const all = rules.map((_, number) => number);
  for (const input of inputs) {
    // A lexer that consumes its input from the front only, as the bundle's do: its gate answers are remembered
    // from one position to the next.
    const lexer = { performAction() {} };
    // One whose actions put text back: its input may grow again, here from the last character to the whole.
    const puttingBack = { performAction() { this.unput(""); } };
    for (let at = 0; at <= input.length; at++) {
      const rest = input.slice(at);
      const growing = input.slice(input.length - at);
      const admitted = new Set(candidateRules(rules, all, rest, lexer));
      const admittedGrowing = new Set(candidateRules(rules, all, growing, puttingBack));
      rules.forEach((rule, number) => {
        checked += 1;
        if (rest.match(rule) && (!candidateRules(rules, lists[number], rest).includes(number) || !admitted.has(number))) {
          missed.push([String(rule), rest.slice(0, 30)]);
        }
        if (growing.match(rule) && !admittedGrowing.has(number)) {
          missed.push([String(rule), growing.slice(0, 30)]);
        }
      });
    }
  }
}
process.stdout.write(JSON.stringify({ lexers: lexers.length, checked, missed: missed.slice(0, 20) }));
"""

INPUTS = [
    "",
    "flowchart TD\n  subgraph one\n    direction LR\n    a1 --> a2\n  end\n  one -- text --> two\n",
    "FLOWCHART td\n  A[\"quoted\"] -.-> B((circle)) ==> C{{hex}}\n  click A callback \"tip\"\n",
    "graph LR\r\n  A-->|label|B\r\n  %% comment\r\n  style A fill:#f9f,stroke:#333\r\n",
    "stateDiagram-v2\n  state fork_state <<fork>>\n  state c [[choice]]\n  [*] --> fork_state\n  direction RL\n",
    "sequenceDiagram\n  PARTICIPANT Alice\n  Alice->>+Bob: Hi; there\n  Note right of Bob: ok\n  loop every\n  end\n",
    "classDiagram\n  class Animal~T~ {\n    +int age\n    +isMammal() bool$\n  }\n  Animal <|-- Duck : extends\n",
    "gantt\n  dateFormat YYYY-MM-DD\n  section S\n  Task :a1, 2024-01-01, 1d\n  Next :after a1, 2d\n",
    "erDiagram\n  CUSTOMER ||--o{ ORDER : places\n  ORDER }|..|{ LINE-ITEM : contains\n",
    "journey\n  title My day\n  section Go\n    Make tea: 5: Me\n",
    "pie showData\n  title Pets\n  \"Dogs\" : 386\n",
    "mindmap\n  root((x))\n    A\n      B\n",
    "timeline\n  title T\n  2002 : LinkedIn\n",
    "quadrantChart\n  x-axis Low --> High\n  quadrant-1 We\n  A: [0.3, 0.6]\n",
    "xychart-beta\n  x-axis [jan, feb]\n  bar [1, 2]\n",
    "requirementDiagram\n  requirement r {\n  id: 1\n  risk: high\n  }\n",
    "C4Context\n  Person(a, \"A\")\n  Rel(a, b, \"uses\")\n",
    "sankey-beta\n  a,b,1.5\n",
    "block-beta\n  columns 3\n  a:2 b\n  space\n",
    "kanban\n  todo[Todo]\n    t1[Task]@{ ticket: 1 }\n",
    "%%{init: {\"theme\": \"dark\"}}%%\nflowchart LR\n  a --> b\u2028direction TB\u00e9\u4e2d \t\\\u00a0~`^$|&*?+!@\n",
    # the `.*LITERAL` rules' literal before and after every kind of line break, and twice on one line
    "flowchart LR\r  direction TB\r  a-->b\u2029direction LR x\u2028 y direction RL direction BT\r\nc\ndirection",
    "stateDiagram\n  state a <<fork>> <<join>>\n  b [[choice]]\u2028<<choice>>\r  DIRECTION lr\n",
    # links after runs of every kind of whitespace (the `\s*` link rules are screened after the run)
    "graph TD\n \t\u00a0--> a\u3000 x--x b \ufeff<==> c\u2028-.-> d\u2029 ~~~ e \u000b--- f\r\n"
    "  o-- g \u2003==x\n   \n \t",
]


def test_lexer_filter_admits_every_rule_that_can_match() -> None:
    report = run_node_check(SOUNDNESS_CHECK, stdin=json.dumps(INPUTS), timeout=300)
    assert report["lexers"] == 18 and report["checked"] > 1_000_000
    assert report["missed"] == []


# Verdicts of the worker without the lexer filter, for diagrams whose tokens come from the rules the filter
# treats specially: a rule only a rare first character starts, the `.*direction` rules (skipped on a line
# without the word), case-insensitive keywords, a first token at the end of input.
@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        ("flowchart TD\n  subgraph one\n    direction LR\n    a --> b\n  end\n", (True, "flowchart-v2")),
        ("flowchart TD\n  subgraph one\n    a --> b\n  end\n  direction BT\n", (True, "flowchart-v2")),
        ("stateDiagram-v2\n  state f <<fork>>\n  state c [[choice]]\n  [*] --> f\n", (True, "stateDiagram")),
        ("sequenceDiagram\n  PARTICIPANT Alice\n  ALICE->>Bob: hi\n", (True, "sequence")),
        ("flowchart LR\n  A --> B\n  style A fill:#f9f\n", (True, "flowchart-v2")),
        ("flowchart LR\n  A -->", (False, None)),
        ("flowchart LR\n  A ~~~ B\n", (True, "flowchart-v2")),
        ("classDiagram\n  namespace N {\n    class A\n  }\n  direction RL\n", (True, "classDiagram")),
    ],
    ids=["direction-in-subgraph", "direction-after-subgraph", "state-fork-choice", "case-insensitive-keyword",
         "hash-colour", "token-at-end-of-input", "invisible-link", "class-namespace-puts-text-back"],
)
def test_lexer_filter_keeps_verdicts(pool: MermaidPool, code: str, verdict: tuple[bool, str | None]) -> None:
    result = pool.parse(code)
    assert (result.ok, result.type if result.ok else None) == verdict


def test_worker_reports_the_inner_patches_applied() -> None:
    worker = subprocess.run([shutil.which("node") or "node", str(mermaid_dir() / "worker.mjs")], input="",
                            capture_output=True, text=True, cwd=mermaid_dir(), timeout=60, check=True)
    patches = json.loads(worker.stdout.splitlines()[0])["patches"]
    assert {name: patches[name] for name in ("lexerFilter", "popInPlace", "flowConfig", "directivesMerge",
                                             "entitySemicolons", "tagQuotes")} == {
        "lexerFilter": True, "popInPlace": True, "flowConfig": True, "directivesMerge": True,
        "entitySemicolons": True, "tagQuotes": True}


# Two text functions compared on ``lines`` and on generated texts of 1 to ``maxParts`` pieces drawn from ``parts``
# (a fixed seed, so every run checks the same texts): how many texts, how many ``original`` changed, the first
# that the two disagree on.
COMPARE_ON_TEXTS = r"""
const compareOnTexts = (original, rewritten, { lines, parts, seed, count, maxParts }) => {
  const pick = (list) => list[((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) % list.length];
  const texts = [...lines];
  for (let n = 0; n < count; n++) {
    texts.push(Array.from({ length: 1 + (n % maxParts) }, () => pick(parts)).join(""));
  }
  const wrong = texts.filter((text) => original(text) !== rewritten(text));
  const changed = texts.filter((text) => original(text) !== text).length;
  return { checked: texts.length, changed, wrong: wrong.slice(0, 5) };
};
"""


# The bundle's own encodeEntities, read from it, against the same function with its two semicolon passes done by
# dropLastSemicolon, on generated texts made of what those passes look at (the words, `:`, `#`, `;`, every kind
# of whitespace and line terminator) and on lines as diagrams write them.
ENTITIES_CHECK = r"""
import fs from "node:fs";
import { createRequire } from "node:module";
import { dropLastSemicolon } from "./entities.mjs";
""" + COMPARE_ON_TEXTS + r"""
const require = createRequire(import.meta.url);
const bundle = fs.readFileSync(require.resolve("mermaid/dist/mermaid.js"), "utf8");
const head = "encodeEntities = /* @__PURE__ */ __name(";
const start = bundle.indexOf(head) + head.length;
const source = bundle.slice(start, bundle.indexOf('}, "encodeEntities");', start) + 1);
const passes = /        txt = txt\.replace\(\/style[^]*?\n        }\);\n        txt = txt\.replace\(\/classDef[^]*?\n        }\);\n/;
if (!passes.test(source)) throw new Error("encodeEntities no longer starts with the two semicolon passes");
const patched = source.replace(passes, 'txt = drop(txt, "style");\ntxt = drop(txt, "classDef");\n');
const original = (0, eval)(`(${source})`);
const rewritten = new Function("drop", `return (${patched});`)(dropLastSemicolon);
const parts = ["style", "classDef", "styl", "e", "Def", ":", "#", ";", "a", "1", "fill", "-", " ", "\t", "\v", "\f",
  "\u00a0", "\u1680", "\u3000", "\ufeff", "\x1c", "\u0085", "\n", "\r", "\r\n", "\u2028", "\u2029", "::", "##",
  ";;", "#9829;", "&"];
const lines = ["    style A fill:#3B82F6,stroke:#1E40AF,color:#fff;", "  classDef edge fill:#3B82F6;stroke:#000;",
  "  style B fill: #fff;", "  classDef a fill:#f9f;\n  style a color:#000;  %% ;", "linkStyle 0 stroke:#f00;",
  "style x fill:#1;;", "A[style: #1;] --> B", "classDef mystyle fill:#f00;"];
process.stdout.write(JSON.stringify(
  compareOnTexts(original, rewritten, { lines, parts, seed: 7, count: 300000, maxParts: 16 })));
"""


def test_entity_semicolons_are_dropped_as_mermaid_does() -> None:
    report = run_node_check(ENTITIES_CHECK, timeout=120)
    assert report["wrong"] == []
    assert report["changed"] > 10_000  # the passes did drop semicolons in many of them



# The bundle's own cleanupText against the worker's (tagQuotes), read from the bundle the worker patched (its
# code cache file), on generated texts made of what the two passes look at: tags, attributes, both quote marks,
# `=`, `>`, replacement-pattern look-alikes and every line ending.
TAG_QUOTES_CHECK = r"""
import fs from "node:fs";
import { createRequire } from "node:module";
""" + COMPARE_ON_TEXTS + r"""
const require = createRequire(import.meta.url);
const head = "var cleanupText = /* @__PURE__ */ __name(";
const cut = (text) => {
  const start = text.indexOf(head);
  if (start < 0) throw new Error("no cleanupText in the bundle");
  return text.slice(start + head.length, text.indexOf('}, "cleanupText");', start) + 1);
};
const source = cut(fs.readFileSync(require.resolve("mermaid/dist/mermaid.js"), "utf8"));
const patchedSource = cut(fs.readFileSync(0, "utf8"));
const original = (0, eval)(`(${source})`);
const patched = (0, eval)(`(${patchedSource})`);
const parts = ["<", ">", "br", "b", "/", " ", "=", '"', "'", "a", "x", "href", "\r", "\n", "\r\n", "$1", "$&", "<br/>",
  '<a href="x">', "<b class='y'>", "=\"\"", "<img src=\"p\" alt=\"q\"/>", "\t", "\u2028", "é"];
const lines = ['A["<b>bold</b>"] --> B', 'C["<span style="color:red">x</span>"]', "D[a<br/>b]\r\nE",
  '<a href="https://example.org/?q=1">link</a>', "no tags at all", ""];
process.stdout.write(JSON.stringify({ skips: patchedSource !== source,
  ...compareOnTexts(original, patched, { lines, parts, seed: 11, count: 200000, maxParts: 14 }) }));
"""


def test_tags_are_cleaned_up_as_mermaid_does(tmp_path: Path) -> None:
    run_worker_process(str(tmp_path), [])
    [written] = tmp_path.iterdir()
    header, _, rest = written.read_bytes().partition(b"\n")
    patched_bundle = rest[: json.loads(header)["sourceBytes"]].decode()
    report = run_node_check(TAG_QUOTES_CHECK, stdin=patched_bundle, timeout=120)
    assert report["skips"]  # the worker runs its own cleanupText, not the bundle's
    assert report["wrong"] == []
    assert report["changed"] > 10_000  # many of them did have quotes or CRs rewritten

# addSubGraph's own `uniq`, read from the bundle, against uniqueSubgraphItems on generated item lists: where the
# Set gives an answer it is uniq's, and it gives one for every list of ordinary strings and direction statements.
SUBGRAPH_ITEMS_CHECK = r"""
import fs from "node:fs";
import { createRequire } from "node:module";
import { isDeepStrictEqual } from "node:util";
import { uniqueSubgraphItems } from "./subgraph-items.mjs";
const require = createRequire(import.meta.url);
const bundle = fs.readFileSync(require.resolve("mermaid/dist/mermaid.js"), "utf8");
const head = "const uniq2 = /* @__PURE__ */ __name(";
const start = bundle.indexOf(head) + head.length;
const uniq = (0, eval)(`(() => { const __name = (fn) => fn; return ${bundle.slice(start, bundle.indexOf('}, "uniq");', start) + 1)}; })()`);
const ordinary = ["a", "b", "a ", " a", "", " ", "\t", "constructor", "toString", "valueOf", "1", "01", "1.0", "é"];
const special = ["__proto__", "hasOwnProperty", 5, true, null, undefined, ["a"], { stmt: "class" }, { value: "LR" },
  new String("a")];
const directions = [{ stmt: "dir", value: "LR" }, { stmt: "dir", value: "TB" }, { stmt: "dir" }];
let seed = 12;
const pick = (list) => list[(seed = (seed * 1103515245 + 12345) % 2147483648) % list.length];
let answered = 0;
const wrong = [];
for (let n = 0; n < 20000; n++) {
  const length = n % 9;
  const pool = n % 3 === 0 ? [...ordinary, ...directions, ...special] : [...ordinary, ...directions];
  const items = Array.from({ length }, () => pick(pool));
  let expected;
  try {
    expected = uniq(items);
  } catch (error) {
    expected = error;
  }
  const fast = uniqueSubgraphItems(items);
  const plain = items.every((item) => ordinary.includes(item) || directions.includes(item));
  if (fast === null ? plain : expected instanceof Error || !isDeepStrictEqual(fast, expected)) {
    wrong.push(items);
  }
  answered += fast !== null;
}
process.stdout.write(JSON.stringify({ answered, wrong: wrong.slice(0, 5).map(String) }));
"""


def test_subgraph_items_are_deduplicated_as_mermaid_does() -> None:
    report = run_node_check(SUBGRAPH_ITEMS_CHECK, timeout=120)
    assert report["wrong"] == [] and report["answered"] > 10_000


@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        ("flowchart TD\n  subgraph s\n    x --> hasOwnProperty\n  end\n",
         (False, "prims[type3].hasOwnProperty is not a function")),
        ("flowchart TD\n  subgraph s\n    __proto__ --> __proto__\n    __proto__\n  end\n", (True, "flowchart-v2")),
        ("flowchart TD\n  subgraph one\n    a --> b\n    b --> a\n    direction LR\n  end\n  subgraph two\n"
         "    a & c\n  end\n  one --> two\n", (True, "flowchart-v2")),
    ],
    ids=["has-own-property-node", "proto-node", "repeated-nodes-and-direction"],
)
def test_subgraph_items_keep_verdicts(pool: MermaidPool, code: str, verdict: tuple[bool, str]) -> None:
    result = pool.parse(code)
    assert (result.ok, result.type if result.ok else result.error) == verdict

CACHE_CHECKED = ["flowchart TD\n  A --> B\n", "sequenceDiagram\n  A->>B: hi\n", "flowchart LR\n  A -->",
                 "gantt\n  dateFormat YYYY-MM-DD\n  section S\n  Task :a1, 2024-01-01, 30s\n"]


def run_worker_process(cache_dir: str, codes: list[str],
                       worker_dir: Path | None = None) -> tuple[dict, list[dict], str]:
    """(the ready line, the verdicts, stderr) of one worker run over ``codes``."""
    worker_dir = worker_dir or mermaid_dir()
    requests = "".join(json.dumps({"id": number, "code": code}) + "\n" for number, code in enumerate(codes))
    worker = subprocess.run([shutil.which("node") or "node", str(worker_dir / "worker.mjs")], input=requests,
                            capture_output=True, text=True, cwd=worker_dir, timeout=60, check=True,
                            env={**os.environ, "ATLAS_MERMAID_CODE_CACHE_DIR": cache_dir})
    ready, *verdicts = (json.loads(line) for line in worker.stdout.splitlines())
    return ready, verdicts, worker.stderr


def run_worker(cache_dir: str, codes: list[str]) -> tuple[bool, list[dict]]:
    """(whether the worker started from a code cache, its verdicts) for one worker run over ``codes``."""
    ready, verdicts, _ = run_worker_process(cache_dir, codes)
    return ready["codeCache"], verdicts


@pytest.fixture(scope="module")
def uncached_verdicts() -> list[dict]:
    used, verdicts = run_worker("", CACHE_CHECKED)
    assert used is False
    return verdicts


def test_code_cache_is_written_when_a_worker_ends_and_used_by_the_next(tmp_path: Path,
                                                                      uncached_verdicts: list[dict]) -> None:
    assert run_worker(str(tmp_path), CACHE_CHECKED) == (False, uncached_verdicts)
    [cache] = tmp_path.iterdir()
    assert cache.name.startswith("mermaid-") and cache.name.endswith(".v8-code-cache")
    assert run_worker(str(tmp_path), CACHE_CHECKED) == (True, uncached_verdicts)
    assert list(tmp_path.iterdir()) == [cache]  # a used cache is not written again


@pytest.mark.parametrize("damage", ["truncated", "zeroed"])
def test_damaged_code_cache_is_rejected_and_replaced(tmp_path: Path, uncached_verdicts: list[dict],
                                                     damage: str) -> None:
    run_worker(str(tmp_path), [])
    [cache] = tmp_path.iterdir()
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2] if damage == "truncated" else bytes(len(data)))
    (tmp_path / "mermaid-0123456789abcdef0123456789abcdef.v8-code-cache").write_bytes(data)  # another version's
    (tmp_path / "notes.txt").write_text("not a cache")
    left_by_a_stopped_worker = tmp_path / f"{cache.name}.4242.tmp"
    being_written = tmp_path / f"{cache.name}.4243.tmp"
    for partial in (left_by_a_stopped_worker, being_written):
        partial.write_bytes(data[:100])
    os.utime(left_by_a_stopped_worker, (1e9, 1e9))
    assert run_worker(str(tmp_path), CACHE_CHECKED) == (False, uncached_verdicts)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([cache.name, "notes.txt", being_written.name])
    assert run_worker(str(tmp_path), CACHE_CHECKED) == (True, uncached_verdicts)


def test_code_cache_others_could_write_is_never_used(tmp_path: Path, uncached_verdicts: list[dict]) -> None:
    shared = tmp_path / "shared"
    run_worker(str(shared), CACHE_CHECKED)
    [cache] = shared.iterdir()
    cache.chmod(0o666)  # anyone could have replaced what V8 would run
    assert run_worker(str(shared), CACHE_CHECKED) == (False, uncached_verdicts)
    shared.chmod(0o777)
    cache.unlink()
    assert run_worker(str(shared), CACHE_CHECKED) == (False, uncached_verdicts)
    assert list(shared.iterdir()) == []  # not written where it would not be read


# What the warm-up must hold an accepted diagram of: each type a worker would otherwise compile for itself.
WARM_UP_TYPES = {"flowchart-v2", "sequence", "stateDiagram", "er", "classDiagram", "requirement", "gantt", "pie",
                 "xychart", "quadrantChart", "sankey", "timeline", "journey", "gitGraph", "mindmap", "c4", "block",
                 "packet", "architecture", "kanban", "radar", "treemap"}


def test_the_warm_up_before_a_cache_is_written_meets_each_established_type_accepted_and_rejected() -> None:
    """A worker that writes the code cache parses bot/mermaid/warm-up.mjs first, so the cache holds the parsers of
    the established types whatever the run met; a diagram there that stops parsing (a mermaid upgrade) shows here."""
    warm_up = run_node_check('import { WARM_UP } from "./warm-up.mjs"; process.stdout.write(JSON.stringify(WARM_UP));')
    _, verdicts, _ = run_worker_process("", warm_up)
    assert len(verdicts) == len(warm_up)
    accepted = {v["type"] for v in verdicts if v["ok"]}
    assert accepted >= WARM_UP_TYPES, f"no accepted diagram of {sorted(WARM_UP_TYPES - accepted)}"
    rejected = [v for v in verdicts if not v["ok"]]
    assert any(v.get("stage") == "render" for v in rejected)  # the render stage's errors are met too
    assert len([v for v in rejected if v["error"].startswith("Parse error")]) >= 10


@pytest.fixture
def worker_copy(tmp_path: Path) -> Path:
    """The worker's own files in a directory of their own, with the installed packages linked in."""
    copy = tmp_path / "worker"
    copy.mkdir()
    for module in mermaid_dir().glob("*.mjs"):
        shutil.copy(module, copy / module.name)
    (copy / "node_modules").symlink_to(mermaid_dir() / "node_modules")
    return copy


def test_code_cache_holds_the_text_its_worker_patched(tmp_path: Path, worker_copy: Path,
                                                     uncached_verdicts: list[dict]) -> None:
    cache_dir = tmp_path / "cache"
    run_worker_process(str(cache_dir), [], worker_copy)
    [written] = cache_dir.iterdir()
    header, _, rest = written.read_bytes().partition(b"\n")
    patched = json.loads(header)
    text = rest[: patched["sourceBytes"]].decode()
    assert "globalThis.__atlasBot.candidateRules(" in text  # the bundle as patched, not as installed
    assert patched["applied"]["lexerFilter"] and patched["skipped"] == []

    # A worker whose patches differ (here: one anchor no longer found) neither uses nor keeps that cache.
    worker = worker_copy / "worker.mjs"
    anchor = '  subGraphItems: [\n    "'
    worker.write_text(worker.read_text().replace(anchor, anchor + 'not in the bundle" + "', 1))
    skipped = "running without the subGraphItems patch (anchor not found as often as expected)"
    first, verdicts, stderr = run_worker_process(str(cache_dir), CACHE_CHECKED, worker_copy)
    assert (first["codeCache"], first["patches"]["subGraphItems"], verdicts) == (False, False, uncached_verdicts)
    assert skipped in stderr
    [replaced] = cache_dir.iterdir()
    assert replaced.name != written.name
    # Started from its own cache, it says the same about the skipped patch as when it patched the bundle.
    second, verdicts, stderr = run_worker_process(str(cache_dir), CACHE_CHECKED, worker_copy)
    assert (second["codeCache"], second["patches"], verdicts) == (True, first["patches"], uncached_verdicts)
    assert skipped in stderr


@pytest.mark.parametrize("damage", ["no text length", "text length past the end", "not JSON"])
def test_cache_file_with_a_bad_header_is_rebuilt(tmp_path: Path, uncached_verdicts: list[dict], damage: str) -> None:
    run_worker(str(tmp_path), [])
    [cache] = tmp_path.iterdir()
    header, _, rest = cache.read_bytes().partition(b"\n")
    fields = json.loads(header)
    if damage == "no text length":
        del fields["sourceBytes"]
    elif damage == "text length past the end":
        fields["sourceBytes"] = len(rest)
    bad = b"{applied" if damage == "not JSON" else json.dumps(fields).encode()
    cache.write_bytes(bad + b"\n" + rest)
    assert run_worker(str(tmp_path), CACHE_CHECKED) == (False, uncached_verdicts)
    assert run_worker(str(tmp_path), CACHE_CHECKED) == (True, uncached_verdicts)


def test_unwritable_code_cache_directory_leaves_the_verdicts(tmp_path: Path, uncached_verdicts: list[dict]) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("the cache directory cannot be made under a file")
    assert run_worker(str(blocked / "cache"), CACHE_CHECKED) == (False, uncached_verdicts)
    assert run_worker(str(blocked / "cache"), CACHE_CHECKED) == (False, uncached_verdicts)
    assert list(tmp_path.iterdir()) == [blocked]

# Verdicts of the worker without these patches. A long diagram reduces its stacks hundreds of times before the
# parse error; every edge of a flowchart with labelled nodes reads maxEdges from the database's config copy.
def test_long_diagrams_keep_error_and_line(pool: MermaidPool) -> None:
    flowchart = "flowchart TD\n" + "".join(f"  N{i}[node {i}] --> N{i + 1}\n" for i in range(400)) + "  X --> (\n"
    sequence = "sequenceDiagram\n" + "".join(f"  A->>B: m{i}\n" for i in range(300)) + "  A->>\n"
    verdicts = pool.parse_many([flowchart, sequence])
    assert [(v.ok, v.error_line) for v in verdicts] == [(False, 402), (False, 302)]
    assert verdicts[0].error.startswith("Parse error on line 402:\n...9] --> N400  X --> (\n")
    assert verdicts[0].error.endswith("'MULT', 'UNICODE_TEXT', got 'PS'")
    assert verdicts[1].error == ("Parse error on line 302:\n...  A->>B: m299  A->>\n----------------------^\n"
                                 "Expecting '+', '-', '()', 'ACTOR', got 'NEWLINE'")


def test_flowchart_edge_limit_is_read_from_the_reused_config(pool: MermaidPool) -> None:
    def edges(count: int) -> str:
        return "flowchart LR\n" + "".join(f"  A{i}[a {i}] --> B{i}[b {i}]\n" for i in range(count))

    at_limit, over_limit = pool.parse_many([edges(500), edges(501)])
    assert at_limit.ok
    assert not over_limit.ok and over_limit.error.startswith("Edge limit exceeded. 500 edges found")


# makeFlowConfigReuse on its own: one copy per config object, whichever database asks; the verification mode
# also makes a new copy and compares it with the kept one.
FLOW_CONFIG_REUSE = r"""
import { makeFlowConfigReuse } from "./fast-copy.mjs";
const flowConfig = makeFlowConfigReuse();
let copies = 0;
const getConfig = () => ({ copy: ++copies });
const first = {};
const second = {};
const steps = [first, first, second, second, first].map((config) => flowConfig(config, getConfig).copy);
const verifying = makeFlowConfigReuse({ verify: true });
const config = { flowchart: { curve: "basis" } };
let current = config.flowchart.curve;
const copyOf = () => ({ flowchart: { curve: current } });
verifying(config, copyOf);
verifying(config, copyOf);
current = "linear";
let caught = "";
try {
  verifying(config, copyOf);
} catch (error) {
  caught = error.message;
}
process.stdout.write(JSON.stringify({ steps, copies, caught }));
"""


def test_flow_config_copy_is_made_once_per_config() -> None:
    assert run_node_check(FLOW_CONFIG_REUSE) == {"steps": [1, 1, 2, 2, 1], "copies": 2,
                                                 "caught": "fast copy differs from assignWithDepth at .flowchart.curve"}


# readConfig and readTopConfig on their own: the value is read from the config where getConfig's copy provably
# holds the same one, and from a copy everywhere else; both give what a depth-2 copy gives.
READ_CONFIG = r"""
import { readConfig, readTopConfig } from "./fast-copy.mjs";
const copy = (config) => {
  const out = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === null) continue;
    if (typeof value !== "object") { out[key] = value; continue; }
    if (Array.isArray(value)) { out[key] = [...new Set(value)]; continue; }
    const level = {};
    for (const [name, inner] of Object.entries(value)) {
      if (inner === null) continue;
      level[name] = typeof inner !== "object" ? inner : Array.isArray(inner) ? [...inner] : { ...inner };
    }
    out[key] = level;
  }
  return out;
};
const hidden = {};
Object.defineProperty(hidden, "wrap", { value: true, enumerable: false });
const fn = () => 1;
const configs = {
  primitive: { sequence: { wrap: true } },
  falsy: { sequence: { wrap: 0 } },
  func: { sequence: { wrap: fn } },
  absent: { sequence: {} },
  nullValue: { sequence: { wrap: null } },
  objectValue: { sequence: { wrap: { a: 1 } } },
  arrayLevel: { sequence: [1, 2] },
  primitiveLevel: { sequence: "text" },
  nullLevel: { sequence: null },
  missingLevel: {},
  hiddenValue: { sequence: hidden },
  prototypeLevel: { sequence: Object.create({ wrap: true }) },
};
const results = {};
for (const [name, config] of Object.entries(configs)) {
  let copies = 0;
  const value = readConfig(config, "sequence", "wrap", () => (copies++, copy(config).sequence));
  const expected = copy(config).sequence?.wrap;
  const same = Object.is(value, expected)
    || (typeof value === "object" && JSON.stringify(value) === JSON.stringify(expected));
  results[name] = { same, copied: copies > 0 };
}
// A top-level value, read as the sequence database's constructor and the layout's look read it (readTopConfig),
// the whole copy as the fallback.
const topLevel = {
  primitive: { wrap: true }, falsy: { wrap: 0 }, func: { wrap: fn }, absent: {}, nullValue: { wrap: null },
  objectValue: { wrap: { a: 1 } }, hiddenValue: hidden, prototypeLevel: Object.create({ wrap: true }),
};
for (const [name, config] of Object.entries(topLevel)) {
  let copies = 0;
  const value = readTopConfig(config, "wrap", () => (copies++, copy(config)));
  const expected = copy(config).wrap;
  const same = Object.is(value, expected)
    || (typeof value === "object" && JSON.stringify(value) === JSON.stringify(expected));
  results[`top-${name}`] = { same, copied: copies > 0 };
}
process.stdout.write(JSON.stringify(results));
"""


def test_read_config_reads_in_place_only_where_the_copy_holds_the_same_value() -> None:
    results = run_node_check(READ_CONFIG)
    assert all(entry["same"] for entry in results.values()), results
    assert {name for name, entry in results.items() if not entry["copied"]} == {
        "primitive", "falsy", "func", "absent", "top-primitive", "top-falsy", "top-func", "top-absent"}


# makeDiagramConfig on its own: detection reads a view of the configuration, and an init gets a config on which it
# does what it does with getConfig's copy (the detectors' top-level write made on it too), without writing into
# the configuration. The flowchart's init is rebuilt from its source over recording stand-ins for what it calls.
DIAGRAM_CONFIG = r"""
import { isDeepStrictEqual } from "node:util";
import { FLOW_INIT_SOURCE, makeDiagramConfig } from "./fast-copy.mjs";
const copy = (config) => {  // getConfig's: a null is left out, a container is a new one
  const out = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === null) continue;
    if (typeof value !== "object") { out[key] = value; continue; }
    out[key] = Array.isArray(value) ? [...value] : Object.fromEntries(Object.entries(value).filter(([, v]) => v !== null));
  }
  return out;
};
const calls = [];
const flowInit = new Function("getUserDefinedConfig", "defaultLayout", "updateCurrentConfig", "currentConfig",
  `return ${FLOW_INIT_SOURCE};`)(() => ({}), undefined, (_, changes) => calls.push(changes), "current");
const otherInit = (cnf) => { calls.push(["other", cnf.sequence?.wrap, cnf.layout]); cnf.sequence = { wrap: 1 }; };
const bases = {
  plain: { flowchart: { curve: "basis" }, layout: "dagre", arrowMarkerAbsolute: false, sequence: { wrap: true } },
  noFlowchart: { arrowMarkerAbsolute: true },
  nullFlowchart: { flowchart: null },
  arrayFlowchart: { flowchart: [1] },
  textFlowchart: { flowchart: "x" },
  nullLayout: { flowchart: {}, layout: null },
  objectMarker: { flowchart: {}, arrowMarkerAbsolute: { a: 1 } },
  nullMarker: { flowchart: {}, arrowMarkerAbsolute: null },
  empty: {},
};
const results = {};
for (const [name, base] of Object.entries(bases)) {
  for (const [initName, init] of [["flow", flowInit], ["other", otherInit]]) {
    for (const [detectorWrites, verify] of [[false, false], [true, false], [false, true], [true, true]]) {
      const before = JSON.stringify(base);
      let copies = 0;
      const { detectionConfig, initConfig } = makeDiagramConfig((config) => (copies++, copy(config)), { verify });
      const view = detectionConfig(base);
      if (detectorWrites) view.layout = "elk";
      calls.length = 0;
      let outcome;
      try { init(initConfig(init, view)); outcome = calls.slice(); } catch (error) { outcome = String(error); }
      const original = copy(base);
      if (detectorWrites) original.layout = "elk";
      calls.length = 0;
      let expected;
      try { init(original); expected = calls.slice(); } catch (error) { expected = String(error); }
      results[`${name}/${initName}/${detectorWrites}${verify ? "/verified" : ""}`] = {
        same: isDeepStrictEqual(outcome, expected), untouched: JSON.stringify(base) === before, copied: copies > 0 };
    }
  }
}
let made;
const { detectionConfig, initConfig } = makeDiagramConfig((config) => (made = copy(config)));
const notAView = { flowchart: {} };
results.passedOn = { same: initConfig(flowInit, notAView) === notAView, untouched: true, copied: false };
// An own "__proto__" entry (JSON can make one) is not assigned onto a view, where it would set the prototype:
// detection and the init get the copy, as before.
const withProto = JSON.parse('{"__proto__": {"flowchart": {"defaultRenderer": "elk"}}, "layout": "dagre"}');
const detected = detectionConfig(withProto);
results.ownProto = { same: detected === made && initConfig(flowInit, detected) === detected, untouched: true,
  copied: true };
// A section the detectors read that is an array (a copy keeps only its elements) gets the copy too.
const arrayed = Object.assign([], { defaultRenderer: "elk" });
const detectedArray = detectionConfig({ flowchart: arrayed });
results.arraySection = { same: detectedArray === made && detectedArray.flowchart?.defaultRenderer === undefined,
  untouched: true, copied: true };
process.stdout.write(JSON.stringify(results));
"""


def test_diagram_config_gives_each_init_what_the_copy_gave() -> None:
    results = run_node_check(DIAGRAM_CONFIG)
    assert all(entry["same"] and entry["untouched"] for entry in results.values()), results
    # the flowchart's init goes without a copy where its three reads are the copy's, every other init gets one
    assert {name for name, entry in results.items() if not entry["copied"]} == {
        f"{base}/flow/{writes}" for base in ("plain", "noFlowchart", "empty") for writes in ("false", "true")
    } | {"passedOn"}  # verified runs copy to compare


# Verdicts recorded without the fromText patches, for diagrams whose configuration the detectors and the init
# read: renderers chosen by configuration, a layout, and the marker setting in every kind.
@pytest.mark.parametrize(
    ("code", "verdict"),
    [
        ('%%{init: {"flowchart": {"defaultRenderer": "elk"}}}%%\nflowchart LR\n  A --> B\n', (True, "flowchart-elk")),
        ('%%{init: {"flowchart": {"defaultRenderer": "dagre-d3"}}}%%\ngraph TD\n  A --> B\n', (True, "flowchart")),
        ('%%{init: {"layout": "elk"}}%%\nflowchart LR\n  A --> B\n', (True, "flowchart-v2")),
        ('%%{init: {"arrowMarkerAbsolute": null}}%%\nflowchart LR\n  A --> B\n', (True, "flowchart-v2")),
        ('%%{init: {"flowchart": null}}%%\nflowchart TD\n  subgraph A\n    A\n  end\n', (False, "flowchart-v2")),
        ('%%{init: {"class": {"defaultRenderer": "dagre-wrapper"}}}%%\nclassDiagram\n  A <|-- B\n',
         (True, "classDiagram")),
    ],
    ids=["elk-renderer", "dagre-d3-renderer", "elk-layout", "null-marker", "null-flowchart-render-failure",
         "class-renderer"],
)
def test_fromtext_configuration_keeps_verdicts(pool: MermaidPool, code: str, verdict: tuple[bool, str]) -> None:
    result = pool.parse(code)
    assert (result.ok, result.type) == verdict

# Verdicts that depend on the values read without a copy: a subgraph inheriting the diagram's direction, and
# sequence messages wrapped by the configuration (its sequence section, or the top level).
def test_config_values_read_in_place_keep_verdicts(pool: MermaidPool) -> None:
    inherit = '%%{init: {"flowchart": {"inheritDir": true}}}%%\n'
    subgraph = "flowchart LR\n  subgraph one\n    a --> b\n  end\n  one --> c\n"
    wrap = '%%{init: {"sequence": {"wrap": true}}}%%\n'
    top_wrap = '%%{init: {"wrap": true}}%%\n'
    sequence = "sequenceDiagram\n  A->>B: a long message\n  Note over A,B: a note\n"
    verdicts = pool.parse_many([inherit + subgraph, subgraph, wrap + sequence, sequence, wrap + sequence + "  A->>\n",
                                top_wrap + sequence, top_wrap + sequence + "  A->>\n"])
    assert [(v.ok, v.type if v.ok else v.error_line) for v in verdicts] == [
        (True, "flowchart-v2"), (True, "flowchart-v2"), (True, "sequence"), (True, "sequence"), (False, 5),
        (True, "sequence"), (False, 5)]


# knownConfig and rememberConfig on their own, driven as the patched updateCurrentConfig drives them: a result is
# reused only for the same source object (one that stays as it is), the same configFromInitialize and directives
# with the same keys in the same order and the same values, and never for directives the result would share
# objects with; the verification mode builds it again and compares.
KNOWN_CONFIG = r"""
import { makeConfigCopier, makeShapeCache } from "./fast-copy.mjs";
const makeUpdate = (verify, rebuilt = (directives) => ({ built: JSON.stringify(directives) })) => {
  const copier = makeConfigCopier((dst, src) => Object.assign(dst, src), makeShapeCache(), { verify });
  const update = (source, directives, { sourceStays = true, initConfig = init } = {}) =>
    copier.knownConfig(source, directives, sourceStays, initConfig) ?? copier.rememberConfig(rebuilt(directives));
  return { update, copier };
};
const init = {};
const site = { a: 1 };
const { update, copier } = makeUpdate(false);
const reused = (first, second, options = {}) => {
  const before = update(site, first);
  return update(options.source ?? site, second, options) === before;
};
// the same directives again, as new objects
const again = (directives, options) => reused(directives, structuredClone(directives), options);
const getter = {};
Object.defineProperty(getter, "theme", { get: () => "dark", enumerable: true });
const cases = {
  sameContents: again([{ theme: "dark", flowchart: { curve: "basis" } }]),
  noDirectives: again([]),
  emptyDirective: reused([], [{}]),
  keyOrder: reused([{ flowchart: { a: 1, b: 2 } }], [{ flowchart: { b: 2, a: 1 } }]),
  undefinedValue: reused([{ a: undefined }], [{}]),
  negativeZero: reused([{ fontSize: 0 }], [{ fontSize: -0 }]),
  numberString: reused([{ fontSize: 1 }], [{ fontSize: "1" }]),
  nullValue: again([{ fontSize: null }]),
  primitiveArray: again([{ gantt: { sectionFills: ["a", "b"] } }]),
  levelTwoObject: again([{ flowchart: { padding: { a: 1 } } }]),
  levelThreeObject: again([{ flowchart: { padding: { a: { b: 1 } } } }]),
  objectInArray: again([{ gantt: { sectionFills: [{}] } }]),
  accessor: reused([getter], [getter]),
  otherSource: again([{ theme: "dark" }], { source: { a: 1 } }),
  sourceMayChange: again([{ theme: "forest" }], { sourceStays: false }),
  otherInitConfig: again([{ theme: "neutral" }], { initConfig: {} }),
};
const forgotten = update(site, [{ look: "handDrawn" }]);
copier.forgetConfig(site);
cases.afterForget = update(site, [{ look: "handDrawn" }]) === forgotten;
const oldest = update(site, [{ fontSize: 100 }]);
for (let size = 0; size < 40; size++) {
  update(site, [{ fontSize: size }]);
}
cases.evicted = update(site, [{ fontSize: 100 }]) === oldest;
const verifying = makeUpdate(true);
const first = verifying.update(site, [{ theme: "dark" }]);
cases.verifiedReuse = verifying.update(site, [{ theme: "dark" }]) === first;
let built = 0;
const drifting = makeUpdate(true, () => ({ built: ++built }));
drifting.update(site, [{ theme: "dark" }]);
try {
  drifting.update(site, [{ theme: "dark" }]);
  cases.verifiedDifference = "not caught";
} catch (error) {
  cases.verifiedDifference = error.message;
}
process.stdout.write(JSON.stringify(cases));
"""


def test_config_result_is_reused_only_for_the_same_inputs() -> None:
    cases = run_node_check(KNOWN_CONFIG)
    assert cases == {
        "sameContents": True, "noDirectives": True, "emptyDirective": False, "keyOrder": False,
        "undefinedValue": False, "negativeZero": False, "numberString": False, "nullValue": True,
        "primitiveArray": True, "levelTwoObject": True, "levelThreeObject": False, "objectInArray": False,
        "accessor": False, "otherSource": False, "sourceMayChange": False, "otherInitConfig": False,
        "afterForget": False, "evicted": False, "verifiedReuse": True,
        "verifiedDifference": "fast copy differs from assignWithDepth at .built"}


# Configurations built once and then reused, in one worker, between diagrams that change them: the verdicts are
# those of mermaid (a theme with a colour khroma rejects, a name that is no theme), and in the verification mode
# every reused configuration and flowchart copy is built again and compared (a difference fails the diagram).
def test_reused_configs_keep_verdicts_and_match_rebuilt_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_MERMAID_VERIFY_COPY", "1")
    flowchart = "flowchart LR\n  A[a] --> B{b}\n  subgraph one\n    C --> D\n  end\n"
    sequence = "sequenceDiagram\n  A->>B: a long message\n"
    round_of = [
        (flowchart, "flowchart-v2"),
        ('%%{init: {"theme": "dark", "themeVariables": {"primaryColor": "#ff0000"}}}%%\n' + flowchart, "flowchart-v2"),
        ('%%{init: {"theme": "base", "themeVariables": {"primaryColor": "notacolor"}}}%%\n' + sequence,
         'Unsupported color format: "notacolor"'),
        ("---\nconfig:\n  theme: forest\n  flowchart:\n    curve: basis\n---\n" + flowchart, "flowchart-v2"),
        ('%%{init: {"theme": "toString"}}%%\n' + flowchart,
         "themes_default[cfg.theme].getThemeVariables is not a function"),
        ("%%{wrap}%%\n" + sequence, "sequence"),
        ('%%{init: {"fontFamily": "monospace", "flowchart": {"inheritDir": true}}}%%\n' + flowchart, "flowchart-v2"),
        ("---\nconfig:\n  flowchart:\n    padding:\n      a:\n        b: 1\n---\n" + flowchart, "flowchart-v2"),
        (sequence, "sequence"),
    ]
    codes = [code for _ in range(3) for code, _ in round_of]
    with MermaidPool(workers=1) as pool:
        verdicts = pool.parse_many(codes)
    assert [v.type if v.ok else v.error for v in verdicts] == [expected for _ in range(3) for _, expected in round_of]
