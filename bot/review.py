"""What the bot posts on a pull request, built from a CheckResult: review, sticky summary, labels, check run.

Pure: plain data in (the result, the configuration, the PR's per-file patches, what was posted before), plain
dataclasses out. bot.github compares these with what GitHub already shows and sends only the difference, so
everything here is deterministic: the same inputs give byte-identical text (no timestamps), which is what
lets a re-run on an unchanged head make no write at all.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from bot.model import CheckResult, Diagram, DiagramResult, Finding, Severity
from bot.progress import totals_row
from bot.render import (
    SEVERITY_ORDER,
    SourceLines,
    annotation_message,
    findings_tally,
    plural,
    sort_findings,
    verdict_headline,
)

BOT_LABEL_PREFIX = "atlas:"
GATES_PASSED_LABEL = f"{BOT_LABEL_PREFIX}gates-passed"
GATES_FAILED_LABEL = f"{BOT_LABEL_PREFIX}gates-failed"
CATEGORY_LABEL_COLOR = "1D76DB"
GATES_PASSED_COLOR = "2DA44E"
GATES_FAILED_COLOR = "CF222E"

SUMMARY_MARKER = "<!-- atlas-bot:summary -->"
REVIEW_MARKER = "<!-- atlas-bot:review -->"
FINGERPRINTS_COMMENT = "<!-- atlas-bot:fingerprints {} -->"
FINGERPRINTS_RE = re.compile(r"<!-- atlas-bot:fingerprints ((?:[0-9a-f]{16}(?:-\d+)?\s*)*)-->")
FINGERPRINT_LENGTH = 16

CHECK_RUN_NAME = "Atlas quality gates"
EVENT_COMMENT, EVENT_REQUEST_CHANGES = "COMMENT", "REQUEST_CHANGES"
ANNOTATION_LEVELS = {Severity.ERROR: "failure", Severity.WARNING: "warning", Severity.NOTICE: "notice"}

# GitHub's documented limits. "Characters" there behave like bytes for non-ASCII text, so texts are measured
# in UTF-8 bytes, which is never longer than GitHub's own count.
CHECK_SUMMARY_LIMIT = 65_535
ANNOTATION_MESSAGE_LIMIT = 64 * 1024
# GitHub takes 50 annotations a request (https://docs.github.com/rest/checks/runs#update-a-check-run); three
# requests (the create and two updates) plus the review, the summary and the labels keep a pull request within
# six writes however many findings it has. The rest are counted.
ANNOTATIONS_PER_REQUEST = 50
MAX_ANNOTATIONS = 3 * ANNOTATIONS_PER_REQUEST
ANNOTATION_TITLE_LIMIT = 255
COMMENT_BODY_LIMIT = 65_536
LABEL_NAME_LIMIT = 50
LABEL_DESCRIPTION_LIMIT = 100
TRUNCATION_NOTE = "\n\n… truncated to fit GitHub's limit of {limit:,} characters{hint}."
# How many findings the review body lists one per line; the check run carries every finding anyway.
MAX_BODY_FINDINGS = 100
# A listed finding's message is cut here (one line each, so a long list stays scannable).
BRIEF_MESSAGE_CHARS = 160
# How many diagrams the summary's gate tables show in all before they say "and N more".
MAX_SUMMARY_ROWS = 150
# Rows of diagrams that need attention shown open; the rest of them, and every passing diagram, are folded, so
# the summary of a pull request adding hundreds of diagrams stays a screen or two tall.
MAX_OPEN_ROWS = 15
# Advice (notices) listed in the summary's folded part.
MAX_SUMMARY_NOTICES = 50

DEFAULT_GATE_TITLES = {
    "technical": "Technical",
    "three_am": "3 AM test",
    "new_hire": "New Hire test",
    "cfo": "CFO test",
    "incident": "Incident test",
}
PASS_ICON, FAIL_ICON, ADVICE_ICON, NOT_APPLICABLE = "✅", "❌", "⚠️", "—"
COMMENT_ICONS = {Severity.ERROR: FAIL_ICON, Severity.WARNING: "⚠️", Severity.NOTICE: "ℹ️"}

_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_WHITESPACE_RE = re.compile(r"\s+")


class ReviewSettingsLike(Protocol):
    @property
    def max_inline_comments(self) -> int: ...

    @property
    def request_changes_on_failure(self) -> bool: ...


class CategoryLike(Protocol):
    @property
    def title(self) -> str: ...


class ConfigLike(Protocol):
    """The slice of bot.config.Config this module reads (``gates`` is read too when present)."""

    @property
    def review(self) -> ReviewSettingsLike: ...

    def category_of(self, path: str) -> str | None: ...

    def category(self, folder: str) -> CategoryLike: ...


@dataclass(frozen=True)
class InlineComment:
    """A review comment on RIGHT-side lines ``start_line``..``line`` (``start_line`` None for one line)."""

    path: str
    line: int
    start_line: int | None
    side: str
    body: str
    fingerprint: str


@dataclass(frozen=True)
class ReviewDraft:
    event: str
    body: str
    comments: tuple[InlineComment, ...]


@dataclass(frozen=True)
class LabelSpec:
    color: str
    description: str


@dataclass(frozen=True)
class CheckRunDraft:
    """A completed check run; ``annotations`` are every finding, for the publisher to send 50 at a time."""

    name: str
    head_sha: str
    conclusion: str
    title: str
    summary: str
    annotations: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Publication:
    """Everything to show on one PR head.

    ``review`` is None when there is nothing new to say. ``fingerprints`` are all current findings' fingerprints:
    a previously posted fingerprint missing from it belongs to a finding that is now fixed.
    """

    review: ReviewDraft | None
    summary: str
    labels: frozenset[str]
    label_specs: dict[str, LabelSpec]
    check_run: CheckRunDraft
    fingerprints: frozenset[str]


# ---------------------------------------------------------------------------------------------------------------
# Fingerprints and diff lines


def finding_fingerprint(finding: Finding, line_text: str = "", diagram_code: str | None = None) -> str:
    """A short id of a finding that survives pushes: path, gate, rule, the offending text and, for a finding in
    a diagram, that diagram's own code; never its line number or its position among look-alikes."""
    normalised = _WHITESPACE_RE.sub(" ", line_text).strip()
    parts = [finding.path, finding.gate, finding.rule, normalised]
    if diagram_code is not None:
        parts.append(hashlib.sha256(diagram_code.encode("utf-8")).hexdigest())
    key = "\x1f".join(parts)
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:FINGERPRINT_LENGTH]


