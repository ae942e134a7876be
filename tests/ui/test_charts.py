"""The clinician pages' charts (api/ui/charts.py, ADR 0036): the SVG they produce, read as XML.

A PHQ-9 episode as the README's scenario has it: 18 falling to 6 over seven weekly sessions, one
voided administration, response and partial remission decided, a retracted remission, the
expected-recovery band, the remission and episode thresholds."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.ui import charts
from api.ui.charts import (
    DecisionMark,
    ExpectedPoint,
    RatesChart,
    RateSeries,
    ScorePoint,
    SeverityBand,
    Threshold,
    Trajectory,
    rates_figure,
    trajectory_figure,
)

NS = {"svg": "http://www.w3.org/2000/svg"}
MONTH_NAMES = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
SVG = "{http://www.w3.org/2000/svg}"
START = date(2026, 1, 5)
TOTALS = (18, 16, 15, 12, 10, 8, 6)
BANDS = (SeverityBand(0, 4, "minimal"), SeverityBand(5, 9, "mild"), SeverityBand(10, 14, "moderate"),
         SeverityBand(15, 19, "moderately severe"), SeverityBand(20, 27, "severe"))
THRESHOLDS = (Threshold(5, "remission below 5 (acnp2006 v1.0.0)"),
              Threshold(10, "episode threshold 10"))
POINTS = tuple(ScorePoint(on=START + timedelta(weeks=i), session=i + 1, total=t,
                          label=f"PHQ-9 {t}") for i, t in enumerate(TOTALS))
VOIDED = ScorePoint(on=date(2026, 1, 15), session=3, total=22, voided=True)
CHART = Trajectory(
    instrument="PHQ-9", scale=(0, 27), points=(*POINTS, VOIDED), bands=BANDS, thresholds=THRESHOLDS,
    decisions=(DecisionMark(date(2026, 1, 26), 4, "response"),
               DecisionMark(date(2026, 2, 2), 5, "remission", retracted=True),
               DecisionMark(date(2026, 2, 9), 6, "partial remission")),
    expected=tuple(ExpectedPoint(START + timedelta(weeks=i), i + 1, 14 - 2 * i, 21 - 2 * i)
                   for i in range(7)))
TITLE = "PHQ-9 over time"
DESCRIPTION = "PHQ-9 fell from 18 to 6 over 6 weeks: response on 26 Jan 2026"
RATES = RatesChart(months=("2025-11", "2025-12", "2026-01", "2026-02"), series=(
    RateSeries("response", (40.0, 50.0, None, 55.0)), RateSeries("remission", (20.0, 30.0, 35.0, 40.0)),
    RateSeries("recovery", (10.0, None, 20.0, 25.0))))


@pytest.fixture(autouse=True)
def _drawn_anew() -> None:
    """Each test draws (the module keeps its last figures)."""
    charts._trajectory_svg.cache_clear()
    charts._rates_svg.cache_clear()


def draw(chart: Trajectory = CHART, figure_id: str = "chart-phq-9") -> str:
    return str(trajectory_figure(chart, figure_id=figure_id, title=TITLE, description=DESCRIPTION).svg)


def parsed(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def by_id(root: ET.Element, element_id: str) -> ET.Element:
    found = root.find(f".//*[@id='{element_id}']")
    assert found is not None, element_id
    return found


def texts(element: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in element.iter(f"{SVG}text")]


def marker_ys(group: ET.Element) -> list[float]:
    return [float(u.get("y", "nan")) for u in group.iter(f"{SVG}use")]


def test_the_fragment_is_an_svg_image_named_by_its_title_and_description() -> None:
    svg = draw()
    root = parsed(svg)
    assert svg.startswith("<svg ") and "<?xml" not in svg and "DOCTYPE" not in svg
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "chart-phq-9-title chart-phq-9-desc"
    assert (root.get("width"), root.get("height"), root.get("viewBox")) == ("720", "320", "0 0 720 320")
    title, desc = root[0], root[1]
    assert (title.tag, title.get("id"), title.text) == (f"{SVG}title", "chart-phq-9-title", TITLE)
    assert (desc.tag, desc.get("id"), desc.text) == (f"{SVG}desc", "chart-phq-9-desc", DESCRIPTION)
    assert root.find("svg:metadata", NS) is None


def test_band_threshold_decision_and_expected_labels_are_text() -> None:
    shown = texts(parsed(draw()))
    for label in [b.label for b in BANDS] + [t.label for t in THRESHOLDS]:
        assert label in shown
    assert {"response", "remission (retracted)", "partial remission", "expected (80 %)",
            "scores", "voided (not counted)", "PHQ-9 total (points)", "clinical date"} <= set(shown)


def test_band_labels_sit_inside_the_plot_at_its_right_edge() -> None:
    root = parsed(draw())
    right = max(float(x) for x in re.findall(r"L (\d+(?:\.\d+)?) ", by_id(root, "chart-phq-9-band-0")
                                              .find("svg:path", NS).get("d")))  # type: ignore[union-attr]
    for i in range(len(BANDS)):
        text = by_id(root, f"chart-phq-9-band-label-{i}").find(".//svg:text", NS)
        assert text is not None and "text-anchor: end" in text.get("style", "")
        assert right - 10 < float(text.get("x", "0")) < right


def test_every_point_is_drawn_once_and_the_voided_one_differently() -> None:
    root = parsed(draw())
    points = by_id(root, "chart-phq-9-points")
    voided = by_id(root, "chart-phq-9-voided")
    assert len(marker_ys(points)) == len(POINTS)
    assert len(marker_ys(voided)) == 1
    (point_marker,) = {u.get("href") for u in points.iter(f"{SVG}use")}
    (voided_marker,) = {u.get("href") for u in voided.iter(f"{SVG}use")}
    assert point_marker != voided_marker
    assert by_id(root, point_marker[1:]).get("d") != by_id(root, voided_marker[1:]).get("d")
    assert "fill: #ffffff" in voided.find(".//svg:use", NS).get("style", "")  # type: ignore[union-attr]
    assert "fill: #08306b" in points.find(".//svg:use", NS).get("style", "")  # type: ignore[union-attr]
    assert points.find("svg:path", NS) is not None  # the joining line
    assert voided.find("svg:path", NS) is None  # not joined


def test_a_higher_score_is_drawn_higher_never_flipped() -> None:
    root = parsed(draw())
    ys = marker_ys(by_id(root, "chart-phq-9-points"))
    assert ys == sorted(ys)  # totals fall 18 .. 6, so y (downwards in SVG) grows
    assert ys[0] < ys[-1]
    (voided_y,) = marker_ys(by_id(root, "chart-phq-9-voided"))
    assert voided_y < ys[0]  # 22 above 18
    y_axis = by_id(root, "chart-phq-9-y-axis")
    ticks = {"".join(t.itertext()): float(t.get("y", "0")) for t in y_axis.iter(f"{SVG}text")}
    assert ticks["25"] < ticks["0"]


def test_the_same_input_gives_the_same_bytes() -> None:
    first = draw()
    charts._trajectory_svg.cache_clear()
    assert draw() == first
    rates = []
    for _ in range(2):
        charts._rates_svg.cache_clear()
        rates.append(str(rates_figure(RATES, figure_id="chart-rates", title="t", description="d").svg))
    assert rates[0] == rates[1]


def test_the_last_figures_are_kept() -> None:
    first = trajectory_figure(CHART, figure_id="k", title=TITLE, description=DESCRIPTION)
    again = trajectory_figure(CHART, figure_id="k", title=TITLE, description=DESCRIPTION)
    assert again.svg is first.svg
    assert charts._trajectory_svg.cache_info().hits == 1
    other = trajectory_figure(CHART, figure_id="k", title="another title", description=DESCRIPTION)
    assert other.svg is not first.svg and "another title" in other.svg


def test_rendering_in_threads_gives_the_bytes_of_rendering_alone() -> None:
    inputs = [replace(CHART, points=POINTS[: n + 2]) for n in range(6)]
    alone = [draw(c, figure_id=f"c{i}") for i, c in enumerate(inputs)]
    charts._trajectory_svg.cache_clear()
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda ic: draw(ic[1], figure_id=f"c{ic[0]}"), enumerate(inputs)))
    assert charts._trajectory_svg.cache_info().hits == 0
    assert together == alone


def test_every_id_carries_the_figure_id_and_every_reference_resolves() -> None:
    root = parsed(draw(figure_id="fig-a"))
    ids = [e.get("id") for e in root.iter() if e.get("id") is not None]
    assert ids and all(i.startswith("fig-a-") for i in ids)  # type: ignore[union-attr]
    assert len(ids) == len(set(ids))
    refs = [v for e in root.iter() for v in e.attrib.values() if "#" in v]
    targets = {m for v in refs for m in re.findall(r"#([A-Za-z0-9_-]+)", v)
               if not re.fullmatch(r"[0-9a-fA-F]{6}", m)}
    assert targets and targets <= set(ids)  # type: ignore[operator]
    other = set(re.findall(r'id="([^"]+)"', draw(figure_id="fig-b")))
    assert not other & set(ids)  # two charts on one page share no id


def test_no_script_no_external_reference() -> None:
    for svg in (draw(), str(rates_figure(RATES, figure_id="r", title="t", description="d").svg)):
        assert "<script" not in svg.lower()
        assert "xlink" not in svg
        assert re.findall(r"https?:[^\"' )]*", svg) == ["http://www.w3.org/2000/svg"]
        assert svg.count("http") == 1
        names = {name for e in parsed(svg).iter() for name in e.attrib}
        assert not {n for n in names if n.lower().startswith("on")}  # no event handlers


def test_the_backend_style_is_scoped_to_its_own_svg() -> None:
    root = parsed(draw())
    for style in root.iter(f"{SVG}style"):
        for selector in re.findall(r"([^{}]+){", style.text or ""):
            assert selector.strip().startswith("#chart-phq-9-svg ")


def test_text_stays_text_at_twelve_pixels_or_more_in_dark_ink() -> None:
    svg = draw()
    sizes = [float(s) for s in re.findall(r"font-size: ([\d.]+)px", svg)]
    assert sizes and min(sizes) >= 12
    text_fills = set(re.findall(r"<text [^>]*fill: (#[0-9a-f]{6})", svg))
    assert text_fills == {"#1a1a1a"}
    assert "<path d" in svg and svg.count("<text") >= 20  # glyphs are not paths


def test_labels_are_escaped_and_not_read_as_tex() -> None:
    chart = replace(CHART, thresholds=(Threshold(5, "a <b> & $x$ c"),))
    root = parsed(draw(chart))
    assert "a <b> & $x$ c" in texts(root)


def relative_luminance(hex_colour: str) -> float:
    """WCAG 2.2's relative luminance of an sRGB colour "#rrggbb"."""
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def band_fill(root: ET.Element, figure_id: str, i: int) -> str:
    path = by_id(root, f"{figure_id}-band-{i}").find("svg:path", NS)
    assert path is not None
    (fill,) = re.findall(r"fill: (#[0-9a-f]{6})", path.get("style", ""))
    return fill


