"""Check functions, rule by rule with the default rules: snippets that pass and snippets that fail."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import default_rules_dir, load_config
from bot.gates import checks
from bot.gates.checks import Expansions, Hit, Subject
from bot.gates.fixes import SyntaxFix
from bot.model import Diagram, SyntaxVerdict

CONFIG = load_config()
OK = SyntaxVerdict(ok=True, type="flowchart-v2")
PLANES = """
    classDef edgeStyle fill:#3B82F6,stroke:#2563EB,color:#fff
    classDef serviceStyle fill:#10B981,stroke:#059669,color:#fff"""


def diagram(code: str, first_line: int = 10) -> Diagram:
    """A diagram whose fence is at ``first_line`` and whose code starts on the next line."""
    lines = tuple(range(first_line + 1, first_line + 2 + code.count("\n")))
    return Diagram("docs/systems/a.md", first_line, code, lines)


def run(
    gate_id: str,
    rule_id: str,
    code: str,
    *,
    evidence: str | None = None,
    file_text: str = "",
    verdict: SyntaxVerdict = OK,
    fix: SyntaxFix | None = None,
) -> list[Hit]:
    """The hits of one default rule on ``code``; ``evidence`` stands in for the section or file around it."""
    gate = CONFIG.gate(gate_id)
    rule = next(r for r in gate.rules if r.id == rule_id)
    subject = Subject(
        diagram(code),
        verdict=verdict,
        syntax_fix=fix,
        evidence_text=lambda kind: code if kind == checks.EVIDENCE_DIAGRAM or evidence is None else evidence,
        expansions=lambda: Expansions(file_text or code),
    )
    return list(checks.CHECKS[rule.check].run(CONFIG.compiled[(gate_id, rule_id)], subject, gate.evidence))


def lines_of(hits: list[Hit]) -> list[int | None]:
    return [hit.line for hit in hits]


