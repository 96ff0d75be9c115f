"""Pages a hostile pull request could add: long labels, deep nesting, huge diagrams, thousands of fences.

Each is plain Markdown an Atlas page could hold; the regexes of the gates and the syntax fixes, the parser and
the review must all get through each in bounded time. Shared by tests/test_adversarial.py, the e2e suite and
bench/bench_hostile.py.
"""

from __future__ import annotations

LABEL_CHARS = 100_000


def _page(title: str, diagram: str, prose: str = "How requests flow.") -> str:
    return f"# {title}\n\n## Request path\n\n{prose}\n\n```mermaid\n{diagram}\n```\n"


def _flowchart(label: str) -> str:
    return f'flowchart LR\n    A["{label}"] --> B[Kafka 3.6]\n    B --> C[(PostgreSQL)]'


def hostile_pages() -> dict[str, str]:
    """File name → page text, one hostile shape each."""
    n = LABEL_CHARS
    many = "\n".join(f"## Part {i}\n\n```mermaid\nflowchart LR\n    A{i}[Client] --> B{i}[API]\n```\n"
                     for i in range(5_000))
    edges = "\n".join(f"    N{i}[Node {i} p99 120ms] --> N{i + 1}[Node {i + 1} $0.{i % 10}/hour]"
                      for i in range(15_000))
    nested = "".join(f"subgraph S{i}[Layer {i}]\n" for i in range(400)) + "A --> B\n" + "end\n" * 400
    return {
        "label-spaces.md": _page("Spaces", _flowchart("Kafka" + " " * n + "3.6")),
        "label-word.md": _page("Word", _flowchart("Kafka" + "x" * n)),
        "label-digits.md": _page("Digits", _flowchart("v" + "1." * (n // 2) + " $" + "9" * 1000)),
        "label-money.md": _page("Money", _flowchart("$" + "1," * (n // 2) + " per " * 10)),
        "label-metrics.md": _page("Metrics", _flowchart("p99 " * (n // 4) + "ms")),
        "label-brackets.md": _page("Brackets", "flowchart LR\n    A[" + "(" * n + "] --> B"),
        "unquoted-label.md": _page("Unquoted", "flowchart LR\n    A[" + "a (b) " * (n // 6) + "] --> B"),
        "prose-line.md": _page("Prose", _flowchart("Client"), prose="error rate " + "5" * n + " % " * 1000
                               + "kubectl " + "-" * n),
        "deep-subgraphs.md": _page("Nested", "flowchart TB\n" + nested),
        "big-diagram.md": _page("Big", "flowchart LR\n" + edges),  # just under the 1 MB file cap
        "oversized.md": _page("Oversized", "flowchart LR\n" + edges + "\n" + edges[:200_000]),
        "many-diagrams.md": "# Many\n\n" + many,
    }