@pytest.mark.parametrize("count", [2, 4, 5, 6, 8])
def test_band_fills_darken_step_by_step_with_severity(count: int) -> None:
    bands = tuple(SeverityBand(i * 3, i * 3 + 2, f"band {i}") for i in range(count))
    chart = Trajectory(instrument="X", scale=(0, count * 3 - 1), points=POINTS[:2], bands=bands)
    root = parsed(draw(chart, figure_id="x"))
    luminance = [relative_luminance(band_fill(root, "x", i)) for i in range(count)]
    assert all(a - b > 0.04 for a, b in itertools.pairwise(luminance))  # distinct, falling
    ink = relative_luminance("#1a1a1a")
    assert (min(luminance) + 0.05) / (ink + 0.05) >= 4.5  # the band labels' contrast


def test_the_phq9_bands_are_drawn_in_order_of_their_published_ranges() -> None:
    root = parsed(draw())
    tops = []
    for i in range(len(BANDS)):
        d = by_id(root, f"chart-phq-9-band-{i}").find("svg:path", NS).get("d")  # type: ignore[union-attr]
        tops.append(min(float(y) for y in re.findall(r"L [\d.]+ ([\d.]+)", d or "")))
    assert tops == sorted(tops, reverse=True)  # "severe" (20-27) is the topmost


