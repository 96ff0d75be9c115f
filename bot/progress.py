"""Progress of a diagram repository: category totals, history, velocity and the progress issue's text.

Pure: plain data in, strings and dataclasses out; no git, no GitHub, no clock (``now`` is passed in).
``category_totals`` is the one source of category numbers: the pull-request summary's projected deltas and the
progress issue's table both come from it, and every TOTAL is the sum of the rows shown above it.

The bot owns only the text between ``REGION_START`` and ``REGION_END`` in the issue body; ``merge_region``
swaps that part and keeps whatever people wrote around it. The region carries its own history (points and
recent merges) in a hidden comment, so a bot that lost its store picks the history up again from the issue.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol

from bot.model import CategoryTotal

log = logging.getLogger(__name__)

REGION_START = "<!-- atlas-bot:progress:start -->"
REGION_END = "<!-- atlas-bot:progress:end -->"
HISTORY_PREFIX = "<!-- atlas-bot:history "
HISTORY_RE = re.compile(r"<!-- atlas-bot:history (.*?) -->", re.DOTALL)
HISTORY_VERSION = 1

# GitHub rejects issue bodies longer than this; the region leaves room for text people add around it.
GITHUB_BODY_LIMIT = 65_536
REGION_MAX_CHARS = 60_000

# Diagrams that sit in no category folder (outside docs_root, or directly in it). "" is no folder's name.
OUTSIDE_FOLDER = ""
OUTSIDE_TITLE = "(no category)"
TOTAL_FOLDER = "TOTAL"
TOTAL_TITLE = "TOTAL"

BAR_WIDTH = 20
ROW_BAR_WIDTH = 10
BAR_FULL, BAR_EMPTY = "█", "░"
TITLE_MAX = 80
MERGE_TITLE_MAX = 100
MERGE_DELTAS_MAX = 5

# History kept in the hidden block: enough for a velocity over months, small enough to stay a few KB.
HISTORY_MAX_POINTS = 100
HISTORY_MAX_MERGES = 30
WEEK = timedelta(weeks=1)
VELOCITY_WINDOW = timedelta(weeks=12)
# A rate measured over less than this says more about one merge than about a pace.
VELOCITY_MIN_SPAN = timedelta(days=1)
# With no change for this long the last pace is no longer a forecast.
STALL_AFTER = timedelta(weeks=4)
PROJECTION_MAX = timedelta(weeks=52 * 50)

CHART_TITLE = "Completion per category (%, capped at 100)"
BURN_UP_TITLE = "Diagrams over time"
# GitHub draws mermaid in the page's theme; mermaid's default bar colour is near-white on a light page. These read
# on both GitHub's light and dark backgrounds: GitHub's blue for the data, its orange for the target line.
# The width fills GitHub's comment column, so the burn-up's dates do not collide.
CHART_INIT = ('%%{init: {"xyChart": {"width": 800}, '
              '"themeVariables": {"xyChart": {"plotColorPalette": "#2f81f7, #d4760a"}}}}%%')
# Points of the burn-up line at most (x-axis dates stay legible in an 880 px column).
BURN_UP_POINTS = 10
CHART_LABEL_MAX = 24
# Beyond this many bars the category names collide under a vertical chart; horizontal bars keep them legible.
CHART_HORIZONTAL_FROM = 7
CHART_SAFE_PUNCTUATION = frozenset(" -_.,()&/'+:")
# Characters that mean something to Markdown inline parsing or to a table row.
MD_SPECIAL_RE = re.compile(r"([\\`*_\[\]|~])")
# A mention in an issue body notifies the person; a zero-width space after "@" keeps the text readable.
MENTION_RE = re.compile(r"@(?=[A-Za-z0-9])")


class _ConfigLike(Protocol):
    """What the totals need from ``bot.config.Config``."""

    categories: Sequence[Any]

    def category_of(self, path: str) -> str | None: ...


# --------------------------------------------------------------------------------------------------- totals


def completion(diagrams: int, target: int | None) -> float | None:
    """Share of the target reached (1.0 = 100 %), or None when there is no positive target."""
    if target is None or target <= 0:
        return None
    return diagrams / target


def folder_of(config: _ConfigLike, path: str) -> str:
    """The category folder a file counts under (``OUTSIDE_FOLDER`` when it is in none)."""
    folder = config.category_of(path)
    return OUTSIDE_FOLDER if folder is None else folder


def _per_folder(config: _ConfigLike, counts: Mapping[str, int]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for path, count in counts.items():
        if count > 0:
            totals[folder_of(config, path)] += count
    return totals


def category_totals(
    config: _ConfigLike, before: Mapping[str, int], after: Mapping[str, int]
) -> tuple[CategoryTotal, ...]:
    """Diagrams per category before and after a change, from per-file counts (``path -> diagrams``).

    Rows: the configured categories in configuration order (also when empty), then folders the configuration
    does not know in alphabetical order (title = folder, no target), then one row for diagrams in no category
    folder. A diagram is never dropped: the rows add up to the sum of the counts.
    """
    old, new = _per_folder(config, before), _per_folder(config, after)
    rows: list[CategoryTotal] = []
    known: set[str] = set()
    for category in config.categories:
        known.add(category.folder)
        rows.append(CategoryTotal(category.folder, category.title, old[category.folder], new[category.folder],
                                  category.target))
    unknown = sorted((set(old) | set(new)) - known - {OUTSIDE_FOLDER})
    rows.extend(CategoryTotal(folder, folder, old[folder], new[folder], None) for folder in unknown)
    if old[OUTSIDE_FOLDER] or new[OUTSIDE_FOLDER]:
        rows.append(CategoryTotal(OUTSIDE_FOLDER, OUTSIDE_TITLE, old[OUTSIDE_FOLDER], new[OUTSIDE_FOLDER], None))
    return tuple(rows)


def _sum_targets(targets: Sequence[int | None]) -> int | None:
    known = [t for t in targets if t is not None]
    return sum(known) if known else None


def totals_row(rows: Sequence[CategoryTotal]) -> CategoryTotal:
    """The TOTAL row: every number is the sum of the rows (target: of the rows that have one)."""
    return CategoryTotal(
        TOTAL_FOLDER, TOTAL_TITLE, sum(r.before for r in rows), sum(r.after for r in rows),
        _sum_targets([r.target for r in rows]),
    )


# ------------------------------------------------------------------------------------------------- snapshot


@dataclass(frozen=True)
class CategoryRow:
    """One category at one revision: diagrams, files holding them, target.

    ``credited`` is set on sums of rows: the diagrams that count toward the summed target, each category up to
    its own target. A surplus in one category, or diagrams in folders without a target, must not make up for a
    category that is behind; the sum's completion is therefore ``credited / target``.
    """

    folder: str
    title: str
    diagrams: int
    files: int
    target: int | None
    credited: int | None = None
    # On sums of rows: the diagrams past each category's own target, added up.
    surplus_sum: int | None = None

    @property
    def surplus(self) -> int | None:
        """Diagrams beyond the target (0 when not over it), None without a target."""
        if self.surplus_sum is not None:
            return self.surplus_sum
        return None if self.target is None else max(0, self.diagrams - self.target)

    @property
    def toward_target(self) -> int:
        """Diagrams that count toward this row's target."""
        if self.credited is not None:
            return self.credited
        return self.diagrams if self.target is None else min(self.diagrams, self.target)

    @property
    def completion(self) -> float | None:
        return completion(self.diagrams if self.credited is None else self.credited, self.target)