# (gate, rule, diagram code, code lines of the expected hits: [] = passes, [None] = one whole-diagram hit)
DIAGRAM_CASES = [
    # technical: placeholders (terms in capitals match only in capitals; whole words only)
    ("technical", "placeholders", "graph TD\n    A[TODO] --> B[Checkout]", [1]),
    ("technical", "placeholders", "graph TD\n    A[Owner: TBD]\n    B[Lorem Ipsum dolor]", [1, 2]),
    ("technical", "placeholders", "graph TD\n    A[Todo app] --> B[Checkout]", []),
    ("technical", "placeholders", "graph TD\n    A[TODOS list] --> B[TBDX]", []),
    ("technical", "placeholders", "graph TD\n    %% FIXME: split\n    A --> B", [1]),
    ("technical", "generic_names", "graph TD\n    A[Service A] --> B[Service B]", [1]),
    ("technical", "generic_names", "graph TD\n    A[service a] --> B[Payments]", [1]),
    ("technical", "generic_names", "graph TD\n    A[Service API] --> B[Services ABC]", []),
    ("technical", "generic_names", "graph TD\n    A[İstanbul] --> B\n    C[SERVICE A]", [2]),
    ("technical", "generic_names", "sequenceDiagram\n    U->>D: resolve api.example.com", [1]),
    ("technical", "generic_names", "sequenceDiagram\n    U->>D: resolve myexample.com and example.com.au", []),
    # technical: palette
    ("technical", "legacy_colours", "graph TD\n    A --> B\n    style A fill:#0066CC", [2]),
    ("technical", "legacy_colours", "graph TD\n    A --> B\n    classDef s fill:#cc0000,stroke:#000", [2]),
    ("technical", "legacy_colours", "graph TD\n    A --> B\n    style A fill:#0066CCAA" + PLANES, []),
    ("technical", "plane_colours", "graph TD\n    A --> B\n    classDef edgeStyle fill:#4A90E2,color:#fff", [2]),
    ("technical", "plane_colours", "graph TD\n    A --> B\n    classDef StatePlane fill:#10B981", [2]),
    ("technical", "plane_colours", "graph TD\n    A --> B" + PLANES, []),
    ("technical", "plane_colours", "graph TD\n    A --> B\n    classDef edgy fill:#123456", []),
    ("technical", "plane_colours", "graph TD\n    A --> B\n    classDef edgeStyle fill:#0066CC", []),
    # technical: size (default limits: 40 nodes, 50 edges, 120 lines)
    ("technical", "size", "graph TD\n" + "\n".join(f"    N{i} --> N{i + 1}" for i in range(45)), [None]),
    ("technical", "size", "sequenceDiagram\n" + "\n".join(f"    A->>B: step {i}" for i in range(130)), [None]),
    ("technical", "size", "graph TD\n" + "\n".join(f"    N{i} --> N{i + 1}" for i in range(30)), []),
    # new hire: acronyms (glossary, expansions in the file, ids are not text, capitals that shout are skipped)
    ("new_hire", "acronyms", "graph TD\n    A[API Gateway] --> B[(SQL DB)]", []),
    ("new_hire", "acronyms", "graph TD\n    A[Edge] --> B[XYZ Cache<br/>QRS tier]", [1]),
    ("new_hire", "acronyms", "graph TD\n    ABCD[Cache] --> EFGH[Store]", []),
    ("new_hire", "acronyms", "graph TD\n    ABCD --> EFGH", [1]),
    ("new_hire", "acronyms", "graph TD\n    A[APIs and SLOs] --> B[HTTP2 proxy]", []),
    ("new_hire", "acronyms", "graph TD\n    A -.->|SOFTWARE BUG| B", []),
    ("new_hire", "acronyms", "graph TD\n    A[GET /orders] --> B[ERROR: timeout]", []),
    ("new_hire", "acronyms", "graph TD\n    A[XYZ] --> B[XYZ again]\n    B --> C[XYZ]", [1]),
    ("new_hire", "acronyms", "sequenceDiagram\n    participant Q as QRS Router\n    Q->>Q: retry", [1]),
    ("new_hire", "acronyms", "sequenceDiagram\n    participant QRS\n    QRS->>DB: FOO lookup", [1, 2]),
    ("new_hire", "acronyms", "graph TD\n    A[Cache] --> B\n    style A fill:#ABCDEF", []),
    # new hire: an acronym on a line of names, its role stated by another line of the same label
    ("new_hire", "acronyms", "graph TD\n    A[Security Scanning<br/>QRS/XYZ] --> B[Monitoring<br>Scuba + QRS]", []),
    ("new_hire", "acronyms", "graph TD\n    A[Edge QRSs<br/>180+ Global Locations] --> B", []),
    ("new_hire", "acronyms", "graph TD\n    A[<b>Scanning</b> QRS<BR>Security checks] --> B", []),
    # does not count: the acronym is a word of a phrase, a label of one line, a second line of names or figures
    ("new_hire", "acronyms", "graph TD\n    A[Edge Gateway<br/>150 QRSs globally] --> B[100K XYZ]", [1]),
    ("new_hire", "acronyms", "graph TD\n    A[Real-time QRS<br/>Camera pipeline] --> B[Security QRS]", [1]),
    ("new_hire", "acronyms", "graph TD\n    A[QRS<br/>XYZ] --> B[QRS<br/>30 GB]", [1]),
    ("new_hire", "acronyms", "graph TD\n    A[Scanning QRS 2<br/>Security checks] --> B", [1]),
    ("new_hire", "acronyms", "graph TD\n    A[<b>Security Scanning</b> QRS] --> B", [1]),
    # new hire: versions
    ("new_hire", "versions", "graph TD\n    A[API] --> B[(PostgreSQL 16)]", []),
    ("new_hire", "versions", "graph TD\n    A[API] --> B[(PostgreSQL)]", [1]),
    ("new_hire", "versions", "graph TD\n    A[Kafka<br/>50 brokers] --> B[Kafka 50 brokers]", [1]),
    ("new_hire", "versions", "graph TD\n    A[Redis Cluster 7.2] --> B[Postgres v15.4]", []),
    ("new_hire", "versions", "graph TD\n    A[Redis] --> B[Redis 7.2 replica]", []),
    ("new_hire", "versions", "graph TD\n    A[MyRedis fork] --> B[postgresql logs]", []),
    ("new_hire", "versions", "graph TD\n    A[Elasticsearch 8.x] --> B[Kubernetes (1.29)]", []),
    ("new_hire", "versions", "graph TD\n    A[Kafka 1,000 partitions] --> B[Redis 100GB]", [1, 1]),
    ("new_hire", "versions", "graph TD\n    A[Kafka 3.6, Redis 7] --> B[MySQL 8.0.]", []),
    ("new_hire", "versions", "graph TD\n    Kafka --> Redis", [1, 1]),
    # new hire: direction and orphans (flowcharts only)
    ("new_hire", "direction", "graph TD\n    A --- B\n    B -.- C", [None]),
    ("new_hire", "direction", "graph TD\n    A --- B\n    B --> C", []),
    ("new_hire", "direction", "graph TD\n    A", [None]),
    ("new_hire", "direction", "pie\n    \"A\" : 1", [None]),
    ("new_hire", "direction", "timeline\n    2020 : launch", [None]),
    ("new_hire", "direction", "stateDiagram-v2\n    A --> B", []),
    ("new_hire", "direction", "classDiagram\n    A -- B", [None]),
    ("new_hire", "direction", "sequenceDiagram\n    A->>B: hi", []),
    ("new_hire", "orphans", "graph TD\n    A --> B\n    C[Lonely]", [2]),
    ("new_hire", "orphans", "graph TD\n    subgraph S[Plane]\n        A\n    end\n    A & B --> C", []),
    ("new_hire", "orphans", "graph TD\n    A --> B\n    C\n    D[Also alone]", [2]),
    ("new_hire", "orphans", "graph TD\n    subgraph P1[Phase 1]\n        C\n    end\n"
                            "    subgraph P2\n        D\n    end\n    P1 --> P2", []),
    ("new_hire", "orphans", "graph TD\n    subgraph P1[Phase 1]\n        C\n    end\n    E\n    P1 --> Q", [4]),
    ("new_hire", "orphans", "pie\n    \"A\" : 1", []),
]