def test_thresholds_are_dashed_or_dotted_lines() -> None:
    root = parsed(draw())
    styles = [by_id(root, f"chart-phq-9-threshold-{i}").find("svg:path", NS).get("style", "")  # type: ignore[union-attr]
              for i in range(2)]
    dashes = [re.search(r"stroke-dasharray: ([^;]+)", s) for s in styles]
    assert all(dashes) and dashes[0].group(1) != dashes[1].group(1)  # type: ignore[union-attr]


def test_labels_of_close_thresholds_do_not_cover_each_other() -> None:
    close = (Threshold(10, "episode threshold 10"), Threshold(5, "remission below 5"),
             Threshold(6, "partial remission below 6"))
    root = parsed(draw(replace(CHART, thresholds=close)))

    def label_box(i: int) -> tuple[float, float]:
        path = by_id(root, f"chart-phq-9-threshold-label-{i}").find(".//svg:path", NS)
        ys = [float(y) for y in re.findall(r"[ML] [\d.]+ ([\d.]+)", path.get("d", ""))]  # type: ignore[union-attr]
        return min(ys), max(ys)

    (top5, bottom5), (top6, bottom6) = label_box(1), label_box(2)
    assert bottom6 <= top5 or bottom5 <= top6  # the backings do not overlap


def test_decisions_are_vertical_lines_and_a_retracted_one_is_dashed() -> None:
    root = parsed(draw())
    for i, retracted in enumerate((False, True, False)):
        path = by_id(root, f"chart-phq-9-decision-{i}").find("svg:path", NS)
        assert path is not None
        x0, _, x1, _ = (float(v) for v in re.findall(r"[\d.]+", path.get("d", "")))
        assert x0 == x1
        assert ("stroke-dasharray" in path.get("style", "")) is retracted
    assert texts(by_id(root, "chart-phq-9-decision-label-1")) == ["remission (retracted)"]