@dataclass(frozen=True)
class ProgressSnapshot:
    """Category rows of one revision; ``total`` is their sum."""

    rev: str
    rows: tuple[CategoryRow, ...]

    @property
    def total(self) -> CategoryRow:
        return _sum_rows(TOTAL_FOLDER, TOTAL_TITLE, self.rows)


def _sum_rows(folder: str, title: str, rows: Sequence[CategoryRow]) -> CategoryRow:
    targeted = [r for r in rows if r.target is not None]
    return CategoryRow(folder, title, sum(r.diagrams for r in rows), sum(r.files for r in rows),
                       _sum_targets([r.target for r in rows]),
                       sum(r.toward_target for r in targeted) if targeted else None,
                       sum(r.surplus or 0 for r in targeted) if targeted else None)


def build_snapshot(config: _ConfigLike, rev: str, counts: Mapping[str, int]) -> ProgressSnapshot:
    """The snapshot at ``rev`` from per-file diagram counts; numbers come from ``category_totals``."""
    files: Counter[str] = Counter(folder_of(config, path) for path, count in counts.items() if count > 0)
    rows = tuple(CategoryRow(t.folder, t.title, t.after, files[t.folder], t.target)
                 for t in category_totals(config, counts, counts))
    return ProgressSnapshot(rev, rows)