@pytest.mark.parametrize(("gate_id", "rule_id", "code", "expected"), DIAGRAM_CASES)
def test_rules_on_diagrams(gate_id: str, rule_id: str, code: str, expected: list[int | None]) -> None:
    assert lines_of(run(gate_id, rule_id, code)) == expected


BARE = "graph TD\n    A[Checkout] --> B[Orders]"

# (gate, rule, section text around the diagram: passes?)
SECTION_CASES = [
    ("three_am", "error_signal", 'Logs show "connection refused" on port 5432.', True),
    ("three_am", "error_signal", "The pod is `OOMKilled` under load.", True),
    ("three_am", "error_signal", "ERROR: deadline exceeded", True),
    ("three_am", "error_signal", "A java.lang.OutOfMemoryError appears.", True),
    ("three_am", "error_signal", "Clients get HTTP 503 back.", True),
    ("three_am", "error_signal", "Something goes wrong and errors happen.", False),
    ("three_am", "error_signal", "filler " * 80 + 'Clients log "upstream said: connection refused".', True),
    ("three_am", "error_signal", "Clients see `ECONNRESET` and `429 Too Many Requests`.", True),
    ("three_am", "error_signal", "The queue backs up and timeouts happen.", False),
    # 3 AM metric: an operational metric with a value; not impact figures, inventory or a bare name
    ("three_am", "metric", "Alert when p99 exceeds 800 ms.", True),
    ("three_am", "metric", "Latency climbs past 250 ms.", True),
    ("three_am", "metric", "Throughput drops to 2,000 req/s.", True),
    ("three_am", "metric", "Error rate: 🔴 85% for the user service.", True),
    ("three_am", "metric", "Consumer lag > 50,000 messages on orders.", True),
    ("three_am", "metric", "Processing backlog of 8TB data after the outage.", True),
    ("three_am", "metric", "Queue depth: 2 GB waiting.", True),
    ("three_am", "metric", "Memory 16 GB per node, lag was high.", False),
    ("three_am", "metric", "Rebalances at 10/minute.", True),
    ("three_am", "metric", "The error rate rises.", False),
    ("three_am", "metric", "It gets slow.", False),
    ("three_am", "metric", "2M users affected, MTTR 45 min, $1.2M lost.", False),
    ("three_am", "metric", "The cluster has 40 nodes with 2 TB each.", False),
    ("three_am", "metric", "CPU bottlenecks appear at peak.", False),
    # 3 AM command or runbook: a real invocation or a runbook link; not a flag name, not the bare word
    ("three_am", "runbook", "See the [checkout runbook](https://wiki.example/runbooks/checkout).", True),
    ("three_am", "runbook", "Run `kubectl rollout undo deploy/checkout`.", True),
    ("three_am", "runbook", "```bash\nsystemctl status nginx\n```", True),
    ("three_am", "runbook", "$ redis-cli INFO replication", True),
    ("three_am", "runbook", "See the runbook for details.", False),
    ("three_am", "runbook", "Check max.poll.interval.ms and session.timeout.ms.", False),
    ("three_am", "runbook", "Ask the team what to do.", False),
    # 3 AM recovery: an action that restores or protects service; not diagnosis or a responsibility label
    ("three_am", "recovery", "Fail over to the replica.", True),
    ("three_am", "recovery", "Roll back the deploy, then restart the workers.", True),
    ("three_am", "recovery", "The breaker trips open and the API serves a fallback response.", True),
    ("three_am", "recovery", "Add consumers to drain the backlog.", True),
    ("three_am", "recovery", "Reset the connection pool.", True),
    ("three_am", "recovery", "Saga compensation refunds the charge.", True),
    ("three_am", "recovery", "Nothing can be done.", False),
    ("three_am", "recovery", "Analyse the slow query log.", False),
    ("three_am", "recovery", "Orchestrator: failover decisions.", False),
    ("three_am", "recovery", "Multi-region failover, rollback capabilities.", False),
    # CFO: a cost amount framed per unit or per period; not revenue, GMV, balances or a one-off total
    ("cfo", "cost", "Runs at $42K/month.", True),
    ("cfo", "cost", "About 12,000 USD a month.", True),
    ("cfo", "cost", "That is $0.004 per request.", True),
    ("cfo", "cost", "Storage costs $0.023/GB.", True),
    ("cfo", "cost", "The fleet costs $180M monthly.", True),
    ("cfo", "cost", "Search tuning: $18M savings/year.", True),
    ("cfo", "cost", "Downtime costs $5K per minute.", True),
    ("cfo", "cost", "It is expensive.", False),
    ("cfo", "cost", "Runs at $42K in total.", False),
    ("cfo", "cost", "Revenue: $10B/year, GMV $50B/year.", False),
    ("cfo", "cost", "The outage cost $2M.", False),
    ("cfo", "cost", "Financial impact: $0/day.", False),
    ("cfo", "commitment_or_growth", "Reserved instances save 40% over on-demand.", True),
    ("cfo", "commitment_or_growth", "Projected growth to $80K/month by 2026.", True),
    ("cfo", "commitment_or_growth", "Runs at $42K/month.", False),
    # Incident failure mode: what breaks and how; not a demand surge or redundancy alone
    ("incident", "failure_modes", "The primary crashed and writes timed out.", True),
    ("incident", "failure_modes", "Consumer lag builds a backlog of 2M events.", True),
    ("incident", "failure_modes", "A health-check failure marks the primary down.", True),
    ("incident", "failure_modes", "A calm day.", False),
    ("incident", "failure_modes", "Traffic surges 10x on Black Friday; autoscaling absorbs it.", False),
    ("incident", "failure_modes", "Two replicas behind a load balancer; a single point of failure.", False),
    # Incident blast radius: stated scope or quantified impact; a question or topology is not
    ("incident", "blast_radius", "Blast radius: EU checkout.", True),
    ("incident", "blast_radius", "About 12% of requests were dropped.", True),
    ("incident", "blast_radius", "Customers affected in two regions.", True),
    ("incident", "blast_radius", "Session loss costs $10K/minute.", True),
    ("incident", "blast_radius", "147M consumers exposed.", True),
    ("incident", "blast_radius", "Some things broke.", False),
    ("incident", "blast_radius", "Scope: are all services affected?", False),
    ("incident", "recovery_time", "RTO: 15 min", True),
    ("incident", "recovery_time", "Service restored after 45 minutes.", True),
    ("incident", "recovery_time", "Automatic failover in ~60 seconds.", True),
    ("incident", "recovery_time", "13:54 full restoration of S3 APIs.", True),
    ("incident", "recovery_time", "It came back eventually.", False),
    ("incident", "recovery_time", "Alert fired at 14:30 UTC.", False),
    ("incident", "data_loss", "RPO: 5 s of writes.", True),
    ("incident", "data_loss", "No data was lost.", True),
    ("incident", "data_loss", "Writes were slow.", False),
    ("incident", "rollback", "Rollback: helm rollback checkout 41", True),
    ("incident", "rollback", "The config change was reverted.", True),
    ("incident", "rollback", "The saga runs compensating transactions.", True),
    ("incident", "rollback", "The team watched dashboards.", False),
    # New Hire scale: load, users, data volume, a fleet of tens; not latency, one machine, team or impact
    ("new_hire", "scale_metric", "The gateway takes 50K req/s from 20M users.", True),
    ("new_hire", "scale_metric", "Holds 4 PB across 1,200 brokers.", True),
    ("new_hire", "scale_metric", "Users: 300M-500M+ across 50+ services.", True),
    ("new_hire", "scale_metric", "p99 is 40 ms and 99.9% of calls succeed.", False),
    ("new_hire", "scale_metric", "Two servers with 16 GB RAM, run by 50 engineers.", False),
    ("new_hire", "scale_metric", "1.8B users offline for 45 minutes.", False),
    ("new_hire", "scale_metric", "Nodes use fill #2563EB and #3B82F6.", False),
]