def test_decisions_on_one_date_share_a_line_and_a_label() -> None:
    same_day = (DecisionMark(date(2026, 1, 26), 4, "response"),
                DecisionMark(date(2026, 1, 26), 4, "partial remission"),
                DecisionMark(date(2026, 1, 26), 4, "remission", retracted=True))
    root = parsed(draw(replace(CHART, decisions=same_day)))
    assert texts(by_id(root, "chart-phq-9-decision-label-0")) == ["response, partial remission"]
    assert texts(by_id(root, "chart-phq-9-decision-label-1")) == ["remission (retracted)"]
    assert root.find(".//*[@id='chart-phq-9-decision-2']") is None
    line = by_id(root, "chart-phq-9-decision-0").find("svg:path", NS)
    assert line is not None
    line_x = float(re.findall(r"[\d.]+", line.get("d", ""))[0])
    kept, retracted = (float(re.findall(r"translate\(([\d.]+)", by_id(
        root, f"chart-phq-9-decision-label-{i}").find(".//svg:text", NS).get("transform", ""))[0])  # type: ignore[union-attr]
        for i in (0, 1))
    assert kept < line_x < retracted  # rotated text: its baseline right of its glyphs


def test_the_expected_band_is_hatched_and_translucent() -> None:
    root = parsed(draw())
    hatch = by_id(root, "chart-phq-9-expected").find("svg:path", NS)
    assert hatch is not None and "url(#chart-phq-9-h" in hatch.get("style", "")
    fill = by_id(root, "chart-phq-9-expected-fill").find("svg:path", NS)
    assert fill is not None and re.search(r"fill-opacity: 0\.1", fill.get("style", ""))
    assert root.find(".//svg:pattern", NS) is not None


def test_the_date_axis_reads_as_days_and_months() -> None:
    root = parsed(draw())
    labels = texts(by_id(root, "chart-phq-9-x-axis"))
    assert labels == ["5 Jan 2026", "12 Jan", "19 Jan", "26 Jan", "2 Feb", "9 Feb", "16 Feb",
                      "clinical date"]


