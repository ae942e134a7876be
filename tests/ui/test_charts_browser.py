"""The charts in Chromium (api/ui/charts.py, ADR 0036): embedded in a page with the UI's CSS,
axe-core finds nothing, each chart is an image named by its title, it scales down with the
viewport and keeps its shape, and its labels fit where they are drawn in the browser's font."""

from __future__ import annotations

from dataclasses import replace

import pytest
from browser_helpers import axe_violations
from markupsafe import Markup, escape
from playwright.sync_api import Page
from test_charts import CHART, DESCRIPTION, RATES, TITLE

from api.ui.charts import rates_figure, trajectory_figure
from api.ui.rendering import STATIC

pytestmark = pytest.mark.ui
PLOT_LEFT, PLOT_RIGHT = 64, 706  # charts.LEFT and WIDTH - RIGHT, in SVG user units


def document() -> str:
    figures = [
        trajectory_figure(CHART, figure_id="chart-phq-9", title=TITLE, description=DESCRIPTION),
        trajectory_figure(replace(CHART, axis="session"), figure_id="chart-phq-9-sessions",
                          title="PHQ-9 by session", description="The same scores by session"),
        rates_figure(RATES, figure_id="chart-rates", title="Outcome rates by month",
                     description="Response rose from 40 % to 55 %"),
    ]
    body = Markup("").join(Markup('<figure id="fig-{}">{}<figcaption>{}</figcaption></figure>')
                           .format(i, f.svg, f.title) for i, f in enumerate(figures))
    css = (STATIC / "ui.css").read_text(encoding="utf-8")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Charts</title>'
            f"<style>{escape(css)}</style></head><body><main id=\"main\"><h1>Charts</h1>{body}"
            f"</main></body></html>")


def test_charts_in_a_page_are_named_images_without_axe_violations(page: Page) -> None:
    page.set_content(document())
    assert axe_violations(page) == []
    image = page.get_by_role("img", name=TITLE)
    assert image.count() == 1
    assert page.get_by_role("img").count() == 3
    box = image.bounding_box()
    assert box is not None and (round(box["width"]), round(box["height"])) == (720, 320)


def test_a_chart_scales_down_with_a_narrow_viewport_and_keeps_its_shape(page: Page) -> None:
    page.set_viewport_size({"width": 400, "height": 800})
    page.set_content(document())
    box = page.locator("#chart-phq-9-svg").bounding_box()
    assert box is not None and box["width"] <= 400
    assert abs(box["width"] / box["height"] - 720 / 320) < 0.02


def test_labels_fit_inside_the_plot_in_the_browsers_font(page: Page) -> None:
    page.set_content(document())
    boxes = page.evaluate("""() => [...document.querySelectorAll(
        '[id^="chart-phq-9-band-label-"] text, [id^="chart-phq-9-threshold-label-"] text')]
        .map(t => { const b = t.getBBox(); return [t.textContent, b.x, b.x + b.width]; })""")
    assert len(boxes) == 7
    for text, left, right in boxes:
        assert left >= PLOT_LEFT and right <= PLOT_RIGHT + 1, (text, left, right)