@pytest.mark.parametrize(("gate_id", "rule_id", "section", "passes"), SECTION_CASES)
def test_rules_on_sections(gate_id: str, rule_id: str, section: str, passes: bool) -> None:
    evidence = f"## Section\n\n{section}\n\n```mermaid\n{BARE}\n```\n"
    assert lines_of(run(gate_id, rule_id, BARE, evidence=evidence)) == ([] if passes else [None])


def test_syntax_passes_a_parsed_diagram() -> None:
    assert run("technical", "syntax", BARE) == []


def test_syntax_names_the_parser_error_and_its_file_line() -> None:
    verdict = SyntaxVerdict(ok=False, error="Parse error on line 2:\n...A[x (y)]\n-----^\nExpecting 'SQE', got 'PS'",
                            error_line=2)
    (hit,) = run("technical", "syntax", "graph TD\n    A[x (y)] --> B", verdict=verdict)
    assert hit.line == 1
    assert hit.fields["error_line"] == "12"
    assert hit.fields["error"] == "near `A[x (y)]`; Expecting 'SQE', got 'PS'"
    assert hit.replacement is None


def test_syntax_carries_the_fix_as_replacement() -> None:
    verdict = SyntaxVerdict(ok=False, error="Parse error", error_line=2)
    fix = SyntaxFix(2, 2, ('    A["x (y)"] --> B',), "Quote labels: reserved characters")
    (hit,) = run("technical", "syntax", "graph TD\n    A[x (y)] --> B", verdict=verdict, fix=fix)
    assert (hit.line, hit.end, hit.replacement) == (1, 1, ('    A["x (y)"] --> B',))
    assert "Quote labels" in hit.fields["fix"]


def test_syntax_error_without_a_line_is_a_whole_diagram_hit() -> None:
    (hit,) = run("technical", "syntax", BARE, verdict=SyntaxVerdict(ok=False, error=None))
    assert hit.line is None
    assert hit.fields["error"] == checks.UNKNOWN_SYNTAX_ERROR


