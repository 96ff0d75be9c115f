"""Quality gates: rule checks, the mermaid syntax pool and mechanical fixes."""