def fingerprints_in(text: str) -> frozenset[str]:
    """The fingerprints a review or comment body posted by this module carries (for the publisher)."""
    found: set[str] = set()
    for match in FINGERPRINTS_RE.finditer(text):
        found.update(match.group(1).split())
    return frozenset(found)


def _hunk_lines(patch: str) -> list[frozenset[int]]:
    """Per hunk, the RIGHT-side (new file) line numbers of its added and context lines.

    ``patch`` is a file's ``patch`` from GitHub's pull request files API: hunks without file headers. The
    hunk header's counts bound each hunk, so headers of a full ``git diff`` or a trailing empty line are
    never mistaken for content.
    """
    hunks: list[frozenset[int]] = []
    lines: set[int] = set()
    old_left = new_left = 0
    new_line = 0
    for raw in patch.split("\n"):
        if old_left <= 0 and new_left <= 0:
            match = _HUNK_RE.match(raw)
            if match is None:
                continue
            if lines:
                hunks.append(frozenset(lines))
                lines = set()
            old_left = int(match.group(2) or "1")
            new_line = int(match.group(3))
            new_left = int(match.group(4) or "1")
            continue
        marker = raw[:1]
        if marker == "\\":  # "\ No newline at end of file"
            continue
        if marker == "-":
            old_left -= 1
            continue
        if marker == "+":
            new_left -= 1
        else:  # context (" ", or an empty line whose leading space was stripped)
            old_left -= 1
            new_left -= 1
        lines.add(new_line)
        new_line += 1
    if lines:
        hunks.append(frozenset(lines))
    return hunks