def test_legacy_colour_replacement_is_the_modern_colour_of_the_plane() -> None:
    (hit,) = run("technical", "legacy_colours", "graph TD\n    A --> B\n    classDef x fill:#0066cc,stroke:#CC0000")
    assert hit.replacement == ("    classDef x fill:#3B82F6,stroke:#8B5CF6",)
    assert (hit.fields["plane"], hit.fields["modern"]) == ("Edge", "#3B82F6")


def test_plane_colour_replacement_changes_only_the_fill() -> None:
    code = "graph TD\n    A --> B\n    classDef serviceStyle fill:#F59E0B,stroke:#F59E0B"
    (hit,) = run("technical", "plane_colours", code)
    assert hit.replacement == ("    classDef serviceStyle fill:#10B981,stroke:#F59E0B",)


def test_acronyms_expanded_in_the_file_pass() -> None:
    code = "graph TD\n    A[WAL shipping] --> B[QRS]"
    page = f"The Write-Ahead Log (WAL) is shipped; QRS (Query Routing Service) routes.\n\n```mermaid\n{code}\n```"
    assert run("new_hire", "acronyms", code, file_text=page) == []
    (hit,) = run("new_hire", "acronyms", code, file_text=code)
    assert hit.fields["acronyms"] == "`WAL`, `QRS`"


def test_technology_versioned_in_the_section_passes_when_the_gate_reads_sections() -> None:
    code = "graph TD\n    A[API] --> B[(PostgreSQL)]"
    gate = CONFIG.gate("new_hire")
    rule = next(r for r in gate.rules if r.id == "versions")
    subject = Subject(diagram(code), verdict=OK, syntax_fix=None,
                      evidence_text=lambda kind: "We run PostgreSQL 16.2.\n" + code,
                      expansions=lambda: Expansions(code))
    state = CONFIG.compiled[("new_hire", "versions")]
    assert list(checks.CHECKS[rule.check].run(state, subject, checks.EVIDENCE_SECTION)) == []
    assert len(list(checks.CHECKS[rule.check].run(state, subject, checks.EVIDENCE_DIAGRAM))) == 1


def test_orphans_are_listed_with_their_file_lines() -> None:
    (hit,) = run("new_hire", "orphans", "graph TD\n    A --> B\n    C\n    D")
    assert hit.fields["nodes"] == "`C` (line 13), `D` (line 14)"
    assert hit.fields["count"] == "2"


# ------------------------------------------------------------------------------------------ the readers


def test_flowchart_reader_counts_nodes_edges_and_direction() -> None:
    lines = """%%{init: {}}%%
graph LR
  A[Cache (Redis)] --> B((DB))
  B -- writes --> C{"x}y"} & D[/para/]
  E@{ shape: rect, label: "Hello" } -.-> F:::hot
  G --- H;
  classDef hot fill:#f00
  subgraph S1 [Title]
    I
  end
  J -->|label| K -- x --- L
  M -."fallback".-> N
  O e1@--> P""".split("\n")
    graph = checks.parse_flowchart(lines, checks.header_line(lines))
    assert set(graph.nodes) == set("ABCDEFGHIJKLMNOP")
    assert graph.edges == 9
    assert graph.directed == 7
    assert graph.orphans() == [("I", 8)]
    assert graph.subgraphs == {"S1"}
    assert (2, "Cache (Redis)") in graph.labels and (4, "Hello") in graph.labels and (10, "label") in graph.labels


@pytest.mark.parametrize(("lines", "expected"), [
    (["graph TD"], 0),
    (["", "%% note", "sequenceDiagram"], 2),
    (["---", "title: x", "---", "flowchart LR"], 3),
    (["%%{init: {}}%%"], -1),
])
def test_header_line(lines: list[str], expected: int) -> None:
    assert checks.header_line(lines) == expected


@pytest.mark.parametrize(("text", "acronym", "expanded"), [
    ("We use a Content Delivery Network (CDN).", "CDN", True),
    ("CDN (Content Delivery Network) in front.", "CDN", True),
    ("CDN: Content Delivery Network", "CDN", True),
    ("CDNs (Content Delivery Networks)", "CDN", True),
    ("Time To Live (TTL)", "TTL", True),
    ("Bureau of Labor Statistics (BLS)", "BLS", True),
    ("PostgreSQL (PSQL)", "PSQL", True),
    ("the CDN (fast)", "CDN", False),
    ("XCDN: Content Delivery Network", "CDN", False),
    ("Content Delivery\nNetwork (CDN)", "CDN", False),
    # in parentheses, the letters in order in the words before it, the first starting a word
    ("Adaptive Bitrate Streaming (ABR)", "ABR", True),
    ("Time series database (TSDB)", "TSDB", True),
    ("Edge locations (PoP)", "PoP", False),
    ("Cache Layer (DB)", "DB", False),
    ("Bitrate Adaptation (ABR)", "ABR", False),
    ("MOS Voice Quality (MOS)", "MOS", False),
    ("Adaptive " + "padding " * 12 + "Bitrate (ABR)", "ABR", False),
])
def test_expansions(text: str, acronym: str, expanded: bool) -> None:
    assert (acronym in Expansions(text)) is expanded