def test_the_date_axis_names_the_year_where_it_changes() -> None:
    points = tuple(ScorePoint(date(2025, 12, 1) + timedelta(weeks=2 * i), i + 1, 10) for i in range(5))
    labels = texts(by_id(parsed(draw(replace(CHART, points=points, decisions=(), expected=()),
                                     figure_id="y")), "y-x-axis"))
    assert labels[:4] == ["1 Dec 2025", "15 Dec", "29 Dec", "12 Jan 2026"]


def test_the_session_axis_labels_sessions_one_to_n() -> None:
    root = parsed(draw(replace(CHART, axis="session")))
    labels = texts(by_id(root, "chart-phq-9-x-axis"))
    assert labels == [*(str(n) for n in range(1, 8)), "session"]
    ys = marker_ys(by_id(root, "chart-phq-9-points"))
    assert ys == sorted(ys)
    xs = [float(u.get("x", "0")) for u in by_id(root, "chart-phq-9-points").iter(f"{SVG}use")]
    steps = {round(b - a, 3) for a, b in itertools.pairwise(xs)}
    assert len(steps) == 1  # evenly spaced sessions


def test_a_chart_without_points_still_draws_its_scale() -> None:
    root = parsed(draw(Trajectory(instrument="GAD-7", scale=(0, 21), points=(), bands=BANDS[:4])))
    assert root.find(".//*[@id='chart-phq-9-points']") is None
    assert "moderately severe" in texts(root)
    assert texts(by_id(root, "chart-phq-9-no-scores")) == ["no scores to show"]
    assert texts(by_id(root, "chart-phq-9-x-axis")) == ["clinical date"]  # no made-up dates


def test_a_bad_figure_id_is_refused() -> None:
    with pytest.raises(ValueError, match="figure_id"):
        draw(figure_id='x" onload="alert(1)')


def draw_rates(chart: RatesChart = RATES) -> ET.Element:
    return parsed(str(rates_figure(chart, figure_id="chart-rates", title="Rates by month",
                                   description="Response rose from 40 % to 55 %").svg))


def test_rates_are_lines_per_series_told_apart_by_marker_dash_and_label() -> None:
    root = draw_rates()
    assert root.get("role") == "img" and root[0].text == "Rates by month"
    shown = texts(root)
    assert {"response", "remission", "recovery", "month of discharge",
            "percent of evaluable episodes"} <= set(shown)
    markers, dashes = set(), set()
    for i, series in enumerate(RATES.series):
        group = by_id(root, f"chart-rates-series-{i}")
        uses = list(group.iter(f"{SVG}use"))
        assert len(uses) == sum(v is not None for v in series.values)
        (href,) = {u.get("href") for u in uses}
        markers.add(by_id(root, (href or "#")[1:]).get("d"))
        line = group.find("svg:path", NS)
        assert line is not None
        found = re.search(r"stroke-dasharray: ([^;]+)", line.get("style", ""))
        dashes.add(found.group(1) if found else "solid")
    assert len(markers) == len(dashes) == len(RATES.series)


def test_rates_run_from_zero_to_a_hundred_percent_upwards() -> None:
    root = draw_rates()
    y_axis = by_id(root, "chart-rates-y-axis")
    ticks = {"".join(t.itertext()): float(t.get("y", "0")) for t in y_axis.iter(f"{SVG}text")}
    assert [k for k in ticks if k.isdigit()] == ["0", "20", "40", "60", "80", "100"]
    assert ticks["100"] < ticks["0"]
    ys = marker_ys(by_id(root, "chart-rates-series-1"))  # 20, 30, 35, 40 %
    assert ys == sorted(ys, reverse=True)
    # the year under the first month and under January (a two-line label: two <text>s)
    assert texts(by_id(root, "chart-rates-x-axis")) == ["Nov", "2025", "Dec", "Jan", "2026", "Feb",
                                                        "month of discharge"]


def test_a_series_that_does_not_fit_the_months_is_refused() -> None:
    with pytest.raises(ValueError, match="3 values, 4 months"):
        draw_rates(RatesChart(months=RATES.months, series=(RateSeries("response", (1.0, 2.0, 3.0)),)))