def commentable_lines(patch: str) -> set[int]:
    """RIGHT-side line numbers a review comment may sit on: added and context lines of every hunk."""
    return set().union(*_hunk_lines(patch))


# ---------------------------------------------------------------------------------------------------------------
# Publication


def build_publication(
    result: CheckResult,
    config: ConfigLike,
    *,
    pr_patches: Mapping[str, str],
    head_sha: str,
    sources: Mapping[str, str] | None = None,
    already_posted: frozenset[str] = frozenset(),
    repository_url: str | None = None,
) -> Publication:
    """Review, sticky summary, labels and check run for one PR head.

    ``pr_patches`` maps head path → patch (GitHub's PR files API); a file without a patch (too large, binary,
    pure rename) has no commentable line. ``sources`` maps path → head file text and refines fingerprints of
    findings outside diagram code. ``already_posted`` are fingerprints found in earlier reviews
    (:func:`fingerprints_in`); those findings are not posted again. Findings a modified diagram already had at
    the merge base (:func:`preexisting_findings`) are never posted; the summary counts them. With
    ``repository_url`` (``https://github.com/OWNER/REPO``) the summary's paths link to the files at ``head_sha``.
    """
    titles = gate_titles(config)
    fingerprinted = assign_fingerprints(result, sources)
    preexisting = preexisting_findings(result)
    summary_body = _summary_sections(result, titles, head_sha, preexisting, repository_url)
    review = _build_review(result, config, titles, [pair for pair in fingerprinted if pair[0] not in preexisting],
                           pr_patches, already_posted, len(preexisting))
    labels, specs = _labels(result, config)
    return Publication(
        review=review,
        summary=cap_text(f"{SUMMARY_MARKER}\n{summary_body}", COMMENT_BODY_LIMIT),
        labels=labels,
        label_specs=specs,
        check_run=_check_run(result, titles, summary_body, head_sha, preexisting),
        fingerprints=frozenset(fp for _, fp in fingerprinted),
    )


def rank(finding: Finding, preexisting: frozenset[Finding] = frozenset()) -> tuple:
    """Sort key wherever a list is cut: blocking errors, other errors, warnings, notices; new before already
    there; then file order."""
    return (not finding.blocking, SEVERITY_ORDER[finding.severity], finding in preexisting, finding.path,
            finding.line, finding.gate, finding.rule)


def preexisting_findings(result: CheckResult) -> frozenset[Finding]:
    """Findings of modified diagrams that the same diagram already had at the merge base.

    A finding is the same when gate, rule and offending text (the diagram lines it points at, whitespace
    folded) match one of the base version's findings; each base finding answers for one head finding.
    """
    found: set[Finding] = set()
    for item in result.diagrams:
        if item.base_diagram is None or not item.base_findings:
            continue
        base_texts = {item.base_diagram.path: _line_texts(item.base_diagram)}
        head_texts = {item.diagram.path: _line_texts(item.diagram)}
        no_sources = SourceLines(None)
        at_base = Counter(_content_key(f, base_texts, no_sources) for f in item.base_findings)
        for finding in sorted(item.findings, key=lambda f: (f.line, f.gate, f.rule)):
            key = _content_key(finding, head_texts, no_sources)
            if at_base[key] > 0:
                at_base[key] -= 1
                found.add(finding)
    return frozenset(found)


def _content_key(finding: Finding, texts: Mapping[str, Mapping[int, str]], lines_of: SourceLines) -> tuple:
    return (finding.gate, finding.rule, _WHITESPACE_RE.sub(" ", _offending_text(finding, texts, lines_of)).strip())


def gate_titles(config: object) -> dict[str, str]:
    """Gate id → title, in the configuration's order: ``config.gates`` (a sequence of objects with ``id`` and
    ``title``, or a mapping id → object or id → title) when present, otherwise the Atlas defaults."""
    gates = getattr(config, "gates", None)
    if not gates:
        return dict(DEFAULT_GATE_TITLES)
    if isinstance(gates, Mapping):
        return {str(gid): (g if isinstance(g, str) else getattr(g, "title", str(gid))) for gid, g in gates.items()}
    return {g.id: getattr(g, "title", g.id) for g in gates}


