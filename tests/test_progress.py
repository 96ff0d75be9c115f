"""Tests of bot.progress: totals, snapshot, history, velocity, the issue region and its size cap."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone

import pytest

from bot.config import Category, Config
from bot.model import CategoryTotal
from bot.progress import (
    BURN_UP_POINTS,
    CHART_INIT,
    GITHUB_BODY_LIMIT,
    HISTORY_MAX_MERGES,
    HISTORY_MAX_POINTS,
    OUTSIDE_FOLDER,
    OUTSIDE_TITLE,
    REGION_END,
    REGION_START,
    History,
    HistoryPoint,
    MergeRecord,
    build_snapshot,
    category_totals,
    history_from_json,
    history_series,
    history_to_json,
    merge_record,
    merge_region,
    parse_history,
    region_budget,
    render_progress_json,
    render_progress_region,
    text_length,
    totals_row,
    velocity,
)

NOW = datetime(2024, 9, 30, 12, 0, tzinfo=timezone.utc)


CONFIG = Config(categories=(
    Category("systems", "Architecture Deep-Dives", 240),
    Category("incidents", "Incident Anatomies", 100),
    Category("guarantees", "Guarantees", 108),
    Category("costs", "Cost Breakdowns", 60),
))


def _totals(rows):
    return {r.folder: (r.title, r.before, r.after, r.target) for r in rows}


# ------------------------------------------------------------------------------------------------- totals


def test_category_totals_orders_known_then_unknown_then_outside():
    before = {"docs/systems/netflix.md": 8, "docs/guarantees/lin.md": 6, "docs/zeta/x.md": 1}
    after = {
        "docs/systems/netflix.md": 8, "docs/systems/uber.md": 8, "docs/guarantees/lin.md": 6,
        "docs/zeta/x.md": 1, "docs/alpha/y.md": 2, "docs/index.md": 3, "README.md": 1,
    }
    rows = category_totals(CONFIG, before, after)
    assert [r.folder for r in rows] == ["systems", "incidents", "guarantees", "costs", "alpha", "zeta",
                                        OUTSIDE_FOLDER]
    assert _totals(rows)["systems"] == ("Architecture Deep-Dives", 8, 16, 240)
    assert _totals(rows)["incidents"] == ("Incident Anatomies", 0, 0, 100)
    assert _totals(rows)["alpha"] == ("alpha", 0, 2, None)
    assert _totals(rows)[OUTSIDE_FOLDER] == (OUTSIDE_TITLE, 0, 4, None)
    # Nothing is dropped: the rows add up to the counts.
    assert sum(r.after for r in rows) == sum(after.values())
    assert sum(r.before for r in rows) == sum(before.values())


def test_category_totals_ignores_zero_counts_and_omits_empty_outside_row():
    rows = category_totals(CONFIG, {"docs/new/a.md": 0}, {"docs/systems/a.md": 2})
    assert [r.folder for r in rows] == ["systems", "incidents", "guarantees", "costs"]


def test_totals_row_is_the_sum_of_the_rows():
    rows = (
        CategoryTotal("a", "A", 14, 48, 240),
        CategoryTotal("b", "B", 162, 162, 108),
        CategoryTotal("c", "c", 0, 437, None),
    )
    total = totals_row(rows)
    assert (total.before, total.after, total.target) == (176, 647, 348)
    assert totals_row([CategoryTotal("c", "c", 1, 2, None)]).target is None


def test_snapshot_total_and_completion_are_computed_from_the_same_sums():
    # The seed report listed rows adding to 804 under a TOTAL of 725; here the TOTAL is the rows' sum.
    counts = {f"docs/systems/f{i}.md": 6 for i in range(8)} | {"docs/guarantees/g.md": 162,
                                                               "docs/other/o.md": 437, "x.md": 1}
    snap = build_snapshot(CONFIG, "a" * 40, counts)
    total = snap.total
    assert total.diagrams == sum(r.diagrams for r in snap.rows) == sum(counts.values())
    assert total.files == sum(r.files for r in snap.rows) == len(counts)
    assert total.target == 240 + 100 + 108 + 60
    # Each category counts toward the targets up to its own: the 54 extra guarantees and the 437 diagrams of a
    # folder without a target do not make up for the systems still missing.
    assert total.toward_target == 48 + 108
    assert total.completion == pytest.approx((48 + 108) / total.target)
    assert next(r for r in snap.rows if r.folder == "systems").files == 8


def test_json_output_has_categories_and_total():
    snap = build_snapshot(CONFIG, "b" * 40, {"docs/systems/a.md": 3, "docs/x/b.md": 2, "top.md": 1})
    data = json.loads(render_progress_json(snap))
    assert data["rev"] == "b" * 40
    by_folder = {c["folder"]: c for c in data["categories"]}
    assert by_folder["systems"] == {"folder": "systems", "title": "Architecture Deep-Dives", "diagrams": 3,
                                    "files": 1, "target": 240, "toward_target": 3, "completion": 1.2}
    assert by_folder["x"]["target"] is None and by_folder["x"]["completion"] is None
    assert by_folder[OUTSIDE_FOLDER]["diagrams"] == 1
    assert data["total"]["diagrams"] == 6 == sum(c["diagrams"] for c in data["categories"])
    assert data["total"]["target"] == 508
    assert data["total"]["toward_target"] == 3 and data["total"]["completion"] == round(3 / 508 * 100, 1)


def test_merge_record_from_category_totals():
    rows = category_totals(CONFIG, {"docs/systems/a.md": 2, "docs/costs/c.md": 4},
                           {"docs/systems/a.md": 10, "docs/costs/c.md": 3, "docs/new/n.md": 1})
    record = merge_record(12, "Add Uber", NOW, "c" * 40, rows)
    assert record.delta == 8
    assert record.deltas == (("Architecture Deep-Dives", 8), ("Cost Breakdowns", -1), ("new", 1))


# ------------------------------------------------------------------------------------------------ history


def _history(*totals_by_day: tuple[int, int]) -> History:
    history = History()
    for day, total in totals_by_day:
        history = history.with_point(NOW - timedelta(days=day), total, f"rev{day}")
    return history


def test_history_round_trip_through_the_issue_body_with_hostile_titles():
    history = _history((30, 10), (20, 15), (1, 40))
    for number, title in ((1, "fix --> end <!-- atlas-bot:progress:end -->"), (2, 'quotes " and \\ é 🚀')):
        history = history.with_merge(MergeRecord(number, title, NOW - timedelta(days=3 - number), "d" * 40, 5,
                                                 (("Guarantees", 5),)))
    snap = build_snapshot(CONFIG, "e" * 40, {"docs/systems/a.md": 40})
    region = render_progress_region(snap, history, 10, {}, now=NOW)
    body = merge_region("Intro written by a person.\n", region)
    # The hostile title cannot close the region or the comment early.
    assert body.count(REGION_END) == 1
    assert parse_history(body) == history
    assert history_from_json(history_to_json(history)) == history


@pytest.mark.parametrize("block", ["{not json}", "[]", '{"v":99}', '{"v":1,"p":[[1,2]]}', '{"v":1,"p":[5]}',
                                   '{"v":1,"p":[[1e300,1,"r"]]}', '{"v":1,"m":[[1,"t",1,"s","x",[]]]}'])
def test_parse_history_tolerates_damaged_blocks(block):
    assert parse_history(f"{REGION_START}\n<!-- atlas-bot:history {block} -->\n{REGION_END}") == History()


def test_parse_history_without_a_block_and_with_sub_second_times():
    assert parse_history(None) == History()
    assert parse_history("no block here") == History()
    history = History().with_point(NOW.replace(microsecond=123456), 5, "r")
    assert parse_history(render_progress_region(build_snapshot(CONFIG, "a" * 40, {}), history, 1, {},
                                                now=NOW)) == history


def test_with_point_skips_unchanged_totals_and_stays_bounded():
    history = _history((10, 5), (9, 5))
    assert len(history.points) == 1
    start = NOW - timedelta(days=9)
    for i in range(HISTORY_MAX_POINTS * 3):
        history = history.with_point(start + timedelta(hours=i), i, f"r{i}")
    assert len(history.points) == HISTORY_MAX_POINTS
    assert history.points[0].at == NOW - timedelta(days=10)  # the span survives thinning
    assert history.points[-1].total == HISTORY_MAX_POINTS * 3 - 1
    for i in range(HISTORY_MAX_MERGES + 5):
        history = history.with_merge(MergeRecord(i, f"pr {i}", start + timedelta(hours=i), "f" * 40, 1))
    assert len(history.merges) == HISTORY_MAX_MERGES
    assert history.merges[-1].number == HISTORY_MAX_MERGES + 4


def test_merged_histories_union_points_and_merges():
    ours = _history((5, 10), (1, 20)).with_merge(MergeRecord(1, "a", NOW, "a" * 40, 10))
    theirs = _history((9, 4), (5, 10)).with_merge(MergeRecord(2, "b", NOW - timedelta(days=2), "b" * 40, 6))
    both = ours.merged(theirs)
    assert [p.total for p in both.points] == [4, 10, 20]
    assert [m.number for m in both.merges] == [2, 1]


# ----------------------------------------------------------------------------------------------- velocity


def test_velocity_and_projection():
    # 70 diagrams over 14 days = 35 per week; 350 remaining from the last point = 10 weeks.
    history = _history((15, 30), (1, 100))
    pace = velocity(history, total=100, target=450, now=NOW)
    assert pace.per_week == pytest.approx(35.0)
    last = NOW - timedelta(days=1)
    assert pace.projected == (last + timedelta(weeks=10)).date()
    assert pace.projected.isoformat() in pace.note


def test_velocity_uses_the_recent_window():
    # Old slow growth is outside the 12-week window; the pace is measured from the first point inside it.
    history = _history((300, 0), (70, 10), (0, 110))
    pace = velocity(history, total=110, target=1000, now=NOW)
    assert pace.per_week == pytest.approx(100 / 10)


@pytest.mark.parametrize(("points", "total", "target", "now", "expected"), [
    (((0, 5),), 5, 100, NOW, "Not enough history"),
    (((2, 5), (1, 5 + 1)), 6, None, NOW, "No target"),
    (((10, 50), (1, 40)), 40, 100, NOW, "not growing"),
    (((10, 50), (1, 120)), 120, 100, NOW, "reached"),
    (((40, 5), (35, 10)), 10, 100, NOW, "No change since"),
    (((20, 0), (1, 1)), 1, 10**9, NOW, "More than 50 years"),
])
def test_velocity_without_projection(points, total, target, now, expected):
    pace = velocity(_history(*points), total=total, target=target, now=now)
    assert pace.projected is None
    assert expected in pace.note


def test_velocity_needs_a_day_of_span():
    history = History((HistoryPoint(NOW - timedelta(minutes=20), 1, "a"), HistoryPoint(NOW, 60, "b")))
    assert velocity(history, total=60, target=100, now=NOW).per_week is None


# -------------------------------------------------------------------------------------------------- region


def _region(snapshot, history=History(), gate_health=None, **kwargs):
    return render_progress_region(snapshot, history, 10, gate_health or {}, now=NOW, **kwargs)


def test_region_contents():
    counts = {"docs/systems/a.md": 48, "docs/guarantees/g.md": 162, "docs/x|y/z.md": 2, "index.md": 1}
    snap = build_snapshot(CONFIG, "0123456789abcdef" * 2 + "01234567", counts)
    history = _history((15, 100), (1, 213)).with_merge(
        MergeRecord(7, "Add @octocat's diagrams", NOW - timedelta(days=1), "9" * 40, 8, (("Guarantees", 8),)))
    region = _region(snap, history, {"Technical": (150, 213), "The 3 AM test": (90, 213)})
    assert region.startswith(REGION_START) and region.endswith(REGION_END)
    assert "| Category | Created | Target | Completion | Over target | Files |" in region
    assert re.search(r"\| Architecture Deep-Dives \| 48 \| 240 \| `█{2}░{8}` 20\.0% \| — \| 1 \|", region)
    # Completion is capped at 100 %; what lies beyond the target is its own column.
    assert "| Guarantees | 162 | 108 | `██████████` 100.0% | +54 | 1 |" in region
    assert "| x\\|y | 2 | — | — | — | 1 |" in region  # unknown folder, pipe escaped
    assert f"| {OUTSIDE_TITLE} | 1 | — | — | — | 1 |" in region
    assert "| **TOTAL** | **213** | **508** |" in region and "| +54 | 4 |" in region
    assert f"```mermaid\n{CHART_INIT}\nxychart-beta\n" in region and "bar [20, 0, 100, 0]" in region
    assert '    y-axis "Completion (%)" 0 --> 100' in region and "    line [100, 100, 100, 100]" in region
    assert "| Technical | 150 of 213 |" in region
    assert "diagrams per week" in region and "Projected to reach 508" in region
    assert "#7 Add @\u200boctocat's diagrams: +8 diagrams (Guarantees +8)" in region


def test_region_without_targets_has_no_chart_or_projection():
    snap = build_snapshot(Config(), "a" * 40, {"docs/a/x.md": 3})
    region = _region(snap)
    assert "xychart-beta" not in region
    assert "No target" in region or "Not enough history" in region


def test_region_stays_under_the_limit_with_thousands_of_categories_and_files():
    categories = tuple(Category(f"folder-{i:05d}", f"A rather long category title number {i} " + "x" * 40, 50)
                       for i in range(4000))
    config = Config(categories=categories)
    counts = {f"docs/folder-{i % 5000:05d}/file-{i}.md": 1 + i % 7 for i in range(30_000)}
    counts |= {f"elsewhere/{i}.md": 1 for i in range(500)}
    snap = build_snapshot(config, "a" * 40, counts)
    history = History()
    for i in range(HISTORY_MAX_POINTS):
        history = history.with_point(NOW - timedelta(hours=HISTORY_MAX_POINTS - i), i * 10, f"{i:012d}")
    for i in range(HISTORY_MAX_MERGES):
        history = history.with_merge(MergeRecord(i, "t" * 300, NOW - timedelta(hours=i), "f" * 40, 3,
                                                 tuple((f"cat {j}" * 20, j) for j in range(5))))
    gates = {f"gate {i}" * 10: (i, 1000) for i in range(500)}
    region = _region(snap, history, gates)
    assert text_length(region) < GITHUB_BODY_LIMIT
    assert "more categories" in region
    # The collapsed row keeps the sums: the TOTAL still equals every diagram counted.
    assert f"| **TOTAL** | **{sum(counts.values()):,}** |" in region
    assert f"| {OUTSIDE_TITLE} | 500 |" in region
    body = merge_region("People's notes above.\n", region)
    assert text_length(body) < GITHUB_BODY_LIMIT
    assert parse_history(body).points[-1] == history.points[-1]


def test_region_respects_a_small_budget_and_never_drops_the_total():
    snap = build_snapshot(CONFIG, "a" * 40, {f"docs/f{i}/x.md": 1 for i in range(300)})
    for budget in (20_000, 5_000, 2_000, 600):
        region = _region(snap, max_chars=budget)
        assert text_length(region) <= max(budget, 700)
        assert "**300 diagrams**" in region


# --------------------------------------------------------------------------------------------- issue body


def test_merge_region_keeps_text_around_the_markers():
    old = f"Notes before.\n\n{REGION_START}\nold table\n{REGION_END}\n\nNotes after, with a | pipe.\n"
    new_region = f"{REGION_START}\nnew table\n{REGION_END}"
    body = merge_region(old, new_region)
    assert body == f"Notes before.\n\n{new_region}\n\nNotes after, with a | pipe.\n"
    assert merge_region(body, new_region) == body  # idempotent


@pytest.mark.parametrize(("existing", "expected"), [
    (None, "R"),
    ("", "R"),
    ("A person replaced everything.", "A person replaced everything.\n\nR"),
    (f"Kept.\n{REGION_START}\ntruncated by an edit", "Kept.\n\ntruncated by an edit\n\nR"),
])
def test_merge_region_appends_when_the_region_is_missing(existing, expected):
    region = f"{REGION_START}\nx\n{REGION_END}"
    assert merge_region(existing, region) == expected.replace("R", region)


def test_merge_region_collapses_duplicate_regions():
    region = f"{REGION_START}\nnew\n{REGION_END}"
    old = f"a\n{REGION_START}\n1\n{REGION_END}\nb\n{REGION_START}\n2\n{REGION_END}\nc"
    assert merge_region(old, region) == f"a\n{region}\nb\n\nc"


def test_region_budget_leaves_room_for_text_people_wrote():
    assert region_budget(None) == 60_000
    assert region_budget("x" * 30_000) == GITHUB_BODY_LIMIT - 1 - 30_000 - 2
    body = "y" * 100 + f"{REGION_START}\n{'z' * 50_000}\n{REGION_END}"
    assert region_budget(body) == 60_000


def test_velocity_rendering_is_stable_while_nothing_changes():
    snap = build_snapshot(CONFIG, "a" * 40, {"docs/systems/a.md": 100})
    history = _history((15, 30), (1, 100))
    first = _region(snap, history)
    later = render_progress_region(snap, history, 10, {}, now=NOW + timedelta(days=3))
    assert first == later
    assert date(2024, 9, 1) < velocity(history, total=100, target=508, now=NOW).projected


def test_the_chart_parses_with_mermaid():
    """The chart is mermaid GitHub must render: checked with the pinned mermaid (skipped without Node)."""
    from bot.content import extract_diagrams
    from bot.gates.mermaid import MermaidPool, MermaidUnavailable

    hostile = ('Quotes " and `ticks`', "Bob's <b>bold</b> #35; [x]", "Größe ✓", "a;b:c{d}e|f", "%%init%%")
    codes = []
    for count in (3, 9):  # a vertical and a horizontal chart
        titles = [hostile[i % len(hostile)] + f" {i}" for i in range(count)]
        config = Config(categories=tuple(Category(f"f{i}", title, 10) for i, title in enumerate(titles)))
        snap = build_snapshot(config, "a" * 40, {f"docs/f{i}/x.md": i * 7 for i in range(count)})
        region = render_progress_region(snap, History(), 1, {}, now=NOW)
        (chart,) = extract_diagrams("issue.md", region)
        codes.append(chart.code)
    assert codes[0].startswith(f"{CHART_INIT}\nxychart-beta\n")
    assert codes[1].startswith(f"{CHART_INIT}\nxychart-beta horizontal\n")
    snap = build_snapshot(CONFIG, "a" * 40, {"docs/systems/a.md": 100})
    history = _history((30, 10), (20, 40), (1, 100))
    charts = extract_diagrams("issue.md", render_progress_region(snap, history, 1, {}, now=NOW))
    codes.append(charts[-1].code)
    assert '"Diagrams over time (target line: 508)"' in codes[-1]
    try:
        with MermaidPool(workers=1) as pool:
            verdicts = pool.parse_many(codes)
    except MermaidUnavailable as exc:
        pytest.skip(str(exc))
    assert [v.ok for v in verdicts] == [True, True, True], verdicts


def test_velocity_counts_the_merges_the_issue_lists():
    """One recorded point (the bot's first run) and seven weekly merges: a pace, not "not enough history"."""
    history = History((HistoryPoint(NOW, 400, "head"),))
    for week in range(7):
        history = history.with_merge(MergeRecord(week + 1, f"batch {week}", NOW - timedelta(weeks=7 - week),
                                                 f"{week:040x}", 20))
    pace = velocity(history, total=400, target=1000, now=NOW)
    # Right after the first merge the total was 400 - 6 * 20; 120 more over the 7 weeks to the recorded point.
    assert pace.per_week == pytest.approx(120 / 7)
    assert "Projected to reach 1,000" in pace.note


def test_history_series_derives_totals_after_each_merge_from_the_next_recorded_point():
    history = History((HistoryPoint(NOW - timedelta(days=10), 50, "a"), HistoryPoint(NOW, 100, "b")))
    for days, delta in ((12, 5), (8, 20), (3, 30), (-1, 7)):
        history = history.with_merge(MergeRecord(days, "m", NOW - timedelta(days=days), "c" * 40, delta))
    series = history_series(history)
    # Right after each merge the total is the next point's less the merges in between; a merge after the last
    # point has no point to count back from.
    assert [(round((NOW - p.at) / timedelta(days=1)), p.total) for p in series] == [
        (12, 50), (10, 50), (8, 70), (3, 100), (0, 100)]


def test_region_draws_a_burn_up_with_the_target_line():
    snap = build_snapshot(CONFIG, "a" * 40, {"docs/systems/a.md": 100})
    history = History()
    for day in range(30, -1, -1):
        history = history.with_point(NOW - timedelta(days=day), 100 - day, f"{day:012d}")
    region = _region(snap, history)
    burn_up = region[region.index('title "Diagrams over time'):]
    labels = re.search(r"x-axis \[(.*)\]", burn_up).group(1)
    assert labels.startswith('"Aug 31", ') and labels.endswith(', "Sep 30"')  # evenly spread, ends kept
    assert labels.count('"') == 2 * BURN_UP_POINTS
    assert "    line [70, " in burn_up and burn_up.split("\n")[3].endswith(", 100]")
    assert f"    line [{', '.join(['508'] * BURN_UP_POINTS)}]" in burn_up
    assert '    y-axis "Diagrams" 0 --> 560' in burn_up