@pytest.mark.parametrize(("error", "expected"), [
    ("Parse error on line 3:\n...A[x (y)] --> B\n-------^\nExpecting 'SQE', got 'PS'",
     "near `A[x (y)] --> B`; Expecting 'SQE', got 'PS'"),
    ("Lexical error on line 1. Unrecognized text.", "Lexical error on line 1. Unrecognized text."),
    (None, checks.UNKNOWN_SYNTAX_ERROR),
    ("x" * 400, "x" * (checks.SYNTAX_ERROR_MAX - 1) + "…"),
])
def test_condense_syntax_error(error: str | None, expected: str) -> None:
    assert checks.condense_syntax_error(error) == expected


def test_trie_pattern_matches_each_word_and_nothing_shorter() -> None:
    pattern = re.compile(rf"(?:{checks.trie_pattern(['Redis', 'Red Hat', 'Rust', 'Postgres', 'PostgreSQL'])})\b")
    found = [m.group(0) for m in pattern.finditer("Redis, Red  Hat, Rust, Postgres, PostgreSQL, Redi, Pos")]
    assert found == ["Redis", "Red  Hat", "Rust", "Postgres", "PostgreSQL"]


@pytest.mark.parametrize(("pattern", "needles", "reach"), [
    (r"\b(?:runbooks?|playbooks?)\b", ("playbook", "runbook"), 0),
    (r"\bp(?:50|99)\b", ("p50", "p99"), 0),
    (r"(?-i:\b[A-Z]\w+(?:Exception|Error)\b)", ("error", "exception"), None),
    (r"\bHTTP[ /]?[45]\d\d\b", ("http",), 0),
    (r'"[^"]{0,80}\b(?:error|failed)\b', ("error", "failed"), 81),
    (r"(?:ab|cd)x{2,5}(?:efg|hij)", ("efg", "hij"), 7),
    (r"[$€£]\s?\d", None, None),
    (r"(?:abc)*x", None, None),
    (r"\d+\s?ms\b", None, None),
])
def test_needles_of(pattern: str, needles: tuple[str, ...] | None, reach: int | None) -> None:
    assert checks.needles_of(pattern, re.IGNORECASE) == (needles, reach)


def test_evidence_rules_answer_as_a_plain_search_would() -> None:
    """The needle prefilter and the late search start are optimisations only: same answers as searching every
    pattern over the whole evidence, on every section case, padded so matches sit far from the top."""
    texts = [case[2] for case in SECTION_CASES] + ["", "ſ K İ mixed", "P99 LATENCY 40MS", "RUNBOOK"]
    texts += [text.upper() for text in texts] + [text.swapcase() for text in texts]
    texts += ["word " * 300 + text + " tail" for text in texts]
    for gate in CONFIG.gates:
        for rule in gate.rules:
            if rule.check != "evidence_matches":
                continue
            plain = [re.compile(p, re.IGNORECASE | re.MULTILINE) for p in rule.params["patterns"]]
            state = CONFIG.compiled[(gate.id, rule.id)]
            window = rule.params.get("window", 40)

            def screened(text: str, found: re.Match[str], rule: Any = rule, window: int = window) -> bool:
                line_start = text.rfind("\n", 0, found.start()) + 1
                line_end = (text + "\n").find("\n", found.end())
                before = text[max(line_start, found.start() - window):found.start()].lower()
                after = text[found.end():min(line_end, found.end() + window)].lower()
                return (any(re.search(rf"\b(?:{w})\b", before, re.I) for w in rule.params.get("unless_before", []))
                        or any(re.search(rf"\b(?:{w})\b", after, re.I) for w in rule.params.get("unless_after", [])))

            for text in texts:
                subject = Subject(diagram(BARE), verdict=OK, syntax_fix=None, evidence_text=lambda kind: text,
                                  expansions=lambda: Expansions(text))
                found = not list(checks.evidence_matches(state, subject, checks.EVIDENCE_SECTION))
                expected = any(not screened(text, m) for p in plain for m in p.finditer(text))
                assert found == expected, (gate.id, rule.id, text[-80:])


@pytest.mark.parametrize(("pattern", "folded"), [
    (r"\bRTO\b|\bMTTR", r"\brto\b|\bmttr"),
    (r"[A-Z]\w+\B\S", r"[a-z]\w+\B\S"),
    (r"(?:A)(?=B)(?<!C)", r"(?:a)(?=b)(?<!c)"),
    (r"(?-i:\bERROR\b)", None),
    (r"\x41BC", None),
    (r"(?P<x>A)\1", None),
    ("µs", None),
])
def test_fold_pattern(pattern: str, folded: str | None) -> None:
    assert checks.fold_pattern(pattern) == folded