def assign_fingerprints(result: CheckResult, sources: Mapping[str, str] | None) -> list[tuple[Finding, str]]:
    """Every finding of the result in file order with its fingerprint.

    The offending text is read from the diagram code when the lines belong to a diagram (so sources or no
    sources, container prefixes or not, the fingerprint is the same), else from ``sources``. A finding in a
    diagram is keyed by that diagram's code too, so two diagrams lacking the same thing never collide and
    fixing one never changes the other's fingerprint (two identical diagrams share theirs: their findings are
    the same finding). Only findings identical within one diagram, or within one file outside diagrams, get
    ``-2``, ``-3``… in line order.
    """
    texts = _diagram_line_texts(result.diagrams)
    owners = _diagram_owners(result.diagrams)
    lines_of = SourceLines(sources)
    seen: dict[tuple[str, int | None, str], int] = {}
    out = []
    for finding in sort_findings(result.findings):
        owner = _owner(owners, finding)
        code = None if owner is None else owner.diagram.code
        fingerprint = finding_fingerprint(finding, _offending_text(finding, texts, lines_of), code)
        scope = (finding.path, None if owner is None else owner.diagram.line, fingerprint)
        seen[scope] = seen.get(scope, 0) + 1
        if seen[scope] > 1:
            fingerprint = f"{fingerprint}-{seen[scope]}"
        out.append((finding, fingerprint))
    return out


def _offending_text(finding: Finding, texts: Mapping[str, Mapping[int, str]], lines_of: SourceLines) -> str:
    """The text of the finding's lines: diagram code where they are in a diagram, else the source file's."""
    known = texts.get(finding.path, {})
    source_lines = lines_of.lines(finding.path)
    parts = []
    for number in range(finding.line, finding.last_line + 1):
        if number in known:
            parts.append(known[number])
        elif 1 <= number <= len(source_lines):
            parts.append(source_lines[number - 1])
    return "\n".join(parts)


def _diagram_owners(diagrams: Iterable[DiagramResult]) -> dict[str, list[DiagramResult]]:
    """path → the checked diagrams of that file, by fence line."""
    owners: dict[str, list[DiagramResult]] = {}
    for result in sorted(diagrams, key=lambda d: d.diagram.line):
        owners.setdefault(result.diagram.path, []).append(result)
    return owners


def _owner(owners: Mapping[str, list[DiagramResult]], finding: Finding) -> DiagramResult | None:
    """The diagram whose lines (opening fence to closing fence) hold the finding's first line."""
    for result in owners.get(finding.path, ()):
        diagram = result.diagram
        if diagram.line <= finding.line <= diagram.end_line + 1:
            return result
    return None


def _diagram_line_texts(diagrams: Iterable[DiagramResult]) -> dict[str, dict[int, str]]:
    """path → file line → text, for the fence lines and code lines of the checked diagrams."""
    texts: dict[str, dict[int, str]] = {}
    for result in diagrams:
        texts.setdefault(result.diagram.path, {}).update(_line_texts(result.diagram))
    return texts


def _line_texts(diagram: Diagram) -> dict[int, str]:
    """File line → text for one diagram's fence lines and code lines."""
    lines = {diagram.line: f"fence {diagram.info}"}
    for number, text in zip(diagram.line_map, diagram.code.splitlines()):
        lines[number] = text
    if diagram.closed:
        # Code lines run up to the closing fence, so it is the line after the last one.
        lines[diagram.end_line + 1] = "fence end"
    return lines