def test_a_long_legend_wraps_into_rows_above_a_lowered_plot() -> None:
    names = ("response", "remission", "recovery", "relapse", "reliable improvement",
             "reliable recovery (NHS Talking Therapies)")
    wide = RatesChart(months=RATES.months, series=tuple(
        RateSeries(n, (10.0, 20.0, 30.0, 40.0)) for n in names))

    def top_tick_y(root: ET.Element) -> float:
        ticks = {"".join(t.itertext()): float(t.get("y", "0"))
                 for t in by_id(root, "chart-rates-y-axis").iter(f"{SVG}text")}
        return ticks["100"]

    root = draw_rates(wide)
    legend_ys = {round(float(t.get("y", "0"))) for t in root.iter(f"{SVG}text")
                 if "".join(t.itertext()) in names}
    assert len(legend_ys) > 1 and min(legend_ys) > 0  # rows, all inside the image
    assert top_tick_y(root) > top_tick_y(draw_rates()) + 15  # the plot moved down for them


def test_many_months_show_the_year_where_it_changes() -> None:
    months = tuple(f"{2024 + m // 12}-{m % 12 + 1:02d}" for m in range(3, 33))  # Apr 2024 .. Sep 2026
    root = draw_rates(RatesChart(months=months, series=(RateSeries("response", (50.0,) * 30),)))
    labels = texts(by_id(root, "chart-rates-x-axis"))
    assert labels[:2] == ["Apr", "2024"]
    assert [labels[i + 1] for i, t in enumerate(labels) if t == "Jan"] == ["2025", "2026"]
    assert len([t for t in labels if t in MONTH_NAMES]) <= 12


@st.composite
def trajectories(draw_: st.DrawFn) -> Trajectory:
    """Any PHQ-9 chart: 0..20 administrations over up to two years, some voided, decisions."""
    days = sorted(draw_(st.lists(st.integers(0, 730), max_size=20, unique=True)))
    totals = draw_(st.lists(st.integers(0, 27), min_size=len(days), max_size=len(days)))
    voided = draw_(st.lists(st.booleans(), min_size=len(days), max_size=len(days)))
    points = tuple(ScorePoint(START + timedelta(days=d), i + 1, t, voided=v)
                   for i, (d, t, v) in enumerate(zip(days, totals, voided, strict=True)))
    decisions = tuple(DecisionMark(p.on, p.session, "response", retracted=draw_(st.booleans()))
                      for p in points if draw_(st.booleans()))
    return Trajectory(instrument="PHQ-9", scale=(0, 27), points=points, bands=BANDS,
                      thresholds=THRESHOLDS, decisions=decisions,
                      axis=draw_(st.sampled_from(["date", "session"])))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trajectories())
def test_any_trajectory_draws_every_point_with_prefixed_ids(chart: Trajectory) -> None:
    root = parsed(draw(chart, figure_id="any"))
    ids = [e.get("id") or "" for e in root.iter() if e.get("id")]
    assert all(i.startswith("any-") for i in ids) and len(ids) == len(set(ids))
    counted = [p for p in chart.points if not p.voided]
    voided = [p for p in chart.points if p.voided]
    for group, points in (("any-points", counted), ("any-voided", voided)):
        found = root.find(f".//*[@id='{group}']")
        assert len(marker_ys(found) if found is not None else []) == len(points)
    if counted:
        ys = dict(zip(sorted((p.on, p.session) for p in counted),
                      marker_ys(by_id(root, "any-points")), strict=True))
        by_total = sorted(counted, key=lambda p: p.total)
        assert ys[(by_total[-1].on, by_total[-1].session)] <= ys[(by_total[0].on, by_total[0].session)]


def test_importing_the_charts_does_not_load_matplotlib() -> None:
    """A process that draws no chart (the CLI, a server before its first episode page) does not
    pay matplotlib's import."""
    code = "import sys, api.ui.charts; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "False"


def test_y_ticks_are_whole_points_on_the_scale() -> None:
    root = parsed(draw(replace(CHART, instrument="GAD-7", scale=(0, 21), bands=BANDS[:4])))
    ticks = [t for t in texts(by_id(root, "chart-phq-9-y-axis")) if t.isdigit()]
    assert ticks == ["0", "5", "10", "15", "20"]