def test_lowered_for_needles_refuses_texts_with_case_folds_onto_ascii() -> None:
    assert checks.lowered_for_needles("Runbook") == "runbook"
    assert checks.lowered_for_needles("\u212aelvin") is None


def test_every_check_is_documented_and_registered_once() -> None:
    assert set(checks.CHECKS) == {
        "mermaid_syntax", "legacy_colours", "plane_colours", "placeholders", "diagram_size", "acronyms",
        "technology_versions", "directed_flow", "orphan_nodes", "evidence_matches",
    }
    assert all(spec.doc for spec in checks.CHECKS.values())


def test_bad_regular_expression_names_the_pattern() -> None:
    with pytest.raises(checks.CheckParamError) as caught:
        checks.prepare("evidence_matches", {"patterns": ["ok", "(unclosed"]}, CONFIG)
    assert caught.value.param == "patterns" and caught.value.index == 1
    assert "(unclosed" in caught.value.reason


def test_the_fields_documented_in_gates_yml_are_the_fields_each_check_fills() -> None:
    documented = {}
    for line in (default_rules_dir() / "gates.yml").read_text().splitlines():
        found = re.match(r"#   (\w+)\s+(.*)$", line)
        if found and found.group(1) in checks.CHECKS:
            documented[found.group(1)] = set(re.findall(r"\{(\w+)\}", found.group(2).split("params:")[0]))
    assert documented == {name: set(spec.fields) for name, spec in checks.CHECKS.items()}


_SCANNED = [
    r"\b(?:backlog|lag|queue depth)\b[^\n\d]{0,25}\d",
    r"\b(?:all|every)\s{1,3}(?:users|customers)",
    r"\b(?:re-?sync\w*|forced?\s{1,3}sync)",
]


@pytest.mark.parametrize("pattern", _SCANNED)
@given(text=st.text(alphabet="abceglkqrsuvyfdo_é1 \n-", max_size=60))
@settings(max_examples=300, deadline=None)
def test_boundary_led_scan_matches_exactly_where_the_pattern_does(pattern: str, text: str) -> None:
    scan, plain = checks.boundary_led_scan(pattern), re.compile(pattern, re.MULTILINE)
    assert scan is not None
    for start in (0, 1, 5):
        found, expected = scan.search(text, start), plain.search(text, start)
        assert (found and found.span()) == (expected and expected.span())
    assert [m.span() for m in scan.finditer(text)] == [m.span() for m in plain.finditer(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ("the backlog: 5", (4, 14)), ("xbacklog 5", None), ("backlog 5", (0, 9)), ("é_lag 3", None), ("-lag 3", (1, 6)),
])
def test_boundary_led_scan_keeps_the_word_boundary(text: str, expected: tuple[int, int] | None) -> None:
    found = checks.boundary_led_scan(_SCANNED[0]).search(text)  # type: ignore[union-attr]
    assert (found and found.span()) == expected


@pytest.mark.parametrize("pattern", [
    r"\bfoo",  # no alternation to skip into
    r"(?:alpha|beta)",  # not led by a boundary
    r"\b(?:alpha|-beta)",  # a branch that starts with a non-word character
    r"\b(?:[ab]x|cy)",  # a branch that starts with a class
    r"\b(?:ab|cd|ef|gh)",  # too many first characters to be worth it
])
def test_boundary_led_scan_leaves_other_patterns(pattern: str) -> None:
    assert checks.boundary_led_scan(pattern) is None


# ---------------------------------------------------------------- equivalences the faster scans rely on

def _as_written(pattern: str) -> str:
    """A pattern with its possessive repeats made backtracking again (the form an optimisation must equal)."""
    return pattern.replace("*+", "*").replace("++", "+").replace("?+", "?").replace("}+", "}")


_TRIED_AT_NEEDLES = [(key, pattern) for key, state in CONFIG.compiled.items()
                     for pattern in getattr(state, "patterns", ()) if pattern.tried_at_needles]
_NEEDLE_WORDS = sorted({needle for _, pattern in _TRIED_AT_NEEDLES for needle in pattern.needles or ()})


def test_some_default_evidence_patterns_are_tried_at_their_needles() -> None:
    assert _TRIED_AT_NEEDLES
    assert all(0 <= (p.reach or 0) <= checks.MAX_TRIED_REACH for _, p in _TRIED_AT_NEEDLES)


@given(words=st.lists(st.sampled_from(_NEEDLE_WORDS) | st.text(alphabet="aAs 1\n:=-./%$", max_size=4),
                      max_size=12))
@settings(max_examples=300, deadline=None)
def test_a_pattern_tried_at_its_needles_finds_the_match_a_search_finds(words: list[str]) -> None:
    """Trying a pattern only at (or ``reach`` before) each needle gives the match ``search`` gives."""
    text = " ".join(words) + " 5 ms 12 users 3 min"
    lower = checks.lowered_for_needles(text)
    assert lower is not None
    for key, pattern in _TRIED_AT_NEEDLES:
        regex, haystack = (pattern.folded, lower) if pattern.folded is not None else (pattern.regex, text)
        found, expected = checks._match_at_needles(pattern, text, lower), regex.search(haystack)
        assert (found and found.span()) == (expected and expected.span()), (key, pattern.regex.pattern, text)