def cap_text(text: str, limit: int, hint: str = "") -> str:
    """``text`` cut to ``limit`` UTF-8 bytes at a line end where possible, with a note saying so."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    note = TRUNCATION_NOTE.format(limit=limit, hint=hint)
    budget = limit - len(note.encode("utf-8"))
    cut = data[:budget].decode("utf-8", errors="ignore")
    newline = cut.rfind("\n")
    if newline > budget // 2:
        cut = cut[:newline]
    return cut + note


# ---------------------------------------------------------------------------------------------------------------
# Review


def _build_review(
    result: CheckResult,
    config: ConfigLike,
    titles: Mapping[str, str],
    fingerprinted: list[tuple[Finding, str]],
    pr_patches: Mapping[str, str],
    already_posted: frozenset[str],
    preexisting: int,
) -> ReviewDraft | None:
    """The review of the new findings not posted before; None when none of them is more than advice."""
    new = [(f, fp) for f, fp in fingerprinted if fp not in already_posted]
    if all(f.severity is Severity.NOTICE for f, _ in new):
        return None
    hunks = {path: _hunk_lines(patch) for path, patch in pr_patches.items() if patch}

    def in_diff(finding: Finding) -> bool:
        wanted = set(range(finding.line, finding.last_line + 1))
        # A multi-line comment must lie inside one hunk (GitHub rejects a range that spans two).
        return any(wanted <= hunk for hunk in hunks.get(finding.path, ()))

    # Advice never becomes an inline comment: it is folded into the body.
    notices: list[tuple[Finding, str]] = []
    commentable: list[tuple[Finding, str]] = []
    outside: list[tuple[Finding, str]] = []
    for pair in new:
        if pair[0].severity is Severity.NOTICE:
            notices.append(pair)
        else:
            (commentable if in_diff(pair[0]) else outside).append(pair)
    commentable.sort(key=lambda pair: rank(pair[0]))
    cap = max(0, config.review.max_inline_comments)
    inline = sorted(commentable[:cap], key=lambda pair: (pair[0].path, pair[0].line))
    comments = tuple(_inline_comment(f, fp, titles) for f, fp in inline)
    sections = _body_lists(commentable[cap:] + outside, notices, titles, cap)
    fingerprints = sorted({fp for _, fp in new})

    blocking = any(f.blocking for f in result.findings)
    event = EVENT_REQUEST_CHANGES if blocking and config.review.request_changes_on_failure else EVENT_COMMENT
    head = [REVIEW_MARKER, FINGERPRINTS_COMMENT.format(" ".join(fingerprints)),
            f"### {CHECK_RUN_NAME}: {plural(len(new), 'new finding')}", "",
            f"{verdict_headline(result)}."]
    if comments:
        head.append(f"{plural(len(comments), 'comment')} on the changed lines below.")
    if preexisting:
        head.append(f"{plural(preexisting, 'finding')} these diagrams already had before this pull request "
                    f"{'is' if preexisting == 1 else 'are'} not repeated (the summary counts them).")
    if event == EVENT_REQUEST_CHANGES:
        head.append("A blocking gate fails, so this review requests changes.")
    body = "\n".join(head + sections)
    return ReviewDraft(event=event, body=cap_text(body, COMMENT_BODY_LIMIT, "; the check run lists every finding"),
                       comments=comments)


def _body_lists(
    listed: list[tuple[Finding, str]], notices: list[tuple[Finding, str]], titles: Mapping[str, str], cap: int
) -> list[str]:
    """The findings not commented inline, most serious first: errors open, warnings and advice folded; at most
    MAX_BODY_FINDINGS lines in all.

    Findings past the limit are counted by severity (the check run lists every one); the review records them as
    posted with the listed ones, since re-running the same head must find nothing new to say.
    """
    ranked = sorted(listed, key=lambda pair: rank(pair[0]))
    errors = [f for f, _ in ranked if f.severity is Severity.ERROR]
    warnings = [f for f, _ in ranked if f.severity is not Severity.ERROR]
    advice = sorted((f for f, _ in notices), key=rank)
    lines: list[str] = []
    if ranked:
        lines += ["", f"**Not commented inline** (on lines this pull request does not change, or past the "
                      f"{plural(cap, 'inline comment')} a review makes), most serious first:"]
    room = MAX_BODY_FINDINGS
    for findings, fold in ((errors, None), (warnings, "warning"), (advice, "notice")):
        if not findings:
            continue
        shown = _finding_lines(findings, titles, room)
        if fold is None:
            lines += ["", *shown]
        else:
            what = plural(len(findings), fold) + (" (advice, never blocking)" if fold == "notice" else "")
            lines += ["", f"<details><summary>{what}</summary>", "", *shown, "", "</details>"]
        room = max(0, room - len(findings))
    return lines


def _finding_lines(findings: list[Finding], titles: Mapping[str, str], room: int) -> list[str]:
    """One Markdown list line per finding, the first ``room`` of them, then a count of the rest."""
    lines = []
    for finding in findings[:room]:
        message = _brief(finding.message.splitlines()[0] if finding.message else "")
        title = titles.get(finding.gate, finding.gate)
        blocks = ", blocks merging" if finding.blocking else ""
        lines.append(f"- {_code(f'{finding.path}:{finding.line}')} {finding.severity.value}{blocks} "
                     f"({title} · {_code(finding.rule)}): {message}")
    if len(findings) > room:
        lines.append(f"- … and {findings_tally(findings[room:], 'more finding')} not listed here "
                     "(the check run has them)")
    return lines


def _brief(text: str, limit: int = BRIEF_MESSAGE_CHARS) -> str:
    """The start of a message for a one-line list entry, cut at a word and never inside a code span (the inline
    comment and the check run carry it whole)."""
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    if cut.count("`") % 2:
        cut = cut[:cut.rfind("`")].rstrip()
    return cut.rstrip(" ,;:(") + " …"


def _inline_comment(finding: Finding, fingerprint: str, titles: Mapping[str, str]) -> InlineComment:
    title = titles.get(finding.gate, finding.gate)
    icon = COMMENT_ICONS[finding.severity]
    blocks = " · blocks merging" if finding.blocking else ""
    parts = [FINGERPRINTS_COMMENT.format(fingerprint),
             f"{icon} **{title}** · {finding.severity.value} · {_code(finding.rule)}{blocks}", "", finding.message]
    if finding.suggestion is not None:
        parts += ["", suggestion_block(finding.suggestion)]
    multi = finding.last_line > finding.line
    return InlineComment(
        path=finding.path,
        line=finding.last_line,
        start_line=finding.line if multi else None,
        side="RIGHT",
        body=cap_text("\n".join(parts), COMMENT_BODY_LIMIT),
        fingerprint=fingerprint,
    )


def suggestion_block(replacement: str) -> str:
    """A ```` ```suggestion ```` block; the fence grows past any backtick run inside the replacement."""
    longest = max((len(run) for run in re.findall(r"`+", replacement)), default=0)
    fence = "`" * max(3, longest + 1)
    inner = replacement if replacement == "" else replacement.rstrip("\n") + "\n"
    return f"{fence}suggestion\n{inner}{fence}"