# -------------------------------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryPoint:
    """The repository's total at one moment (recorded when the total changes)."""

    at: datetime
    total: int
    rev: str


@dataclass(frozen=True)
class MergeRecord:
    """A merged pull request and what it changed: total delta and the per-category deltas (title, delta)."""

    number: int
    title: str
    merged_at: datetime
    sha: str
    delta: int
    deltas: tuple[tuple[str, int], ...] = ()


def merge_record(number: int, title: str, merged_at: datetime, sha: str,
                 totals: Sequence[CategoryTotal]) -> MergeRecord:
    """A merge's record from ``category_totals(config, counts_before, counts_after)``."""
    changed = [(t.title, t.after - t.before) for t in totals if t.after != t.before]
    changed.sort(key=lambda item: -abs(item[1]))
    return MergeRecord(number, _clip(title, MERGE_TITLE_MAX), _utc(merged_at), sha,
                       sum(d for _, d in changed), tuple(changed[:MERGE_DELTAS_MAX]))


@dataclass(frozen=True)
class History:
    """Totals over time and the latest merges, oldest first; bounded so the hidden block stays small."""

    points: tuple[HistoryPoint, ...] = ()
    merges: tuple[MergeRecord, ...] = ()

    def with_point(self, at: datetime, total: int, rev: str) -> History:
        """Record the total at ``at``; unchanged history when the total did not move since the last point."""
        at = _utc(at)
        if self.points and self.points[-1].total == total and self.points[-1].at <= at:
            return self
        points = sorted((*self.points, HistoryPoint(at, total, rev)), key=lambda p: p.at)
        return replace(self, points=_thin(points, HISTORY_MAX_POINTS))

    def with_merge(self, record: MergeRecord) -> History:
        """Record a merge (a pull request recorded before is replaced by its new record)."""
        merges = [m for m in self.merges if m.number != record.number]
        merges.append(replace(record, merged_at=_utc(record.merged_at)))
        merges.sort(key=lambda m: m.merged_at)
        return replace(self, merges=tuple(merges[-HISTORY_MAX_MERGES:]))

    def merged(self, other: History) -> History:
        """Union of two histories (the store's and the issue's), e.g. after the store was lost."""
        result = self
        for point in other.points:
            if point not in result.points:
                points = sorted({*result.points, point}, key=lambda p: (p.at, p.total))
                result = replace(result, points=_thin(points, HISTORY_MAX_POINTS))
        known = {m.number for m in result.merges}
        for record in other.merges:
            if record.number not in known:
                result = result.with_merge(record)
        return result

    def trimmed(self, max_points: int, max_merges: int) -> History:
        return History(_thin(list(self.points), max_points), self.merges[-max_merges:] if max_merges else ())


def _thin(points: list[HistoryPoint], limit: int) -> tuple[HistoryPoint, ...]:
    """Drop interior points until ``limit`` remain, always the one closest in time to its predecessor.

    The first and last points survive, so the recorded span (and the velocity over it) is kept.
    """
    points = list(points)
    if limit <= 0:
        return ()
    if limit == 1:
        return tuple(points[-1:])
    while len(points) > limit:
        gaps = [(points[i].at - points[i - 1].at, i) for i in range(1, len(points) - 1)]
        del points[min(gaps)[1]]
    return tuple(points)


def _utc(moment: datetime) -> datetime:
    """UTC, whole seconds: the precision the hidden block keeps, so a history equals its parsed copy."""
    moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    return moment.replace(microsecond=0)


def _timestamp(moment: datetime) -> int:
    return int(_utc(moment).timestamp())


def _from_timestamp(value: Any) -> datetime:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    try:
        return datetime.fromtimestamp(value, tz=timezone.utc)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"timestamp out of range: {value!r}") from exc