def test_shortest_needles_drop_the_needles_another_one_starts() -> None:
    assert checks.shortest_needles(["compensates", "compensate", "compensation", "p99", "p999", "p50"]) == (
        "compensate", "compensation", "p50", "p99")


@pytest.mark.parametrize(("patterns", "lead"), [
    ([r"\d(?<![#\w.,]\d)\s?ms\b", r"\d(?<![#\w.,]\d)[\d,.]*+\s?GB", r"\d(?<![#\w.,]\d)x"], r"\d(?<![#\w.,]\d)"),
    ([r"\d(?<![#\w.,]\d)ms", r"\d(?<![#\w.,$]\d)GB"], r"\d"),
    ([r"[$€]\s?\d", r"[$€]\d+k"], r"[$€]"),
    ([r"ab*", r"ac"], "a"),  # "b" is repeated: not a one-way item
    ([r"a*b", r"a*c"], ""),
    ([r"ab|c", r"ad"], ""),  # a top-level alternation shares nothing
    ([r"x(?:y)", r"x(?:z)"], "x"),
])
def test_alternation_takes_out_the_one_way_start_the_patterns_share(patterns: list[str], lead: str) -> None:
    assert checks._one_way_lead(patterns, re.IGNORECASE | re.MULTILINE) == lead


_LEAD_CASES = [
    [r"\d(?<![#\w.,]\d)[\d,.]*+\s?(?:k|m)?\s?ms\b", r"\d(?<![#\w.,]\d)[\d,.]*+\s?GB", r"\d(?<![#\w.,]\d)\d*\s?%"],
    [r"[$€]\s?\d+k?", r"[$€]\s?\d+\s?/\s?mo", r"[$€]"],
    [r"ab*c", r"ab", r"ac"],
]


@pytest.mark.parametrize("patterns", _LEAD_CASES)
@given(text=st.text(alphabet="0123456789,.kmsGB%$€ /moabc#\n", max_size=40))
@settings(max_examples=200, deadline=None)
def test_alternation_matches_where_the_plain_alternation_does(patterns: list[str], text: str) -> None:
    flags = re.IGNORECASE | re.MULTILINE
    merged = re.compile(checks.alternation(patterns, flags), flags)
    plain = re.compile("|".join(f"(?:{pattern})" for pattern in patterns), flags)
    assert [m.span() for m in merged.finditer(text)] == [m.span() for m in plain.finditer(text)]


@given(code=st.text(alphabet="TODOtbdBXFIMElorem ipsumServiceAexample.com_-\n", max_size=60))
@settings(max_examples=300, deadline=None)
def test_placeholder_terms_pre_tested_by_their_first_word_give_the_same_hits(code: str) -> None:
    """The substring pre-test only skips code without any match: same hits as with the test disabled ("" is in
    every text)."""
    for rule_id in ("placeholders", "generic_names"):
        state = CONFIG.compiled[("technical", rule_id)]
        untested = dataclasses.replace(state, exact_firsts=("",), folded_firsts=("",))
        subject = Subject(diagram(code), verdict=OK, syntax_fix=None, evidence_text=lambda kind: code,
                          expansions=lambda: Expansions(code))
        found = list(checks.placeholders(state, subject, checks.EVIDENCE_DIAGRAM))
        assert found == list(checks.placeholders(untested, subject, checks.EVIDENCE_DIAGRAM))


@given(text=st.text(alphabet='AB1_ ()[]{}/\\"|>@:-=.xo\n', max_size=40))
@settings(max_examples=500, deadline=None)
def test_possessive_node_shapes_match_as_the_backtracking_ones(text: str) -> None:
    """A label stops only where its closer starts, so the possessive shapes match exactly where the plain
    (backtracking) ones do, statement by statement."""
    for possessive in (checks._FLOW_SIMPLE, checks._FLOW_TOKEN):
        plain = re.compile(possessive.pattern.replace(checks._SHAPES, _as_written(checks._SHAPES)))
        for start in range(len(text) + 1):
            found, expected = possessive.match(text, start), plain.match(text, start)
            assert (found and found.groupdict()) == (expected and expected.groupdict())
        found, expected = possessive.fullmatch(text), plain.fullmatch(text)
        assert (found and found.groupdict()) == (expected and expected.groupdict())


_ACRONYM_AS_WRITTEN = re.compile(r"((?:[A-Z]{2,6}|[A-Z][a-z][A-Z]|[a-z][A-Z]{3,5})[0-9]{0,2})s?(?!\w)")


@given(text=st.text(alphabet="ABCPaboS0129s _-#", max_size=40))
@settings(max_examples=500, deadline=None)
def test_the_acronym_look_ahead_only_skips_where_no_branch_could_start(text: str) -> None:
    assert checks._ACRONYM.findall(text) == _ACRONYM_AS_WRITTEN.findall(text)