def _code(text: str) -> str:
    """Inline code span that survives backticks in the text."""
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


# ---------------------------------------------------------------------------------------------------------------
# Summary and check run


def _summary_sections(result: CheckResult, titles: Mapping[str, str], head_sha: str,
                      preexisting: frozenset[Finding], repository_url: str | None) -> str:
    """The summary's Markdown (without the marker), shared by the sticky comment and the check run."""
    gate_ids = list(titles) + sorted({g for d in result.diagrams for g in d.gates_passed} - set(titles))
    lines = [f"## {CHECK_RUN_NAME}", "",
             f"**{verdict_headline(result)}** at `{head_sha[:7]}`: {_news(result, preexisting)}."]

    if result.diagrams:
        # One change for every diagram (a pull request adding a folder) is said once, in the header: the column
        # it would take is the room the names need to stay on one line.
        statuses = {d.status.value for d in result.diagrams}
        uniform = statuses.pop() if len(statuses) == 1 else None
        header = [f"Diagram ({uniform})" if uniform else "Diagram", *([] if uniform else ["Change"]), "Syntax",
                  *(titles.get(g, g) for g in gate_ids)]
        names = short_names({d.diagram.path for d in result.diagrams})

        def table(rows: Sequence[DiagramResult]) -> list[str]:
            out = ["", _row(header), _row(["---"] * len(header))]
            for diagram in rows:
                cells = [_diagram_link(diagram, names, head_sha, repository_url),
                         *([] if uniform else [diagram.status.value]), PASS_ICON if diagram.syntax.ok else FAIL_ICON]
                out.append(_row(cells + [gate_cell(diagram, gate) for gate in gate_ids]))
            return out

        ordered = sorted(result.diagrams, key=_attention)
        attention = [d for d in ordered if _attention(d)[0] < 2]
        passing = ordered[len(attention):]
        shown = min(len(ordered), MAX_SUMMARY_ROWS)
        open_rows, folded = attention[:MAX_OPEN_ROWS], attention[MAX_OPEN_ROWS:shown]
        passing_rows = passing[:max(0, shown - len(attention))]
        if open_rows:
            lines += table(open_rows)
        for rows, what in ((folded, "more that need attention"), (passing_rows, "passing")):
            if rows:
                lines += ["", f"<details><summary>{plural(len(rows), 'diagram')} {what}</summary>", *table(rows),
                          "", "</details>"]
        if len(ordered) > shown:
            rest = ordered[shown:]
            failing = sum(1 for d in rest if _attention(d)[0] < 2)
            lines.append(f"\n… and {plural(len(rest), 'more diagram')} ({failing:,} that need attention, "
                         f"{len(rest) - failing:,} passing): the check run's annotations show their findings.")
        lines += ["", f"<sub>{PASS_ICON} passes · {ADVICE_ICON} passes, with advice · {FAIL_ICON} fails · "
                      f"{NOT_APPLICABLE} "
                      "does not apply to the diagram's category</sub>"]

    notices = sorted((f for f in result.findings if f.severity is Severity.NOTICE), key=rank)
    if notices:
        lines += ["", f"<details><summary>{plural(len(notices), 'notice')} (advice, never blocking)</summary>", "",
                  *_finding_lines(notices, titles, MAX_SUMMARY_NOTICES), "", "</details>"]
    if result.file_findings:
        lines += ["", "**Files that could not be checked**", ""]
        lines += [f"- {_code(f.path)}: {f.message.splitlines()[0] if f.message else f.rule}"
                  for f in sort_findings(result.file_findings)]
    if result.removed:
        lines += ["", f"This pull request removes {plural(len(result.removed), 'diagram')}."]
    lines += ["", *_category_deltas(result)]
    return "\n".join(lines)


