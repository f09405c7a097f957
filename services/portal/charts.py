"""The statistics page's charts: SVG drawn on the server by pygal, readable without
JavaScript. pygal over matplotlib: its SVG keeps text as text (matplotlib's SVG backend
draws glyphs as paths, so Chinese labels need a CJK font installed on the server), it
writes ``<title>`` and ``<desc>`` a screen reader reads, and it is pure Python (no numpy,
no font cache). Its tooltip script is left out: the pages run no inline script (their CSP),
and every chart has its figures beside it as a table (the template)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pygal
from lxml import etree
from markupsafe import Markup
from pygal.style import Style

from services.portal.statistics import Statistics

#: Dark text on white and colours told apart by more than hue (WCAG AA contrast for text).
STYLE = Style(background="#ffffff", plot_background="#ffffff", foreground="#1a1a1a",
              foreground_strong="#000000", foreground_subtle="#595959",
              colors=("#005a9c", "#b35900", "#2e7d32", "#6a1b9a"), font_family="system-ui, sans-serif",
              title_font_size=18, label_font_size=14, major_label_font_size=14, legend_font_size=14)


@dataclass(frozen=True)
class Chart:
    """One chart: its caption, its SVG, and the rows of its table alternative."""

    key: str
    title: str
    svg: Markup
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


def svg(chart: pygal.graph.graph.Graph) -> Markup:
    """The chart's SVG element, without pygal's scripts, to put inline in a page, named
    by its title for a screen reader (its figures are the table beside it)."""
    tree = chart.render_tree()
    for script in list(tree.iter("{http://www.w3.org/2000/svg}script", "script")):
        script.getparent().remove(script)
    tree.set("role", "img")
    tree.set("aria-label", chart.title)
    tree.set("focusable", "false")
    return Markup(etree.tostring(tree, encoding="unicode"))


def _bar(title: str, labels: list[str], series: list[tuple[str, list[float | None]]]) -> pygal.Bar:
    chart = pygal.Bar(style=STYLE, js=[], disable_xml_declaration=True, width=480, height=360,
                      legend_at_bottom=True, x_label_rotation=0, truncate_label=-1, print_values=False)
    chart.title = title
    chart.x_labels = labels
    for name, values in series:
        chart.add(name, values)
    return chart


def district_charts(stats: Statistics, t: Callable[[str], str]) -> list[Chart]:
    """The statistics page's charts, titled in the reader's language by ``t``."""
    labels = [c.name or c.community_id for c in stats.communities]
    fund = [c.fund_fen / 100 for c in stats.communities]
    spent = [c.spent_fen / 100 for c in stats.communities]
    resolutions = [c.resolutions for c in stats.communities]
    on_time = [c.on_time for c in stats.communities]
    satisfaction = [c.satisfaction_percent for c in stats.communities]
    charts = [
        ("spending", [(t("stats.fund"), fund), (t("stats.spent"), spent)]),
        ("resolutions", [(t("stats.resolutions"), resolutions), (t("stats.on_time"), on_time)]),
        ("satisfaction", [(t("stats.satisfaction"), satisfaction)]),
    ]
    found = []
    for key, series in charts:
        title = t(f"chart.{key}")
        rows = [(label, *("—" if s[1][i] is None else f"{s[1][i]:g}" for s in series))
                for i, label in enumerate(labels)]
        found.append(Chart(key, title, svg(_bar(title, labels, series)), (t("stats.community"),
                                                                          *(name for name, _ in series)), rows))
    return found