def history_to_json(history: History) -> str:
    """Compact JSON of a history with ``<`` and ``>`` escaped, safe inside an HTML comment."""
    data = {
        "v": HISTORY_VERSION,
        "p": [[_timestamp(p.at), p.total, p.rev] for p in history.points],
        "m": [[m.number, m.title, _timestamp(m.merged_at), m.sha, m.delta, [list(d) for d in m.deltas]]
              for m in history.merges],
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def history_from_json(text: str) -> History:
    """Inverse of ``history_to_json``; ValueError when the text is not a history of a known version."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("v") != HISTORY_VERSION:
        raise ValueError("unknown history version")
    points = []
    for at, total, rev in data.get("p", []):
        if not isinstance(total, int) or not isinstance(rev, str):
            raise ValueError("bad history point")
        points.append(HistoryPoint(_from_timestamp(at), total, rev))
    merges = []
    for number, title, at, sha, delta, deltas in data.get("m", []):
        if not (isinstance(number, int) and isinstance(title, str) and isinstance(sha, str)
                and isinstance(delta, int)):
            raise ValueError("bad merge record")
        pairs = tuple((str(name), int(d)) for name, d in deltas)
        merges.append(MergeRecord(number, title, _from_timestamp(at), sha, delta, pairs))
    points.sort(key=lambda p: p.at)
    merges.sort(key=lambda m: m.merged_at)
    return History(tuple(points), tuple(merges))


def parse_history(body: str | None) -> History:
    """The history embedded in an issue body (the block inside the bot's region first); empty when absent.

    A damaged block (someone edited it) yields an empty history rather than an error: the store usually has a
    copy, and the next update writes a clean block.
    """
    if not body:
        return History()
    span = _region_span(body)
    candidates = [body[span[0]:span[1]]] if span else []
    candidates.append(body)
    for text in candidates:
        match = HISTORY_RE.search(text)
        if match:
            try:
                return history_from_json(match.group(1))
            except (ValueError, TypeError) as exc:
                log.warning("ignoring a damaged progress history block: %s", exc)
                return History()
    return History()


# ------------------------------------------------------------------------------------------------- velocity


@dataclass(frozen=True)
class Velocity:
    """Diagrams per week over the recent history and, when it can be said, the projected completion date."""

    per_week: float | None
    since: datetime | None
    projected: date | None
    note: str


def history_series(history: History) -> tuple[HistoryPoint, ...]:
    """Totals over time: the recorded points, and the total right after each listed merge, derived back from the
    next recorded point by the merges' deltas (a bot that recorded one point still knows the merges' dates)."""
    events = sorted([(p.at, 1, p) for p in history.points] + [(m.merged_at, 0, m) for m in history.merges],
                    key=lambda event: (event[0], event[1]), reverse=True)
    series: dict[datetime, HistoryPoint] = {}
    running: int | None = None
    for at, _, event in events:
        if isinstance(event, HistoryPoint):
            running = event.total
            series[at] = event
        elif running is not None:
            series.setdefault(at, HistoryPoint(at, running, event.sha[:12]))
            running -= event.delta
    return tuple(series[at] for at in sorted(series))


def velocity(history: History, *, total: int, target: int | None, now: datetime) -> Velocity:
    """Pace over the last ``VELOCITY_WINDOW`` of recorded history, projected from the last recorded change.

    ``total`` is what counts toward ``target`` now; the pace is that of the recorded totals.

    The projection starts at the last recorded point (not at ``now``), so the rendered text changes when the
    totals change, not every time the clock moves; ``now`` only decides whether the pace is stale. The recorded
    totals include those after each listed merge (:func:`history_series`).
    """
    points = history_series(history)
    if target is not None and target > 0 and total >= target:
        note = f"Target of {target:,} reached."
    else:
        note = ""
    if len(points) < 2 or points[-1].at - points[0].at < VELOCITY_MIN_SPAN:
        return Velocity(None, None, None, note or "Not enough history yet for a pace (needs a day of changes).")
    last = points[-1]
    if _utc(now) - last.at > STALL_AFTER:
        return Velocity(0.0, last.at, None,
                        note or f"No change since {last.at.date().isoformat()}: no projection.")
    window = [p for p in points if p.at >= last.at - VELOCITY_WINDOW]
    base = window[0]
    if last.at - base.at < VELOCITY_MIN_SPAN:
        base = max((p for p in points if last.at - p.at >= VELOCITY_MIN_SPAN), key=lambda p: p.at)
    per_week = (last.total - base.total) / ((last.at - base.at) / WEEK)
    if note:
        return Velocity(per_week, base.at, None, note)
    if target is None or target <= 0:
        return Velocity(per_week, base.at, None, "No target configured: no projection.")
    if per_week <= 0:
        return Velocity(per_week, base.at, None, "The total is not growing: no projection.")
    remaining_weeks = (target - total) / per_week
    if remaining_weeks > PROJECTION_MAX / WEEK:
        return Velocity(per_week, base.at, None, "More than 50 years at this pace.")
    projected = (last.at + remaining_weeks * WEEK).date()
    return Velocity(per_week, base.at, projected, f"Projected to reach {target:,} on {projected.isoformat()}.")


# ------------------------------------------------------------------------------------------------ rendering


@dataclass(frozen=True)
class _Level:
    """How much detail one rendering attempt keeps (the first that fits the size budget wins)."""

    rows: int
    chart: int
    merges: int
    points: int
    gates: int


# From everything to the essentials; every level bounds every list, the last one is small whatever the input.
LEVELS = (
    _Level(rows=10**9, chart=20, merges=10**9, points=HISTORY_MAX_POINTS, gates=10**9),
    _Level(rows=300, chart=20, merges=10, points=HISTORY_MAX_POINTS, gates=50),
    _Level(rows=60, chart=12, merges=5, points=50, gates=20),
    _Level(rows=20, chart=8, merges=3, points=24, gates=10),
    _Level(rows=5, chart=0, merges=0, points=8, gates=5),
)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md(text: str, limit: int = TITLE_MAX) -> str:
    """Text as literal Markdown inline content (table-safe, no HTML, no mentions)."""
    text = _clip(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return MENTION_RE.sub("@\u200b", MD_SPECIAL_RE.sub(r"\\\1", text))


def _bar(share: float | None, width: int) -> str:
    if share is None:
        return ""
    filled = min(width, max(0, round(share * width)))
    return f"`{BAR_FULL * filled}{BAR_EMPTY * (width - filled)}`"


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f}%"


def _completion_cell(share: float | None) -> str:
    """Bar and percentage, capped at 100 %: what lies beyond a target is shown as a surplus, not as a share."""
    if share is None:
        return "—"
    share = min(share, 1.0)
    return f"{_bar(share, ROW_BAR_WIDTH)} {_percent(share)}"


def _table_row(row: CategoryRow, *, bold: bool = False) -> str:
    title, created = _md(row.title), f"{row.diagrams:,}"
    target = "—" if row.target is None else f"{row.target:,}"
    over = "—" if not row.surplus else f"+{row.surplus:,}"
    if bold:
        title, created = f"**{title}**", f"**{created}**"
        target = target if row.target is None else f"**{target}**"
    return f"| {title} | {created} | {target} | {_completion_cell(row.completion)} | {over} | {row.files:,} |"


def _category_table(snapshot: ProgressSnapshot, max_rows: int) -> list[str]:
    inside = [r for r in snapshot.rows if r.folder != OUTSIDE_FOLDER]
    outside = [r for r in snapshot.rows if r.folder == OUTSIDE_FOLDER]
    lines = ["| Category | Created | Target | Completion | Over target | Files |", "|---|--:|--:|---|--:|--:|"]
    shown, rest = inside[:max_rows], inside[max_rows:]
    lines.extend(_table_row(r) for r in shown)
    if rest:
        lines.append(_table_row(_sum_rows("", f"… {len(rest):,} more categories", rest)))
    lines.extend(_table_row(r) for r in outside)
    lines.append(_table_row(snapshot.total, bold=True))
    return lines


def _chart_label(title: str) -> str:
    kept = "".join(ch if ch.isalnum() or ch in CHART_SAFE_PUNCTUATION else " " for ch in title)
    return _clip(kept, CHART_LABEL_MAX).strip() or "?"


def _chart(snapshot: ProgressSnapshot, max_bars: int) -> list[str]:
    rows = [r for r in snapshot.rows if r.completion is not None]
    if not rows or max_bars <= 0:
        return []
    title = CHART_TITLE if len(rows) <= max_bars else f"{CHART_TITLE}, first {max_bars} of {len(rows)}"
    rows = rows[:max_bars]
    values = [round(min(r.completion or 0.0, 1.0) * 100, 1) for r in rows]
    labels = ", ".join(f'"{_chart_label(r.title)}"' for r in rows)
    kind = "xychart-beta horizontal" if len(rows) >= CHART_HORIZONTAL_FROM else "xychart-beta"
    return ["```mermaid", CHART_INIT, kind, f'    title "{title}"', f"    x-axis [{labels}]",
            '    y-axis "Completion (%)" 0 --> 100', f"    bar [{', '.join(f'{v:g}' for v in values)}]",
            f"    line [{', '.join(['100'] * len(rows))}]", "```"]


def _burn_up(snapshot: ProgressSnapshot, history: History, max_points: int) -> list[str]:
    """A line of the total over the recorded history (merges included) and, with targets, the target line."""
    series = list(history_series(history))
    if len(series) < 2 or max_points < 2:
        return []
    if len(series) > max_points:
        # Evenly spread, first and last kept: the span and the latest total are what a reader looks for.
        step = (len(series) - 1) / (max_points - 1)
        series = [series[round(i * step)] for i in range(max_points)]
    target = snapshot.total.target
    top = max([p.total for p in series] + [target or 0])
    top = max(10, math.ceil(top * 1.1 / 10) * 10)
    one_year = series[0].at.year == series[-1].at.year
    labels = ", ".join(f'"{p.at:%b %d}"' if one_year else f'"{p.at:%Y-%m}"' for p in series)
    lines = ["```mermaid", CHART_INIT, "xychart-beta",
             f'    title "{BURN_UP_TITLE}{"" if target is None else f" (target line: {target:,})"}"',
             f"    x-axis [{labels}]", f'    y-axis "Diagrams" 0 --> {top}',
             f"    line [{', '.join(str(p.total) for p in series)}]"]
    if target is not None:
        lines.append(f"    line [{', '.join([str(target)] * len(series))}]")
    return [*lines, "```"]


def _gate_lines(gate_health: Mapping[str, tuple[int, int]], max_gates: int) -> list[str]:
    if not gate_health:
        return []
    lines = ["### Gate health", "", "Share of the diagrams on the default branch that pass each gate.", "",
             "| Gate | Passing | Share |", "|---|--:|---|"]
    items = list(gate_health.items())
    for gate, (passed, total) in items[:max_gates]:
        share = passed / total if total else None
        lines.append(f"| {_md(gate)} | {passed:,} of {total:,} | {_completion_cell(share)} |")
    if len(items) > max_gates:
        lines.append(f"| … {len(items) - max_gates:,} more gates | | |")
    return lines


def _velocity_lines(snapshot: ProgressSnapshot, history: History, now: datetime) -> list[str]:
    total = snapshot.total
    pace = velocity(history, total=total.toward_target, target=total.target, now=now)
    lines = ["### Velocity", ""]
    if pace.per_week is not None and pace.since is not None:
        lines.append(f"- {pace.per_week:,.1f} diagrams per week since {pace.since.date().isoformat()}")
    lines.append(f"- {pace.note}")
    return lines


def _merge_lines(history: History, count: int) -> list[str]:
    merges = list(reversed(history.merges))[:count] if count > 0 else []
    if not merges:
        return []
    lines = ["### Latest merges", ""]
    for m in merges:
        detail = ", ".join(f"{_md(title, 40)} {d:+,}" for title, d in m.deltas)
        detail = f" ({detail})" if detail else ""
        lines.append(f"- #{m.number} {_md(m.title, MERGE_TITLE_MAX)}: {m.delta:+,} diagrams{detail}, "
                     f"{m.merged_at.date().isoformat()}")
    return lines


def _render(snapshot: ProgressSnapshot, history: History, recent_merges: int,
            gate_health: Mapping[str, tuple[int, int]], now: datetime, level: _Level) -> str:
    total = snapshot.total
    share = total.completion
    lines = [REGION_START, "## Diagram progress", "",
             f"**{total.diagrams:,} diagrams** in {total.files:,} files at `{snapshot.rev[:12]}`", ""]
    if share is not None:
        lines += [f"{_bar(share, BAR_WIDTH)} {_percent(share)}: {total.toward_target:,} of the {total.target:,} "
                  "the category targets ask for (each category counts up to its target)", ""]
    lines += _category_table(snapshot, level.rows)
    for section in (_chart(snapshot, level.chart), _gate_lines(gate_health, level.gates),
                    _velocity_lines(snapshot, history, now),
                    _burn_up(snapshot, history, min(level.chart, BURN_UP_POINTS)),
                    _merge_lines(history, min(recent_merges, level.merges))):
        if section:
            lines += ["", *section]
    kept = history.trimmed(level.points, min(HISTORY_MAX_MERGES, max(level.merges, 0)))
    lines += ["", f"{HISTORY_PREFIX}{history_to_json(kept)} -->", REGION_END]
    return "\n".join(lines)


def _minimal(snapshot: ProgressSnapshot, history: History) -> str:
    total = snapshot.total
    share = "" if total.completion is None else f" ({_percent(total.completion)} of the category targets)"
    return "\n".join([
        REGION_START, "## Diagram progress", "",
        f"**{total.diagrams:,} diagrams**{share} in {total.files:,} files in "
        f"{len(snapshot.rows):,} categories "
        f"at `{snapshot.rev[:12]}` (details left out to fit the issue size limit; run `atlas-bot progress`).",
        "", f"{HISTORY_PREFIX}{history_to_json(history.trimmed(2, 0))} -->", REGION_END,
    ])


def text_length(text: str) -> int:
    """Length as GitHub's limit may count it (UTF-16 code units: never less than code points)."""
    return len(text.encode("utf-16-le")) // 2


def render_progress_region(
    snapshot: ProgressSnapshot,
    history: History,
    recent_merges: int,
    gate_health: Mapping[str, tuple[int, int]],
    *,
    now: datetime,
    max_chars: int = REGION_MAX_CHARS,
) -> str:
    """The bot's part of the progress issue, markers included, at most ``max_chars`` long.

    ``recent_merges`` is how many of the history's merges to list (``config.progress.recent_merges``);
    ``gate_health`` maps a gate's title to (diagrams passing, diagrams checked) on the default branch.
    Detail degrades step by step (long category tails collapse into one "… N more" row that keeps the sums,
    fewer chart bars, merges and history points) until the text fits.
    """
    for level in LEVELS:
        text = _render(snapshot, history, recent_merges, gate_health, now, level)
        if text_length(text) <= max_chars:
            return text
    return _minimal(snapshot, history)


def render_progress_json(snapshot: ProgressSnapshot) -> str:
    """``atlas-bot progress --format json``: per-category figures and the TOTAL (sum of the rows)."""

    def row(r: CategoryRow) -> dict[str, Any]:
        share = r.completion
        return {"folder": r.folder, "title": r.title, "diagrams": r.diagrams, "files": r.files,
                "target": r.target, "toward_target": None if r.target is None else r.toward_target,
                "completion": None if share is None else round(share * 100, 1)}

    data = {"rev": snapshot.rev, "categories": [row(r) for r in snapshot.rows], "total": row(snapshot.total)}
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


# ---------------------------------------------------------------------------------------------- issue body


def _region_span(body: str) -> tuple[int, int] | None:
    start = body.find(REGION_START)
    if start < 0:
        return None
    end = body.find(REGION_END, start + len(REGION_START))
    return None if end < 0 else (start, end + len(REGION_END))


def merge_region(existing_body: str | None, region: str) -> str:
    """The issue body with the bot's region replaced by ``region`` (markers included in ``region``).

    Text outside the markers is kept byte for byte. Without a complete region the new one is appended (a lone
    start marker left by an edit is removed so the body holds exactly one region).
    """
    if not existing_body:
        return region
    span = _region_span(existing_body)
    if span is None:
        rest = existing_body.replace(REGION_START, "").rstrip()
        return f"{rest}\n\n{region}" if rest else region
    head, tail = existing_body[: span[0]], existing_body[span[1]:]
    # Further complete regions (a body assembled by hand from two copies) belong to the bot as well.
    while (extra := _region_span(tail)) is not None:
        tail = tail[: extra[0]] + tail[extra[1]:]
    return head + region + tail


def region_budget(existing_body: str | None) -> int:
    """Characters the region may take so the whole body stays under GitHub's limit with today's outside text."""
    if not existing_body:
        return REGION_MAX_CHARS
    span = _region_span(existing_body)
    outside = existing_body if span is None else existing_body[: span[0]] + existing_body[span[1]:]
    return max(0, min(REGION_MAX_CHARS, GITHUB_BODY_LIMIT - 1 - text_length(outside) - 2))