def _news(result: CheckResult, preexisting: frozenset[Finding]) -> str:
    """``3 new findings (…); 2 findings already there before this pull request (…)``; one plain tally without
    a base."""
    if result.base is None:
        return findings_tally(result.findings)
    new = [f for f in result.findings if f not in preexisting]
    text = findings_tally(new, "new finding")
    if preexisting:
        there = "already there before this pull request"
        text += "; " + findings_tally(preexisting, f"finding {there}", f"findings {there}")
    return text


def _attention(diagram: DiagramResult) -> tuple:
    """Summary order: failing diagrams (a blocking finding), then those with a failing gate, then the rest."""
    group = 0 if not diagram.passed else 1 if not all(diagram.gates_passed.values()) else 2
    return (group, diagram.diagram.path, diagram.diagram.line)


def short_names(paths: Iterable[str]) -> dict[str, str]:
    """Path → its shortest tail of folders that no other of ``paths`` shares (``netflix.md``, ``a/index.md``),
    so a table column stays narrow and every row still names its file."""
    paths = set(paths)
    names = {}
    for path in paths:
        parts = path.split("/")
        for size in range(1, len(parts) + 1):
            tail = "/".join(parts[-size:])
            if not any(other != path and (other == tail or other.endswith("/" + tail)) for other in paths):
                break
        names[path] = tail
    return names


def _diagram_link(diagram: DiagramResult, names: Mapping[str, str], head_sha: str,
                  repository_url: str | None) -> str:
    """``name:line`` as code, linked to the line in the file at the head commit (the full path as the link's
    title) when the repository is known."""
    path, line = diagram.diagram.path, diagram.diagram.line
    where = _code(f"{names.get(path, path)}:{line}")
    if not repository_url:
        return where
    url = f"{repository_url.rstrip('/')}/blob/{head_sha}/{quote(path)}#L{line}"
    title = path.replace("\\", "\\\\").replace('"', '\\"')
    return f'[{where}]({url} "{title}")'


def gate_cell(diagram: DiagramResult, gate: str) -> str:
    """✅ / ⚠️ / ❌ by the gate's pass condition (⚠️: passes, but advice fired), — where the gate does not apply."""
    passed = diagram.gates_passed.get(gate)
    if passed is None:
        return NOT_APPLICABLE
    if not passed:
        return FAIL_ICON
    return ADVICE_ICON if gate in diagram.gates_advised else PASS_ICON


def _category_deltas(result: CheckResult) -> list[str]:
    changed = [row for row in result.totals if row.before != row.after]
    if not changed:
        return ["**Category counts**: this pull request does not change them."]
    lines = ["**Category counts this pull request would make**", "",
             _row(["Category", "Diagrams", "Change"]), _row(["---", "---:", "---:"])]
    for row in changed:
        lines.append(_row([row.title, _progress(row.before, row.after, row.target), f"{row.after - row.before:+,}"]))
    total = totals_row(result.totals)
    lines.append(_row([f"**{total.title}**", _progress(total.before, total.after, total.target),
                       f"{total.after - total.before:+,}"]))
    return lines


def _progress(before: int, after: int, target: int | None) -> str:
    text = f"{before:,} → {after:,}"
    return f"{text} of {target:,}" if target is not None else text


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _check_run(result: CheckResult, titles: Mapping[str, str], summary_body: str, head_sha: str,
               preexisting: frozenset[Finding]) -> CheckRunDraft:
    if not result.passed:
        conclusion = "failure"
    elif not result.diagrams and not result.findings:
        conclusion = "neutral"
    else:
        conclusion = "success"
    # The most important findings get the annotations: blocking ones, then by severity, new before old.
    ranked = sorted(result.findings, key=lambda f: rank(f, preexisting))
    shown = sort_findings(ranked[:MAX_ANNOTATIONS])
    annotations = tuple(
        {
            "path": f.path,
            "start_line": max(1, f.line),
            "end_line": max(1, f.last_line),
            "annotation_level": ANNOTATION_LEVELS[f.severity],
            "message": cap_text(annotation_message(f), ANNOTATION_MESSAGE_LIMIT),
            "title": _truncate(f"{titles.get(f.gate, f.gate)}: {f.rule}", ANNOTATION_TITLE_LIMIT),
        }
        for f in shown
    )
    if len(ranked) > MAX_ANNOTATIONS:
        summary_body += (f"\n\nAnnotations show the {MAX_ANNOTATIONS} most important of {len(ranked):,} findings; "
                         f"left out: {findings_tally(ranked[MAX_ANNOTATIONS:])}. `atlas-bot check` lists every one.")
    return CheckRunDraft(
        name=CHECK_RUN_NAME,
        head_sha=head_sha,
        conclusion=conclusion,
        title=verdict_headline(result),
        summary=cap_text(summary_body, CHECK_SUMMARY_LIMIT),
        annotations=annotations,
    )


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------------------
# Labels


def _labels(result: CheckResult, config: ConfigLike) -> tuple[frozenset[str], dict[str, LabelSpec]]:
    """``atlas:<folder>`` for each category the PR touches, and the gate status label."""
    paths = {d.diagram.path for d in result.diagrams} | {d.path for d in result.removed}
    paths |= {f.path for f in result.file_findings}
    specs: dict[str, LabelSpec] = {}
    for folder in sorted({c for c in map(config.category_of, paths) if c}):
        name = _truncate(f"{BOT_LABEL_PREFIX}{folder}", LABEL_NAME_LIMIT)
        description = f"Changes Atlas diagrams in {config.category(folder).title}"
        specs[name] = LabelSpec(CATEGORY_LABEL_COLOR, _truncate(description, LABEL_DESCRIPTION_LIMIT))
    if result.passed:
        specs[GATES_PASSED_LABEL] = LabelSpec(GATES_PASSED_COLOR, "Every new or changed diagram passes the Atlas "
                                                                  "quality gates")
    else:
        specs[GATES_FAILED_LABEL] = LabelSpec(GATES_FAILED_COLOR, "A blocking Atlas quality gate fails")
    return frozenset(specs), specs
